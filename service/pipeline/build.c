/* build.c — one build's pipeline: the steps, the one state-setting function, the local registry. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "drivers/hash.h"
#include "drivers/localstore.h"
#include "drivers/qemuimg.h"
#include "service/pipeline/answers.h"
#include "service/pipeline/build.h"
#include "base/log.h"
#include "service/pipeline/templates.h"

#define BUILD_DEFAULT_GRACE	60.0

static const char *const build_state_names[] = {
	[BUILD_QUEUED] = "queued",
	[BUILD_RESOLVING] = "resolving",
	[BUILD_FETCHING] = "fetching",
	[BUILD_ASSEMBLING] = "assembling",
	[BUILD_INSTALLING] = "installing",
	[BUILD_CUSTOMIZING] = "customizing",
	[BUILD_SNAPSHOTTING] = "snapshotting",
	[BUILD_REGISTERING] = "registering",
	[BUILD_ACTIVE] = "active",
	[BUILD_FAILED] = "failed",
	[BUILD_CANCELLED] = "cancelled",
};

/* Properties isoforge never writes on an image (Glance's or Nova's own). */
static const char *const build_forbidden[] = {
	"base_image_ref", "instance_uuid", "image_type", NULL
};

const char *
build_state_name(enum build_state s)
{
	if ((unsigned)s >= sizeof(build_state_names) / sizeof(build_state_names[0]))
		return "unknown";
	return build_state_names[s];
}

int
build_state_from_name(const char *name)
{
	size_t	 i;

	for (i = 0; i < sizeof(build_state_names) / sizeof(build_state_names[0]); i++)
		if (strcmp(build_state_names[i], name) == 0)
			return (int)i;
	return -1;
}

int
build_state_terminal(enum build_state s)
{
	return s == BUILD_ACTIVE || s == BUILD_FAILED || s == BUILD_CANCELLED;
}

struct build *
build_new(const char *id, struct loop *l, struct virt *v)
{
	struct build	*b = xcalloc(1, sizeof(*b));
	char		 uuid[37];

	if (id == NULL) {
		util_uuid(uuid);
		id = uuid;
	}
	snprintf(b->id, sizeof(b->id), "%s", id);
	b->loop = l;
	b->virt = v;
	b->state = BUILD_QUEUED;
	b->finish_grace_s = BUILD_DEFAULT_GRACE;
	b->started_at = util_now();
	return b;
}

void
build_free(struct build **bp)
{
	struct build	*b;

	if (bp == NULL || (b = *bp) == NULL)
		return;
	if (b->timeout_timer)
		loop_timer_remove(b->loop, b->timeout_timer);
	virt_domain_free(&b->dom);
	isoboot_plan_free(&b->plan);
	free(b->message);
	free(b->name);
	free(b->chain);
	free(b->parent);
	free(b->iso);
	free(b->iso_ref);
	free(b->iso_hash);
	free(b->virtio_win);
	free(b->virtio_win_ref);
	free(b->os_type);
	free(b->os_distro);
	free(b->os_version);
	free(b->profile_name);
	free(b->firmware);
	free(b->machine);
	free(b->domain_type);
	free(b->vnc_listen);
	free(b->templates);
	json_decref(b->properties);
	free(b->work_root);
	free(b->log_dir);
	json_decref(b->answers);
	free(b->ssh_pubkey);
	answers_result_free(b->answers_out);
	free(b->answers_out);
	free(b->work_dir);
	free(b->root_disk);
	free(b->serial_log);
	free(b->snapshot);
	free(b->domain_name);
	free(b->outcome_reason);
	free(b->image_id);
	json_decref(b->image_properties);
	explicit_bzero(b->vnc_password, sizeof(b->vnc_password));
	free(b);
	*bp = NULL;
}

void
build_set_state(struct build *b, enum build_state s, const char *fmt, ...)
{
	va_list	 ap;

	free(b->message);
	b->message = NULL;
	if (fmt != NULL) {
		va_start(ap, fmt);
		b->message = xvasprintf(fmt, ap);
		va_end(ap);
	}
	b->state = s;
	log_debug("build %s: %s%s%s", b->id, build_state_name(s), b->message ? ": " : "",
	    b->message ? b->message : "");
	if (b->on_state != NULL)
		b->on_state(b, s, b->message, b->cb_arg);
}

/* Lets pending signals and events (a cancel) reach the build between steps. */
static int
build_poll(struct build *b, struct err *e)
{
	if (b->loop != NULL)
		(void)loop_run_once(b->loop, 0, NULL);
	if (b->cancel_requested) {
		err_set(e, ERR_CANCELLED, "cancelled");
		return -1;
	}
	return 0;
}

/* Absolute, canonical path of an existing regular file; caller frees. */
static char *
build_file(const char *what, const char *path, struct err *e)
{
	char		 real[PATH_MAX];
	struct stat	 st;

	if (realpath(path, real) == NULL) {
		err_set(e, ERR_NOTFOUND, "%s %s: %s", what, path, strerror(errno));
		return NULL;
	}
	if (stat(real, &st) == -1 || !S_ISREG(st.st_mode)) {
		err_set(e, ERR_INVAL, "%s %s: not a regular file", what, path);
		return NULL;
	}
	return xstrdup(real);
}

int
build_resolve(struct build *b, struct err *e)
{
	char	*p;
	char	 sha[129], md5[33];

	build_set_state(b, BUILD_RESOLVING, NULL);
	if (b->name == NULL || b->iso == NULL || b->work_root == NULL) {
		err_set(e, ERR_INVAL, "a build needs a name, an ISO and a work directory");
		return -1;
	}
	if (b->flavor.disk_gib == 0) {
		err_set(e, ERR_INVAL, "disk size: must be at least 1 GiB");
		return -1;
	}
	if ((p = build_file("ISO", b->iso, e)) == NULL)
		return -1;
	free(b->iso);
	b->iso = p;
	if (b->virtio_win != NULL) {
		if ((p = build_file("virtio-win", b->virtio_win, e)) == NULL)
			return -1;
		free(b->virtio_win);
		b->virtio_win = p;
	}
	if (b->chain == NULL)
		b->chain = xstrdup(b->name);
	if (b->iso_ref == NULL)
		b->iso_ref = xstrdup(b->iso);
	if (b->virtio_win_ref == NULL)
		b->virtio_win_ref = xstrdup(b->virtio_win != NULL ? b->virtio_win : "none");
	if (b->iso_hash == NULL) {
		if (hash_file(b->iso, sha, md5, e) == -1)
			return -1;
		b->iso_hash = xstrdup(sha);
	}
	if (b->profile_name == NULL)
		b->profile_name = xstrdup(isoboot_profile_choose(b->os_type, b->os_distro,
		    b->os_version));
	if (b->templates == NULL)
		b->templates = xstrdup(templates_dir());
	return build_poll(b, e);
}

/* Unattended: the answer files and media into the work dir (fresh), into media/params. */
static int
build_answers(struct build *b, const struct isoboot_profile *profile, int fresh,
    struct isoboot_media *media, struct isoboot_params *params, struct err *e)
{
	struct answers_params	 ap;

	memset(&ap, 0, sizeof(ap));
	ap.build_id = b->id;
	ap.templates = b->templates;
	ap.work_dir = b->work_dir;
	ap.iso = b->iso;
	ap.profile = profile;
	ap.os_type = b->os_type;
	ap.os_distro = b->os_distro;
	ap.os_version = b->os_version;
	ap.firmware = b->firmware;
	ap.answers = b->answers;
	ap.ssh_pubkey = b->ssh_pubkey;
	if (b->answers_out == NULL)
		b->answers_out = xcalloc(1, sizeof(*b->answers_out));
	answers_result_free(b->answers_out);
	if (answers_prepare(&ap, fresh, b->answers_out, e) == -1)
		return -1;
	answers_apply(b->answers_out, media, params);
	return 0;
}

/*
 * The work paths and the isoboot plan of the build; with fresh, also the work dir, the blank
 * root disk and a VNC password (assembling), else the plan of what an earlier run assembled
 * (the root disk must be there). The plan is a pure function of the request: the same again.
 */
static int
build_plan(struct build *b, int fresh, struct err *e)
{
	struct isoboot_profile	*profile = NULL;
	struct isoboot_media	 media;
	struct isoboot_params	 params;
	char			*nvram = NULL;
	const char		*fw;
	int			 rc = -1;

	b->work_dir = xasprintf("%s/%s", b->work_root, b->id);
	b->root_disk = xasprintf("%s/root.qcow2", b->work_dir);
	b->serial_log = xasprintf("%s/console.log", b->work_dir);
	if (fresh && util_mkdirs(b->work_dir, e) == -1)
		goto cleanup;
	if (!fresh && access(b->root_disk, R_OK) == -1) {
		err_set(e, ERR_NOTFOUND, "root disk %s: %s", b->root_disk, strerror(errno));
		goto cleanup;
	}
	if ((profile = templates_load_profile(b->templates, b->profile_name, e)) == NULL)
		goto cleanup;
	if (b->machine != NULL &&
	    isoboot_profile_set(profile, "machine", b->machine, e) == -1)
		goto cleanup;
	fw = b->firmware != NULL ? b->firmware : profile->firmware;
	if (fw != NULL && strcmp(fw, "uefi") == 0)
		nvram = xasprintf("%s/uefi-vars.fd", b->work_dir);
	if (fresh) {
		if (qemuimg_create(b->root_disk, (unsigned long long)b->flavor.disk_gib << 30,
		    e) == -1)
			goto cleanup;
		util_password(b->vnc_password, 8);
	}

	memset(&media, 0, sizeof(media));
	memset(&params, 0, sizeof(params));
	media.root_disk = b->root_disk;
	media.iso = b->iso;
	media.virtio_win = b->virtio_win;
	params.build_id = b->id;
	params.name = b->name;
	params.domain_type = b->domain_type;
	params.firmware = b->firmware;
	params.vnc_listen = b->vnc_listen;
	params.vnc_password = b->vnc_password[0] != '\0' ? b->vnc_password : NULL;
	params.serial_log = b->serial_log;
	params.nvram = nvram;
	if (b->unattended && build_answers(b, profile, fresh, &media, &params, e) == -1)
		goto cleanup;
	if ((b->plan = isoboot_plan_build(profile, &b->flavor, &media, &params, e)) == NULL)
		goto cleanup;
	b->domain_name = xstrdup(b->plan->domain_name);
	rc = 0;
cleanup:
	free(nvram);
	isoboot_profile_free(&profile);
	return rc;
}

int
build_assemble(struct build *b, struct err *e)
{
	char	*base = NULL, *xml = NULL;
	int	 rc = -1;

	build_set_state(b, BUILD_ASSEMBLING, NULL);
	if (build_plan(b, 1, e) == -1)
		goto cleanup;
	if ((base = templates_load_domain(b->templates, e)) == NULL ||
	    (xml = isoboot_domain_xml(b->plan, base, e)) == NULL)
		goto cleanup;
	if (build_poll(b, e) == -1)
		goto cleanup;
	/* a domain of this build left by a crashed earlier run */
	if (virt_remove_by_name(b->virt, b->domain_name, e) == -1)
		goto cleanup;
	if ((b->dom = virt_define(b->virt, xml, e)) == NULL)
		goto cleanup;
	rc = 0;
cleanup:
	if (xml != NULL)
		explicit_bzero(xml, strlen(xml));	/* holds the VNC password */
	free(xml);
	free(base);
	return rc;
}

int
build_reattach(struct build *b, struct err *e)
{
	if (build_plan(b, 0, e) == -1)
		return -1;
	if ((b->dom = virt_lookup(b->virt, b->domain_name, e)) == NULL)
		return -1;
	return 0;
}

/* Ends the install: maps the outcome to rc/err, drops the timer, tells the owner once. */
static void
build_install_done(struct build *b)
{
	build_install_done_cb	 done = b->install_done;
	struct err		 e;
	int			 rc = -1;

	if (done == NULL)
		return;
	b->install_done = NULL;
	if (b->timeout_timer) {
		loop_timer_remove(b->loop, b->timeout_timer);
		b->timeout_timer = 0;
	}
	err_clear(&e);
	switch (b->outcome) {
	case VIRT_POWEROFF:
	case VIRT_FINISHED:
		log_info("build %s: install done (%s) after %.1f s", b->id, b->outcome_reason,
		    util_now() - b->install_started_at);
		rc = 0;
		break;
	case VIRT_CANCELLED:
		if (b->timed_out)
			err_set(&e, ERR_TIMEOUT, "install timed out after %.0f s", b->timeout_s);
		else
			err_set(&e, ERR_CANCELLED, "cancelled");
		break;
	default:
		err_set(&e, ERR_IO, "install failed: %s", b->outcome_reason);
		break;
	}
	done(b, rc, &e, b->install_done_arg);
}

/* Records the install's end by the build itself (libvirt could not be asked). */
static void
build_end_install(struct build *b, enum virt_outcome o, const char *reason)
{
	if (b->outcome != VIRT_RUNNING)
		return;
	b->outcome = o;
	free(b->outcome_reason);
	b->outcome_reason = xstrdup(reason);
	build_install_done(b);
}

static void
build_outcome_cb(struct virt_domain *d, enum virt_outcome o, const char *reason, void *arg)
{
	struct build	*b = arg;

	(void)d;
	build_end_install(b, o, reason != NULL ? reason : "");
}

static void
build_timeout_cb(int id, void *arg)
{
	struct build	*b = arg;
	struct err	 e;

	loop_timer_remove(b->loop, id);
	b->timeout_timer = 0;
	if (b->outcome != VIRT_RUNNING || b->dom == NULL)
		return;
	log_info("build %s: install timed out after %.0f s", b->id, b->timeout_s);
	b->timed_out = 1;
	err_clear(&e);
	if (virt_cancel(b->dom, &e) == -1) {
		log_warnx("build %s: %s", b->id, e.msg);
		build_end_install(b, VIRT_CANCELLED, "timed out");
	}
}

int
build_install_start(struct build *b, build_install_done_cb done, void *arg, struct err *e)
{
	build_set_state(b, BUILD_INSTALLING, NULL);
	if (b->cancel_requested) {
		err_set(e, ERR_CANCELLED, "cancelled");
		return -1;
	}
	b->install_started_at = util_now();
	b->outcome = VIRT_RUNNING;
	b->install_done = done;
	b->install_done_arg = arg;
	virt_domain_autodestroy(b->dom, b->autodestroy);
	if (virt_start(b->dom, build_outcome_cb, b, e) == -1) {
		b->install_done = NULL;
		return -1;
	}
	if (b->timeout_s > 0)
		b->timeout_timer = loop_timer_add(b->loop, (int)(b->timeout_s * 1000),
		    build_timeout_cb, b, NULL);
	return 0;
}

struct build_wait {
	int		 done;
	int		 rc;
	struct err	 err;
};

static void
build_install_wait_cb(struct build *b, int rc, const struct err *e, void *arg)
{
	struct build_wait	*w = arg;

	(void)b;
	w->done = 1;
	w->rc = rc;
	w->err = *e;
}

int
build_install(struct build *b, struct err *e)
{
	struct build_wait	 w;

	memset(&w, 0, sizeof(w));
	if (build_poll(b, e) == -1)
		return -1;
	if (build_install_start(b, build_install_wait_cb, &w, e) == -1)
		return -1;
	/* a cancel or finish asked for while the domain was being started */
	if (b->cancel_requested)
		build_request_cancel(b);
	else if (b->finish_requested)
		build_request_finish(b);
	while (!w.done)
		if (loop_run_once(b->loop, -1, e) == -1)
			return -1;
	if (w.rc == -1)
		err_set(e, w.err.kind, "%s", w.err.msg);
	return w.rc;
}

int
build_console(struct build *b, int want_password, struct virt_console *c, struct err *e)
{
	if (b->dom == NULL) {
		err_set(e, ERR_CONFLICT, "build %s has no domain", b->id);
		return -1;
	}
	return virt_console_get(b->dom, want_password, c, e);
}

void
build_request_finish(struct build *b)
{
	struct err	 e;

	b->finish_requested = 1;
	if (b->state != BUILD_INSTALLING || b->dom == NULL || b->outcome != VIRT_RUNNING)
		return;
	err_clear(&e);
	if (virt_finish(b->dom, b->finish_grace_s, &e) == -1)
		log_warnx("build %s: finish: %s", b->id, e.msg);
}

void
build_request_cancel(struct build *b)
{
	struct err	 e;

	b->cancel_requested = 1;
	if (b->state != BUILD_INSTALLING || b->dom == NULL || b->outcome != VIRT_RUNNING)
		return;
	err_clear(&e);
	if (virt_cancel(b->dom, &e) == -1) {
		log_warnx("build %s: cancel: %s", b->id, e.msg);
		build_end_install(b, VIRT_CANCELLED, "cancelled");
	}
}

static void
build_convert_progress(void *arg, double pct)
{
	struct build	*b = arg;

	if (b->on_progress != NULL)
		b->on_progress(b, pct, b->cb_arg);
}

int
build_snapshot(struct build *b, struct err *e)
{
	static volatile sig_atomic_t never;

	build_set_state(b, BUILD_SNAPSHOTTING, NULL);
	if (build_poll(b, e) == -1)
		return -1;
	b->snapshot = xasprintf("%s/image.qcow2", b->work_dir);
	if (qemuimg_convert_ex(b->root_disk, b->snapshot, b->compress, build_convert_progress, b,
	    &never, 0, e) == -1)
		return -1;
	if (hash_file(b->snapshot, b->image_sha512, b->image_md5, e) == -1)
		return -1;
	return build_poll(b, e);
}

json_t *
build_image_properties(const struct build *b, const char *built_at)
{
	json_t		*p, *v;
	const char	*k;
	size_t		 i;
	int		 bad;

	p = b->plan != NULL ? isoboot_image_properties(b->plan) : json_object();
	if (b->properties != NULL)
		json_object_foreach(b->properties, k, v) {
			bad = strncmp(k, "os_glance_", 10) == 0 || strncmp(k, "isoforge_", 9) == 0;
			for (i = 0; build_forbidden[i] != NULL; i++)
				bad |= strcmp(k, build_forbidden[i]) == 0;
			if (!bad)
				json_object_set(p, k, v);
		}
	if (b->os_distro != NULL)
		json_object_set_new(p, "os_distro", json_string(b->os_distro));
	if (b->os_version != NULL)
		json_object_set_new(p, "os_version", json_string(b->os_version));
	json_object_set_new(p, "isoforge_chain", json_string(b->chain ? b->chain : ""));
	json_object_set_new(p, "isoforge_version", json_sprintf("%d", b->version));
	if (b->parent != NULL)
		json_object_set_new(p, "isoforge_parent", json_string(b->parent));
	json_object_set_new(p, "isoforge_build_id", json_string(b->id));
	if (b->iso_ref != NULL)
		json_object_set_new(p, "isoforge_source_iso", json_string(b->iso_ref));
	if (b->iso_hash != NULL)
		json_object_set_new(p, "isoforge_source_iso_hash", json_string(b->iso_hash));
	json_object_set_new(p, "isoforge_virtio_win",
	    json_string(b->virtio_win_ref ? b->virtio_win_ref : "none"));
	json_object_set_new(p, "isoforge_built_at", json_string(built_at));
	return p;
}

int
build_register(struct build *b, const struct registry *reg, struct err *e)
{
	json_t	*meta = NULL;
	char	 stamp[32];
	int	 rc = -1;

	build_set_state(b, BUILD_REGISTERING, NULL);
	if (build_poll(b, e) == -1)
		return -1;
	if (reg->ops->next_version(reg->ctx, b->chain, &b->version, e) == -1)
		goto cleanup;
	util_utc_stamp(stamp);
	json_decref(b->image_properties);
	b->image_properties = build_image_properties(b, stamp);
	meta = json_pack("{s:s, s:O}", "name", b->name, "properties", b->image_properties);
	if (reg->ops->add(reg->ctx, b->snapshot, meta, &b->image_id, e) == -1)
		goto cleanup;
	/* the registry has the file now */
	free(b->snapshot);
	b->snapshot = NULL;
	rc = 0;
cleanup:
	json_decref(meta);
	return rc;
}

void
build_cleanup(struct build *b)
{
	struct err	 e;
	char		*kept;

	err_clear(&e);
	if (b->timeout_timer) {
		loop_timer_remove(b->loop, b->timeout_timer);
		b->timeout_timer = 0;
	}
	if (b->dom != NULL) {
		if (virt_undefine(b->dom, &e) == -1)
			log_warnx("build %s: removing domain %s: %s", b->id, b->domain_name, e.msg);
		virt_domain_free(&b->dom);
	} else if (b->domain_name != NULL && b->virt != NULL &&
	    virt_remove_by_name(b->virt, b->domain_name, &e) == -1)
		log_warnx("build %s: removing domain %s: %s", b->id, b->domain_name, e.msg);
	/* the serial log stays with the build */
	if (b->serial_log != NULL && b->log_dir != NULL && access(b->serial_log, F_OK) == 0) {
		kept = xasprintf("%s/%s.console.log", b->log_dir, b->id);
		err_clear(&e);
		if (util_mkdirs(b->log_dir, &e) == -1 || rename(b->serial_log, kept) == -1)
			log_warnx("build %s: keeping the serial log in %s: %s", b->id, kept,
			    e.msg[0] ? e.msg : strerror(errno));
		else {
			free(b->serial_log);
			b->serial_log = kept;
			kept = NULL;
		}
		free(kept);
	}
	if (b->work_dir != NULL) {
		err_clear(&e);
		if (util_rmtree(b->work_dir, &e) == -1)
			log_warnx("build %s: %s", b->id, e.msg);
	}
	free(b->snapshot);
	b->snapshot = NULL;
}

int
build_run(struct build *b, const struct registry *reg, struct err *e)
{
	int	 rc;

	rc = build_resolve(b, e);
	if (rc == 0)
		rc = build_assemble(b, e);
	if (rc == 0)
		rc = build_install(b, e);
	if (rc == 0)
		rc = build_snapshot(b, e);
	if (rc == 0)
		rc = build_register(b, reg, e);
	build_cleanup(b);
	if (rc == 0)
		build_set_state(b, BUILD_ACTIVE, "image %s, %s version %d", b->image_id,
		    b->chain, b->version);
	else if (e->kind == ERR_CANCELLED)
		build_set_state(b, BUILD_CANCELLED, "%s", e->msg);
	else
		build_set_state(b, BUILD_FAILED, "%s", e->msg);
	return rc;
}

/* ---- the local registry: drivers/localstore ---- */

static int
registry_local_next_version(void *ctx, const char *chain, int *version, struct err *e)
{
	return localstore_next_version(ctx, chain, version, e);
}

static int
registry_local_add(void *ctx, const char *image_file, json_t *meta, char **id, struct err *e)
{
	return localstore_add(ctx, image_file, meta, id, e);
}

static json_t *
registry_local_get(void *ctx, const char *id, struct err *e)
{
	return localstore_get(ctx, id, e);
}

const struct registry_ops registry_local_ops = {
	.name = "local",
	.next_version = registry_local_next_version,
	.add = registry_local_add,
	.get = registry_local_get,
};
