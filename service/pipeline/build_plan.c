/* build_plan.c — what a build's domain and image are made of: the profile rule, the isoboot
 * plan, the domain XML and the properties. No side effects but reading templates. */
#include <stdlib.h>
#include <string.h>

#include "drivers/guestnet.h"
#include "service/pipeline/answers.h"
#include "service/pipeline/build.h"
#include "service/pipeline/templates.h"

/* Properties isoforge never writes on an image (Glance's or Nova's own). */
static const char *const build_forbidden[] = {
	"base_image_ref", "instance_uuid", "image_type", NULL
};

/*
 * One of the build's OS triple: the request's when it gave any of the three, else the ISO
 * image's os_type / os_distro / os_version (the same rule chooses the profile).
 */
static const char *
build_os(const struct build *b, const char *which)
{
	if (b->os_type != NULL || b->os_distro != NULL || b->os_version != NULL) {
		if (strcmp(which, "os_type") == 0)
			return b->os_type;
		return strcmp(which, "os_distro") == 0 ? b->os_distro : b->os_version;
	}
	return json_string_value(json_object_get(b->iso_props, which));
}

/* The profile by the one rule (see build_make_plan); caller frees. */
static struct isoboot_profile *
build_profile(const struct build *b, struct err *e)
{
	struct isoboot_profile	*p;
	const char		*name = b->profile_name;

	if (name == NULL)
		name = isoboot_profile_choose_for(b->os_type, b->os_distro, b->os_version,
		    b->iso_props);
	if ((p = templates_load_profile(b->templates != NULL ? b->templates : templates_dir(),
	    name, e)) == NULL)
		return NULL;
	if (b->iso_props != NULL &&
	    isoboot_profile_apply_properties(p, b->iso_props, e) == -1)
		goto fail;
	if (b->machine != NULL && isoboot_profile_set(p, "machine", b->machine, e) == -1)
		goto fail;
	return p;
fail:
	isoboot_profile_free(&p);
	return NULL;
}

/* Unattended: the answer files and media into the work dir (write), into media/params. */
static int
build_answers(struct build *b, const struct isoboot_profile *profile, int write,
    struct isoboot_media *media, struct isoboot_params *params, struct err *e)
{
	struct answers_params	 ap;

	memset(&ap, 0, sizeof(ap));
	ap.build_id = b->id;
	ap.templates = b->templates != NULL ? b->templates : templates_dir();
	ap.work_dir = b->work_dir;
	ap.iso = b->iso;
	ap.profile = profile;
	ap.os_type = build_os(b, "os_type");
	ap.os_distro = build_os(b, "os_distro");
	ap.os_version = build_os(b, "os_version");
	ap.firmware = b->firmware;
	ap.answers = b->answers;
	ap.ssh_pubkey = b->ssh_pubkey;
	ap.salt = b->answers_salt;
	if (b->answers_out == NULL)
		b->answers_out = xcalloc(1, sizeof(*b->answers_out));
	answers_result_free(b->answers_out);
	if (answers_prepare(&ap, write, b->answers_out, e) == -1)
		return -1;
	answers_apply(b->answers_out, media, params);
	return 0;
}

int
build_make_plan(struct build *b, int make, struct err *e)
{
	struct isoboot_profile	*profile;
	struct isoboot_media	 media;
	struct isoboot_params	 params;
	struct guestnet_policy	 net;
	const char		*fw;
	char			*nvram = NULL;
	int			 rc = -1;

	if (b->work_dir == NULL)
		b->work_dir = xasprintf("%s/%s", b->work_root, b->id);
	if (b->root_disk == NULL)
		b->root_disk = xasprintf("%s/root.qcow2", b->work_dir);
	free(b->serial_log);
	b->serial_log = xasprintf("%s/console.log", b->work_dir);
	if ((profile = build_profile(b, e)) == NULL)
		return -1;
	fw = b->firmware != NULL ? b->firmware : profile->firmware;
	if (fw != NULL && strcmp(fw, "uefi") == 0)
		nvram = xasprintf("%s/uefi-vars.fd", b->work_dir);

	memset(&media, 0, sizeof(media));
	memset(&params, 0, sizeof(params));
	media.root_disk = b->root_disk;
	media.iso = b->iso;
	media.virtio_win = b->virtio_win;
	media.floppy = b->floppy;
	media.extra_cdroms = (const char *const *)b->extra_cdroms;
	params.build_id = b->id;
	params.name = b->name;
	params.domain_type = b->domain_type;
	params.firmware = b->firmware;
	params.vnc_listen = b->vnc_listen;
	params.vnc_password = b->vnc_password_fixed != NULL ? b->vnc_password_fixed :
	    b->vnc_password[0] != '\0' ? b->vnc_password : NULL;
	params.serial_log = b->serial_log;
	params.nvram = nvram;
	params.owner = b->owner;
	if (guestnet_isoboot(b->guest_network, &net, &params, e) == -1)
		goto cleanup;
	params.disk_only = b->disk_only;
	/* nobody needs a screen where answer files drive the install, or on the disk alone */
	params.headless = b->console == BUILD_CONSOLE_NONE || (b->console == BUILD_CONSOLE_AUTO &&
	    (b->unattended || b->disk_only));
	if (b->unattended && !b->disk_only &&
	    build_answers(b, profile, make, &media, &params, e) == -1)
		goto cleanup;
	isoboot_plan_free(&b->plan);
	if ((b->plan = isoboot_plan_build(profile, &b->flavor, &media, &params, e)) == NULL)
		goto cleanup;
	free(b->domain_name);
	b->domain_name = xstrdup(b->plan->domain_name);
	rc = 0;
cleanup:
	free(nvram);
	isoboot_profile_free(&profile);
	return rc;
}

char *
build_domain_xml(const struct build *b, struct err *e)
{
	char	*base, *xml;

	if ((base = templates_load_domain(b->templates != NULL ? b->templates :
	    templates_dir(), e)) == NULL)
		return NULL;
	xml = isoboot_domain_xml(b->plan, base, e);
	free(base);
	return xml;
}

json_t *
build_nova_properties(const struct build *b)
{
	json_t		*p;
	const char	*s;

	p = b->plan != NULL ? isoboot_image_properties(b->plan) : json_object();
	if ((s = build_os(b, "os_distro")) != NULL)
		json_object_set_new(p, "os_distro", json_string(s));
	if ((s = build_os(b, "os_version")) != NULL)
		json_object_set_new(p, "os_version", json_string(s));
	return p;
}

/* 1 when the request may set property k: never os_glance_*, isoforge_* or the forbidden. */
static int
build_property_allowed(const char *k)
{
	size_t	 i;

	if (strncmp(k, "os_glance_", 10) == 0 || strncmp(k, "isoforge_", 9) == 0)
		return 0;
	for (i = 0; build_forbidden[i] != NULL; i++)
		if (strcmp(k, build_forbidden[i]) == 0)
			return 0;
	return 1;
}

json_t *
build_image_properties(const struct build *b, const char *built_at)
{
	json_t		*p, *nova, *v;
	const char	*k;

	p = json_object();
	/* the request's first, so Nova's (what the install ran on) and the lineage win */
	if (b->properties != NULL)
		json_object_foreach(b->properties, k, v)
			if (json_is_string(v) && build_property_allowed(k))
				json_object_set(p, k, v);
	nova = build_nova_properties(b);
	json_object_update(p, nova);
	json_decref(nova);
	if (b->parent != NULL)
		json_object_set_new(p, "isoforge_parent", json_string(b->parent));
	json_object_set_new(p, "isoforge_build_id", json_string(b->id));
	if (b->iso_ref != NULL)
		json_object_set_new(p, "isoforge_source_iso", json_string(b->iso_ref));
	if (b->iso_hash != NULL)
		json_object_set_new(p, "isoforge_source_iso_hash", json_string(b->iso_hash));
	json_object_set_new(p, "isoforge_virtio_win",
	    json_string(b->virtio_win_ref != NULL ? b->virtio_win_ref : "none"));
	json_object_set_new(p, "isoforge_built_at", json_string(built_at));
	return p;
}
