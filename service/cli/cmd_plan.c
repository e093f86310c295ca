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

#include "drivers/guestnet.h"
#include "isoboot/isoboot.h"
#include "service/cli/cmd.h"
#include "service/pipeline/build.h"
#include "service/pipeline/local.h"
#include "service/pipeline/answers.h"
#include "service/pipeline/request.h"
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
	    "  --guest-network P       isolated (default: isoforge's network) | none (no NIC) |\n"
	    "                          network:NAME | bridge:NAME\n"
	    "  --network NAME          the same as --guest-network network:NAME\n"
	    "  --vnc-listen ADDR       default 127.0.0.1\n"
	    "  --vnc-password PW       at most 8 characters; default a new random one per run\n"
	    "                          (give one for reproducible output)\n"
	    "  --headless              no VNC, video, tablet, USB (default for unattended requests)\n"
	    "  --console               VNC even for an unattended request\n"
	    "output:\n"
	    "  --properties            print the built image's Nova properties (JSON) instead\n"
	    "  --answers               print the answer file of an unattended request instead\n"
	    "  --salt S                the answer files' crypt(3) salt (16 of [./A-Za-z0-9]);\n"
	    "                          default a new random one (give one for reproducible output)\n"
	    "  --ssh-pubkey KEY        the build's ephemeral SSH public key line, as a build has it\n");
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

/* Replaces *field with a copy of s. */
static void
plan_set(char **field, const char *s)
{
	free(*field);
	*field = xstrdup(s);
}

/* Adds "KEY=VALUE" to props. */
static void
plan_property(json_t *props, const char *kv)
{
	char	*key = xstrndup(kv, strcspn(kv, "="));

	json_object_set_new(props, key, json_string(kv + strlen(key) + 1));
	free(key);
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
	    O_PASSWORD, O_PROPERTIES, O_GUESTNET, O_ANSWERS, O_SALT, O_SSHKEY, O_HEADLESS,
	    O_CONSOLE };
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
		{ "guest-network", required_argument, NULL, O_GUESTNET },
		{ "vnc-listen", required_argument, NULL, O_LISTEN },
		{ "vnc-password", required_argument, NULL, O_PASSWORD },
		{ "headless", no_argument, NULL, O_HEADLESS },
		{ "console", no_argument, NULL, O_CONSOLE },
		{ "properties", no_argument, NULL, O_PROPERTIES },
		{ "answers", no_argument, NULL, O_ANSWERS },
		{ "salt", required_argument, NULL, O_SALT },
		{ "ssh-pubkey", required_argument, NULL, O_SSHKEY },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct err		 err;
	struct build_request	*req = NULL;
	struct build		*b = NULL;
	const char		*iso = NULL, *virtio = NULL, *floppy = NULL;
	const char		*cdroms[ISOBOOT_MAX_EXTRA + 2];
	char			*body = NULL, *xml = NULL, *out = NULL, *ctx = NULL;
	size_t			 len, ncdrom = 0, i;
	int			 c, rc = CMD_USAGE, want_props = 0, want_answers = 0;
	json_t			*jprops = NULL, *image_props = NULL;

	err_clear(&err);
	image_props = json_object();
	b = build_new("plan");
	b->work_root = xstrdup(PLAN_WORK_ROOT);
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
			if (plan_number("--vcpus", optarg, &b->flavor.vcpus, &err) == -1)
				goto fail;
			break;
		case O_RAM:
			if (plan_number("--ram", optarg, &b->flavor.ram_mib, &err) == -1)
				goto fail;
			break;
		case O_DISK:
			if (plan_number("--disk", optarg, &b->flavor.disk_gib, &err) == -1)
				goto fail;
			break;
		case O_PROFILE: plan_set(&b->profile_name, optarg); break;
		case O_PROP:
			if (strchr(optarg, '=') == NULL || optarg[0] == '=') {
				fprintf(stderr, "isoforge plan: --image-property %s: not KEY=VALUE\n",
				    optarg);
				goto cleanup;
			}
			if (json_object_size(image_props) == PLAN_MAX_PROPS) {
				fprintf(stderr, "isoforge plan: too many --image-property\n");
				goto cleanup;
			}
			plan_property(image_props, optarg);
			break;
		case O_TEMPLATES: plan_set(&b->templates, optarg); break;
		case O_BUILD_ID:
			snprintf(b->id, sizeof(b->id), "%s", optarg);
			if (strlen(optarg) >= sizeof(b->id)) {
				err_set(&err, ERR_INVAL, "--build-id: longer than %zu characters",
				    sizeof(b->id) - 1);
				goto fail;
			}
			break;
		case O_WORK: free(b->work_dir); b->work_dir = plan_abs(optarg); break;
		case O_ROOT: free(b->root_disk); b->root_disk = plan_abs(optarg); break;
		case O_DTYPE: plan_set(&b->domain_type, optarg); break;
		case O_NETWORK:
			free(b->guest_network);
			b->guest_network = xasprintf("network:%s", optarg);
			break;
		case O_GUESTNET: plan_set(&b->guest_network, optarg); break;
		case O_LISTEN: plan_set(&b->vnc_listen, optarg); break;
		case O_PASSWORD: plan_set(&b->vnc_password_fixed, optarg); break;
		case O_HEADLESS: b->console = BUILD_CONSOLE_NONE; break;
		case O_CONSOLE: b->console = BUILD_CONSOLE_VNC; break;
		case O_PROPERTIES: want_props = 1; break;
		case O_ANSWERS: want_answers = 1; break;
		case O_SALT: plan_set(&b->answers_salt, optarg); break;
		case O_SSHKEY: plan_set(&b->ssh_pubkey, optarg); break;
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
	/* the same request fields a worker's build takes */
	build_apply_request(b, req);
	if (strcmp(b->id, "plan") == 0) {
		if (req->build_id != NULL)
			snprintf(b->id, sizeof(b->id), "%s", req->build_id);
		else
			util_uuid(b->id);
	}
	b->iso_props = json_incref(image_props);

	if ((b->iso = local_media_path("--iso", iso, &err)) == NULL)
		goto fail;
	if (virtio != NULL && (b->virtio_win = local_media_path("--virtio-win", virtio, &err)) == NULL)
		goto fail;
	if (floppy != NULL && (b->floppy = local_media_path("--floppy", floppy, &err)) == NULL)
		goto fail;
	if (ncdrom > 0) {
		b->extra_cdroms = xcalloc(ncdrom + 1, sizeof(*b->extra_cdroms));
		for (i = 0; i < ncdrom; i++)
			if ((b->extra_cdroms[i] = local_media_path("--cdrom", cdroms[i], &err)) == NULL)
				goto fail;
	}
	if (b->vnc_password_fixed == NULL)
		util_password(b->vnc_password, 8);

	/* the pipeline's own planning: what a worker or a local build would define */
	if (build_make_plan(b, 0, &err) == -1)
		goto fail;
	if (want_answers) {
		if (b->answers_out == NULL || b->answers_out->text == NULL) {
			err_set(&err, ERR_INVAL, "--answers: the request is not an unattended one "
			    "with an answer method (install.mode unattended)");
			goto fail;
		}
		fputs(b->answers_out->text, stdout);
		rc = fflush(stdout) == 0 ? CMD_OK : CMD_FAILED;
		goto cleanup;
	}
	if (want_props) {
		jprops = build_nova_properties(b);
		out = json_dumps(jprops, JSON_INDENT(2) | JSON_SORT_KEYS);
		printf("%s\n", out);
		rc = CMD_OK;
		goto cleanup;
	}
	if ((xml = build_domain_xml(b, &err)) == NULL)
		goto fail;
	fputs(xml, stdout);
	rc = fflush(stdout) == 0 ? CMD_OK : CMD_FAILED;
	goto cleanup;
fail:
	fprintf(stderr, "isoforge plan: %s%s\n", ctx != NULL ? ctx : "", err.msg);
	rc = err.kind == ERR_INVAL || err.kind == ERR_NOTFOUND ? CMD_USAGE : CMD_FAILED;
cleanup:
	json_decref(jprops);
	json_decref(image_props);
	free(ctx);
	free(out);
	build_free(&b);
	request_free(&req);
	free(body);
	free(xml);
	return rc;
}
