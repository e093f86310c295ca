/* worker.c — requests in, job store, early ack, events out, control, reconnects, resume. */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "drivers/qemuimg.h"
#include "drivers/virt.h"
#include "isoboot/isoboot.h"
#include "service/common/amqp.h"
#include "service/console/token.h"
#include "service/pipeline/build.h"
#include "service/pipeline/cloud.h"
#include "service/pipeline/isocache.h"
#include "service/worker/jobstore.h"
#include "base/log.h"
#include "service/pipeline/request.h"
#include "base/util.h"
#include "service/worker/worker.h"

#define TAG_REQUESTS		"isoforge-requests"
#define TAG_CONTROL		"isoforge-control"
#define WORKER_TICK_MS		1000
#define WORKER_PROBE_TIMEOUT	5.0	/* the KVM probe guest must power off by then */
#define WORKER_BACKOFF_MAX	60.0
/* TCP connect and AMQP handshake: short, the loop (and SIGTERM) waits for it */
#define WORKER_CONNECT_TIMEOUT	3.0
#define WORKER_PUBLISH_TIMEOUT	10.0
/* Events held while RabbitMQ is away, at most (the oldest are dropped beyond, with a log). */
#define WORKER_EVENTS_HELD	10000

/* A build running in its own thread (the pipeline's steps block: HTTP, qemu-img, installs). */
struct worker_build {
	struct worker		*w;
	char			*build_id;
	enum job_resume		 how;		/* RESUME_RESTART for a new build */
	pthread_t		 thread;
	int			 done;		/* under w->mu */
	struct build		*bb;		/* under w->mu: the pipeline's build while it runs */
	struct worker_build	*next;
};

/* An event that could not be published yet: kept, in order, until RabbitMQ is back. */
struct worker_held {
	char			*key;
	char			*body;
	struct worker_held	*next;
};

struct worker {
	const struct config	*cfg;
	struct loop		*loop;
	struct jobstore		*js;
	struct mq_url		*url;

	/* consumer connection: only touched from the loop thread */
	struct mq_conn		*cons;
	int			 watch;
	int			 tick;
	size_t			 attempts;
	double			 next_connect;
	int			 consuming;	/* the requests consumer is active */
	char			*control_queue;
	int			 stopping;

	/* publisher connection (confirm mode): events, replies, dead letters; any thread */
	pthread_mutex_t		 pub_mu;
	struct mq_conn		*pub;
	size_t			 pub_attempts;
	struct worker_held	*held;		/* under pub_mu: events not yet published, oldest */
	struct worker_held	**held_tail;	/* first; published in order after a reconnect */
	size_t			 nheld;

	/* libvirt, on the loop */
	struct virt		*virt;
	const char		*domain_type;	/* kvm | qemu, as the probe found */
	const char		*test_pause;	/* $ISOFORGE_TEST_PAUSE (worker_test_pause) */
	double			 janitor_at;	/* when the janitor last looked */

	/* builds */
	pthread_mutex_t		 mu;
	int			 abandon;	/* under mu: stopping, leave installs running */
	struct worker_build	*builds;
	int			 running;
};

static void	worker_on_readable(int, int, int, void *);
static void	worker_build_start(struct worker *, const char *, enum job_resume);
static void	worker_janitor(struct worker *);
static void	worker_event(struct worker *, const char *, enum build_state, const char *);

/* Seconds to wait before connection attempt n (1, 2, 4 ... 60, with jitter against herds). */
static double
worker_backoff(size_t n)
{
	double		 d = 1.0;
	unsigned char	 r;

	while (n-- > 0 && d < WORKER_BACKOFF_MAX)
		d *= 2;
	if (d > WORKER_BACKOFF_MAX)
		d = WORKER_BACKOFF_MAX;
	util_random(&r, 1);
	return d * (0.5 + r / 510.0);
}

/* Makes sure the publisher connection is up; called with pub_mu held. */
static int
worker_pub_ready(struct worker *w, struct err *err)
{
	if (w->pub != NULL && !w->pub->broken)
		return 0;
	mq_close(&w->pub);
	if (mq_connect(w->url, w->pub_attempts++, (int)w->cfg->heartbeat, 1,
	    WORKER_CONNECT_TIMEOUT, &w->pub, err) != 0)
		return -1;
	/* a publisher may run before any consumer declared: routes must exist */
	if (mq_declare_topology(w->pub, err) != 0) {
		mq_close(&w->pub);
		return -1;
	}
	w->pub_attempts = 0;
	return 0;
}

/*
 * Publishes with confirms, connecting again once when the connection turns out to be gone
 * (an idle publisher may have been dropped by the broker). Any thread.
 */
static int
worker_publish_locked(struct worker *w, const char *exchange, const char *key,
    const amqp_basic_properties_t *props, const char *body, int mandatory, struct err *err)
{
	struct err	 e;
	int		 attempt, ret = -1;

	for (attempt = 0; attempt < 2; attempt++) {
		err_clear(&e);
		if (worker_pub_ready(w, &e) == 0 && mq_publish(w->pub, exchange, key, props, body,
		    strlen(body), mandatory, WORKER_PUBLISH_TIMEOUT, &e) == 0) {
			ret = 0;
			break;
		}
		if (w->pub != NULL && !w->pub->broken)
			break;	/* refused or unroutable: trying again would not help */
	}
	if (ret != 0)
		err_set(err, e.kind, "%s", e.msg);
	return ret;
}

/* worker_publish_locked under pub_mu. Any thread. */
static int
worker_publish(struct worker *w, const char *exchange, const char *key,
    const amqp_basic_properties_t *props, const char *body, int mandatory, struct err *err)
{
	int	 ret;

	pthread_mutex_lock(&w->pub_mu);
	ret = worker_publish_locked(w, exchange, key, props, body, mandatory, err);
	pthread_mutex_unlock(&w->pub_mu);
	return ret;
}

/* Appends an event to the held ones (takes key and body); called with pub_mu held. */
static void
worker_hold(struct worker *w, char *key, char *body)
{
	struct worker_held	*h;

	if (w->nheld >= WORKER_EVENTS_HELD) {
		h = w->held;
		log_warnx("more than %d events held: %s dropped", WORKER_EVENTS_HELD, h->key);
		w->held = h->next;
		if (w->held == NULL)
			w->held_tail = &w->held;
		w->nheld--;
		free(h->key);
		free(h->body);
		free(h);
	}
	h = xcalloc(1, sizeof(*h));
	h->key = key;
	h->body = body;
	*w->held_tail = h;
	w->held_tail = &h->next;
	w->nheld++;
}

/*
 * Publishes the held events, oldest first, until one fails (it stays, with the rest). Returns
 * how many are still held. Any thread.
 */
static size_t
worker_flush_held(struct worker *w)
{
	struct worker_held	*h;
	struct err		 err;
	size_t			 sent = 0, left;

	pthread_mutex_lock(&w->pub_mu);
	if (w->held == NULL) {
		pthread_mutex_unlock(&w->pub_mu);
		return 0;
	}
	while ((h = w->held) != NULL) {
		err_clear(&err);
		if (worker_publish_locked(w, MQ_EVENTS, h->key, NULL, h->body, 0, &err) != 0)
			break;
		w->held = h->next;
		if (w->held == NULL)
			w->held_tail = &w->held;
		w->nheld--;
		sent++;
		free(h->key);
		free(h->body);
		free(h);
	}
	left = w->nheld;
	pthread_mutex_unlock(&w->pub_mu);
	if (sent > 0)
		log_info("%zu held event%s published%s", sent, sent == 1 ? "" : "s",
		    left > 0 ? ", more still held" : "");
	return left;
}

/* Frees the held events (the worker ends), saying how many were never published. */
static void
worker_drop_held(struct worker *w)
{
	struct worker_held	*h;

	if (w->nheld > 0)
		log_warnx("%zu event%s never published (RabbitMQ away); the job store has the "
		    "states", w->nheld, w->nheld == 1 ? "" : "s");
	while ((h = w->held) != NULL) {
		w->held = h->next;
		free(h->key);
		free(h->body);
		free(h);
	}
	w->held_tail = &w->held;
	w->nheld = 0;
}

/* Dead-letters env with reason (see mq_dead_letter), reconnecting the publisher once. */
static int
worker_dead_letter(struct worker *w, const amqp_envelope_t *env, const char *reason,
    struct err *err)
{
	struct err	 e;
	int		 attempt, ret = -1;

	pthread_mutex_lock(&w->pub_mu);
	for (attempt = 0; attempt < 2; attempt++) {
		err_clear(&e);
		if (worker_pub_ready(w, &e) == 0 && mq_dead_letter(w->pub, env, reason, &e) == 0) {
			ret = 0;
			break;
		}
		if (w->pub != NULL && !w->pub->broken)
			break;
	}
	pthread_mutex_unlock(&w->pub_mu);
	if (ret != 0)
		err_set(err, e.kind, "%s", e.msg);
	return ret;
}

/* The console of an event: where it is ({"host", "port"}), nothing else of what the job store
 * has (a password never gets on the bus); NULL when there is none. New reference. */
static json_t *
worker_event_console(const char *stored)
{
	json_t	*c, *host, *port, *out = NULL;

	if (stored == NULL || (c = json_loads(stored, 0, NULL)) == NULL)
		return NULL;
	host = json_object_get(c, "host");
	port = json_object_get(c, "port");
	if (json_is_string(host) && json_is_integer(port))
		out = json_pack("{s:O, s:O}", "host", host, "port", port);
	json_decref(c);
	return out;
}

/*
 * Announces a state of a build on isoforge.events (routing key build.<id>.<state>), contract
 * isoforge.event/2 (docs/api.md); what the job store holds of it (project, image, version,
 * console) goes with it. The job store already holds the state. An event that can't be
 * published now (RabbitMQ away) is held, and so is every later one while any is held, to keep
 * their order: the tick publishes them once the broker is back.
 */
static void
worker_event(struct worker *w, const char *build_id, enum build_state state,
    const char *message)
{
	struct job	*j;
	json_t		*ev, *console = NULL;
	struct err	 err;
	char		*body, *key, stamp[32];

	util_utc_stamp(stamp);
	j = jobstore_get(w->js, build_id, NULL);
	if (j != NULL && state == BUILD_INSTALLING)
		console = worker_event_console(j->console);
	ev = json_pack("{s:s, s:s, s:s, s:i, s:s?, s:s?, s:o, s:s?, s:s, s:s, s:o}",
	    "schema", MQ_EVENT_SCHEMA, "build_id", build_id,
	    "state", build_state_name(state), "progress", build_state_progress(state),
	    "message", message, "image_id", j != NULL ? j->image_id : NULL,
	    "version", j != NULL && j->version != NULL ? json_integer(atoi(j->version)) :
	    json_null(), "project_id", j != NULL ? j->project_id : NULL,
	    "worker", w->cfg->host, "time", stamp,
	    "console", console != NULL ? console : json_null());
	job_free(&j);
	body = json_dumps(ev, JSON_COMPACT);
	key = xasprintf("build.%s.%s", build_id, build_state_name(state));
	err_clear(&err);
	pthread_mutex_lock(&w->pub_mu);
	if (w->held != NULL) {
		worker_hold(w, key, body);
		key = body = NULL;
	} else if (worker_publish_locked(w, MQ_EVENTS, key, NULL, body, 0, &err) != 0) {
		log_warnx("build %s: event %s held until RabbitMQ answers: %s", build_id,
		    build_state_name(state), err.msg);
		worker_hold(w, key, body);
		key = body = NULL;
	}
	pthread_mutex_unlock(&w->pub_mu);
	free(key);
	free(body);
	json_decref(ev);
}

/* Records a transition, then announces it (in that order, always). Any thread. */
static int
worker_transition(struct worker *w, const char *build_id, enum build_state state,
    const char *message, struct err *err)
{
	if (jobstore_set_state(w->js, build_id, state, message, err) != 0)
		return -1;
	log_info("build %s: %s%s%s", build_id, build_state_name(state),
	    message != NULL ? ": " : "", message != NULL ? message : "");
	worker_event(w, build_id, state, message);
	return 0;
}

/* Starts or stops the requests consumer so that at most max_builds builds run at once. */
static int
worker_update_consuming(struct worker *w, struct err *err)
{
	int	 want, running;

	if (w->cons == NULL)
		return 0;
	pthread_mutex_lock(&w->mu);
	running = w->running;
	pthread_mutex_unlock(&w->mu);
	/*
	 * Requests are acked as soon as the job store holds them (an install outlives
	 * RabbitMQ's consumer_timeout), so acks can't bound the builds: stop consuming instead.
	 */
	want = !w->stopping && running < w->cfg->max_builds;
	if (want && !w->consuming) {
		if (mq_consume(w->cons, MQ_QUEUE_BUILD, TAG_REQUESTS, 0, err) != 0)
			return -1;
		w->consuming = 1;
		log_debug("taking requests (%d of %ld builds running)", running,
		    w->cfg->max_builds);
	} else if (!want && w->consuming) {
		if (mq_cancel(w->cons, TAG_REQUESTS, err) != 0)
			return -1;
		w->consuming = 0;
		log_debug("not taking requests (%d of %ld builds running)", running,
		    w->cfg->max_builds);
	}
	return 0;
}

static void
worker_disconnect(struct worker *w)
{
	if (w->watch > 0)
		loop_watch_remove(w->loop, w->watch);
	w->watch = 0;
	mq_close(&w->cons);
	free(w->control_queue);
	w->control_queue = NULL;
	w->consuming = 0;
}

/*
 * The trust of a refused v2 request must not outlive it: recorded as a failed build (the
 * request's build_id when it has a new one, else a new id) whose only resource is the trust,
 * announced as failed with the reason, and cleaned up by a thread (then by the janitor while
 * Keystone can't be reached). A known build_id is left alone: its trust is that build's.
 */
static void
worker_refused_trust(struct worker *w, const amqp_envelope_t *env, const char *reason)
{
	struct err	 err;
	json_t		*root;
	const char	*bid;
	char		*trust, id[37];
	int		 rc;

	if ((trust = request_trust_id(env->message.body.bytes, env->message.body.len)) == NULL)
		return;
	root = json_loadb(env->message.body.bytes, env->message.body.len, 0, NULL);
	bid = json_string_value(json_object_get(root, "build_id"));
	if (bid != NULL && util_is_uuid(bid))
		snprintf(id, sizeof(id), "%s", bid);
	else
		util_uuid(id);
	json_decref(root);
	err_clear(&err);
	if ((rc = jobstore_add(w->js, id, "{}", trust, NULL, NULL, &err)) != 0) {
		if (rc < 0)
			log_warnx("refused request: its trust not recorded for deletion: %s",
			    err.msg);
		free(trust);
		return;
	}
	free(trust);
	if (jobstore_set_state(w->js, id, BUILD_FAILED, reason, &err) != 0) {
		log_warnx("build %s: %s", id, err.msg);
		return;
	}
	worker_event(w, id, BUILD_FAILED, reason);
	worker_build_start(w, id, RESUME_FAIL);
}

/* Refuses a request: dead-letters it with reason, then acks it; deletes its trust. */
static void
worker_refuse(struct worker *w, struct mq_conn *c, amqp_envelope_t *env, const char *reason)
{
	struct err	 err;

	log_warnx("request refused: %s", reason);
	err_clear(&err);
	if (worker_dead_letter(w, env, reason, &err) == 0)
		mq_ack(c, env->delivery_tag, &err);
	else {
		/* without a publisher the queue's own dead-lettering keeps the message, sans
		 * reason */
		log_warnx("request refused without its reason (%s): dead-lettering it as it is",
		    err.msg);
		mq_reject(c, env->delivery_tag, 0, &err);
	}
	worker_refused_trust(w, env, reason);
}

/* Takes a build request: validate, record (durably), ack, announce, start. */
static void
worker_on_request(struct worker *w, struct mq_conn *c, amqp_envelope_t *env)
{
	struct build_request	*req = NULL;
	struct job		*j = NULL;
	struct err		 err;
	json_t			*canon = NULL;
	char			*canon_s = NULL, *reason, id[37];
	const char		*build_id;
	int			 rc;

	err_clear(&err);
	if (!w->consuming) {
		/* in flight when we stopped consuming: let another worker (or us later) take it */
		mq_reject(c, env->delivery_tag, 1, &err);
		return;
	}
	if (c->dropped > 0 || env->message.body.len > WORKER_MAX_BODY) {
		/* dropped: its body was never read (mq_conn.max_body): the dead letter has none */
		reason = xasprintf("body: %zu bytes, more than the %d KiB a request may have%s",
		    c->dropped > 0 ? c->dropped : env->message.body.len, WORKER_MAX_BODY / 1024,
		    c->dropped > 0 ? " (dropped unread)" : "");
		worker_refuse(w, c, env, reason);
		free(reason);
		return;
	}
	req = request_parse(env->message.body.bytes, env->message.body.len, REQUEST_FULL, &err);
	if (req == NULL) {
		worker_refuse(w, c, env, err.msg);
		return;
	}
	if (req->build_id != NULL)
		build_id = req->build_id;
	else {
		util_uuid(id);
		build_id = id;
	}
	/* the trust id is stored apart from the request, which status replies show */
	canon = request_to_json(req);
	json_object_del(canon, "trust_id");
	json_object_set_new(canon, "build_id", json_string(build_id));
	canon_s = json_dumps(canon, JSON_COMPACT | JSON_SORT_KEYS);
	rc = jobstore_add(w->js, build_id, canon_s, req->trust_id, NULL, NULL, &err);
	if (rc < 0) {
		/* our disk, not the request: give it back for another worker */
		log_warnx("build %s: not recorded: %s", build_id, err.msg);
		mq_reject(c, env->delivery_tag, 1, &err);
		goto cleanup;
	}
	/* recorded: the job store carries the build from here, not the message */
	mq_ack(c, env->delivery_tag, &err);
	if (rc == 1) {
		log_info("build %s: repeated request, already known: ignored", build_id);
		/* a repeat with a trust of its own: that trust goes when the build's does */
		if ((j = jobstore_get(w->js, build_id, NULL)) != NULL &&
		    (j->trust_id == NULL || strcmp(j->trust_id, req->trust_id) != 0)) {
			jobstore_add_resource(w->js, build_id, "trust", req->trust_id, NULL);
			if (build_state_terminal(j->state))
				worker_janitor(w);
		}
		job_free(&j);
		goto cleanup;
	}
	log_info("build %s: accepted (%s)", build_id, req->name);
	worker_event(w, build_id, BUILD_QUEUED, "accepted");
	worker_build_start(w, build_id, RESUME_RESTART);
	if (worker_update_consuming(w, &err) != 0)
		log_warnx("%s", err.msg);
cleanup:
	free(canon_s);
	json_decref(canon);
	request_free(&req);
}

/* 1 when a reply_to is RabbitMQ's direct reply-to (the pseudo-queue, or a name the broker
 * made of it): a reply then reaches only the channel that asked. */
static int
worker_direct_reply_to(const amqp_bytes_t *to)
{
	size_t	 n = strlen(MQ_DIRECT_REPLY_TO);

	if (to->len < n || memcmp(to->bytes, MQ_DIRECT_REPLY_TO, n) != 0)
		return 0;
	return to->len == n || ((const char *)to->bytes)[n] == '.';
}

/* Replies to a control message that asked for it with RabbitMQ's direct reply-to (and
 * correlation_id); any other reply_to gets nothing (docs/api.md). */
static void
worker_reply(struct worker *w, const amqp_envelope_t *env, json_t *reply)
{
	const amqp_basic_properties_t	*in = &env->message.properties;
	amqp_basic_properties_t		 props;
	struct err			 err;
	char				*body, *to;

	if (!(in->_flags & AMQP_BASIC_REPLY_TO_FLAG))
		return;
	if (!worker_direct_reply_to(&in->reply_to)) {
		log_warnx("control reply not sent: reply_to is not RabbitMQ's direct reply-to");
		return;
	}
	memset(&props, 0, sizeof(props));
	props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG;
	props.content_type = amqp_cstring_bytes("application/json");
	if (in->_flags & AMQP_BASIC_CORRELATION_ID_FLAG) {
		props._flags |= AMQP_BASIC_CORRELATION_ID_FLAG;
		props.correlation_id = in->correlation_id;
	}
	json_object_set_new(reply, "worker", json_string(w->cfg->host));
	body = json_dumps(reply, JSON_COMPACT);
	to = xstrndup(in->reply_to.bytes, in->reply_to.len);
	err_clear(&err);
	if (worker_publish(w, "", to, &props, body, 0, &err) != 0)
		log_warnx("control reply not sent: %s", err.msg);
	free(to);
	free(body);
}

/* Finds a running build; called with w->mu held. */
static struct worker_build *
worker_find(struct worker *w, const char *build_id)
{
	struct worker_build	*b;

	for (b = w->builds; b != NULL; b = b->next)
		if (!b->done && strcmp(b->build_id, build_id) == 0)
			return b;
	return NULL;
}

json_t *
worker_control_parse(const void *body, size_t len, const char **action, const char **build_id,
    struct err *err)
{
	json_t		*msg;
	json_error_t	 je;
	const char	*schema = NULL;

	*action = *build_id = NULL;
	if (len > WORKER_MAX_BODY) {
		err_set(err, ERR_INVAL, "body: %zu bytes, more than the %d KiB a control message "
		    "may have", len, WORKER_MAX_BODY / 1024);
		return NULL;
	}
	if ((msg = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je)) == NULL) {
		err_set(err, ERR_INVAL, "not JSON: %s", je.text);
		return NULL;
	}
	if (json_unpack(msg, "{s:s, s:s, s:s}", "schema", &schema, "action", action,
	    "build_id", build_id) != 0 || strcmp(schema, MQ_CONTROL_SCHEMA) != 0 ||
	    json_object_get(msg, "token") != NULL) {
		err_set(err, ERR_INVAL, "not %s (schema, action, build_id; no token)",
		    MQ_CONTROL_SCHEMA);
		json_decref(msg);
		*action = *build_id = NULL;
		return NULL;
	}
	return msg;
}

/*
 * A control message, contract isoforge.control/2 (every worker sees each one; the owner of the
 * build acts): {"schema": "isoforge.control/2", "action": "finish|cancel|status", "build_id"}.
 * No token: only the services hold broker credentials and the API has authorized the action.
 * Replies (status: the build and its history, without secrets) only to a direct reply-to.
 */
static void
worker_on_control(struct worker *w, struct mq_conn *c, amqp_envelope_t *env)
{
	struct worker_build	*b;
	struct job		*j = NULL;
	json_t			*msg, *reply = NULL;
	const char		*action = NULL, *build_id = NULL;
	struct err		 err;

	err_clear(&err);
	if (c->dropped > 0) {
		log_warnx("control message ignored: body: %zu bytes, more than the %d KiB a control "
		    "message may have (dropped unread)", c->dropped, WORKER_MAX_BODY / 1024);
		return;
	}
	if ((msg = worker_control_parse(env->message.body.bytes, env->message.body.len, &action,
	    &build_id, &err)) == NULL) {
		log_warnx("control message ignored: %s", err.msg);
		goto cleanup;
	}
	if (!util_is_uuid(build_id) || (j = jobstore_get(w->js, build_id, NULL)) == NULL)
		goto cleanup;	/* another worker's build (or none): its owner answers */
	if (strcmp(action, "status") == 0) {
		reply = json_pack("{s:b, s:o}", "ok", 1, "build", job_to_json(j));
		json_object_set_new(json_object_get(reply, "build"), "history",
		    jobstore_history(w->js, build_id, NULL));
	} else if (strcmp(action, "finish") == 0 || strcmp(action, "cancel") == 0) {
		/* under mu: the build thread can't free the build meanwhile */
		pthread_mutex_lock(&w->mu);
		if ((b = worker_find(w, build_id)) != NULL && b->bb != NULL) {
			if (action[0] == 'f')
				build_request_finish(b->bb);
			else
				build_request_stop(b->bb, BUILD_STOP_CANCEL);
		}
		pthread_mutex_unlock(&w->mu);
		log_info("build %s: %s asked", build_id, action);
		reply = b != NULL ? json_pack("{s:b, s:s, s:s}", "ok", 1, "build_id", build_id,
		    "state", build_state_name(j->state)) :
		    json_pack("{s:b, s:s, s:s}", "ok", 0, "build_id", build_id, "error",
		    "the build is not running");
	} else
		reply = json_pack("{s:b, s:s, s:s}", "ok", 0, "build_id", build_id, "error",
		    "action: not finish, cancel or status");
cleanup:
	if (reply != NULL) {
		worker_reply(w, env, reply);
		json_decref(reply);
	}
	job_free(&j);
	json_decref(msg);
}

/* mq_pump callback: a delivery from one of our two consumers. */
static void
worker_on_delivery(void *arg, struct mq_conn *c, amqp_envelope_t *env)
{
	struct worker	*w = arg;

	if (env->consumer_tag.len == strlen(TAG_CONTROL) &&
	    memcmp(env->consumer_tag.bytes, TAG_CONTROL, env->consumer_tag.len) == 0)
		worker_on_control(w, c, env);
	else
		worker_on_request(w, c, env);
}

/* Handles what the consumer connection has; on failure drops it (the tick reconnects). */
static void
worker_pump(struct worker *w)
{
	struct err	 err;

	if (w->cons == NULL)
		return;
	err_clear(&err);
	if (mq_pump(w->cons, 0, worker_on_delivery, w, &err) != 0) {
		log_warnx("%s; connecting again", err.msg);
		worker_disconnect(w);
		w->next_connect = util_now() + worker_backoff(w->attempts++);
	}
}

static void
worker_on_readable(int id, int fd, int events, void *arg)
{
	(void)id;
	(void)fd;
	(void)events;
	worker_pump(arg);
}

/* Connects the consumer: topology, prefetch, control queue, requests; or schedules a retry. */
static void
worker_connect(struct worker *w)
{
	struct err	 err;
	double		 delay;

	err_clear(&err);
	/* requests and control messages alike: a bigger body is dropped unread */
	if (mq_connect(w->url, w->attempts, (int)w->cfg->heartbeat, 0, WORKER_CONNECT_TIMEOUT,
	    &w->cons, &err) == 0)
		w->cons->max_body = WORKER_MAX_BODY;
	if (w->cons == NULL ||
	    mq_declare_topology(w->cons, &err) != 0 ||
	    mq_qos(w->cons, (int)w->cfg->max_builds, &err) != 0 ||
	    (w->control_queue = mq_declare_private_queue(w->cons, MQ_EXCHANGE, MQ_RK_CONTROL,
	    &err)) == NULL ||
	    mq_consume(w->cons, w->control_queue, TAG_CONTROL, 1, &err) != 0 ||
	    worker_update_consuming(w, &err) != 0) {
		worker_disconnect(w);
		delay = worker_backoff(w->attempts++);
		w->next_connect = util_now() + delay;
		log_warnx("%s; trying again in %.1f s", err.msg, delay);
		return;
	}
	w->watch = loop_watch_add(w->loop, mq_fd(w->cons), LOOP_READ, worker_on_readable, w,
	    NULL);
	log_info("connected to RabbitMQ at %s, taking up to %ld builds", w->cons->where,
	    w->cfg->max_builds);
	w->attempts = 0;
	/* frames that arrived during the RPCs wait in librabbitmq's buffer, not on the socket */
	worker_pump(w);
}

/* Joins the threads of finished builds. */
static void
worker_reap(struct worker *w)
{
	struct worker_build	**bp, *b;

	pthread_mutex_lock(&w->mu);
	for (bp = &w->builds; (b = *bp) != NULL;) {
		if (!b->done) {
			bp = &b->next;
			continue;
		}
		*bp = b->next;
		pthread_mutex_unlock(&w->mu);
		pthread_join(b->thread, NULL);
		free(b->build_id);
		free(b);
		pthread_mutex_lock(&w->mu);
	}
	pthread_mutex_unlock(&w->mu);
}

/* Once a second: reconnect when due, heartbeats on both connections, reap builds. */
static void
worker_tick(int id, void *arg)
{
	struct worker	*w = arg;
	struct err	 err;

	(void)id;
	worker_reap(w);
	if (w->stopping)
		return;
	if (util_now() - w->janitor_at >= (double)w->cfg->cleanup_retry)
		worker_janitor(w);
	if (w->cons == NULL && util_now() >= w->next_connect)
		worker_connect(w);
	else if (w->cons != NULL) {
		/* the consumer reached the broker: events held while it was away go out now */
		worker_flush_held(w);
		worker_pump(w);
		err_clear(&err);
		if (w->cons != NULL && worker_update_consuming(w, &err) != 0) {
			log_warnx("%s; connecting again", err.msg);
			worker_disconnect(w);
			w->next_connect = util_now() + worker_backoff(w->attempts++);
		}
	}
	/* an idle publisher must still answer heartbeats (librabbitmq sends them when read) */
	pthread_mutex_lock(&w->pub_mu);
	err_clear(&err);
	if (w->pub != NULL && mq_pump(w->pub, 0, NULL, NULL, &err) != 0)
		mq_close(&w->pub);
	pthread_mutex_unlock(&w->pub_mu);
}

/* Marks the end of a build thread and wakes the loop (which reaps and consumes again). */
static void
worker_build_done(struct worker_build *b)
{
	struct worker	*w = b->w;

	pthread_mutex_lock(&w->mu);
	b->done = 1;
	w->running--;
	pthread_mutex_unlock(&w->mu);
	loop_wakeup(w->loop);
}

struct worker_rm {
	struct worker	*w;
	const char	*name;
	int		 rc;
};

/* Loop thread: destroys and undefines a domain by name. */
static void
worker_remove_domain_call(void *arg)
{
	struct worker_rm	*r = arg;
	struct err		 e;

	err_clear(&e);
	if ((r->rc = virt_remove_by_name(r->w->virt, r->name, &e)) != 0)
		log_warnx("domain %s not removed: %s", r->name, e.msg);
}

/* Destroys and undefines a build's domain (from any thread); 0 once it is gone. */
static int
worker_remove_domain(struct worker *w, const char *name)
{
	struct worker_rm	 r = { w, name, -1 };

	loop_call(w->loop, worker_remove_domain_call, &r);
	return r.rc;
}

/* Deletes a build's trust with c's sessions, or (c NULL) sessions of its own. */
static int
worker_delete_trust(struct worker *w, struct cloud *c, const char *trust_id, struct err *err)
{
	struct cloud	 own;
	int		 rc;

	if (c != NULL)
		return cloud_delete_trust(c, trust_id, err);
	cloud_init(&own, w->cfg, trust_id);
	rc = cloud_delete_trust(&own, trust_id, err);
	cloud_close(&own);
	return rc;
}

/*
 * Removes what the job store says a build created (an active build keeps its image); c
 * (may be NULL) is a session to delete Glance images with. The trust goes last, in a terminal
 * state only, once no Glance image is left that needs it to be deleted as the user. What
 * can't be removed stays recorded (the janitor tries again) and is logged; returns how many
 * are left.
 */
static int
worker_cleanup(struct worker *w, const char *build_id, enum build_state state,
    struct cloud *c)
{
	struct job	*j;
	struct err	 err;
	json_t		*r;
	size_t		 i;
	const char	*kind, *value;
	int		 left = 0, images_left = 0;

	if ((j = jobstore_get(w->js, build_id, NULL)) == NULL)
		return 0;
	json_array_foreach(j->resources, i, r) {
		kind = json_string_value(json_object_get(r, "kind"));
		value = json_string_value(json_object_get(r, "value"));
		err_clear(&err);
		if (strcmp(kind, "trust") == 0) {
			continue;	/* below */
		} else if (strcmp(kind, "glance_image") == 0) {
			if (state == BUILD_ACTIVE)
				continue;
			if (c == NULL || c->glance == NULL ||
			    registry_glance_ops.remove(c, value, &err) != 0) {
				log_warnx("build %s: image %s left in Glance: %s", build_id, value,
				    c == NULL || c->glance == NULL ? "no session to delete it" :
				    err.msg);
				left++;
				images_left++;
				continue;
			}
			log_info("build %s: image %s deleted", build_id, value);
		} else if (strcmp(kind, "domain") == 0) {
			if (w->virt == NULL || worker_remove_domain(w, value) != 0) {
				left++;
				continue;
			}
		} else if (strcmp(kind, "file") == 0 || strcmp(kind, "dir") == 0) {
			if (util_rmtree(value, &err) != 0) {
				log_warnx("build %s: cleanup: %s", build_id, err.msg);
				left++;
				continue;
			}
		} else {
			log_warnx("build %s: cleanup of %s %s is not supported by this worker yet",
			    build_id, kind, value);
			left++;
			continue;
		}
		jobstore_remove_resource(w->js, build_id, kind, value, NULL);
	}
	json_array_foreach(j->resources, i, r) {
		kind = json_string_value(json_object_get(r, "kind"));
		value = json_string_value(json_object_get(r, "value"));
		if (strcmp(kind, "trust") != 0)
			continue;
		if (!build_state_terminal(state))
			continue;	/* the build runs again: it still acts for the user */
		err_clear(&err);
		if (images_left > 0 || worker_delete_trust(w, c, value, &err) != 0) {
			log_warnx("build %s: Keystone trust not deleted yet: %s", build_id,
			    images_left > 0 ? "a Glance image must go first" : err.msg);
			left++;
			continue;
		}
		log_info("build %s: Keystone trust deleted", build_id);
		jobstore_remove_resource(w->js, build_id, kind, value, NULL);
	}
	if (left > 0)
		log_warnx("build %s: %d thing%s left to clean up (isoforge list shows them); "
		    "tried again every %ld s", build_id, left, left == 1 ? "" : "s",
		    w->cfg->cleanup_retry);
	job_free(&j);
	return left;
}

/* Ends a build: records and announces the terminal state, cleans up (the trust last). */
static void
worker_build_end(struct worker *w, const char *build_id, enum build_state state,
    const char *message, struct cloud *c)
{
	struct err	 err;

	err_clear(&err);
	if (worker_transition(w, build_id, state, message, &err) != 0)
		log_warnx("build %s: %s", build_id, err.msg);
	worker_cleanup(w, build_id, state, c);
}

/*
 * The build's stored request for the pipeline (checked in full when it was taken; what it
 * lacks fails the build at resolving); caller frees.
 */
static struct build_request *
worker_load_request(const struct job *j, struct err *err)
{
	return request_parse(j->request, strlen(j->request), REQUEST_PARTIAL, err);
}

/* ---- the pipeline's notifier: the job store first, then the event ---- */

/*
 * The tests' switch (environment ISOFORGE_TEST_PAUSE="NAME=STATE,..."): a build named NAME
 * stops at STATE — after it is recorded, or for "uploading" once its Glance image exists —
 * until the worker is killed or stops, so a test can kill the worker in that state.
 */
static void
worker_test_pause(struct worker *w, struct build *bb, const char *state)
{
	const char	*list = w->test_pause;
	char		*want;

	if (list == NULL || bb->name == NULL)
		return;
	want = xasprintf("%s=%s", bb->name, state);
	for (; list != NULL; list = strchr(list, ',') != NULL ? strchr(list, ',') + 1 : NULL)
		if (strncmp(list, want, strlen(want)) == 0 &&
		    (list[strlen(want)] == ',' || list[strlen(want)] == '\0')) {
			log_info("build %s: paused at %s (ISOFORGE_TEST_PAUSE)", bb->id, state);
			while (!util_wait_fd(bb->stop_fd, 3600))
				;
			break;
		}
	free(want);
}

static int
worker_on_state(void *ctx, struct build *bb, enum build_state s, const char *message,
    struct err *err)
{
	struct worker_build	*b = ctx;
	int			 rc;

	/* the ends are the worker's: recorded once the clean-up is done */
	if (build_state_terminal(s))
		return 0;
	rc = worker_transition(b->w, b->build_id, s, message, err);
	if (s != BUILD_UPLOADING)
		worker_test_pause(b->w, bb, build_state_name(s));
	return rc;
}

static void
worker_on_field(void *ctx, struct build *bb, const char *name, const char *value)
{
	struct worker_build	*b = ctx;
	struct err		 err;

	(void)bb;
	err_clear(&err);
	if (jobstore_set_field(b->w->js, b->build_id, name, value, &err) != 0)
		log_warnx("build %s: %s not recorded: %s", b->build_id, name, err.msg);
}

static void
worker_on_resource(void *ctx, struct build *bb, const char *kind, const char *value, int added)
{
	struct worker_build	*b = ctx;
	struct err		 err;
	int			 rc;

	err_clear(&err);
	rc = added ? jobstore_add_resource(b->w->js, b->build_id, kind, value, &err) :
	    jobstore_remove_resource(b->w->js, b->build_id, kind, value, &err);
	if (rc != 0)
		log_warnx("build %s: %s %s not recorded: %s", b->build_id, kind, value, err.msg);
	if (added && strcmp(kind, "glance_image") == 0)
		worker_test_pause(b->w, bb, "uploading");
}

static const struct notifier_ops worker_notifier_ops = {
	.state = worker_on_state,
	.field = worker_on_field,
	.resource = worker_on_resource,
	.progress = NULL,
};

/*
 * A resumed install keeps its clock: the time since the (first) installing transition counts
 * against the install timeout.
 */
static void
worker_resume_clock(struct worker *w, struct build *bb)
{
	json_t		*h, *t;
	const char	*at = NULL, *st;
	struct tm	 tm;
	double		 elapsed = 0;
	size_t		 i;

	bb->install_started_at = util_now();
	if ((h = jobstore_history(w->js, bb->id, NULL)) == NULL)
		return;
	json_array_foreach(h, i, t) {
		st = json_string_value(json_object_get(t, "state"));
		if (st == NULL)
			continue;
		if (strcmp(st, "installing") != 0)
			at = NULL;
		else if (at == NULL)
			at = json_string_value(json_object_get(t, "at"));
	}
	memset(&tm, 0, sizeof(tm));
	if (at != NULL && strptime(at, "%Y-%m-%dT%H:%M:%SZ", &tm) != NULL)
		elapsed = difftime(time(NULL), timegm(&tm));
	json_decref(h);
	if (elapsed > 0)
		bb->install_started_at -= elapsed;
}

/* The pipeline's build of a stored request, with this worker's host settings and drivers. */
static struct build *
worker_build_new(struct worker_build *b, const struct build_request *req, struct cloud *c)
{
	const struct config	*cfg = b->w->cfg;
	struct build		*bb;
	char			*key;

	bb = build_new(b->build_id);
	build_apply_request(bb, req);
	if (bb->timeout_s <= 0 || bb->timeout_s > cfg->install_timeout)
		bb->timeout_s = (double)cfg->install_timeout;
	bb->finish_grace_s = (double)cfg->finish_grace;
	bb->progress_interval_s = (double)cfg->progress_interval;
	/* a console nobody watches: the watchdog is on for unattended installs, unless asked */
	if (bb->inactivity_timeout_s < 0)
		bb->inactivity_timeout_s = bb->unattended ? (double)cfg->inactivity_timeout : 0;
	bb->domain_type = xstrdup(b->w->domain_type);
	bb->owner = xstrdup(cfg->host);
	bb->vnc_listen = xstrdup(cfg->vnc_listen);
	/* the console proxy computes the same password from the same key: it is never sent */
	key = console_key(cfg);
	bb->vnc_password_fixed = console_vnc_password(key, b->build_id);
	console_key_free(&key);
	bb->guest_network = cfg->guest_network != NULL ? xstrdup(cfg->guest_network) : NULL;
	bb->guest_deny = cfg->guest_deny != NULL ? xstrdup(cfg->guest_deny) : NULL;
	bb->work_root = xstrdup(cfg->work_dir);
	bb->log_dir = xasprintf("%s/logs", cfg->work_dir);
	bb->loop = b->w->loop;
	bb->virt = b->w->virt;
	bb->source = &source_glance_ops;
	bb->source_ctx = c;
	bb->registry = &registry_glance_ops;
	bb->registry_ctx = c;
	bb->notifier = &worker_notifier_ops;
	bb->notifier_ctx = b;
	if (b->how == RESUME_WATCH) {
		bb->resume = BUILD_INSTALLING;
		worker_resume_clock(b->w, bb);
	} else if (b->how == RESUME_SNAPSHOT)
		bb->resume = BUILD_SNAPSHOTTING;
	return bb;
}

/* The end of the pipeline: its terminal state recorded and announced, what is left cleaned. */
static void
worker_pipeline_end(struct worker *w, struct build *bb, struct cloud *c)
{
	char	*msg;

	pthread_mutex_lock(&bb->mu);
	msg = bb->message != NULL ? xstrdup(bb->message) : NULL;
	pthread_mutex_unlock(&bb->mu);
	if (bb->state == BUILD_ACTIVE && bb->image_id != NULL) {
		char	 v[16];

		jobstore_set_field(w->js, bb->id, "image_id", bb->image_id, NULL);
		if (bb->version > 0) {
			snprintf(v, sizeof(v), "%d", bb->version);
			jobstore_set_field(w->js, bb->id, "version", v, NULL);
		}
		/* the product, not something to clean up */
		jobstore_remove_resource(w->js, bb->id, "glance_image", bb->image_id, NULL);
	}
	worker_build_end(w, bb->id, bb->state, msg, c);
	free(msg);
}

/* 1 when j has a resource of kind. */
static int
worker_has_resource(const struct job *j, const char *kind)
{
	json_t	*r;
	size_t	 i;

	json_array_foreach(j->resources, i, r)
		if (strcmp(json_string_value(json_object_get(r, "kind")), kind) == 0)
			return 1;
	return 0;
}

/*
 * One build's thread: the pipeline (service/pipeline/build) with the cloud drivers and the
 * job store as its notifier; or, for a build a restart found failed or ended, its clean-up.
 */
static void *
worker_build_thread(void *arg)
{
	struct worker_build	*b = arg;
	struct worker		*w = b->w;
	struct build_request	*req = NULL;
	struct build		*bb = NULL;
	struct job		*j = NULL;
	struct cloud		 c;
	struct err		 err;
	int			 abandon;

	memset(&c, 0, sizeof(c));
	err_clear(&err);
	if ((j = jobstore_get(w->js, b->build_id, &err)) == NULL) {
		log_warnx("build %s: %s", b->build_id, err.msg);
		goto out;
	}
	cloud_init(&c, w->cfg, j->trust_id);
	if (b->how == RESUME_FAIL || build_state_terminal(j->state)) {
		/* failed (or ended) before a restart: only the clean-up is left; Glance images are
		 * deleted as the user, through the trust */
		if (worker_has_resource(j, "glance_image") && cloud_open(&c, &err) != 0)
			log_warnx("build %s: no session to clean up with: %s", b->build_id,
			    err.msg);
		worker_cleanup(w, b->build_id, j->state, &c);
		goto out;
	}
	if ((req = worker_load_request(j, &err)) == NULL) {
		worker_build_end(w, b->build_id, BUILD_FAILED, err.msg, NULL);
		goto out;
	}
	bb = worker_build_new(b, req, &c);
	pthread_mutex_lock(&w->mu);
	b->bb = bb;
	abandon = w->abandon;
	pthread_mutex_unlock(&w->mu);
	if (abandon)
		build_request_stop(bb, BUILD_STOP_ABANDON);
	if (j->state == BUILD_QUEUED)
		worker_test_pause(w, bb, "queued");
	/* a stop ends the build's transfers and waits at once */
	cloud_set_stop_fd(&c, bb->stop_fd);
	(void)build_run(bb);
	cloud_set_stop_fd(&c, -1);	/* the clean-up's deletions must not be stopped */
	pthread_mutex_lock(&w->mu);
	b->bb = NULL;
	pthread_mutex_unlock(&w->mu);
	if (build_state_terminal(bb->state))
		worker_pipeline_end(w, bb, &c);
out:
	build_free(&bb);
	cloud_close(&c);
	request_free(&req);
	job_free(&j);
	worker_build_done(b);
	return NULL;
}

static void
worker_build_start(struct worker *w, const char *build_id, enum job_resume how)
{
	struct worker_build	*b;
	int			 rc;

	b = xcalloc(1, sizeof(*b));
	b->w = w;
	b->build_id = xstrdup(build_id);
	b->how = how;
	pthread_mutex_lock(&w->mu);
	b->next = w->builds;
	w->builds = b;
	w->running++;
	pthread_mutex_unlock(&w->mu);
	if ((rc = pthread_create(&b->thread, NULL, worker_build_thread, b)) != 0) {
		log_warnx("build %s: no thread: %s", build_id, strerror(rc));
		pthread_mutex_lock(&w->mu);
		w->builds = b->next;
		w->running--;
		pthread_mutex_unlock(&w->mu);
		if (how != RESUME_FAIL)
			worker_build_end(w, build_id, BUILD_FAILED,
			    "the worker could not start a thread", NULL);
		free(b->build_id);
		free(b);
	}
}

/* A build's work dir; caller frees. */
static char *
worker_work_dir(const struct worker *w, const char *build_id)
{
	return xasprintf("%s/%s", w->cfg->work_dir, build_id);
}

/*
 * jobstore_recover's question (loop thread): what of the build is still there? Its domain
 * (running, or stopped: domains are persistent and virt_watch tells how it ended), its root
 * disk. Without libvirt, no domain: the build can't be watched.
 */
static int
worker_present(void *arg, const struct job *j)
{
	struct worker	*w = arg;
	struct err	 e;
	char		*dir, *disk;
	int		 has = 0;

	if (j->domain != NULL && w->virt != NULL) {
		err_clear(&e);
		switch (virt_exists(w->virt, j->domain, &e)) {
		case 1:
			has |= JOB_HAS_DOMAIN;
			break;
		case -1:
			log_warnx("domain %s: %s", j->domain, e.msg);
			break;
		}
	}
	dir = worker_work_dir(w, j->build_id);
	disk = xasprintf("%s/root.qcow2", dir);
	if (access(disk, R_OK) == 0)
		has |= JOB_HAS_DISK;
	free(disk);
	free(dir);
	return has;
}

/*
 * 1 when the job store accounts for what a build left (kind value): the build is not over (its
 * run or its recovery owns it), or it is over and value is among its resources (the janitor
 * retries it); 0 when nobody does (a crash between making it and recording it, a lost store).
 */
static int
worker_owned(struct worker *w, const char *build_id, const char *kind, const char *value)
{
	struct job	*j;
	json_t		*r;
	size_t		 i;
	int		 owned = 0;

	if ((j = jobstore_get(w->js, build_id, NULL)) == NULL)
		return 0;
	if (!build_state_terminal(j->state))
		owned = 1;
	json_array_foreach(j->resources, i, r)
		if (strcmp(json_string_value(json_object_get(r, "kind")), kind) == 0 &&
		    strcmp(json_string_value(json_object_get(r, "value")), value) == 0)
			owned = 1;
	job_free(&j);
	return owned;
}

/*
 * At start: removes the domains this worker made (its host name in their metadata) and the
 * build dirs in work_dir that no build of the job store accounts for.
 */
static void
worker_sweep(struct worker *w)
{
	struct err	 e;
	struct dirent	*de;
	DIR		*d;
	char		**names, *path;
	size_t		 n, i;

	err_clear(&e);
	if (virt_list_owned(w->virt, "isoforge-", ISOBOOT_XMLNS, w->cfg->host, &names, &n,
	    &e) != 0)
		log_warnx("orphaned domains not looked for: %s", e.msg);
	else {
		for (i = 0; i < n; i++) {
			if (!worker_owned(w, names[i] + strlen("isoforge-"), "domain", names[i])) {
				log_info("domain %s: no build of this worker owns it: removed",
				    names[i]);
				worker_remove_domain(w, names[i]);
			}
			free(names[i]);
		}
		free(names);
	}
	if ((d = opendir(w->cfg->work_dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (!util_is_uuid(de->d_name))
			continue;
		path = worker_work_dir(w, de->d_name);
		if (!worker_owned(w, de->d_name, "dir", path)) {
			err_clear(&e);
			if (util_rmtree(path, &e) == 0)
				log_info("%s: no build owns it: removed", path);
			else
				log_warnx("%s", e.msg);
		}
		free(path);
	}
	closedir(d);
}

/* Picks up what a previous run left: watches installs, snapshots finished ones again, fails
 * what can't resume, reruns the rest; removes what nobody owns. */
static int
worker_recover(struct worker *w, struct err *err)
{
	struct job	**jobs;
	enum job_resume	*actions;
	size_t		 n, i;

	if (jobstore_recover(w->js, worker_present, w, &jobs, &actions, &n, err) != 0)
		return -1;
	worker_sweep(w);
	for (i = 0; i < n; i++) {
		log_info("build %s: after a restart: %s (%s)", jobs[i]->build_id,
		    job_resume_name(actions[i]), build_state_name(jobs[i]->state));
		switch (actions[i]) {
		case RESUME_FAIL:
			/* recorded as failed by jobstore_recover: announce; a thread cleans up */
			worker_event(w, jobs[i]->build_id, BUILD_FAILED, jobs[i]->message);
			worker_build_start(w, jobs[i]->build_id, RESUME_FAIL);
			break;
		case RESUME_RESTART:
			/* recorded as queued again by jobstore_recover: announce, clean, run */
			worker_event(w, jobs[i]->build_id, BUILD_QUEUED, jobs[i]->message);
			worker_cleanup(w, jobs[i]->build_id, BUILD_QUEUED, NULL);
			worker_build_start(w, jobs[i]->build_id, actions[i]);
			break;
		case RESUME_WATCH:
		case RESUME_SNAPSHOT:
			worker_build_start(w, jobs[i]->build_id, actions[i]);
			break;
		case RESUME_NONE:
			break;
		}
	}
	jobs_free(&jobs, n);
	free(actions);
	worker_janitor(w);
	return 0;
}

/*
 * Ended builds with something left to clean (a removal that failed, a clean-up a stop cut
 * short): a clean-up thread each, unless one runs. On start and from the tick.
 */
static void
worker_janitor(struct worker *w)
{
	struct job	**jobs;
	struct err	 err;
	size_t		 n, i;
	int		 busy;

	w->janitor_at = util_now();
	err_clear(&err);
	if (jobstore_list(w->js, 0, &jobs, &n, &err) != 0) {
		log_warnx("janitor: %s", err.msg);
		return;
	}
	for (i = 0; i < n; i++) {
		if (!build_state_terminal(jobs[i]->state) ||
		    json_array_size(jobs[i]->resources) == 0)
			continue;
		pthread_mutex_lock(&w->mu);
		busy = worker_find(w, jobs[i]->build_id) != NULL;
		pthread_mutex_unlock(&w->mu);
		if (!busy)
			worker_build_start(w, jobs[i]->build_id, RESUME_FAIL);
	}
	jobs_free(&jobs, n);
}

/*
 * What the configuration needs, checked before the worker takes anything: its work and cache
 * directories (its own: 0700, writable), qemu-img, libvirt, and the domain type (the KVM probe
 * for auto and kvm). Any of them missing is one clear error: the worker does not start.
 */
static int
worker_check_host(struct worker *w, struct err *err)
{
	const struct config	*cfg = w->cfg;
	struct err		 e;
	char			*v;

	err_clear(&e);
	if (util_mkdir_private(cfg->cache_dir, &e) != 0) {
		err_set(err, e.kind, "[builds] cache_dir: %s", e.msg);
		return -1;
	}
	/* downloads a dead run left half done (the cache is this worker's: none runs now) */
	if (isocache_clean_parts(cfg->cache_dir, time(NULL), &e) == -1)
		log_warnx("%s", e.msg);
	if ((v = qemuimg_version(err)) == NULL)
		return -1;
	log_info("%s", v);
	free(v);
	if (virt_event_init(w->loop, &e) != 0 ||
	    (w->virt = virt_open(w->loop, cfg->libvirt_uri, &e)) == NULL) {
		err_set(err, e.kind, "[libvirt] uri %s: %s", cfg->libvirt_uri, e.msg);
		return -1;
	}
	if (virt_domain_type(w->virt, cfg->domain_type, cfg->cache_dir, cfg->work_dir,
	    WORKER_PROBE_TIMEOUT, &w->domain_type, &e) != 0) {
		err_set(err, e.kind, "[libvirt] domain_type: %s", e.msg);
		return -1;
	}
	log_info("builds run under %s", strcmp(w->domain_type, "kvm") == 0 ? "KVM" :
	    "TCG (no KVM)");
	return 0;
}

struct worker *
worker_new(const struct config *cfg, struct loop *loop, struct err *err)
{
	struct worker	*w;
	struct err	 e;
	char		*path;
	int		 rc;

	w = xcalloc(1, sizeof(*w));
	w->cfg = cfg;
	w->loop = loop;
	pthread_mutex_init(&w->pub_mu, NULL);
	pthread_mutex_init(&w->mu, NULL);
	w->held_tail = &w->held;
	w->test_pause = getenv("ISOFORGE_TEST_PAUSE");
	err_clear(&e);
	if (mq_url_parse(cfg->transport_url, &w->url, err) != 0)
		goto fail;
	if (cfg->amqp_ca_file != NULL)
		w->url->ca_file = xstrdup(cfg->amqp_ca_file);
	if (util_mkdir_private(cfg->work_dir, &e) != 0) {
		err_set(err, e.kind, "[builds] work_dir: %s", e.msg);
		goto fail;
	}
	path = xasprintf("%s/jobs.db", cfg->work_dir);
	rc = jobstore_open(path, &w->js, err);
	free(path);
	if (rc != 0)
		goto fail;
	return w;
fail:
	worker_free(&w);
	return NULL;
}

int
worker_start(struct worker *w, struct err *err)
{
	if (worker_check_host(w, err) != 0)
		return -1;
	if ((w->tick = loop_timer_add(w->loop, WORKER_TICK_MS, worker_tick, w, NULL)) < 0) {
		err_set(err, ERR_INTERNAL, "no timer");
		return -1;
	}
	if (worker_recover(w, err) != 0)
		return -1;
	worker_connect(w);
	return 0;
}

void
worker_stop(struct worker *w)
{
	struct err	 err;

	w->stopping = 1;
	err_clear(&err);
	if (w->cons != NULL && w->consuming)
		mq_cancel(w->cons, TAG_REQUESTS, &err);
	w->consuming = 0;
	worker_disconnect(w);
}

int
worker_running(const struct worker *w)
{
	return w->running;
}

void
worker_free(struct worker **wp)
{
	struct worker		*w;
	struct worker_build	*b;

	if (wp == NULL || (w = *wp) == NULL)
		return;
	/*
	 * The threads use the job store, the publisher and (through the loop) libvirt: let
	 * them end first, serving their loop calls; installs are left running, transfers and
	 * conversions stop, every build stays where it was for the next run.
	 */
	pthread_mutex_lock(&w->mu);
	w->abandon = 1;
	for (b = w->builds; b != NULL; b = b->next)
		if (b->bb != NULL)
			build_request_stop(b->bb, BUILD_STOP_ABANDON);
	pthread_mutex_unlock(&w->mu);
	for (;;) {
		worker_reap(w);
		pthread_mutex_lock(&w->mu);
		b = w->builds;
		pthread_mutex_unlock(&w->mu);
		if (b == NULL)
			break;
		loop_run_once(w->loop, 100, NULL);
	}
	if (w->tick > 0)
		loop_timer_remove(w->loop, w->tick);
	virt_free(&w->virt);
	worker_disconnect(w);
	worker_flush_held(w);		/* a last try: the broker may be back */
	worker_drop_held(w);
	mq_close(&w->pub);
	jobstore_close(&w->js);
	mq_url_free(&w->url);
	pthread_mutex_destroy(&w->pub_mu);
	pthread_mutex_destroy(&w->mu);
	free(w);
	*wp = NULL;
}
