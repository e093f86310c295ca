/* cmd_local.c — isoforge local build|list|show: the pipeline in one process, no cloud. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "drivers/guestnet.h"
#include "drivers/localstore.h"
#include "drivers/virt.h"
#include "drivers/virtd.h"
#include "service/pipeline/answers.h"
#include "service/cli/cmd.h"
#include "service/pipeline/build.h"
#include "service/pipeline/customize.h"
#include "service/pipeline/local.h"
#include "base/log.h"
#include "base/loop.h"

#define LOCAL_DEFAULT_DISK	10
#define LOCAL_DEFAULT_TIMEOUT	7200
#define LOCAL_PROBE_TIMEOUT	5.0

/* The local build's notifier: progress on a terminal (a redrawn line) or as lines. */
struct local_ui {
	pthread_mutex_t	 mu;		/* the build thread and the loop thread both print */
	int		 tty;		/* stderr is a terminal: redraw a status line */
	int		 json;
	int		 line_open;	/* a status line without its newline */
	int		 tick;		/* loop timer id */
	double		 pct;
	char		*activity;	/* the install's last report, for the status line */
	struct build	*b;
	struct loop	*loop;
	int		 done;		/* the build thread ended (atomic) */
	/* a private libvirtd's guest network, torn down while the disk is converted */
	struct virt	*v;		/* set when the network is ours to tear down */
	pthread_t	 net_thread;
	int		 net_started;
	int		 net_done;	/* atomic */
	int		 net_joined;
	int		 net_cancel;	/* atomic: the exit tears it down itself */
	int		 net_rc;
	struct err	 net_err;
};

/* Loop thread: the private libvirtd's guest network goes (see local_net_thread). */
static void
local_net_call(void *arg)
{
	struct local_ui	*ui = arg;

	if (__atomic_load_n(&ui->net_cancel, __ATOMIC_SEQ_CST))
		return;
	ui->net_rc = guestnet_teardown(ui->v, &ui->net_err);
	log_debug("guest network torn down");
}

/* Once the guest is off for good, its network goes while the disk is converted. */
static void *
local_net_thread(void *arg)
{
	struct local_ui	*ui = arg;

	loop_call(ui->loop, local_net_call, ui);
	__atomic_store_n(&ui->net_done, 1, __ATOMIC_SEQ_CST);
	loop_wakeup(ui->loop);
	return NULL;
}

static void
local_usage(FILE *out)
{
	fprintf(out,
	    "usage: isoforge local build --iso FILE [options]\n"
	    "       isoforge local list [--out DIR] [--chain C] [--json]\n"
	    "       isoforge local show ID [--out DIR]\n"
	    "       isoforge local finish|cancel BUILD_ID [--out DIR]\n"
	    "\n"
	    "local build: boots FILE with a fresh root disk on libvirt, waits for the install to\n"
	    "end (guest power-off; SIGUSR1 = finish: ACPI shutdown), snapshots the disk and adds it\n"
	    "to the local image store as the next version of its chain. ^C / SIGTERM cancel.\n"
	    "local finish|cancel: the same for a build running in another process.\n"
	    "\n"
	    "  --iso FILE              the OS install ISO (required)\n"
	    "  --virtio-win FILE       virtio-win ISO (second CD-ROM)\n"
	    "  --disk GIB              root disk size (default %d)\n"
	    "  --ram MIB --vcpus N     default: the OS profile's\n"
	    "  --os-type T --os-distro D --os-version V   choose the OS profile; written as os_*\n"
	    "  --profile NAME          an OS profile (templates/profiles/NAME.conf)\n"
	    "  --firmware bios|uefi    default: the profile's\n"
	    "  --machine pc|q35        default: the profile's (q35 puts the CD-ROMs on SATA)\n"
	    "  --name N                image name (default: the ISO's base name)\n"
	    "  --chain C               version chain (default: the name)\n"
	    "  --parent ID             isoforge_parent of the new image\n"
	    "  --property K=V          an extra image property (repeatable)\n"
	    "  --compress              qemu-img convert -c\n"
	    "  --unattended            install from answer files isoforge writes (the profile's\n"
	    "                          method: preseed, autoinstall, kickstart, autounattend)\n"
	    "  --answers FILE          their values (JSON: hostname, root_password, packages,\n"
	    "                          mirror, ...; README \"Unattended builds\"); implies\n"
	    "                          --unattended\n"
	    "  --from FILE             derive from an image instead of installing from an ISO (a\n"
	    "                          store's ID.qcow2: its chain, OS and lineage carry over);\n"
	    "                          needs a customize option below\n"
	    "  --customize NAME        run the operator script TEMPLATES/customize/NAME in the\n"
	    "                          installed system over SSH (repeatable; needs --unattended\n"
	    "                          or --from)\n"
	    "  --script FILE           run FILE there too (repeatable, in order with --customize)\n"
	    "  --copy SRC:DEST         copy the file SRC to DEST there (its mode kept)\n"
	    "  --env NAME=VALUE        a variable for the scripts (repeatable)\n"
	    "  --customize-timeout S   the customizing step's timeout (default 1800)\n"
	    "  --headless              no VNC console, video, tablet or USB (an installer that\n"
	    "                          needs nobody; the default with --unattended and --from)\n"
	    "  --console               keep the VNC console of an unattended build\n"
	    "  --out DIR               the image store (default $ISOFORGE_STORE, else\n"
	    "                          ~/.local/share/isoforge/images)\n"
	    "  --timeout S             install timeout in seconds (default %d, 0 = none)\n"
	    "  --progress-interval S   a progress report every S s while installing (elapsed,\n"
	    "                          bytes written to the root disk, the serial console's\n"
	    "                          last line; default 60, 0 = none)\n"
	    "  --inactivity-timeout S  fail the install when it writes nothing to its disk and\n"
	    "                          prints nothing on its console for S s, with a screenshot\n"
	    "                          (default 900 with --unattended, else 0 = off)\n"
	    "  --finish-grace S        after a finish: ACPI shutdown, destroy after S s (default 60)\n"
	    "  --connect URI           libvirt URI (default $ISOFORGE_LIBVIRT_URI; when neither is\n"
	    "                          set, a private libvirtd is started for this command)\n"
	    "  --domain-type T         auto (default: KVM when a probe boot shows it works, else\n"
	    "                          TCG) | kvm | qemu; also $ISOFORGE_DOMAIN_TYPE\n"
	    "  --templates DIR         default $ISOFORGE_TEMPLATES or the installed templates\n"
	    "  --guest-network P       what the install VM reaches: isolated (default: the outside,\n"
	    "                          not this host nor --guest-deny) | none | network:NAME |\n"
	    "                          bridge:NAME (a libvirt network or host bridge of yours)\n"
	    "  --guest-deny CIDRS      ranges an isolated guest may not reach (comma-separated;\n"
	    "                          none = no range); default the private and reserved ranges\n"
	    "  --json                  last line on stdout: the result as one JSON object\n"
	    "  -v                      debug logging\n",
	    LOCAL_DEFAULT_DISK, LOCAL_DEFAULT_TIMEOUT);
}

/* $ISOFORGE_CACHE, else $XDG_CACHE_HOME/isoforge, else ~/.cache/isoforge; caller frees. */
static char *
local_cache_dir(void)
{
	const char	*s;

	if ((s = getenv("ISOFORGE_CACHE")) != NULL && *s != '\0')
		return xstrdup(s);
	if ((s = getenv("XDG_CACHE_HOME")) != NULL && *s != '\0')
		return xasprintf("%s/isoforge", s);
	if ((s = getenv("HOME")) != NULL && *s != '\0')
		return xasprintf("%s/.cache/isoforge", s);
	return xstrdup("/var/cache/isoforge");
}

/* --out, else $ISOFORGE_STORE, else ~/.local/share/isoforge/images; caller frees. */
static char *
local_store_dir(const char *out)
{
	const char	*s;

	if (out != NULL)
		return xstrdup(out);
	if ((s = getenv("ISOFORGE_STORE")) != NULL && *s != '\0')
		return xstrdup(s);
	if ((s = getenv("XDG_DATA_HOME")) != NULL && *s != '\0')
		return xasprintf("%s/isoforge/images", s);
	if ((s = getenv("HOME")) != NULL && *s != '\0')
		return xasprintf("%s/.local/share/isoforge/images", s);
	return xstrdup("/var/lib/isoforge/images");
}

static int
local_number(const char *opt, const char *s, unsigned *out)
{
	char		*end;
	unsigned long	 n;

	errno = 0;
	n = strtoul(s, &end, 10);
	if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno != 0 || n > UINT_MAX) {
		fprintf(stderr, "isoforge local build: %s: '%s' is not a number\n", opt, s);
		return -1;
	}
	*out = (unsigned)n;
	return 0;
}

/* Ends a redrawn status line before other output; called with ui->mu held. */
static void
local_ui_newline(struct local_ui *ui)
{
	if (ui->line_open) {
		fputc('\n', stderr);
		ui->line_open = 0;
	}
}

/* Redraws the status line; called with ui->mu held. */
static void
local_ui_status(struct local_ui *ui, enum build_state s)
{
	struct build	*b = ui->b;
	double		 now = util_now();

	struct winsize	 ws;
	struct buf	 line;
	size_t		 width = 80, n, i;

	if (!ui->tty)
		return;
	buf_init(&line);
	buf_printf(&line, "[%6.1fs] %s", now - b->started_at, build_state_name(s));
	if (s == BUILD_INSTALLING && b->install_started_at > 0)
		buf_printf(&line, " (%.0f s)", now - b->install_started_at);
	if (s == BUILD_INSTALLING && ui->activity != NULL)
		buf_printf(&line, ": %s", ui->activity);
	if (s == BUILD_SNAPSHOTTING && ui->pct >= 0)
		buf_printf(&line, " %5.1f%%", ui->pct);
	/* one terminal line, or \r can't take it back: cut to the width (in characters) */
	if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1)
		width = ws.ws_col;
	for (i = 0, n = 0; i < line.len; i++)
		if (((unsigned char)line.data[i] & 0xc0) != 0x80 && ++n == width) {
			line.data[i] = '\0';
			break;
		}
	fprintf(stderr, "\r\033[K%s", line.data);
	buf_free(&line);
	fflush(stderr);
	ui->line_open = 1;
}

/* The state, as the build thread last set it. */
static enum build_state
local_state(struct build *b)
{
	enum build_state	 s;

	pthread_mutex_lock(&b->mu);
	s = b->state;
	pthread_mutex_unlock(&b->mu);
	return s;
}

static void
local_ui_tick(int id, void *arg)
{
	struct local_ui	*ui = arg;
	enum build_state s = local_state(ui->b);

	(void)id;
	pthread_mutex_lock(&ui->mu);
	local_ui_status(ui, s);
	pthread_mutex_unlock(&ui->mu);
}

static void
local_on_progress(void *ctx, struct build *b, double pct)
{
	struct local_ui	*ui = ctx;

	pthread_mutex_lock(&ui->mu);
	ui->pct = pct;
	local_ui_status(ui, local_state(b));
	pthread_mutex_unlock(&ui->mu);
}

static int
local_on_state(void *ctx, struct build *b, enum build_state s, const char *msg,
    struct err *e)
{
	struct local_ui	*ui = ctx;

	(void)e;
	pthread_mutex_lock(&ui->mu);
	/* snapshotting: no guest will run again (customizing, if any, came before) */
	if (s == BUILD_SNAPSHOTTING && ui->v != NULL && !ui->net_started &&
	    pthread_create(&ui->net_thread, NULL, local_net_thread, ui) == 0)
		ui->net_started = 1;
	ui->pct = -1;
	if (ui->tty) {
		local_ui_status(ui, s);
		if (build_state_terminal(s) || msg != NULL) {
			local_ui_newline(ui);
			if (msg != NULL)
				fprintf(stderr, "  %s\n", msg);
		}
	} else
		fprintf(stderr, "[%6.1fs] %s%s%s\n", util_now() - b->started_at,
		    build_state_name(s), msg ? ": " : "", msg ? msg : "");
	pthread_mutex_unlock(&ui->mu);
	return 0;
}

/* The console once the install runs: its address, and its password on a terminal. */
static void
local_on_field(void *ctx, struct build *b, const char *name, const char *value)
{
	struct local_ui	*ui = ctx;
	json_t		*c;
	const char	*pw;

	(void)b;
	if (strcmp(name, "console") != 0 || value == NULL ||
	    (c = json_loads(value, 0, NULL)) == NULL)
		return;
	pw = ui->tty ? json_string_value(json_object_get(c, "password")) : NULL;
	pthread_mutex_lock(&ui->mu);
	local_ui_newline(ui);
	fprintf(stderr, "console: vnc://%s:%lld%s%s\n",
	    json_string_value(json_object_get(c, "host")),
	    (long long)json_integer_value(json_object_get(c, "port")),
	    pw != NULL ? "  password: " : "", pw != NULL ? pw : "");
	pthread_mutex_unlock(&ui->mu);
	json_decref(c);
}

/* The install's serial log at its start, then its reports: the status line, or a line each. */
static void
local_on_activity(void *ctx, struct build *b, const struct build_activity *a)
{
	struct local_ui	*ui = ctx;

	pthread_mutex_lock(&ui->mu);
	if (a->first) {
		local_ui_newline(ui);
		fprintf(stderr, "serial log: %s\n", a->serial_log);
	} else if (ui->tty) {
		free(ui->activity);
		ui->activity = xstrdup(a->text);
		local_ui_status(ui, local_state(b));
	} else
		fprintf(stderr, "[%6.1fs] installing: %s\n", util_now() - b->started_at, a->text);
	pthread_mutex_unlock(&ui->mu);
}

static const struct notifier_ops local_notifier_ops = {
	.state = local_on_state,
	.field = local_on_field,
	.resource = NULL,
	.progress = local_on_progress,
	.activity = local_on_activity,
};

static void
local_on_signal(int signo, void *arg)
{
	struct local_ui	*ui = arg;

	if (signo == SIGUSR1) {
		log_info("finishing the install (ACPI shutdown)");
		build_request_finish(ui->b);
		return;
	}
	log_info("%s: cancelling the build", strsignal(signo));
	build_request_stop(ui->b, BUILD_STOP_CANCEL);
}

/* The build thread: the whole pipeline, then the loop (on the main thread) is told to end. */
static void *
local_build_thread(void *arg)
{
	struct local_ui	*ui = arg;

	(void)build_run(ui->b);
	__atomic_store_n(&ui->done, 1, __ATOMIC_SEQ_CST);
	loop_wakeup(ui->loop);
	return NULL;
}

/* The result: human lines, or with --json one JSON object as the last line on stdout. */
static void
local_print_result(struct build *b, int json, const char *store)
{
	json_t		*out, *rec = NULL;
	struct err	 e;
	char		*s, *path = NULL;

	err_clear(&e);
	if (b->image_id != NULL) {
		rec = build_image_record(b, &e);
		path = xasprintf("%s/%s.qcow2", store, b->image_id);
		if (path[0] != '/') {
			char	 cwd[PATH_MAX], *abs;

			if (getcwd(cwd, sizeof(cwd)) != NULL) {
				abs = xasprintf("%s/%s", cwd, path);
				free(path);
				path = abs;
			}
		}
	}
	out = json_pack("{s:s, s:s}", "build_id", b->id, "state", build_state_name(b->state));
	if (b->state != BUILD_ACTIVE)
		json_object_set_new(out, "error", json_string(b->message ? b->message : ""));
	if (b->serial_log != NULL)
		json_object_set_new(out, "serial_log", json_string(b->serial_log));
	if (b->screenshot != NULL)
		json_object_set_new(out, "screenshot", json_string(b->screenshot));
	if (b->image_id != NULL) {
		json_object_set_new(out, "id", json_string(b->image_id));
		json_object_set_new(out, "image", json_string(path));
		json_object_set_new(out, "chain", json_string(b->chain));
		json_object_set_new(out, "version", json_integer(b->version));
		json_object_set(out, "properties", rec != NULL ?
		    json_object_get(rec, "properties") : b->image_properties);
		if (rec != NULL)
			json_object_set(out, "record", rec);
	}
	if (json) {
		cmd_print_json(out, JSON_COMPACT | JSON_SORT_KEYS);
	} else if (b->image_id != NULL) {
		s = json_dumps(json_object_get(out, "properties"), JSON_INDENT(2) | JSON_SORT_KEYS);
		printf("image:      %s\nid:         %s\nchain:      %s (version %d)\n"
		    "serial log: %s\nproperties: %s\n", path, b->image_id, b->chain, b->version,
		    b->serial_log ? b->serial_log : "-", s);
		free(s);
	}
	fflush(stdout);
	json_decref(rec);
	json_decref(out);
	free(path);
}

/* --guest-network (policy) or --guest-deny: checked here, used by the build's assembling. */
static int
local_guest_network(struct build *b, int policy, const char *value)
{
	struct guestnet_policy	 p;
	struct guestnet_cidr	*ranges = NULL;
	struct err		 e;
	size_t			 n;
	int			 rc;

	err_clear(&e);
	rc = policy ? guestnet_parse(value, &p, &e) : guestnet_parse_deny(value, &ranges, &n, &e);
	free(ranges);
	if (rc == -1) {
		fprintf(stderr, "isoforge local build: --guest-%s %s\n", policy ? "network" : "deny",
		    e.msg);
		return -1;
	}
	if (policy) {
		free(b->guest_network);
		b->guest_network = xstrdup(value);
	} else {
		free(b->guest_deny);
		b->guest_deny = xstrdup(value);
	}
	return 0;
}

/*
 * One customize option into the build's customize object (the request's form): an operator
 * script by name, a script file, a file to copy (SRC:DEST), a variable (NAME=VALUE), the
 * timeout. The whole is checked once the options are read (customize_json_check).
 */
static int
local_customize(struct build *b, const char *what, const char *arg)
{
	json_t		*o;
	struct stat	 st;
	struct err	 e;
	const char	*colon, *base;
	char		*text, *key, mode[8];
	size_t		 len;

	if (b->customize == NULL)
		b->customize = json_pack("{s:[], s:[], s:{}}", "scripts", "files", "env");
	err_clear(&e);
	if (strcmp(what, "name") == 0)
		o = json_pack("{s:s}", "name", arg);
	else if (strcmp(what, "script") == 0 || strcmp(what, "copy") == 0) {
		colon = strcmp(what, "copy") == 0 ? strchr(arg, ':') : NULL;
		if (strcmp(what, "copy") == 0 && (colon == NULL || colon == arg)) {
			fprintf(stderr, "isoforge local build: --copy %s: not SRC:DEST\n", arg);
			return -1;
		}
		key = colon != NULL ? xstrndup(arg, (size_t)(colon - arg)) : xstrdup(arg);
		text = util_read_file(key, SSH_SCRIPT_MAX, &len, &e);
		if (text == NULL || stat(key, &st) == -1) {
			fprintf(stderr, "isoforge local build: --%s %s: %s\n", what, key, e.msg);
			free(text);
			free(key);
			return -1;
		}
		base = strrchr(key, '/') != NULL ? strrchr(key, '/') + 1 : key;
		snprintf(mode, sizeof(mode), "%04o", (unsigned)(st.st_mode & 07777));
		o = colon == NULL ? json_pack("{s:s, s:s%}", "name", base, "inline", text, len) :
		    json_pack("{s:s, s:s%, s:s}", "path", colon + 1, "content", text, len, "mode",
		    mode);
		free(text);
		free(key);
		if (o == NULL) {
			fprintf(stderr, "isoforge local build: --%s %s: not text\n", what, arg);
			return -1;
		}
		if (colon != NULL) {
			json_array_append_new(json_object_get(b->customize, "files"), o);
			return 0;
		}
	} else if (strcmp(what, "env") == 0) {
		if ((colon = strchr(arg, '=')) == NULL || colon == arg) {
			fprintf(stderr, "isoforge local build: --env %s: not NAME=VALUE\n", arg);
			return -1;
		}
		key = xstrndup(arg, (size_t)(colon - arg));
		json_object_set_new(json_object_get(b->customize, "env"), key,
		    json_string(colon + 1));
		free(key);
		return 0;
	} else {
		json_object_set_new(b->customize, "timeout_s", json_integer(strtol(arg, NULL, 10)));
		return 0;
	}
	json_array_append_new(json_object_get(b->customize, "scripts"), o);
	return 0;
}

static int
local_build(int argc, char **argv)
{
	enum { O_ISO = 256, O_VIRTIO, O_DISK, O_RAM, O_VCPUS, O_OSTYPE, O_OSDISTRO, O_OSVERSION,
	    O_PROFILE, O_FIRMWARE, O_NAME, O_CHAIN, O_PARENT, O_PROPERTY, O_COMPRESS, O_OUT,
	    O_TIMEOUT, O_CONNECT, O_DTYPE, O_TEMPLATES, O_JSON, O_MACHINE, O_GRACE, O_GUESTNET,
	    O_GUESTDENY, O_UNATTENDED, O_ANSWERS, O_FROM, O_CUSTOMIZE, O_SCRIPT, O_COPY, O_ENV,
	    O_CUSTTIMEOUT, O_PROGRESS, O_INACTIVITY, O_HEADLESS, O_CONSOLE };
	static const struct option opts[] = {
		{ "iso", required_argument, NULL, O_ISO },
		{ "virtio-win", required_argument, NULL, O_VIRTIO },
		{ "disk", required_argument, NULL, O_DISK },
		{ "ram", required_argument, NULL, O_RAM },
		{ "vcpus", required_argument, NULL, O_VCPUS },
		{ "os-type", required_argument, NULL, O_OSTYPE },
		{ "os-distro", required_argument, NULL, O_OSDISTRO },
		{ "os-version", required_argument, NULL, O_OSVERSION },
		{ "profile", required_argument, NULL, O_PROFILE },
		{ "firmware", required_argument, NULL, O_FIRMWARE },
		{ "machine", required_argument, NULL, O_MACHINE },
		{ "name", required_argument, NULL, O_NAME },
		{ "chain", required_argument, NULL, O_CHAIN },
		{ "parent", required_argument, NULL, O_PARENT },
		{ "property", required_argument, NULL, O_PROPERTY },
		{ "compress", no_argument, NULL, O_COMPRESS },
		{ "out", required_argument, NULL, O_OUT },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "connect", required_argument, NULL, O_CONNECT },
		{ "domain-type", required_argument, NULL, O_DTYPE },
		{ "templates", required_argument, NULL, O_TEMPLATES },
		{ "json", no_argument, NULL, O_JSON },
		{ "finish-grace", required_argument, NULL, O_GRACE },
		{ "guest-network", required_argument, NULL, O_GUESTNET },
		{ "guest-deny", required_argument, NULL, O_GUESTDENY },
		{ "unattended", no_argument, NULL, O_UNATTENDED },
		{ "answers", required_argument, NULL, O_ANSWERS },
		{ "from", required_argument, NULL, O_FROM },
		{ "customize", required_argument, NULL, O_CUSTOMIZE },
		{ "script", required_argument, NULL, O_SCRIPT },
		{ "copy", required_argument, NULL, O_COPY },
		{ "env", required_argument, NULL, O_ENV },
		{ "customize-timeout", required_argument, NULL, O_CUSTTIMEOUT },
		{ "progress-interval", required_argument, NULL, O_PROGRESS },
		{ "inactivity-timeout", required_argument, NULL, O_INACTIVITY },
		{ "headless", no_argument, NULL, O_HEADLESS },
		{ "console", no_argument, NULL, O_CONSOLE },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct err		 err, nerr;
	struct loop		*loop = NULL;
	struct virt		*v = NULL;
	struct virtd		*privd = NULL;
	struct localstore	*store = NULL;
	struct build		*b = NULL;
	struct local_ui		 ui;
	pthread_t		 thread;
	const char		*uri = NULL, *dtype = NULL, *base;
	char			*store_dir = NULL, *cache = NULL, *privdir = NULL, *tmpdir = NULL;
	char			*pidfile = NULL, *pidtext = NULL;
	char			*vdcache = NULL, *name = NULL;
	char			 tmpl[] = "/tmp/isoforge-libvirtd.XXXXXX";
	char			 absdir[PATH_MAX];
	unsigned		 timeout = LOCAL_DEFAULT_TIMEOUT;
	int			 c, rc = CMD_USAGE, verbose = 0;

	err_clear(&err);
	memset(&ui, 0, sizeof(ui));
	pthread_mutex_init(&ui.mu, NULL);
	b = build_new(NULL);
	b->flavor.disk_gib = LOCAL_DEFAULT_DISK;
	b->properties = json_object();
	optind = 1;
	while ((c = getopt_long(argc, argv, "hv", opts, NULL)) != -1) {
		switch (c) {
		case O_ISO: free(b->iso_ref); b->iso_ref = xstrdup(optarg); break;
		case O_VIRTIO:
			free(b->virtio_win_ref);
			b->virtio_win_ref = xstrdup(optarg);
			break;
		case O_DISK:
			if (local_number("--disk", optarg, &b->flavor.disk_gib) == -1)
				goto cleanup;
			break;
		case O_RAM:
			if (local_number("--ram", optarg, &b->flavor.ram_mib) == -1)
				goto cleanup;
			break;
		case O_VCPUS:
			if (local_number("--vcpus", optarg, &b->flavor.vcpus) == -1)
				goto cleanup;
			break;
		case O_OSTYPE: free(b->os_type); b->os_type = xstrdup(optarg); break;
		case O_OSDISTRO: free(b->os_distro); b->os_distro = xstrdup(optarg); break;
		case O_OSVERSION: free(b->os_version); b->os_version = xstrdup(optarg); break;
		case O_PROFILE: free(b->profile_name); b->profile_name = xstrdup(optarg); break;
		case O_FIRMWARE:
			if (strcmp(optarg, "bios") != 0 && strcmp(optarg, "uefi") != 0) {
				fprintf(stderr, "isoforge local build: --firmware bios|uefi\n");
				goto cleanup;
			}
			free(b->firmware);
			b->firmware = xstrdup(optarg);
			break;
		case O_MACHINE: free(b->machine); b->machine = xstrdup(optarg); break;
		case O_NAME: free(b->name); b->name = xstrdup(optarg); break;
		case O_CHAIN: free(b->chain); b->chain = xstrdup(optarg); break;
		case O_PARENT: free(b->parent); b->parent = xstrdup(optarg); break;
		case O_PROPERTY: {
			const char	*eq = strchr(optarg, '=');
			char		*k;

			if (eq == NULL || eq == optarg) {
				fprintf(stderr, "isoforge local build: --property %s: not K=V\n",
				    optarg);
				goto cleanup;
			}
			k = xstrndup(optarg, (size_t)(eq - optarg));
			json_object_set_new(b->properties, k, json_string(eq + 1));
			free(k);
			break;
		}
		case O_COMPRESS: b->compress = 1; break;
		case O_OUT: free(store_dir); store_dir = xstrdup(optarg); break;
		case O_TIMEOUT:
			if (local_number("--timeout", optarg, &timeout) == -1)
				goto cleanup;
			break;
		case O_CONNECT: uri = optarg; break;
		case O_DTYPE:
			if (strcmp(optarg, "auto") != 0 && strcmp(optarg, "kvm") != 0 &&
			    strcmp(optarg, "qemu") != 0) {
				fprintf(stderr, "isoforge local build: --domain-type auto|kvm|qemu\n");
				goto cleanup;
			}
			dtype = optarg;
			break;
		case O_TEMPLATES: free(b->templates); b->templates = xstrdup(optarg); break;
		case O_GRACE: {
			unsigned	 g;

			if (local_number("--finish-grace", optarg, &g) == -1)
				goto cleanup;
			b->finish_grace_s = g;
			break;
		}
		case O_PROGRESS:
		case O_INACTIVITY: {
			unsigned	 t;

			if (local_number(c == O_PROGRESS ? "--progress-interval" :
			    "--inactivity-timeout", optarg, &t) == -1)
				goto cleanup;
			if (c == O_PROGRESS)
				b->progress_interval_s = t;
			else
				b->inactivity_timeout_s = t;
			break;
		}
		case O_GUESTNET:
		case O_GUESTDENY:
			if (local_guest_network(b, c == O_GUESTNET, optarg) == -1)
				goto cleanup;
			break;
		case O_UNATTENDED: b->unattended = 1; break;
		case O_HEADLESS: b->console = BUILD_CONSOLE_NONE; break;
		case O_CONSOLE: b->console = BUILD_CONSOLE_VNC; break;
		case O_FROM: free(b->from_ref); b->from_ref = xstrdup(optarg); break;
		case O_CUSTOMIZE:
		case O_SCRIPT:
		case O_COPY:
		case O_ENV:
		case O_CUSTTIMEOUT:
			if (local_customize(b, c == O_CUSTOMIZE ? "name" : c == O_SCRIPT ?
			    "script" : c == O_COPY ? "copy" : c == O_ENV ? "env" : "timeout",
			    optarg) == -1)
				goto cleanup;
			break;
		case O_ANSWERS: {
			/* install.answers of a request, as a file (service/pipeline/answers.h) */
			char	*text = util_read_file(optarg, 64 * 1024, NULL, &err);
			json_error_t je;

			b->unattended = 1;
			json_decref(b->answers);
			b->answers = text != NULL ? json_loads(text, 0, &je) : NULL;
			free(text);
			if (b->answers == NULL || answers_json_check(b->answers, &err) == -1) {
				fprintf(stderr, "isoforge local build: --answers %s: %s\n", optarg,
				    err.msg[0] != '\0' ? err.msg : je.text);
				goto cleanup;
			}
			break;
		}
		case O_JSON: ui.json = 1; break;
		case 'v': verbose++; break;
		case 'h':
			local_usage(stdout);
			rc = CMD_OK;
			goto cleanup;
		default:
			local_usage(stderr);
			goto cleanup;
		}
	}
	if (optind != argc || (b->iso_ref == NULL) == (b->from_ref == NULL)) {
		fprintf(stderr, "isoforge local build: --iso FILE or --from FILE is required\n");
		local_usage(stderr);
		goto cleanup;
	}
	err_clear(&err);
	if (b->customize != NULL && customize_json_check(b->customize, &err) == -1) {
		fprintf(stderr, "isoforge local build: customize: %s\n", err.msg);
		goto cleanup;
	}
	if (b->from_ref != NULL && b->customize == NULL) {
		fprintf(stderr, "isoforge local build: --from needs --customize, --script or "
		    "--copy\n");
		goto cleanup;
	}
	if (verbose)
		log_setverbose(verbose);
	if (access(b->iso_ref != NULL ? b->iso_ref : b->from_ref, R_OK) == -1) {
		fprintf(stderr, "isoforge local build: %s %s: %s\n", b->iso_ref != NULL ?
		    "--iso" : "--from", b->iso_ref != NULL ? b->iso_ref : b->from_ref,
		    strerror(errno));
		goto cleanup;
	}
	if (b->virtio_win_ref != NULL && access(b->virtio_win_ref, R_OK) == -1) {
		fprintf(stderr, "isoforge local build: --virtio-win %s: %s\n", b->virtio_win_ref,
		    strerror(errno));
		goto cleanup;
	}
	if (b->name == NULL) {
		base = b->iso_ref != NULL ? b->iso_ref : b->from_ref;
		base = strrchr(base, '/') ? strrchr(base, '/') + 1 : base;
		name = xstrndup(base, strcspn(base, "."));
		b->name = name;
		name = NULL;
	}
	b->timeout_s = timeout;
	if (dtype == NULL)
		dtype = getenv("ISOFORGE_DOMAIN_TYPE");
	if (uri == NULL)
		uri = getenv("ISOFORGE_LIBVIRT_URI");
	if (uri != NULL && *uri == '\0')
		uri = NULL;
	name = local_store_dir(store_dir);
	free(store_dir);
	store_dir = name;
	name = NULL;
	cache = local_cache_dir();
	rc = CMD_FAILED;

	/* signals first: blocked before any thread starts, delivered through the loop */
	if ((loop = loop_new(&err)) == NULL)
		goto fail;
	ui.b = b;
	ui.loop = loop;
	ui.tty = isatty(STDERR_FILENO);
	ui.pct = -1;
	b->loop = loop;
	if (loop_signal_add(loop, SIGINT, local_on_signal, &ui, &err) == -1 ||
	    loop_signal_add(loop, SIGTERM, local_on_signal, &ui, &err) == -1 ||
	    loop_signal_add(loop, SIGUSR1, local_on_signal, &ui, &err) == -1 ||
	    loop_signal_add(loop, SIGHUP, local_on_signal, &ui, &err) == -1)
		goto fail;
	if (virt_event_init(loop, &err) == -1)
		goto fail;
	if (localstore_open(store_dir, &store, &err) == -1)
		goto fail;
	b->source = &source_file_ops;
	b->registry = &registry_local_ops;
	b->registry_ctx = store;
	/* libvirt wants absolute paths */
	if (realpath(localstore_dir(store), absdir) == NULL) {
		err_set(&err, ERR_IO, "%s: %s", localstore_dir(store), strerror(errno));
		goto fail;
	}
	b->work_root = xasprintf("%s/.work", absdir);
	b->log_dir = xasprintf("%s/.logs", absdir);
	if (util_mkdirs(b->work_root, &err) == -1)
		goto fail;
	/* `isoforge local finish|cancel ID` find this process here */
	pidfile = xasprintf("%s/%s.pid", b->work_root, b->id);
	pidtext = xasprintf("%d\n", (int)getpid());
	if (util_write_file(pidfile, pidtext, strlen(pidtext), 0644, &err) == -1)
		goto fail;

	if (uri == NULL) {
		if ((privdir = mkdtemp(tmpl)) == NULL) {
			err_set(&err, ERR_IO, "mkdtemp: %s", strerror(errno));
			goto fail;
		}
		privdir = xstrdup(privdir);
		vdcache = xasprintf("%s/libvirt-cache", cache);
		fprintf(stderr, "starting a private libvirtd (no --connect or ISOFORGE_LIBVIRT_URI)\n");
		if ((privd = virtd_start(privdir, vdcache, 90, &err)) == NULL)
			goto fail;
		uri = virtd_uri(privd);
	}
	if ((v = virt_open(loop, uri, &err)) == NULL)
		goto fail;
	b->virt = v;
	if (privd != NULL)
		ui.v = v;
	tmpdir = xasprintf("%s/%s", b->work_root, b->id);
	if (util_mkdirs(tmpdir, &err) == -1)
		goto fail;
	if (virt_domain_type(v, dtype, cache, tmpdir, LOCAL_PROBE_TIMEOUT, &base, &err) == -1)
		goto fail;
	b->domain_type = xstrdup(base);
	fprintf(stderr, "build %s: %s on %s (%s)\n", b->id, b->iso_ref != NULL ? b->iso_ref :
	    b->from_ref, uri,
		    strcmp(b->domain_type, "kvm") == 0 ? "KVM" : "TCG, no KVM");

	/* nobody can pick this install up once we are gone: it must not outlive us */
	b->autodestroy = 1;
	b->notifier = &local_notifier_ops;
	b->notifier_ctx = &ui;
	if (ui.tty)
		ui.tick = loop_timer_add(loop, 1000, local_ui_tick, &ui, NULL);
	/* the pipeline on a thread of its own, the loop (libvirt, signals) here */
	if ((c = pthread_create(&thread, NULL, local_build_thread, &ui)) != 0) {
		err_set(&err, ERR_INTERNAL, "no build thread: %s", strerror(c));
		goto fail;
	}
	while (!__atomic_load_n(&ui.done, __ATOMIC_SEQ_CST))
		if (loop_run_once(loop, -1, &err) == -1) {
			log_warnx("%s", err.msg);
			break;
		}
	pthread_join(thread, NULL);
	if (ui.net_started) {
		/* its loop_call runs on this loop */
		while (!__atomic_load_n(&ui.net_done, __ATOMIC_SEQ_CST))
			if (loop_run_once(loop, 100, &err) == -1) {
				log_warnx("%s", err.msg);
				break;
			}
		pthread_join(ui.net_thread, NULL);
		ui.net_started = 0;
		ui.net_joined = 1;
	}
	if (ui.tick)
		loop_timer_remove(loop, ui.tick);
	local_ui_newline(&ui);
	local_print_result(b, ui.json, localstore_dir(store));
	rc = b->state == BUILD_ACTIVE ? CMD_OK : CMD_FAILED;
	goto cleanup;
fail:
	fprintf(stderr, "isoforge local build: %s\n", err.msg);
	if (ui.json) {
		json_t	*j = json_pack("{s:s, s:s}", "state", "failed", "error", err.msg);

		cmd_print_json(j, JSON_COMPACT);
		json_decref(j);
	}
cleanup:
	if (tmpdir != NULL)
		(void)rmdir(tmpdir);
	if (pidfile != NULL)
		(void)unlink(pidfile);
	free(pidfile);
	free(pidtext);
	build_free(&b);
	/* a private libvirtd's guest network (bridge, dnsmasq, rules) would outlive it */
	err_clear(&nerr);
	if (ui.net_joined) {
		if (ui.net_rc == -1)
			fprintf(stderr, "isoforge local build: %s\n", ui.net_err.msg);
	} else if (privd != NULL && v != NULL) {
		if (ui.net_started) {
			/* the loop failed before the call ran: it must not run after virt_free */
			__atomic_store_n(&ui.net_cancel, 1, __ATOMIC_SEQ_CST);
			log_warnx("guest network: teardown left to the exit");
		}
		if (guestnet_teardown(v, &nerr) == -1)
			fprintf(stderr, "isoforge local build: %s\n", nerr.msg);
		log_debug("guest network torn down");
	}
	virt_free(&v);
	if (loop != NULL)
		(void)loop_run_once(loop, 0, NULL);	/* frees libvirt's removed watches */
	virtd_stop(&privd);
	log_debug("private libvirtd stopped");
	if (privdir != NULL)
		(void)util_rmtree(privdir, NULL);
	localstore_free(&store);
	loop_free(&loop);
	free(tmpdir);
	free(privdir);
	free(vdcache);
	free(store_dir);
	free(cache);
	free(name);
	free(ui.activity);
	pthread_mutex_destroy(&ui.mu);
	return rc;
}

/* Prints the store's images (or a chain's), oldest version first. */
static int
local_list(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "out", required_argument, NULL, 'o' },
		{ "chain", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct localstore	*store = NULL;
	struct err		 err;
	json_t			*list = NULL, *rec;
	const char		*chain = NULL, *out = NULL;
	char			*dir = NULL;
	size_t			 i;
	int			 c, json = 0, rc = CMD_FAILED;

	err_clear(&err);
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'o': out = optarg; break;
		case 'c': chain = optarg; break;
		case 'j': json = 1; break;
		case 'h': local_usage(stdout); return CMD_OK;
		default: local_usage(stderr); return CMD_USAGE;
		}
	}
	dir = local_store_dir(out);
	if (localstore_open(dir, &store, &err) == -1 ||
	    (list = localstore_list(store, chain, &err)) == NULL) {
		fprintf(stderr, "isoforge local list: %s\n", err.msg);
		goto cleanup;
	}
	if (json) {
		cmd_print_json(list, JSON_COMPACT);
	} else {
		printf("%-36s  %-20s  %7s  %10s  %s\n", "ID", "CHAIN", "VERSION", "SIZE", "NAME");
		json_array_foreach(list, i, rec) {
			json_t *p = json_object_get(rec, "properties");

			printf("%-36s  %-20s  %7s  %10lld  %s\n",
			    json_string_value(json_object_get(rec, "id")),
			    json_string_value(json_object_get(p, "isoforge_chain")) ?: "-",
			    json_string_value(json_object_get(p, "isoforge_version")) ?: "-",
			    (long long)json_integer_value(json_object_get(rec, "size")),
			    json_string_value(json_object_get(rec, "name")) ?: "");
		}
	}
	rc = CMD_OK;
cleanup:
	json_decref(list);
	localstore_free(&store);
	free(dir);
	return rc;
}

/* Prints one image's record as JSON. */
static int
local_show(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "out", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct localstore	*store = NULL;
	struct err		 err;
	json_t			*rec = NULL;
	const char		*out = NULL;
	char			*dir = NULL;
	int			 c, rc = CMD_FAILED;

	err_clear(&err);
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'o': out = optarg; break;
		case 'h': local_usage(stdout); return CMD_OK;
		default: local_usage(stderr); return CMD_USAGE;
		}
	}
	if (optind != argc - 1) {
		local_usage(stderr);
		return CMD_USAGE;
	}
	dir = local_store_dir(out);
	if (localstore_open(dir, &store, &err) == -1 ||
	    (rec = localstore_get(store, argv[optind], &err)) == NULL) {
		fprintf(stderr, "isoforge local show: %s\n", err.msg);
		rc = err.kind == ERR_NOTFOUND ? CMD_USAGE : CMD_FAILED;
		goto cleanup;
	}
	cmd_print_json(rec, JSON_INDENT(2) | JSON_SORT_KEYS);
	rc = CMD_OK;
cleanup:
	json_decref(rec);
	localstore_free(&store);
	free(dir);
	return rc;
}

/* Signals the `local build` process of a build: SIGUSR1 = finish, SIGTERM = cancel. */
static int
local_signal(int argc, char **argv, int sig)
{
	static const struct option opts[] = {
		{ "out", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct err	 err;
	const char	*out = NULL;
	char		*dir = NULL, *pidfile = NULL, *text = NULL, *cmdline = NULL, *proc = NULL;
	size_t		 len = 0;
	long		 pid;
	int		 c, rc = CMD_FAILED;

	err_clear(&err);
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'o': out = optarg; break;
		case 'h': local_usage(stdout); return CMD_OK;
		default: local_usage(stderr); return CMD_USAGE;
		}
	}
	if (optind != argc - 1 || strchr(argv[optind], '/') != NULL) {
		local_usage(stderr);
		return CMD_USAGE;
	}
	dir = local_store_dir(out);
	pidfile = xasprintf("%s/.work/%s.pid", dir, argv[optind]);
	if ((text = util_read_file(pidfile, 64, NULL, &err)) == NULL) {
		fprintf(stderr, "isoforge local %s: no running build %s in %s\n", argv[0],
		    argv[optind], dir);
		rc = CMD_USAGE;
		goto cleanup;
	}
	pid = strtol(text, NULL, 10);
	proc = xasprintf("/proc/%ld/cmdline", pid);
	/* the pid may belong to another program by now */
	if (pid <= 1 || (cmdline = util_read_file(proc, 65536, &len, NULL)) == NULL ||
	    memmem(cmdline, len, "local", 6) == NULL) {
		fprintf(stderr, "isoforge local %s: build %s is not running\n", argv[0],
		    argv[optind]);
		goto cleanup;
	}
	if (kill((pid_t)pid, sig) == -1) {
		fprintf(stderr, "isoforge local %s: %s\n", argv[0], strerror(errno));
		goto cleanup;
	}
	rc = CMD_OK;
cleanup:
	free(dir);
	free(pidfile);
	free(text);
	free(cmdline);
	free(proc);
	return rc;
}

int
cmd_local(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		local_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? CMD_USAGE : CMD_OK;
	}
	if (strcmp(argv[1], "build") == 0)
		return local_build(argc - 1, argv + 1);
	if (strcmp(argv[1], "list") == 0)
		return local_list(argc - 1, argv + 1);
	if (strcmp(argv[1], "show") == 0)
		return local_show(argc - 1, argv + 1);
	if (strcmp(argv[1], "finish") == 0)
		return local_signal(argc - 1, argv + 1, SIGUSR1);
	if (strcmp(argv[1], "cancel") == 0)
		return local_signal(argc - 1, argv + 1, SIGTERM);
	fprintf(stderr, "isoforge local: unknown command '%s'\n", argv[1]);
	local_usage(stderr);
	return CMD_USAGE;
}
