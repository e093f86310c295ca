/*
 * cmd_remote.c — the CLI's commands that talk to the workers over AMQP (build, status,
 * finish, cancel, console) or to Glance (versions, tree). Credentials come from OS_* as for
 * the openstack CLI; the broker from --transport-url or ISOFORGE_TRANSPORT_URL (a service's
 * credential: this path is for operators, users have the API). Contract v2 (docs/api.md):
 * `build` makes the Keystone trust to isoforge's service user (ISOFORGE_TRUSTEE_USER_ID) with
 * the user's own session and sends its id, never a token; control messages carry no token and
 * their replies come by RabbitMQ's direct reply-to.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "drivers/glance.h"
#include "drivers/http.h"
#include "drivers/keystone.h"
#include "service/common/amqp.h"
#include "service/pipeline/chain.h"
#include "service/cli/cmd.h"
#include "service/cli/osenv.h"
#include "service/pipeline/request.h"
#include "base/util.h"

/* How long status/finish/cancel/console wait for the owning worker. */
#define REMOTE_REPLY_TIMEOUT	5.0
/* A trust outlives the install timeout by this much (queued, snapshot and upload). */
#define REMOTE_TRUST_MARGIN	(4 * 3600)

/* What a remote command holds; every member is released by remote_free. */
struct remote {
	const char		*cmd;
	struct http_client	*http;
	struct keystone		*ks;
	struct glance		*glance;
	struct mq_url		*url;
	struct mq_conn		*pub;		/* confirm mode: requests, control */
	struct mq_conn		*sub;		/* events, replies */
	int			 json;
};

static void
remote_free(struct remote *r)
{
	mq_close(&r->sub);
	mq_close(&r->pub);
	mq_url_free(&r->url);
	glance_free(&r->glance);
	keystone_free(&r->ks);
	http_client_free(&r->http);
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

/* A Keystone session from OS_* (token obtained now, so bad credentials show at once). */
static int
remote_auth(struct remote *r, struct err *err)
{
	struct keystone_auth	 a;
	struct http_opts	 o;

	memset(&o, 0, sizeof(o));
	osenv_http_opts(&o);
	if ((r->http = http_client_new(&o)) == NULL) {
		err_set(err, ERR_INTERNAL, "no HTTP client");
		return -1;
	}
	if (osenv_auth("", &a, err) != 0 || (r->ks = keystone_new(r->http, &a, err)) == NULL ||
	    keystone_token(r->ks, err) == NULL)
		return -1;
	return 0;
}

static int
remote_glance(struct remote *r, struct err *err)
{
	if (r->ks == NULL && remote_auth(r, err) != 0)
		return -1;
	if ((r->glance = glance_new(r->ks, getenv("ISOFORGE_GLANCE_ENDPOINT"), err)) == NULL)
		return -1;
	return 0;
}

/* Connects to the broker: a publisher (confirms) and a consumer; declares the topology. */
static int
remote_mq(struct remote *r, const char *url, struct err *err)
{
	if (url == NULL)
		url = getenv("ISOFORGE_TRANSPORT_URL");
	if (url == NULL || *url == '\0') {
		err_set(err, ERR_INVAL, "no broker: set ISOFORGE_TRANSPORT_URL or --transport-url");
		return -1;
	}
	if (mq_url_parse(url, &r->url, err) != 0 ||
	    mq_connect(r->url, 0, 0, 1, 10, &r->pub, err) != 0 ||
	    mq_declare_topology(r->pub, err) != 0 ||
	    mq_connect(r->url, 0, 0, 0, 10, &r->sub, err) != 0)
		return -1;
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
	memset(&o, 0, sizeof(o));
	o.filters = json_pack("{s:s}", "name", what);
	imgs = glance_image_list(r->glance, &o, err);
	json_decref(o.filters);
	if (imgs == NULL)
		return NULL;
	if (json_array_size(imgs) == 1)
		id = xstrdup(json_string_value(json_object_get(json_array_get(imgs, 0), "id")));
	else if (json_array_size(imgs) == 0)
		err_set(err, ERR_NOTFOUND, "image %s: none of that name visible to you", what);
	else
		err_set(err, ERR_INVAL, "image %s: %zu images of that name, give its id", what,
		    json_array_size(imgs));
	json_decref(imgs);
	return id;
}

/* Prints one event as a line (or as JSON with --json). */
static void
remote_print_event(const struct remote *r, json_t *ev)
{
	const char	*state, *msg, *at;
	json_t		*console;

	if (r->json) {
		cmd_print_json(ev, JSON_COMPACT);
		return;
	}
	state = json_string_value(json_object_get(ev, "state"));
	msg = json_string_value(json_object_get(ev, "message"));
	at = json_string_value(json_object_get(ev, "time"));
	printf("%s  %-12s %3d%%  %s\n", at != NULL ? at : "-", state != NULL ? state : "?",
	    (int)json_integer_value(json_object_get(ev, "progress")), msg != NULL ? msg : "");
	console = json_object_get(ev, "console");
	if (json_is_object(console))
		printf("    console: vnc://%s:%lld\n",
		    json_string_value(json_object_get(console, "host")),
		    (long long)json_integer_value(json_object_get(console, "port")));
	fflush(stdout);
}

struct remote_wait {
	const struct remote	*r;
	json_t			*last;		/* last event */
	int			 terminal;
};

static void
remote_on_event(void *arg, struct mq_conn *c, amqp_envelope_t *env)
{
	struct remote_wait	*w = arg;
	json_t			*ev;
	const char		*state;

	(void)c;
	ev = json_loadb(env->message.body.bytes, env->message.body.len, 0, NULL);
	if (!json_is_object(ev)) {
		json_decref(ev);
		return;
	}
	remote_print_event(w->r, ev);
	state = json_string_value(json_object_get(ev, "state"));
	if (state != NULL && (strcmp(state, "active") == 0 || strcmp(state, "failed") == 0 ||
	    strcmp(state, "cancelled") == 0))
		w->terminal = 1;
	json_decref(w->last);
	w->last = ev;
}

static void
build_usage(FILE *out)
{
	fprintf(out, "usage: isoforge build --iso IMAGE --flavor FLAVOR --name NAME\n"
	    "         [--virtio-win IMAGE|auto] [--chain CHAIN] [--parent IMAGE]\n"
	    "         [--os-type windows|linux|other] [--os-distro D] [--os-version V]\n"
	    "         [--firmware bios|uefi] [--unattended] [--timeout SECONDS]\n"
	    "         [--inactivity-timeout SECONDS (0: off; default: the worker's, for\n"
	    "         unattended installs)]\n"
	    "         [--visibility private|shared|community|public] [--compress]\n"
	    "         [--property KEY=VALUE]... [--tag TAG]... [--build-id UUID]\n"
	    "         [--wait] [--json] [--transport-url URL]\n"
	    "Images by id or name; credentials from OS_* (as for the openstack CLI).\n");
}

int
cmd_build(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "iso", required_argument, NULL, 'i' },
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
		{ "build-id", required_argument, NULL, 'b' },
		{ "wait", no_argument, NULL, 'w' },
		{ "json", no_argument, NULL, 'j' },
		{ "transport-url", required_argument, NULL, 'U' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct remote		 r;
	struct remote_wait	 w;
	struct build_request	*check = NULL;
	struct err		 err;
	json_t			*req, *os, *install, *image, *props, *tags, *summary = NULL;
	const char		*iso = NULL, *flavor = NULL, *name = NULL, *virtio = NULL;
	const char		*parent = NULL, *transport = NULL, *build_id = NULL, *eq;
	const char		*trustee = getenv("ISOFORGE_TRUSTEE_USER_ID");
	char			*iso_id = NULL, *virtio_id = NULL, *parent_id = NULL, *body = NULL;
	char			*trust = NULL;
	int			 sent = 0;
	char			*key = NULL, *queue = NULL, id[37], *end;
	double			 waited = 0;
	long			 timeout = 0, inactivity;
	int			 ch, wait = 0, ret = CMD_FAILED, warned = 0;

	memset(&r, 0, sizeof(r));
	memset(&w, 0, sizeof(w));
	r.cmd = "build";
	err_clear(&err);
	os = json_object();
	install = json_object();
	image = json_object();
	props = json_object();
	tags = json_array();
	req = json_pack("{s:s}", "schema", REQUEST_SCHEMA);
	optind = 1;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'i': iso = optarg; break;
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
		case 'b': build_id = optarg; break;
		case 'w': wait = 1; break;
		case 'j': r.json = 1; break;
		case 'U': transport = optarg; break;
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
	if (optind != argc || iso == NULL || flavor == NULL || name == NULL) {
		build_usage(stderr);
		ret = CMD_USAGE;
		goto cleanup;
	}
	if (build_id == NULL) {
		util_uuid(id);
		build_id = id;
	}
	if (remote_glance(&r, &err) != 0 ||
	    (iso_id = remote_image_id(&r, iso, &err)) == NULL ||
	    (virtio != NULL && strcmp(virtio, "auto") != 0 &&
	    (virtio_id = remote_image_id(&r, virtio, &err)) == NULL) ||
	    (parent != NULL && (parent_id = remote_image_id(&r, parent, &err)) == NULL)) {
		ret = remote_fail(&r, err.kind == ERR_INVAL || err.kind == ERR_NOTFOUND ?
		    CMD_USAGE : CMD_FAILED, err.msg);
		goto cleanup;
	}
	if (trustee == NULL || *trustee == '\0') {
		ret = remote_fail(&r, CMD_USAGE, "no trustee: set ISOFORGE_TRUSTEE_USER_ID to the id "
		    "of isoforge's service user (or build through isoforge-api)");
		goto cleanup;
	}
	/* the trust placeholder: the request is checked before any trust is made */
	json_object_set_new(req, "build_id", json_string(build_id));
	json_object_set_new(req, "trust_id", json_string("pending"));
	json_object_set_new(req, "name", json_string(name));
	json_object_set_new(req, "iso_image", json_string(iso_id));
	json_object_set_new(req, "flavor", json_string(flavor));
	if (virtio != NULL)
		json_object_set_new(req, "virtio_win_image",
		    json_string(virtio_id != NULL ? virtio_id : "auto"));
	if (parent_id != NULL)
		json_object_set_new(req, "parent_image", json_string(parent_id));
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
	body = json_dumps(req, JSON_COMPACT);
	/* the workers would refuse it: say why here, before anything is sent */
	if ((check = request_parse(body, strlen(body), REQUEST_FULL, &err)) == NULL) {
		ret = remote_fail(&r, CMD_USAGE, err.msg);
		goto cleanup;
	}
	if (remote_mq(&r, transport, &err) != 0) {
		ret = remote_fail(&r, err.kind == ERR_INVAL ? CMD_USAGE : CMD_FAILED, err.msg);
		goto cleanup;
	}
	/* the user's trust to isoforge: the user's roles in the project, for the install's
	 * timeout and a margin */
	if ((trust = keystone_trust_create(r.ks, trustee, NULL, keystone_info(r.ks, &err)->roles,
	    time(NULL) + check->timeout_s + REMOTE_TRUST_MARGIN, &err)) == NULL) {
		ret = remote_fail(&r, CMD_FAILED, err.msg);
		goto cleanup;
	}
	json_object_set_new(req, "trust_id", json_string(trust));
	free(body);
	body = json_dumps(req, JSON_COMPACT);
	if (wait) {
		/* listen before asking, so no event is missed */
		free(key);
		key = xasprintf("build.%s.*", build_id);
		if ((queue = mq_declare_private_queue(r.sub, MQ_EVENTS, key, &err)) == NULL ||
		    mq_consume(r.sub, queue, "events", 1, &err) != 0) {
			ret = remote_fail(&r, CMD_FAILED, err.msg);
			goto cleanup;
		}
	}
	if (mq_publish(r.pub, MQ_EXCHANGE, MQ_RK_REQUEST, NULL, body, strlen(body), 1, 10,
	    &err) != 0) {
		ret = remote_fail(&r, CMD_FAILED, err.msg);
		goto cleanup;
	}
	sent = 1;
	if (!r.json)
		printf("build %s submitted\n", build_id);
	fflush(stdout);
	if (!wait) {
		summary = json_pack("{s:s, s:s, s:n}", "build_id", build_id, "state", "submitted",
		    "image_id");
		ret = CMD_OK;
		goto cleanup;
	}
	w.r = &r;
	while (!w.terminal) {
		if (mq_pump(r.sub, 1.0, remote_on_event, &w, &err) != 0) {
			ret = remote_fail(&r, CMD_FAILED, err.msg);
			goto cleanup;
		}
		waited += 1.0;
		if (w.last == NULL && waited >= 60 && !warned) {
			fprintf(stderr, "isoforge build: no worker has taken the build in a minute; "
			    "still waiting\n");
			warned = 1;
		}
	}
	summary = json_pack("{s:s, s:O, s:O?, s:O?}", "build_id", build_id,
	    "state", json_object_get(w.last, "state"),
	    "image_id", json_object_get(w.last, "image_id"),
	    "message", json_object_get(w.last, "message"));
	if (json_object_get(summary, "image_id") == NULL)
		json_object_set_new(summary, "image_id", json_null());
	ret = strcmp(json_string_value(json_object_get(w.last, "state")), "active") == 0 ?
	    CMD_OK : CMD_FAILED;
cleanup:
	/* a trust no request carries: the trustor deletes it */
	if (trust != NULL && !sent && keystone_trust_delete(r.ks, trust, &err) != 0)
		fprintf(stderr, "isoforge build: trust %s not deleted: %s\n", trust, err.msg);
	free(trust);
	if (summary != NULL && r.json) {
		free(body);
		body = json_dumps(summary, JSON_COMPACT);
		printf("%s\n", body);
	}
	json_decref(summary);
	json_decref(w.last);
	request_free(&check);
	free(queue);
	free(key);
	free(body);
	free(iso_id);
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

struct remote_replies {
	const char	*correlation_id;
	json_t		*replies;	/* array */
};

static void
remote_on_reply(void *arg, struct mq_conn *c, amqp_envelope_t *env)
{
	struct remote_replies		*rr = arg;
	const amqp_basic_properties_t	*p = &env->message.properties;
	json_t				*msg;

	(void)c;
	if (!(p->_flags & AMQP_BASIC_CORRELATION_ID_FLAG) ||
	    p->correlation_id.len != strlen(rr->correlation_id) ||
	    memcmp(p->correlation_id.bytes, rr->correlation_id, p->correlation_id.len) != 0)
		return;
	msg = json_loadb(env->message.body.bytes, env->message.body.len, 0, NULL);
	if (json_is_object(msg))
		json_array_append_new(rr->replies, msg);
	else
		json_decref(msg);
}

/*
 * Sends a control message (isoforge.control/2; every worker gets it) and collects the first
 * reply within timeout_s. Replies come by RabbitMQ's direct reply-to: consumed (no-ack) from
 * amq.rabbitmq.reply-to on the channel that publishes, before publishing; the consumer
 * connection has no confirm mode, so no reply can be read as a confirm's neighbour. Returns an
 * array (new reference), NULL on error.
 */
static json_t *
remote_control(struct remote *r, const char *action, const char *build_id, double timeout_s,
    struct err *err)
{
	struct remote_replies	 rr;
	amqp_basic_properties_t	 props;
	json_t			*msg;
	char			*body, corr[37];
	double			 end;
	int			 rc;

	if (mq_consume(r->sub, MQ_DIRECT_REPLY_TO, "replies", 1, err) != 0)
		return NULL;
	util_uuid(corr);
	memset(&props, 0, sizeof(props));
	props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_REPLY_TO_FLAG |
	    AMQP_BASIC_CORRELATION_ID_FLAG;
	props.content_type = amqp_cstring_bytes("application/json");
	props.reply_to = amqp_cstring_bytes(MQ_DIRECT_REPLY_TO);
	props.correlation_id = amqp_cstring_bytes(corr);
	msg = json_pack("{s:s, s:s, s:s}", "schema", MQ_CONTROL_SCHEMA, "action", action,
	    "build_id", build_id);
	body = json_dumps(msg, JSON_COMPACT);
	json_decref(msg);
	rc = mq_publish(r->sub, MQ_EXCHANGE, MQ_RK_CONTROL, &props, body, strlen(body), 0, 10,
	    err);
	free(body);
	if (rc != 0)
		return NULL;
	rr.correlation_id = corr;
	rr.replies = json_array();
	end = util_now() + timeout_s;
	while (util_now() < end && json_array_size(rr.replies) == 0) {
		if (mq_pump(r->sub, end - util_now() > 0.5 ? 0.5 : end - util_now(),
		    remote_on_reply, &rr, err) != 0) {
			json_decref(rr.replies);
			return NULL;
		}
	}
	return rr.replies;
}

/* status, finish, cancel, console: one build, asked of the worker that owns it. */
static int
remote_one(const char *cmd, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "transport-url", required_argument, NULL, 'U' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct remote	 r;
	struct err	 err;
	json_t		*replies = NULL, *rep, *build, *console, *h, *t;
	const char	*transport = NULL, *action, *e;
	char		*s;
	size_t		 i;
	int		 ch, ret = CMD_FAILED;

	memset(&r, 0, sizeof(r));
	r.cmd = cmd;
	err_clear(&err);
	optind = 1;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'j': r.json = 1; break;
		case 'U': transport = optarg; break;
		default:
			fprintf(ch == 'h' ? stdout : stderr, "usage: isoforge %s BUILD_ID [--json] "
			    "[--transport-url URL]\n", cmd);
			return ch == 'h' ? CMD_OK : CMD_USAGE;
		}
	}
	if (optind + 1 != argc || !util_is_uuid(argv[optind])) {
		fprintf(stderr, "usage: isoforge %s BUILD_ID (a UUID)\n", cmd);
		return CMD_USAGE;
	}
	action = strcmp(cmd, "console") == 0 ? "status" : cmd;
	if (remote_auth(&r, &err) != 0 || remote_mq(&r, transport, &err) != 0 ||
	    (replies = remote_control(&r, action, argv[optind], REMOTE_REPLY_TIMEOUT,
	    &err)) == NULL) {
		ret = remote_fail(&r, err.kind == ERR_INVAL ? CMD_USAGE : CMD_FAILED, err.msg);
		goto cleanup;
	}
	if ((rep = json_array_get(replies, 0)) == NULL) {
		s = xasprintf("build %s: no worker knows it", argv[optind]);
		ret = remote_fail(&r, CMD_FAILED, s);
		free(s);
		goto cleanup;
	}
	if (!json_is_true(json_object_get(rep, "ok"))) {
		e = json_string_value(json_object_get(rep, "error"));
		ret = remote_fail(&r, CMD_FAILED, e != NULL ? e : "refused");
		goto cleanup;
	}
	build = json_object_get(rep, "build");
	/*
	 * Control v2 carries no token, so the worker can't tell who asks; the CLI still shows a
	 * build only to its own project (the API is where this is enforced).
	 */
	if (build != NULL && (e = json_string_value(json_object_get(build, "project_id"))) != NULL &&
	    (keystone_info(r.ks, &err) == NULL || keystone_info(r.ks, &err)->project_id == NULL ||
	    strcmp(keystone_info(r.ks, &err)->project_id, e) != 0)) {
		s = xasprintf("build %s: no worker knows it", argv[optind]);
		ret = remote_fail(&r, CMD_FAILED, s);
		free(s);
		goto cleanup;
	}
	console = json_object_get(build, "console");
	if (r.json) {
		cmd_print_json(strcmp(cmd, "console") == 0 ? (console != NULL ? console :
		    json_null()) : (build != NULL ? build : rep), JSON_COMPACT);
	} else if (strcmp(cmd, "console") == 0) {
		if (!json_is_object(console)) {
			ret = remote_fail(&r, CMD_FAILED, "the build has no console now");
			goto cleanup;
		}
		/* its password never travels on the bus: the API's remote-console has it */
		printf("vnc://%s:%lld\n",
		    json_string_value(json_object_get(console, "host")),
		    (long long)json_integer_value(json_object_get(console, "port")));
	} else if (build != NULL) {
		printf("build     %s\nstate     %s\nmessage   %s\nimage     %s\nworker    %s\n"
		    "created   %s\nupdated   %s\n",
		    json_string_value(json_object_get(build, "build_id")),
		    json_string_value(json_object_get(build, "state")),
		    jstr(build, "message", ""),
		    jstr(build, "image_id", "-"),
		    jstr(rep, "worker", "-"),
		    jstr(build, "created_at", ""),
		    jstr(build, "updated_at", ""));
		h = json_object_get(build, "history");
		json_array_foreach(h, i, t)
			printf("  %s  %-12s %s\n", json_string_value(json_object_get(t, "at")),
			    json_string_value(json_object_get(t, "state")),
			    jstr(t, "message", ""));
	} else
		printf("build %s: %s asked (now %s)\n", argv[optind], cmd,
		    jstr(rep, "state", "?"));
	ret = CMD_OK;
cleanup:
	json_decref(replies);
	remote_free(&r);
	return ret;
}

int cmd_status(int argc, char **argv) { return remote_one("status", argc, argv); }
int cmd_finish(int argc, char **argv) { return remote_one("finish", argc, argv); }
int cmd_cancel(int argc, char **argv) { return remote_one("cancel", argc, argv); }
int cmd_console(int argc, char **argv) { return remote_one("console", argc, argv); }

/* list: contract v2 has no list action (no token says whose builds to list): the API has it. */
int
cmd_list(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "isoforge list: the workers no longer answer lists over AMQP (contract "
	    "v2): list builds through isoforge-api\n");
	return CMD_FAILED;
}

static const char *
prop(const json_t *img, const char *name)
{
	return jstr(img, name, "-");
}

/* versions CHAIN: the chain's images in Glance, oldest version first. */
int
cmd_versions(int argc, char **argv)
{
	struct remote	 r;
	struct err	 err;
	json_t		*imgs, *img;
	size_t		 i;
	int		 ret = CMD_FAILED, a = 1;

	memset(&r, 0, sizeof(r));
	r.cmd = "versions";
	err_clear(&err);
	if (argc > 1 && strcmp(argv[1], "--json") == 0) {
		r.json = 1;
		a = 2;
	}
	if (argc != a + 1 || argv[a][0] == '-') {
		fprintf(stderr, "usage: isoforge versions [--json] CHAIN\n");
		return CMD_USAGE;
	}
	if (remote_glance(&r, &err) != 0 || (imgs = chain_list(r.glance, NULL, argv[a], &err)) == NULL) {
		ret = remote_fail(&r, CMD_FAILED, err.msg);
		goto cleanup;
	}
	if (r.json) {
		cmd_print_json(imgs, JSON_COMPACT);
	} else {
		printf("%-7s  %-36s  %-8s  %-20s  %s\n", "VERSION", "IMAGE", "STATUS", "CREATED",
		    "NAME");
		json_array_foreach(imgs, i, img)
			printf("%-7s  %-36s  %-8s  %-20s  %s\n", prop(img, "isoforge_version"),
			    prop(img, "id"), prop(img, "status"), prop(img, "created_at"),
			    prop(img, "name"));
	}
	json_decref(imgs);
	ret = CMD_OK;
cleanup:
	remote_free(&r);
	return ret;
}

/* Prints the images whose isoforge_parent is id, indented, recursively (depth-bounded). */
static int
tree_children(struct remote *r, const char *id, int depth, struct err *err)
{
	struct glance_list_opts	 o;
	json_t			*kids, *k;
	size_t			 i;
	int			 ret = 0;

	if (depth > 64)
		return 0;
	memset(&o, 0, sizeof(o));
	o.filters = json_pack("{s:s}", "isoforge_parent", id);
	kids = glance_image_list(r->glance, &o, err);
	json_decref(o.filters);
	if (kids == NULL)
		return -1;
	json_array_foreach(kids, i, k) {
		printf("%*s%s  %s v%s  %s\n", 2 * depth, "", prop(k, "id"), prop(k, "isoforge_chain"),
		    prop(k, "isoforge_version"), prop(k, "name"));
		if ((ret = tree_children(r, prop(k, "id"), depth + 1, err)) != 0)
			break;
	}
	json_decref(kids);
	return ret;
}

/* tree IMAGE: the image's ancestors (isoforge_parent, up to the root) and descendants. */
int
cmd_tree(int argc, char **argv)
{
	struct remote	 r;
	struct err	 err;
	json_t		*chainv, *img = NULL, *p;
	const char	*parent;
	char		*id = NULL;
	size_t		 i, n;
	int		 ret = CMD_FAILED;

	memset(&r, 0, sizeof(r));
	r.cmd = "tree";
	err_clear(&err);
	if (argc != 2 || argv[1][0] == '-') {
		fprintf(stderr, "usage: isoforge tree IMAGE\n");
		return CMD_USAGE;
	}
	chainv = json_array();
	if (remote_glance(&r, &err) != 0 || (id = remote_image_id(&r, argv[1], &err)) == NULL ||
	    (img = glance_image_show(r.glance, id, &err)) == NULL) {
		ret = remote_fail(&r, CMD_FAILED, err.msg);
		goto cleanup;
	}
	/* ancestors: follow isoforge_parent while it is visible */
	json_array_append(chainv, img);
	for (p = img; (parent = json_string_value(json_object_get(p, "isoforge_parent"))) != NULL &&
	    json_array_size(chainv) < 64;) {
		if ((p = glance_image_show(r.glance, parent, NULL)) == NULL) {
			printf("%s  (not visible)\n", parent);
			break;
		}
		json_array_insert_new(chainv, 0, p);
	}
	n = json_array_size(chainv);
	for (i = 0; i < n; i++) {
		p = json_array_get(chainv, i);
		printf("%*s%s  %s v%s  %s%s\n", 2 * (int)i, "", prop(p, "id"),
		    prop(p, "isoforge_chain"), prop(p, "isoforge_version"), prop(p, "name"),
		    i + 1 == n ? "   <==" : "");
	}
	if (tree_children(&r, id, (int)n, &err) != 0) {
		ret = remote_fail(&r, CMD_FAILED, err.msg);
		goto cleanup;
	}
	ret = CMD_OK;
cleanup:
	json_decref(chainv);
	json_decref(img);
	free(id);
	remote_free(&r);
	return ret;
}
