/* cmd_plan.c — isoforge plan: the domain XML a build would define, with no side effects. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "isoboot/isoboot.h"
#include "service/cli/cmd.h"
#include "service/pipeline/answers.h"
#include "service/pipeline/request.h"
#include "service/pipeline/templates.h"
#include "base/util.h"

#define PLAN_WORK_ROOT	"/var/lib/isoforge/builds"
#define PLAN_MAX_PROPS	64

static void
plan_usage(FILE *out)
{
	fprintf(out,
	    "usage: isoforge plan REQUEST.json --iso PATH [--virtio-win PATH] [--vcpus N]\n"
	    "           [--ram MIB] --disk GIB [options]\n"
	    "\n"
	    "Prints the libvirt domain XML a build of REQUEST.json (a build request, schema\n"
	    "isoforge.build/1; only the fields present are checked) would define. No side\n"
	    "effects: nothing is created, defined or started. Errors go to stderr, exit 2.\n"
	    "\n"
	    "media (must exist):\n"
	    "  --iso PATH              the OS install ISO (CD-ROM, boots first while the disk is blank)\n"
	    "  --virtio-win PATH       virtio-win ISO, or a floppy image for windows-legacy\n"
	    "  --floppy PATH           an extra floppy image (answer files)\n"
	    "  --cdrom PATH            an extra CD-ROM image (repeatable), e.g. an answer-file ISO\n"
	    "flavor:\n"
	    "  --vcpus N --ram MIB     default: the profile's\n"
	    "  --disk GIB              root disk size (required, not 0)\n"
	    "profile:\n"
	    "  --profile NAME          an OS profile of TEMPLATES/profiles/NAME.conf; default chosen\n"
	    "                          from the request's os, else the ISO image's os_* properties\n"
	    "  --image-property K=V    a Glance property of the ISO image (repeatable): os_type,\n"
	    "                          os_distro, os_version choose the profile; hw_* override it\n"
	    "  --templates DIR         default $ISOFORGE_TEMPLATES or the installed templates\n"
	    "domain:\n"
	    "  --build-id ID           default: the request's build_id, else a new UUID\n"
	    "  --work-dir DIR          default " PLAN_WORK_ROOT "/BUILD_ID; holds root.qcow2,\n"
	    "                          console.log (serial console) and, for UEFI, uefi-vars.fd\n"
	    "  --root-disk PATH        default WORK_DIR/root.qcow2\n"
	    "  --domain-type T         kvm (default) | qemu (TCG)\n"
	    "  --network NAME          a libvirt network; default user-mode networking\n"
	    "  --vnc-listen ADDR       default 127.0.0.1\n"
	    "  --vnc-password PW       at most 8 characters; default a new random one per run\n"
	    "                          (give one for reproducible output)\n"
	    "output:\n"
	    "  --properties            print the built image's Nova properties (JSON) instead\n"
	    "  --answers               print the answer file of an unattended request instead\n"
	    "  --salt S                the answer files' crypt(3) salt (16 of [./A-Za-z0-9]);\n"
	    "                          default a new random one (give one for reproducible output)\n"
	    "  --ssh-pubkey KEY        the build's ephemeral SSH public key line, as a build has it\n");
}

/* Makes path absolute and canonical; it must exist. */
static char *
plan_media(const char *opt, const char *path, struct err *err)
{
	char		 real[PATH_MAX];
	struct stat	 st;

	if (realpath(path, real) == NULL) {
		err_set(err, ERR_NOTFOUND, "%s %s: %s", opt, path, strerror(errno));
		return NULL;
	}
	if (stat(real, &st) == -1 || !(S_ISREG(st.st_mode) || S_ISBLK(st.st_mode))) {
		err_set(err, ERR_INVAL, "%s %s: not a file", opt, path);
		return NULL;
	}
	return xstrdup(real);
}

/* Makes path absolute without requiring it to exist. */
static char *
plan_abs(const char *path)
{
	char	 cwd[PATH_MAX];

	if (path[0] == '/' || getcwd(cwd, sizeof(cwd)) == NULL)
		return xstrdup(path);
	return xasprintf("%s/%s", cwd, path);
}

/* Parses a positive decimal number for a flag. */
static int
plan_number(const char *opt, const char *s, unsigned *out, struct err *err)
{
	char		*end;
	unsigned long	 n;

	errno = 0;
	n = strtoul(s, &end, 10);
	if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno != 0 || n > UINT_MAX) {
		err_set(err, ERR_INVAL, "%s: '%s' is not a number", opt, s);
		return -1;
	}
	*out = (unsigned)n;
	return 0;
}

/* isoforge plan: request + media + flavor → the domain XML on stdout (or the image's
 * properties with --properties); no side effects. Returns a CMD_* exit code. */
int
cmd_plan(int argc, char **argv)
{
	enum { O_ISO = 256, O_VIRTIO, O_FLOPPY, O_CDROM, O_VCPUS, O_RAM, O_DISK, O_PROFILE,
	    O_PROP, O_TEMPLATES, O_BUILD_ID, O_WORK, O_ROOT, O_DTYPE, O_NETWORK, O_LISTEN,
	    O_PASSWORD, O_PROPERTIES, O_ANSWERS, O_SALT, O_SSHKEY };
	static const struct option opts[] = {
		{ "iso", required_argument, NULL, O_ISO },
		{ "virtio-win", required_argument, NULL, O_VIRTIO },
		{ "floppy", required_argument, NULL, O_FLOPPY },
		{ "cdrom", required_argument, NULL, O_CDROM },
		{ "vcpus", required_argument, NULL, O_VCPUS },
		{ "ram", required_argument, NULL, O_RAM },
		{ "disk", required_argument, NULL, O_DISK },
		{ "profile", required_argument, NULL, O_PROFILE },
		{ "image-property", required_argument, NULL, O_PROP },
		{ "templates", required_argument, NULL, O_TEMPLATES },
		{ "build-id", required_argument, NULL, O_BUILD_ID },
		{ "work-dir", required_argument, NULL, O_WORK },
		{ "root-disk", required_argument, NULL, O_ROOT },
		{ "domain-type", required_argument, NULL, O_DTYPE },
		{ "network", required_argument, NULL, O_NETWORK },
		{ "vnc-listen", required_argument, NULL, O_LISTEN },
		{ "vnc-password", required_argument, NULL, O_PASSWORD },
		{ "properties", no_argument, NULL, O_PROPERTIES },
		{ "answers", no_argument, NULL, O_ANSWERS },
		{ "salt", required_argument, NULL, O_SALT },
		{ "ssh-pubkey", required_argument, NULL, O_SSHKEY },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct err		 err;
	struct build_request	*req = NULL;
	struct isoboot_profile	*profile = NULL;
	struct isoboot_plan	*plan = NULL;
	struct isoboot_flavor	 flavor = { 0, 0, 0 };
	struct isoboot_media	 media;
	struct isoboot_params	 params;
	const char		*iso = NULL, *virtio = NULL, *floppy = NULL, *profile_name = NULL;
	const char		*templates = NULL, *build_id = NULL, *work = NULL, *root = NULL;
	const char		*dtype = NULL, *network = NULL, *listen = NULL, *password = NULL;
	const char		*cdroms[ISOBOOT_MAX_EXTRA + 2];
	char			*props[PLAN_MAX_PROPS];
	char			*body = NULL, *xml = NULL, *base = NULL, *iso_real = NULL;
	char			*virtio_real = NULL, *floppy_real = NULL, *work_abs = NULL;
	char			*root_abs = NULL, *serial = NULL, *nvram = NULL, *out = NULL;
	char			*ctx = NULL;
	char			*cdrom_real[ISOBOOT_MAX_EXTRA + 2];
	char			 uuid[37], pw[9];
	size_t			 len, ncdrom = 0, nprops = 0, i;
	int			 c, rc = CMD_USAGE, want_props = 0, want_answers = 0;
	const char		*salt = NULL, *sshkey = NULL;
	struct answers_result	 ans;
	json_t			*jprops = NULL, *image_props = NULL;

	err_clear(&err);
	memset(&media, 0, sizeof(media));
	memset(&params, 0, sizeof(params));
	memset(cdrom_real, 0, sizeof(cdrom_real));
	memset(&ans, 0, sizeof(ans));
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case O_ISO: iso = optarg; break;
		case O_VIRTIO: virtio = optarg; break;
		case O_FLOPPY: floppy = optarg; break;
		case O_CDROM:
			if (ncdrom == ISOBOOT_MAX_EXTRA + 1) {
				fprintf(stderr, "isoforge plan: too many --cdrom\n");
				goto cleanup;
			}
			cdroms[ncdrom++] = optarg;
			break;
		case O_VCPUS:
			if (plan_number("--vcpus", optarg, &flavor.vcpus, &err) == -1)
				goto fail;
			break;
		case O_RAM:
			if (plan_number("--ram", optarg, &flavor.ram_mib, &err) == -1)
				goto fail;
			break;
		case O_DISK:
			if (plan_number("--disk", optarg, &flavor.disk_gib, &err) == -1)
				goto fail;
			break;
		case O_PROFILE: profile_name = optarg; break;
		case O_PROP:
			if (strchr(optarg, '=') == NULL || optarg[0] == '=') {
				fprintf(stderr, "isoforge plan: --image-property %s: not KEY=VALUE\n",
				    optarg);
				goto cleanup;
			}
			if (nprops == PLAN_MAX_PROPS) {
				fprintf(stderr, "isoforge plan: too many --image-property\n");
				goto cleanup;
			}
			props[nprops++] = optarg;
			break;
		case O_TEMPLATES: templates = optarg; break;
		case O_BUILD_ID: build_id = optarg; break;
		case O_WORK: work = optarg; break;
		case O_ROOT: root = optarg; break;
		case O_DTYPE: dtype = optarg; break;
		case O_NETWORK: network = optarg; break;
		case O_LISTEN: listen = optarg; break;
		case O_PASSWORD: password = optarg; break;
		case O_PROPERTIES: want_props = 1; break;
		case O_ANSWERS: want_answers = 1; break;
		case O_SALT: salt = optarg; break;
		case O_SSHKEY: sshkey = optarg; break;
		case 'h':
			plan_usage(stdout);
			rc = CMD_OK;
			goto cleanup;
		default:
			plan_usage(stderr);
			goto cleanup;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "isoforge plan: one REQUEST.json expected\n");
		plan_usage(stderr);
		goto cleanup;
	}
	if (iso == NULL) {
		fprintf(stderr, "isoforge plan: --iso PATH is required (the OS install ISO)\n");
		goto cleanup;
	}

	body = util_read_file(argv[optind], REQUEST_MAX_BODY, &len, &err);
	if (body == NULL)
		goto fail;
	req = request_parse(body, len, REQUEST_PARTIAL, &err);
	if (req == NULL) {
		ctx = xasprintf("%s: ", argv[optind]);
		goto fail;
	}

	/* the profile: asked for, else the request's os, else the ISO image's properties */
	image_props = json_object();
	for (i = 0; i < nprops; i++) {
		char	*key = xstrndup(props[i], strcspn(props[i], "="));

		json_object_set_new(image_props, key, json_string(props[i] + strlen(key) + 1));
		free(key);
	}
	if (profile_name == NULL)
		profile_name = isoboot_profile_choose_for(req->os_type, req->os_distro,
		    req->os_version, image_props);
	if (templates == NULL)
		templates = templates_dir();
	profile = templates_load_profile(templates, profile_name, &err);
	if (profile == NULL)
		goto fail;
	if (isoboot_profile_apply_properties(profile, image_props, &err) == -1) {
		ctx = xstrdup("--image-property: ");
		goto fail;
	}

	iso_real = plan_media("--iso", iso, &err);
	if (iso_real == NULL)
		goto fail;
	if (virtio != NULL) {
		virtio_real = plan_media("--virtio-win", virtio, &err);
		if (virtio_real == NULL)
			goto fail;
	}
	if (floppy != NULL) {
		floppy_real = plan_media("--floppy", floppy, &err);
		if (floppy_real == NULL)
			goto fail;
	}
	for (i = 0; i < ncdrom; i++) {
		cdrom_real[i] = plan_media("--cdrom", cdroms[i], &err);
		if (cdrom_real[i] == NULL)
			goto fail;
	}
	cdrom_real[ncdrom] = NULL;

	if (build_id == NULL)
		build_id = req->build_id;
	if (build_id == NULL) {
		util_uuid(uuid);
		build_id = uuid;
	}
	work_abs = work != NULL ? plan_abs(work) : xasprintf("%s/%s", PLAN_WORK_ROOT, build_id);
	root_abs = root != NULL ? plan_abs(root) : xasprintf("%s/root.qcow2", work_abs);
	serial = xasprintf("%s/console.log", work_abs);
	if (password == NULL) {
		util_password(pw, 8);
		password = pw;
	}
	if (strcmp(req->firmware != NULL ? req->firmware : profile->firmware, "uefi") == 0)
		nvram = xasprintf("%s/uefi-vars.fd", work_abs);

	media.root_disk = root_abs;
	media.iso = iso_real;
	media.virtio_win = virtio_real;
	media.floppy = floppy_real;
	media.extra_cdroms = ncdrom > 0 ? (const char *const *)cdrom_real : NULL;
	params.build_id = build_id;
	params.name = req->name;
	params.domain_type = dtype;
	params.firmware = req->firmware;
	params.vnc_listen = listen;
	params.vnc_password = password;
	params.serial_log = serial;
	params.nvram = nvram;
	params.network = network;
	/* unattended: the answer media the build would make (service/pipeline/answers.c) */
	if (req->install_mode != NULL && strcmp(req->install_mode, "unattended") == 0) {
		struct answers_params	 ap;

		memset(&ap, 0, sizeof(ap));
		ap.build_id = build_id;
		ap.templates = templates;
		ap.work_dir = work_abs;
		ap.iso = iso_real;
		ap.profile = profile;
		ap.os_type = req->os_type != NULL ? req->os_type :
		    json_string_value(json_object_get(image_props, "os_type"));
		ap.os_distro = req->os_distro != NULL ? req->os_distro :
		    json_string_value(json_object_get(image_props, "os_distro"));
		ap.os_version = req->os_version != NULL ? req->os_version :
		    json_string_value(json_object_get(image_props, "os_version"));
		ap.firmware = req->firmware;
		ap.answers = req->answers;
		ap.salt = salt;
		ap.ssh_pubkey = sshkey;
		if (answers_prepare(&ap, 0, &ans, &err) == -1)
			goto fail;
		answers_apply(&ans, &media, &params);
	}
	if (want_answers) {
		if (ans.text == NULL) {
			err_set(&err, ERR_INVAL, "--answers: the request is not an unattended one "
			    "with an answer method (install.mode unattended)");
			goto fail;
		}
		fputs(ans.text, stdout);
		rc = fflush(stdout) == 0 ? CMD_OK : CMD_FAILED;
		goto cleanup;
	}
	plan = isoboot_plan_build(profile, &flavor, &media, &params, &err);
	if (plan == NULL)
		goto fail;

	if (want_props) {
		jprops = isoboot_image_properties(plan);
		if (req->os_distro != NULL)
			json_object_set_new(jprops, "os_distro", json_string(req->os_distro));
		if (req->os_version != NULL)
			json_object_set_new(jprops, "os_version", json_string(req->os_version));
		out = json_dumps(jprops, JSON_INDENT(2) | JSON_SORT_KEYS);
		printf("%s\n", out);
		rc = CMD_OK;
		goto cleanup;
	}
	base = templates_load_domain(templates, &err);
	if (base == NULL)
		goto fail;
	xml = isoboot_domain_xml(plan, base, &err);
	if (xml == NULL)
		goto fail;
	fputs(xml, stdout);
	rc = fflush(stdout) == 0 ? CMD_OK : CMD_FAILED;
	goto cleanup;
fail:
	fprintf(stderr, "isoforge plan: %s%s\n", ctx != NULL ? ctx : "", err.msg);
	rc = err.kind == ERR_INVAL || err.kind == ERR_NOTFOUND ? CMD_USAGE : CMD_FAILED;
cleanup:
	answers_result_free(&ans);
	json_decref(jprops);
	json_decref(image_props);
	free(ctx);
	free(out);
	isoboot_plan_free(&plan);
	isoboot_profile_free(&profile);
	request_free(&req);
	for (i = 0; i < ncdrom; i++)
		free(cdrom_real[i]);
	free(body);
	free(xml);
	free(base);
	free(iso_real);
	free(virtio_real);
	free(floppy_real);
	free(work_abs);
	free(root_abs);
	free(serial);
	free(nvram);
	return rc;
}
