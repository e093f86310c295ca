/*
 * cmd_remote.c — the CLI's commands over isoforge-api (docs/api.md): build, status, list,
 * finish, cancel, console, versions, tree. Credentials as for the openstack CLI (clouds.yaml,
 * OS_*, --os-*); the API from the Keystone catalog (service type image-build). Images given
 * by name are looked up in Glance, as the user. No command needs the message broker.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "drivers/glance.h"
#include "drivers/http.h"
#include "service/cli/apiclient.h"
#include "service/cli/cmd.h"
#include "service/cli/osenv.h"
#include "service/pipeline/request.h"
#include "base/util.h"

#define REMOTE_POLL_S		1.0	/* build --wait asks the API this often */
#define REMOTE_GRACE_S		30.0	/* a new build may take this long to show in the API */
#define REMOTE_OUTAGE_S		600.0	/* --wait gives up after the API failed this long */
#define REMOTE_QUEUED_WARN_S	60.0	/* "no worker has taken it yet" after this long */
#define REMOTE_MAX_PAGES	1000	/* list follows at most this many next links */

/* What a remote command holds; every member is released by remote_free. */
struct remote {
	const char		*cmd;
	struct osenv_flags	 flags;
	struct osenv_config	 cfg;
	struct apiclient	*api;
	struct glance		*glance;
	int			 json;
};

static void
remote_free(struct remote *r)
{
	glance_free(&r->glance);
	apiclient_free(&r->api);
	osenv_config_free(&r->cfg);
}

/* A string member of o, or def. */
static const char *
jstr(const json_t *o, const char *key, const char *def)
{
	const char	*s = json_string_value(json_object_get(o, key));

	return s != NULL ? s : def;
}

/* Prints "isoforge CMD: msg" to stderr; returns code. */
static int
remote_fail(struct remote *r, int code, const char *msg)
{
	fprintf(stderr, "isoforge %s: %s\n", r->cmd, msg);
	return code;
}

/* The exit code for an error: bad input (also a 400 from the API) is a usage error. */
static int
remote_code(const struct err *e)
{
	return e->kind == ERR_INVAL ? CMD_USAGE : CMD_FAILED;
}

/*
 * apiclient_call on r's API; on failure prints why and sets *codep to the exit code (a usage
 * error for bad input). 0 or -1; *out as apiclient_call's (caller decrefs).
 */
static int
remote_call(struct remote *r, const char *method, const char *path, const json_t *body,
    json_t **out, int *codep)
{
	struct err	 err;

	err_clear(&err);
	if (apiclient_call(r->api, method, path, body, out, &err) != 0) {
		*codep = remote_fail(r, remote_code(&err), err.msg);
		return -1;
	}
	return 0;
}

/* The credentials and the API client; prints why not and returns the exit code, else 0. */
static int
remote_connect(struct remote *r)
{
	struct err	 err;

	err_clear(&err);
	if (osenv_config_load(&r->flags, &r->cfg, &err) != 0)
		return remote_fail(r, CMD_USAGE, err.msg);
	if ((r->api = apiclient_new(&r->cfg, &err)) == NULL)
		return remote_fail(r, CMD_FAILED, err.msg);
	return 0;
}

/* The id of a Glance image given by id or (unique) name; caller frees. */
static char *
remote_image_id(struct remote *r, const char *what, struct err *err)
{
	struct glance_list_opts	 o;
	json_t			*imgs;
	char			*id = NULL;

	if (util_is_uuid(what))
		return xstrdup(what);
	if (r->glance == NULL && (r->glance = glance_new(apiclient_keystone(r->api),
	    getenv("ISOFORGE_GLANCE_ENDPOINT"), err)) == NULL)
		return NULL;
	memset(&o, 0, sizeof(o));
	o.filters = json_pack("{s:s}", "name", what);
	imgs = glance_image_list(r->glance, &o, err);
	json_decref(o.filters);
	if (imgs == NULL)
		return NULL;
	if (json_array_size(imgs) == 1)
		id = xstrdup(json_string_value(json_object_get(json_array_get(imgs, 0), "id")));
	else if (json_array_size(imgs) == 0)
		err_set(err, ERR_INVAL, "image %s: none of that name visible to you", what);
	else
		err_set(err, ERR_INVAL, "image %s: %zu images of that name, give its id", what,
		    json_array_size(imgs));
	json_decref(imgs);
	return id;
}

/* Copies s into out (size n) with control characters as spaces: API text never moves the
 * cursor or changes colours of the terminal it is shown on. */
static void
remote_clean(const char *s, char *out, size_t n)
{
	size_t	 i;

	for (i = 0; s != NULL && s[i] != '\0' && i + 1 < n; i++)
		out[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? ' ' : s[i];
	out[i] = '\0';
}

static int
remote_terminal_state(const char *s)
{
	return s != NULL && (strcmp(s, "active") == 0 || strcmp(s, "failed") == 0 ||
	    strcmp(s, "cancelled") == 0);
}

/* ^C during --wait: stop waiting (the build goes on), leave the terminal tidy. */
static volatile sig_atomic_t	 remote_signal;
static int			 remote_sigpipe[2] = { -1, -1 };

static void
remote_on_signal(int sig)
{
	int	 saved = errno;

	remote_signal = sig;
	if (remote_sigpipe[1] >= 0 && write(remote_sigpipe[1], "x", 1) < 0) {
		/* nothing to do: the flag is set */
	}
	errno = saved;
}

/* What build --wait shows and remembers. */
struct remote_wait {
	struct remote	*r;
	const char	*build_id;
	int		 live;		/* stdout is a terminal: one live line */
	int		 line_open;	/* the live line is on screen, not ended */
	size_t		 seen;		/* events printed */
	json_t		*last;		/* the last event shown (a reference) */
	char		 state[32];
	int		 console_hint;
	double		 start;
};

/* The terminal's width, 80 when unknown. */
static int
remote_columns(void)
{
	struct winsize	 ws;

	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20)
		return ws.ws_col;
	return 80;
}

/* Redraws the live line: state, progress, message, time waited. */
static void
remote_live_line(struct remote_wait *w)
{
	char	 msg[512], line[1024];
	int	 el = (int)(util_now() - w->start), n, cols = remote_columns();

	if (w->last == NULL)
		return;
	remote_clean(jstr(w->last, "message", ""), msg, sizeof(msg));
	n = snprintf(line, sizeof(line), "%-12s %3d%%  [%d:%02d]  %s", jstr(w->last, "state", "?"),
	    (int)json_integer_value(json_object_get(w->last, "progress")), el / 60, el % 60, msg);
	if (n < 0)
		return;
	if (n >= cols)
		line[cols - 1] = '\0';
	printf("\r\033[K%s", line);
	fflush(stdout);
	w->line_open = 1;
}

static void
remote_end_line(struct remote_wait *w)
{
	if (w->line_open) {
		putchar('\n');
		fflush(stdout);
		w->line_open = 0;
	}
}

static void
remote_set_last(struct remote_wait *w, json_t *ev)
{
	json_incref(ev);
	json_decref(w->last);
	w->last = ev;
}

/* Shows one new event: a JSON line (--json), a kept line per state (terminal), a plain line. */
static void
remote_show_event(struct remote_wait *w, json_t *ev)
{
	const char	*state = jstr(ev, "state", "?");
	char		 msg[1024];
	json_t		*line;
	const char	*k;
	json_t		*v;

	if (w->r->json) {
		line = json_pack("{s:s}", "build_id", w->build_id);
		json_object_foreach(ev, k, v)
			if (strcmp(k, "build_id") != 0)
				json_object_set(line, k, v);
		cmd_print_json(line, JSON_COMPACT);
		json_decref(line);
	} else if (w->live) {
		/* a new state keeps the line of the one before on screen */
		if (strcmp(state, w->state) != 0)
			remote_end_line(w);
		remote_set_last(w, ev);
		remote_live_line(w);
	} else {
		remote_clean(jstr(ev, "message", ""), msg, sizeof(msg));
		printf("%s  %-12s %3d%%  %s\n", jstr(ev, "time", "-"), state,
		    (int)json_integer_value(json_object_get(ev, "progress")), msg);
		fflush(stdout);
	}
	if (!w->r->json && !w->console_hint && strcmp(state, "installing") == 0) {
		remote_end_line(w);
		printf("    console: isoforge console %s\n", w->build_id);
		fflush(stdout);
		w->console_hint = 1;
		if (w->live) {
			remote_set_last(w, ev);
			remote_live_line(w);
		}
	}
	remote_set_last(w, ev);
	snprintf(w->state, sizeof(w->state), "%s", state);
}

/* Sleeps up to s seconds; 1 when a signal asked to stop. */
static int
remote_sleep(double s)
{
	if (remote_signal)
		return 1;
	util_wait_fd(remote_sigpipe[0], s);
	return remote_signal != 0;
}

/*
 * Polls GET /v1/builds/ID/events until the build is terminal, showing each new event.
 * Transient failures (the API restarting, a network blip) are waited out and said once.
 * Returns 0 when terminal (w->state), -1 on error or a signal (message printed).
 */
static int
remote_wait_build(struct remote_wait *w)
{
	struct err	 err;
	json_t		*ans = NULL, *evs, *ev;
	char		*path;
	double		 failing_since = 0, now;
	int		 said_down = 0, said_queued = 0, rc = -1;
	size_t		 i;

	path = xasprintf("/v1/builds/%s/events", w->build_id);
	for (;;) {
		err_clear(&err);
		ans = NULL;
		if (apiclient_call(w->r->api, "GET", path, NULL, &ans, &err) != 0) {
			now = util_now();
			if (err.kind == ERR_CANCELLED || remote_signal)
				goto interrupted;
			if (err.kind == ERR_NOTFOUND && w->seen == 0 &&
			    now - w->start < REMOTE_GRACE_S)
				goto next;
			if (err.kind == ERR_NOTFOUND || err.kind == ERR_AUTH ||
			    err.kind == ERR_INVAL) {
				remote_end_line(w);
				remote_fail(w->r, CMD_FAILED, err.msg);
				goto cleanup;
			}
			if (failing_since == 0)
				failing_since = now;
			if (!said_down) {
				remote_end_line(w);
				fprintf(stderr, "isoforge build: %s; still waiting\n", err.msg);
				said_down = 1;
				if (w->live)
					remote_live_line(w);
			}
			if (now - failing_since > REMOTE_OUTAGE_S) {
				remote_end_line(w);
				fprintf(stderr, "isoforge build: the API has not answered for %.0f s; "
				    "build %s goes on: isoforge status %s\n", REMOTE_OUTAGE_S,
				    w->build_id, w->build_id);
				goto cleanup;
			}
			goto next;
		}
		if (said_down) {
			remote_end_line(w);
			fprintf(stderr, "isoforge build: the API answers again\n");
			if (w->live)
				remote_live_line(w);
		}
		failing_since = 0;
		said_down = 0;
		evs = json_object_get(ans, "events");
		if (json_is_array(evs)) {
			for (i = w->seen; i < json_array_size(evs); i++) {
				ev = json_array_get(evs, i);
				if (json_is_object(ev))
					remote_show_event(w, ev);
			}
			if (json_array_size(evs) > w->seen)
				w->seen = json_array_size(evs);
		}
		json_decref(ans);
		ans = NULL;
		if (remote_terminal_state(w->state)) {
			rc = 0;
			goto cleanup;
		}
		if (!said_queued && strcmp(w->state, "queued") == 0 &&
		    util_now() - w->start > REMOTE_QUEUED_WARN_S) {
			remote_end_line(w);
			fprintf(stderr, "isoforge build: still queued after a minute (no worker has "
			    "taken it yet); waiting\n");
			said_queued = 1;
		}
		if (w->live && w->last != NULL)
			remote_live_line(w);
next:
		if (remote_sleep(REMOTE_POLL_S))
			goto interrupted;
	}
interrupted:
	remote_end_line(w);
	fprintf(stderr, "isoforge build: stopped waiting; build %s goes on: isoforge status %s\n",
	    w->build_id, w->build_id);
cleanup:
	json_decref(ans);
	free(path);
	return rc;
}

/* A version number as text ("-" when absent), in out. */
static const char *
remote_version(const json_t *v, char out[24])
{
	if (json_is_integer(v))
		snprintf(out, 24, "%lld", (long long)json_integer_value(v));
	else if (json_is_string(v))
		snprintf(out, 24, "%s", json_string_value(v));
	else
		snprintf(out, 24, "-");
	return out;
}

static void
build_usage(FILE *out)
{
	fprintf(out, "usage: isoforge build --iso IMAGE --flavor FLAVOR --name NAME\n"
	    "         [--from IMAGE] [--virtio-win IMAGE|auto] [--chain CHAIN] [--parent IMAGE]\n"
	    "         [--os-type windows|linux|other] [--os-distro D] [--os-version V]\n"
	    "         [--firmware bios|uefi] [--unattended] [--timeout SECONDS]\n"
	    "         [--inactivity-timeout SECONDS (0: off; default: the worker's, for\n"
	    "         unattended installs)]\n"
	    "         [--visibility private|shared|community|public] [--compress]\n"
	    "         [--property KEY=VALUE]... [--tag TAG]... [--wait] [--json] [--os-*]\n"
	    "Asks isoforge-api for a build; images by id or name. --from IMAGE derives the next\n"
	    "version of a chain from an image (no --iso). --wait follows the build to its end\n"
	    "(exit 0 when active); --json prints JSON lines, the last one the result.\n"
	    OSENV_USAGE);
}

/* {"build": req} with the options' objects in req; takes req's reference. */
static json_t *
build_body(json_t *req, json_t *os, json_t *install, json_t *image, json_t *props,
    json_t *tags)
{
	if (json_object_size(os) > 0)
		json_object_set(req, "os", os);
	if (json_object_size(install) > 0)
		json_object_set(req, "install", install);
	if (json_object_size(props) > 0)
		json_object_set(image, "properties", props);
	if (json_array_size(tags) > 0)
		json_object_set(image, "tags", tags);
	if (json_object_size(image) > 0)
		json_object_set(req, "image", image);
	return json_pack("{s:o}", "build", req);
}

int
cmd_build(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "iso", required_argument, NULL, 'i' },
		{ "from", required_argument, NULL, 'm' },
		{ "flavor", required_argument, NULL, 'f' },
		{ "name", required_argument, NULL, 'n' },
		{ "virtio-win", required_argument, NULL, 'V' },
		{ "chain", required_argument, NULL, 'c' },
		{ "parent", required_argument, NULL, 'p' },
		{ "os-type", required_argument, NULL, 'T' },
		{ "os-distro", required_argument, NULL, 'D' },
		{ "os-version", required_argument, NULL, 'O' },
		{ "firmware", required_argument, NULL, 'F' },
		{ "unattended", no_argument, NULL, 'u' },
		{ "timeout", required_argument, NULL, 't' },
		{ "inactivity-timeout", required_argument, NULL, 'I' },
		{ "visibility", required_argument, NULL, 'v' },
		{ "compress", no_argument, NULL, 'z' },
		{ "property", required_argument, NULL, 'P' },
		{ "tag", required_argument, NULL, 'g' },
		{ "wait", no_argument, NULL, 'w' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		OSENV_OPTIONS,
		{ NULL, 0, NULL, 0 }
	};
	struct remote		 r;
	struct remote_wait	 w;
	struct build_request	*check = NULL;
	struct sigaction	 sa, old_int, old_term;
	struct err		 err;
	json_t			*req, *os, *install, *image, *props, *tags, *body = NULL;
	json_t			*ans = NULL, *build, *summary = NULL, *final = NULL;
	const char		*iso = NULL, *from = NULL, *flavor = NULL, *name = NULL;
	const char		*virtio = NULL, *parent = NULL, *eq, *id, *state;
	char			*iso_id = NULL, *from_id = NULL, *virtio_id = NULL;
	char			*parent_id = NULL, *text = NULL, *key = NULL, *end, *path = NULL;
	long			 timeout = 0, inactivity;
	int			 ch, wait = 0, ret = CMD_FAILED, signals = 0;

	memset(&r, 0, sizeof(r));
	memset(&w, 0, sizeof(w));
	r.cmd = "build";
	err_clear(&err);
	os = json_object();
	install = json_object();
	image = json_object();
	props = json_object();
	tags = json_array();
	req = json_object();
	optind = 1;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (osenv_flag(&r.flags, ch, optarg))
			continue;
		switch (ch) {
		case 'i': iso = optarg; break;
		case 'm': from = optarg; break;
		case 'f': flavor = optarg; break;
		case 'n': name = optarg; break;
		case 'V': virtio = optarg; break;
		case 'c': json_object_set_new(req, "chain", json_string(optarg)); break;
		case 'p': parent = optarg; break;
		case 'T': json_object_set_new(os, "type", json_string(optarg)); break;
		case 'D': json_object_set_new(os, "distro", json_string(optarg)); break;
		case 'O': json_object_set_new(os, "version", json_string(optarg)); break;
		case 'F': json_object_set_new(req, "firmware", json_string(optarg)); break;
		case 'u': json_object_set_new(install, "mode", json_string("unattended")); break;
		case 't':
			timeout = strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || timeout <= 0) {
				ret = remote_fail(&r, CMD_USAGE, "--timeout: seconds, > 0");
				goto cleanup;
			}
			json_object_set_new(install, "timeout_s", json_integer(timeout));
			break;
		case 'I':
			inactivity = strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || inactivity < 0) {
				ret = remote_fail(&r, CMD_USAGE, "--inactivity-timeout: seconds, >= 0");
				goto cleanup;
			}
			json_object_set_new(install, "inactivity_timeout_s",
			    json_integer(inactivity));
			break;
		case 'v': json_object_set_new(image, "visibility", json_string(optarg)); break;
		case 'z': json_object_set_new(image, "compress", json_true()); break;
		case 'P':
			if ((eq = strchr(optarg, '=')) == NULL || eq == optarg) {
				ret = remote_fail(&r, CMD_USAGE, "--property: KEY=VALUE");
				goto cleanup;
			}
			free(key);
			key = xstrndup(optarg, (size_t)(eq - optarg));
			json_object_set_new(props, key, json_string(eq + 1));
			break;
		case 'g': json_array_append_new(tags, json_string(optarg)); break;
		case 'w': wait = 1; break;
		case 'j': r.json = 1; break;
		case 'h':
			build_usage(stdout);
			ret = CMD_OK;
			goto cleanup;
		default:
			build_usage(stderr);
			ret = CMD_USAGE;
			goto cleanup;
		}
	}
	if (optind != argc || (iso == NULL && from == NULL) || flavor == NULL || name == NULL) {
		build_usage(stderr);
		ret = CMD_USAGE;
		goto cleanup;
	}
	json_object_set_new(req, "name", json_string(name));
	json_object_set_new(req, "flavor", json_string(flavor));
	/* what the API would refuse for its values is said before anything is asked */
	body = build_body(json_deep_copy(req), os, install, image, props, tags);
	text = json_dumps(json_object_get(body, "build"), JSON_COMPACT);
	if ((check = request_parse(text, strlen(text), REQUEST_PARTIAL, &err)) == NULL) {
		ret = remote_fail(&r, CMD_USAGE, err.msg);
		goto cleanup;
	}
	json_decref(body);
	body = NULL;
	if ((ret = remote_connect(&r)) != 0)
		goto cleanup;
	ret = CMD_FAILED;
	if ((iso != NULL && (iso_id = remote_image_id(&r, iso, &err)) == NULL) ||
	    (from != NULL && (from_id = remote_image_id(&r, from, &err)) == NULL) ||
	    (virtio != NULL && strcmp(virtio, "auto") != 0 &&
	    (virtio_id = remote_image_id(&r, virtio, &err)) == NULL) ||
	    (parent != NULL && (parent_id = remote_image_id(&r, parent, &err)) == NULL)) {
		ret = remote_fail(&r, remote_code(&err), err.msg);
		goto cleanup;
	}
	if (iso_id != NULL)
		json_object_set_new(req, "iso_image", json_string(iso_id));
	if (from_id != NULL)
		json_object_set_new(req, "from_image", json_string(from_id));
	if (virtio != NULL)
		json_object_set_new(req, "virtio_win_image",
		    json_string(virtio_id != NULL ? virtio_id : "auto"));
	if (parent_id != NULL)
		json_object_set_new(req, "parent_image", json_string(parent_id));
	body = build_body(json_incref(req), os, install, image, props, tags);
	if (remote_call(&r, "POST", "/v1/builds", body, &ans, &ret) != 0)
		goto cleanup;
	build = json_object_get(ans, "build");
	if ((id = json_string_value(json_object_get(build, "id"))) == NULL) {
		ret = remote_fail(&r, CMD_FAILED, "the API answered without a build id");
		goto cleanup;
	}
	if (!r.json)
		printf("build %s submitted (%s)\n", id, jstr(build, "state", "queued"));
	fflush(stdout);
	if (!wait) {
		summary = json_pack("{s:s, s:s, s:n}", "build_id", id, "state",
		    jstr(build, "state", "queued"), "image_id");
		ret = CMD_OK;
		goto cleanup;
	}
	if (pipe2(remote_sigpipe, O_CLOEXEC | O_NONBLOCK) != 0) {
		ret = remote_fail(&r, CMD_FAILED, strerror(errno));
		goto cleanup;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = remote_on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	signals = 1;
	apiclient_set_cancel_fd(r.api, remote_sigpipe[0]);
	w.r = &r;
	w.build_id = id;
	w.live = !r.json && isatty(STDOUT_FILENO);
	w.start = util_now();
	if (remote_wait_build(&w) != 0) {
		ret = remote_signal ? 128 + remote_signal : CMD_FAILED;
		goto cleanup;
	}
	remote_end_line(&w);
	/* the build as the API holds it now: image, version, the last word */
	apiclient_set_cancel_fd(r.api, -1);
	path = xasprintf("/v1/builds/%s", id);
	err_clear(&err);
	if (apiclient_call(r.api, "GET", path, NULL, &final, &err) != 0)
		fprintf(stderr, "isoforge build: %s\n", err.msg);
	build = json_object_get(final, "build");
	state = w.state;
	summary = json_pack("{s:s, s:s}", "build_id", id, "state", state);
	json_object_set(summary, "image_id", json_object_get(build, "image_id") != NULL ?
	    json_object_get(build, "image_id") : json_null());
	if (json_object_get(build, "version") != NULL)
		json_object_set(summary, "version", json_object_get(build, "version"));
	if (json_object_get(w.last, "message") != NULL)
		json_object_set(summary, "message", json_object_get(w.last, "message"));
	if (json_object_get(build, "chain") != NULL)
		json_object_set(summary, "chain", json_object_get(build, "chain"));
	if (!r.json) {
		char	 msg[1024];

		remote_clean(jstr(w.last, "message", ""), msg, sizeof(msg));
		char	 ver[24];

		if (strcmp(state, "active") == 0)
			printf("build %s active: image %s (chain %s, version %s)\n", id,
			    jstr(build, "image_id", "?"), jstr(build, "chain", "-"),
			    remote_version(json_object_get(build, "version"), ver));
		else
			printf("build %s %s: %s\n", id, state, msg);
	}
	ret = strcmp(state, "active") == 0 ? CMD_OK : CMD_FAILED;
cleanup:
	if (summary != NULL && r.json)
		cmd_print_json(summary, JSON_COMPACT);
	if (signals) {
		sigaction(SIGINT, &old_int, NULL);
		sigaction(SIGTERM, &old_term, NULL);
	}
	if (remote_sigpipe[0] >= 0) {
		close(remote_sigpipe[0]);
		close(remote_sigpipe[1]);
		remote_sigpipe[0] = remote_sigpipe[1] = -1;
	}
	json_decref(w.last);
	json_decref(summary);
	json_decref(final);
	json_decref(ans);
	json_decref(body);
	request_free(&check);
	free(path);
	free(key);
	free(text);
	free(iso_id);
	free(from_id);
	free(virtio_id);
	free(parent_id);
	json_decref(req);
	json_decref(os);
	json_decref(install);
	json_decref(image);
	json_decref(props);
	json_decref(tags);
	remote_free(&r);
	return ret;
}

/*
 * Parses --json, --help and --os-*, leaving optind at the operands; usage is the help's line
 * after "usage: isoforge CMD ". 0 or an exit code (-1: help shown).
 */
static int
remote_opts(struct remote *r, int argc, char **argv, const char *usage)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		OSENV_OPTIONS,
		{ NULL, 0, NULL, 0 }
	};
	int	 ch;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (osenv_flag(&r->flags, ch, optarg))
			continue;
		switch (ch) {
		case 'j': r->json = 1; break;
		default:
			fprintf(ch == 'h' ? stdout : stderr, "usage: isoforge %s %s\n%s", r->cmd,
			    usage, ch == 'h' ? OSENV_USAGE : "");
			return ch == 'h' ? -1 : CMD_USAGE;
		}
	}
	return 0;
}

/* Parses a one-build command's arguments (BUILD_ID, --json, --os-*); 0 or an exit code. */
static int
remote_one_args(struct remote *r, int argc, char **argv, const char **idp)
{
	int	 ret;

	if ((ret = remote_opts(r, argc, argv, "BUILD_ID [--json] [--os-*]")) != 0)
		return ret;
	if (optind + 1 != argc || !util_is_uuid(argv[optind])) {
		fprintf(stderr, "usage: isoforge %s BUILD_ID (a UUID)\n", r->cmd);
		return CMD_USAGE;
	}
	*idp = argv[optind];
	return 0;
}

/* A build object as the CLI prints it in JSON: the API's, with build_id beside id. */
static void
remote_build_compat(json_t *b)
{
	if (json_is_object(b) && json_object_get(b, "id") != NULL)
		json_object_set(b, "build_id", json_object_get(b, "id"));
}

/* status BUILD_ID: the build and its events. */
int
cmd_status(int argc, char **argv)
{
	struct remote	 r;
	json_t		*ans = NULL, *evs = NULL, *b, *ev;
	const char	*id;
	char		*path = NULL, msg[1024];
	size_t		 i;
	int		 ret;

	memset(&r, 0, sizeof(r));
	r.cmd = "status";
	if ((ret = remote_one_args(&r, argc, argv, &id)) != 0)
		return ret < 0 ? CMD_OK : ret;
	if ((ret = remote_connect(&r)) != 0)
		goto cleanup;
	ret = CMD_FAILED;
	path = xasprintf("/v1/builds/%s", id);
	if (remote_call(&r, "GET", path, NULL, &ans, &ret) != 0)
		goto cleanup;
	b = json_object_get(ans, "build");
	free(path);
	path = xasprintf("/v1/builds/%s/events", id);
	if (remote_call(&r, "GET", path, NULL, &evs, &ret) != 0)
		goto cleanup;
	json_object_set(b, "history", json_object_get(evs, "events") != NULL ?
	    json_object_get(evs, "events") : json_array());
	remote_build_compat(b);
	if (r.json) {
		cmd_print_json(b, JSON_COMPACT);
	} else {
		remote_clean(jstr(b, "message", ""), msg, sizeof(msg));
		printf("build     %s\nname      %s\nstate     %s (%lld%%)\nmessage   %s\n",
		    jstr(b, "id", "?"), jstr(b, "name", ""), jstr(b, "state", "?"),
		    (long long)json_integer_value(json_object_get(b, "progress")), msg);
		printf("image     %s", jstr(b, "image_id", "-"));
		if (json_is_integer(json_object_get(b, "version")))
			printf(" (version %lld)",
			    (long long)json_integer_value(json_object_get(b, "version")));
		printf("\nchain     %s\nworker    %s\ncreated   %s\nupdated   %s\n",
		    jstr(b, "chain", "-"), jstr(b, "worker", "-"), jstr(b, "created_at", ""),
		    jstr(b, "updated_at", ""));
		json_array_foreach(json_object_get(b, "history"), i, ev) {
			remote_clean(jstr(ev, "message", ""), msg, sizeof(msg));
			printf("  %s  %-12s %3lld%%  %s\n", jstr(ev, "time", "-"),
			    jstr(ev, "state", "?"),
			    (long long)json_integer_value(json_object_get(ev, "progress")), msg);
		}
	}
	ret = CMD_OK;
cleanup:
	json_decref(ans);
	json_decref(evs);
	free(path);
	remote_free(&r);
	return ret;
}

/* finish, cancel: POST /v1/builds/ID/action. */
static int
remote_action(const char *cmd, int argc, char **argv)
{
	struct remote	 r;
	json_t		*body, *ans = NULL;
	const char	*id;
	char		*path = NULL;
	int		 ret;

	memset(&r, 0, sizeof(r));
	r.cmd = cmd;
	if ((ret = remote_one_args(&r, argc, argv, &id)) != 0)
		return ret < 0 ? CMD_OK : ret;
	body = json_pack("{s:n}", cmd);
	if ((ret = remote_connect(&r)) != 0)
		goto cleanup;
	ret = CMD_FAILED;
	path = xasprintf("/v1/builds/%s/action", id);
	if (remote_call(&r, "POST", path, body, &ans, &ret) != 0)
		goto cleanup;
	if (r.json) {
		if (ans == NULL)
			ans = json_pack("{s:s, s:s, s:b}", "build_id", id, "action", cmd,
			    "accepted", 1);
		cmd_print_json(ans, JSON_COMPACT);
	} else
		printf("build %s: %s asked\n", id, cmd);
	ret = CMD_OK;
cleanup:
	json_decref(body);
	json_decref(ans);
	free(path);
	remote_free(&r);
	return ret;
}

int cmd_finish(int argc, char **argv) { return remote_action("finish", argc, argv); }
int cmd_cancel(int argc, char **argv) { return remote_action("cancel", argc, argv); }

/* console BUILD_ID: a browser URL of the install's console (single use, expiring). */
int
cmd_console(int argc, char **argv)
{
	struct remote	 r;
	json_t		*body, *ans = NULL, *rc;
	const char	*id;
	char		*path = NULL;
	int		 ret;

	memset(&r, 0, sizeof(r));
	r.cmd = "console";
	if ((ret = remote_one_args(&r, argc, argv, &id)) != 0)
		return ret < 0 ? CMD_OK : ret;
	body = json_pack("{s:{s:s, s:s}}", "remote_console", "protocol", "vnc", "type", "novnc");
	if ((ret = remote_connect(&r)) != 0)
		goto cleanup;
	ret = CMD_FAILED;
	path = xasprintf("/v1/builds/%s/remote-console", id);
	if (remote_call(&r, "POST", path, body, &ans, &ret) != 0)
		goto cleanup;
	rc = json_object_get(ans, "remote_console");
	if (!json_is_string(json_object_get(rc, "url"))) {
		ret = remote_fail(&r, CMD_FAILED, "the API answered without a console URL");
		goto cleanup;
	}
	if (r.json)
		cmd_print_json(rc, JSON_COMPACT);
	else
		printf("%s\n(opens once; expires %s)\n", jstr(rc, "url", ""),
		    jstr(rc, "expires_at", "soon"));
	ret = CMD_OK;
cleanup:
	json_decref(body);
	json_decref(ans);
	free(path);
	remote_free(&r);
	return ret;
}

/* Appends "&key=value" (escaped) to q when value is set. */
static void
remote_query(struct buf *q, const char *key, const char *value)
{
	char	*v;

	if (value == NULL)
		return;
	v = http_escape(value);
	buf_printf(q, "%s%s=%s", q->len > 0 ? "&" : "", key, v);
	free(v);
}

/* The marker of a page's "next" link, or NULL; caller frees. */
static char *
remote_next_marker(const json_t *links)
{
	const json_t	*l;
	const char	*href, *m;
	size_t		 i;

	json_array_foreach(links, i, l) {
		if (strcmp(jstr(l, "rel", ""), "next") != 0 ||
		    (href = json_string_value(json_object_get(l, "href"))) == NULL)
			continue;
		if ((m = strstr(href, "marker=")) == NULL)
			return NULL;
		m += strlen("marker=");
		return xstrndup(m, strcspn(m, "&#"));
	}
	return NULL;
}

/* list: the builds of the caller's project (every page). */
int
cmd_list(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "state", required_argument, NULL, 's' },
		{ "chain", required_argument, NULL, 'c' },
		{ "name", required_argument, NULL, 'n' },
		{ "all-projects", no_argument, NULL, 'a' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		OSENV_OPTIONS,
		{ NULL, 0, NULL, 0 }
	};
	struct remote	 r;
	struct buf	 q;
	json_t		*all, *ans = NULL, *b;
	const char	*state = NULL, *chain = NULL, *name = NULL;
	char		*path = NULL, *marker = NULL, *next;
	size_t		 i;
	int		 ch, ret = CMD_FAILED, allp = 0, pages;

	memset(&r, 0, sizeof(r));
	r.cmd = "list";
	buf_init(&q);
	all = json_array();
	optind = 1;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (osenv_flag(&r.flags, ch, optarg))
			continue;
		switch (ch) {
		case 's': state = optarg; break;
		case 'c': chain = optarg; break;
		case 'n': name = optarg; break;
		case 'a': allp = 1; break;
		case 'j': r.json = 1; break;
		default:
			fprintf(ch == 'h' ? stdout : stderr, "usage: isoforge list [--state S] "
			    "[--chain C] [--name N] [--all-projects] [--json] [--os-*]\n%s",
			    ch == 'h' ? OSENV_USAGE : "");
			ret = ch == 'h' ? CMD_OK : CMD_USAGE;
			goto cleanup;
		}
	}
	if (optind != argc) {
		ret = remote_fail(&r, CMD_USAGE, "no arguments expected");
		goto cleanup;
	}
	if ((ret = remote_connect(&r)) != 0)
		goto cleanup;
	ret = CMD_FAILED;
	remote_query(&q, "state", state);
	remote_query(&q, "chain", chain);
	remote_query(&q, "name", name);
	remote_query(&q, "all_projects", allp ? "1" : NULL);
	remote_query(&q, "limit", "1000");
	for (pages = 0; pages < REMOTE_MAX_PAGES; pages++) {
		free(path);
		path = xasprintf("/v1/builds?%s%s%s", q.data, marker != NULL ? "&marker=" : "",
		    marker != NULL ? marker : "");
		if (remote_call(&r, "GET", path, NULL, &ans, &ret) != 0)
			goto cleanup;
		json_array_foreach(json_object_get(ans, "builds"), i, b) {
			remote_build_compat(b);
			json_array_append(all, b);
		}
		next = remote_next_marker(json_object_get(ans, "builds_links"));
		json_decref(ans);
		ans = NULL;
		/* a next link that names the same marker again would never end */
		if (next == NULL || (marker != NULL && strcmp(next, marker) == 0)) {
			free(next);
			break;
		}
		free(marker);
		marker = next;
	}
	if (r.json) {
		cmd_print_json(all, JSON_COMPACT);
	} else {
		printf("%-36s  %-12s  %4s  %-20s  %s\n", "BUILD", "STATE", "%", "UPDATED", "NAME");
		json_array_foreach(all, i, b)
			printf("%-36s  %-12s  %4lld  %-20s  %s\n", jstr(b, "id", "?"),
			    jstr(b, "state", "?"),
			    (long long)json_integer_value(json_object_get(b, "progress")),
			    jstr(b, "updated_at", ""), jstr(b, "name", ""));
	}
	ret = CMD_OK;
cleanup:
	json_decref(all);
	json_decref(ans);
	buf_free(&q);
	free(path);
	free(marker);
	remote_free(&r);
	return ret;
}

/* Parses [--json] [--os-*] ARG for versions and tree; 0 or an exit code (-1: help shown). */
static int
remote_arg(struct remote *r, int argc, char **argv, const char *what, const char **argp)
{
	char	*usage;
	int	 ret;

	usage = xasprintf("[--json] [--os-*] %s", what);
	ret = remote_opts(r, argc, argv, usage);
	free(usage);
	if (ret != 0)
		return ret;
	if (optind + 1 != argc) {
		fprintf(stderr, "usage: isoforge %s [--json] %s\n", r->cmd, what);
		return CMD_USAGE;
	}
	*argp = argv[optind];
	return 0;
}

/* GET /v1/chains/NAME's chain object (new reference), NULL with err. */
static json_t *
remote_chain(struct remote *r, const char *name, struct err *err)
{
	json_t	*ans = NULL, *chain;
	char	*esc, *path;

	esc = http_escape(name);
	path = xasprintf("/v1/chains/%s", esc);
	free(esc);
	if (apiclient_call(r->api, "GET", path, NULL, &ans, err) != 0) {
		free(path);
		return NULL;
	}
	free(path);
	chain = json_incref(json_object_get(ans, "chain"));
	json_decref(ans);
	if (!json_is_object(chain)) {
		json_decref(chain);
		err_set(err, ERR_REMOTE, "chain %s: the API answered without a chain", name);
		return NULL;
	}
	return chain;
}

/* versions CHAIN: the chain's images, oldest version first (GET /v1/chains/CHAIN). */
int
cmd_versions(int argc, char **argv)
{
	struct remote	 r;
	struct err	 err;
	json_t		*chain = NULL, *vs, *v;
	const char	*name;
	char		 ver[24];
	size_t		 i;
	int		 ret;

	memset(&r, 0, sizeof(r));
	r.cmd = "versions";
	err_clear(&err);
	if ((ret = remote_arg(&r, argc, argv, "CHAIN", &name)) != 0)
		return ret < 0 ? CMD_OK : ret;
	if ((ret = remote_connect(&r)) != 0)
		goto cleanup;
	ret = CMD_FAILED;
	if ((chain = remote_chain(&r, name, &err)) == NULL) {
		ret = remote_fail(&r, remote_code(&err), err.msg);
		goto cleanup;
	}
	vs = json_object_get(chain, "versions");
	if (!json_is_array(vs)) {
		ret = remote_fail(&r, CMD_FAILED, "the API answered without versions");
		goto cleanup;
	}
	if (r.json) {
		cmd_print_json(vs, JSON_COMPACT);
	} else {
		printf("%-7s  %-36s  %-8s  %-27s  %-36s  %s\n", "VERSION", "IMAGE", "STATUS",
		    "CREATED", "PARENT", "BUILD");
		json_array_foreach(vs, i, v)
			printf("%-7s  %-36s  %-8s  %-27s  %-36s  %s\n",
			    remote_version(json_object_get(v, "version"), ver),
			    jstr(v, "image_id", "-"), jstr(v, "status", "-"),
			    jstr(v, "created_at", "-"), jstr(v, "parent", "-"),
			    jstr(v, "build_id", "-"));
	}
	ret = CMD_OK;
cleanup:
	json_decref(chain);
	remote_free(&r);
	return ret;
}

/* Every version of every chain the caller sees, by image id: {image_id: version+chain}. */
static json_t *
remote_all_versions(struct remote *r, struct err *err)
{
	json_t		*ans = NULL, *map, *c, *chain, *v, *e;
	const char	*cname, *img;
	size_t		 i, j;

	if (apiclient_call(r->api, "GET", "/v1/chains", NULL, &ans, err) != 0)
		return NULL;
	map = json_object();
	json_array_foreach(json_object_get(ans, "chains"), i, c) {
		if ((cname = json_string_value(json_object_get(c, "name"))) == NULL)
			continue;
		if ((chain = remote_chain(r, cname, err)) == NULL) {
			json_decref(map);
			json_decref(ans);
			return NULL;
		}
		json_array_foreach(json_object_get(chain, "versions"), j, v) {
			if ((img = json_string_value(json_object_get(v, "image_id"))) == NULL)
				continue;
			e = json_deep_copy(v);
			json_object_set_new(e, "chain", json_string(cname));
			json_object_set_new(map, img, e);
		}
		json_decref(chain);
	}
	json_decref(ans);
	return map;
}

static void
tree_line(int depth, const char *id, const json_t *v, int mark)
{
	char	 ver[24];

	printf("%*s%s  %s v%s  %s%s\n", 2 * depth, "", id, jstr(v, "chain", "?"),
	    remote_version(json_object_get(v, "version"), ver), jstr(v, "status", ""),
	    mark ? "   <==" : "");
}

/* Prints the images whose parent is id, indented, recursively (depth-bounded). */
static void
tree_children(const json_t *map, const char *id, int depth, json_t *out)
{
	const char	*k;
	json_t		*v;

	if (depth > 64)
		return;
	json_object_foreach((json_t *)map, k, v) {
		if (strcmp(jstr(v, "parent", ""), id) != 0)
			continue;
		if (out != NULL)
			json_array_append_new(out, json_pack("{s:s, s:i, s:O}", "image_id", k,
			    "depth", depth, "version", v));
		else
			tree_line(depth, k, v, 0);
		tree_children(map, k, depth + 1, out);
	}
}

/* tree IMAGE: the image's ancestors (parent links up to the root) and descendants. */
int
cmd_tree(int argc, char **argv)
{
	struct remote	 r;
	struct err	 err;
	json_t		*map = NULL, *line = NULL, *v, *out = NULL;
	const char	*arg, *p;
	char		*id = NULL;
	size_t		 i, n;
	int		 ret;

	memset(&r, 0, sizeof(r));
	r.cmd = "tree";
	err_clear(&err);
	if ((ret = remote_arg(&r, argc, argv, "IMAGE", &arg)) != 0)
		return ret < 0 ? CMD_OK : ret;
	if ((ret = remote_connect(&r)) != 0)
		goto cleanup;
	ret = CMD_FAILED;
	if ((id = remote_image_id(&r, arg, &err)) == NULL ||
	    (map = remote_all_versions(&r, &err)) == NULL) {
		ret = remote_fail(&r, remote_code(&err), err.msg);
		goto cleanup;
	}
	if (json_object_get(map, id) == NULL) {
		char	*m = xasprintf("image %s: in no chain visible to you", arg);

		ret = remote_fail(&r, CMD_FAILED, m);
		free(m);
		goto cleanup;
	}
	/* ancestors: follow parent while it is one of the chains' images */
	line = json_array();
	json_array_append_new(line, json_string(id));
	for (p = jstr(json_object_get(map, id), "parent", NULL);
	    p != NULL && json_array_size(line) < 64; p = jstr(json_object_get(map, p), "parent",
	    NULL)) {
		json_array_insert_new(line, 0, json_string(p));
		if (json_object_get(map, p) == NULL)
			break;
	}
	n = json_array_size(line);
	if (r.json)
		out = json_array();
	for (i = 0; i < n; i++) {
		const char	*img = json_string_value(json_array_get(line, i));

		v = json_object_get(map, img);
		if (out != NULL)
			json_array_append_new(out, json_pack("{s:s, s:i, s:O?, s:b}", "image_id",
			    img, "depth", (int)i, "version", v, "selected", i + 1 == n));
		else if (v == NULL)
			printf("%*s%s  (not an image of a chain you see)\n", 2 * (int)i, "", img);
		else
			tree_line((int)i, img, v, i + 1 == n);
	}
	tree_children(map, id, (int)n, out);
	if (out != NULL)
		cmd_print_json(out, JSON_COMPACT);
	ret = CMD_OK;
cleanup:
	json_decref(out);
	json_decref(line);
	json_decref(map);
	free(id);
	remote_free(&r);
	return ret;
}
