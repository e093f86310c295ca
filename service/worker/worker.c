/* worker.c — requests in, job store, early ack, events out, control, reconnects, resume. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "drivers/virt.h"
#include "service/common/amqp.h"
#include "service/pipeline/build.h"
#include "service/worker/jobstore.h"
#include "base/log.h"
#include "service/pipeline/request.h"
#include "base/util.h"
#include "service/worker/worker.h"
#include "service/worker/worker_steps.h"

#define TAG_REQUESTS		"isoforge-requests"
#define TAG_CONTROL		"isoforge-control"
#define WORKER_TICK_MS		1000
#define WORKER_BACKOFF_MAX	60.0
#define WORKER_CONNECT_TIMEOUT	5.0
#define WORKER_PUBLISH_TIMEOUT	10.0
/* Events held while RabbitMQ is away, at most (the oldest are dropped beyond, with a log). */
#define WORKER_EVENTS_HELD	10000
/* Bodies larger than this are refused before parsing (contract v1 allows 64 KiB). */
#define WORKER_MAX_BODY		(64 * 1024)

/* A build running in its own thread (the pipeline's steps block: HTTP, qemu-img, installs). */
struct worker_build {
	struct worker		*w;
	char			*build_id;
	enum job_resume		 how;		/* RESUME_RESTART for a new build */
	pthread_t		 thread;
	int			 done;		/* under w->mu */
	int			 cancel;	/* under w->mu: cancel asked */
	int			 finish;	/* under w->mu: end the install asked */
	struct build		*bb;		/* service/pipeline/build's steps (assemble .. snapshot) */
	/* the install, driven from the loop thread */
	int			 install_rc;	/* virt_start's result */
	struct err		 install_err;
	int			 outcome_done;	/* under w->mu */
	int			 timeout_timer;
	struct worker_build	*next;
};

/* An event that could not be published yet: kept, in order, until RabbitMQ is back. */
struct worker_held {
	char			*key;
	char			*body;
	struct worker_held	*next;
};

/* A function a build thread runs on the loop thread (libvirt is used from there only). */
struct worker_call {
	void			(*fn)(void *);
	void			*arg;
	int			 done;		/* under w->mu */
	struct worker_call	*next;
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

	/* isoforge's Keystone session for validating control tokens: loop thread only */
	struct http_client	*auth_http;
	struct keystone		*auth;

	/* libvirt, on the loop */
	struct virt		*virt;
	pthread_t		 loop_thread;
	struct worker_call	*calls;		/* under mu */
	int			 calls_timer;

	/* builds */
	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;		/* calls done, install outcomes */
	int			 abandon;	/* under mu: stopping, leave installs running */
	struct worker_build	*builds;
	int			 running;
};

static void	worker_on_readable(int, int, int, void *);
static void	worker_build_start(struct worker *, const char *, enum job_resume);

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

/* Rough progress of a state, for events (0–100). */
static int
worker_progress(enum job_state s)
{
	switch (s) {
	case JOB_QUEUED:	return 0;
	case JOB_RESOLVING:	return 5;
	case JOB_FETCHING:	return 10;
	case JOB_ASSEMBLING:	return 20;
	case JOB_INSTALLING:	return 30;
	case JOB_CUSTOMIZING:	return 70;
	case JOB_SNAPSHOTTING:	return 80;
	case JOB_UPLOADING:	return 90;
	default:		return 100;
	}
}

/*
 * Announces a state of a build on isoforge.events (routing key build.<id>.<state>). The job
 * store already holds it. An event that can't be published now (RabbitMQ away) is held, and
 * so is every later one while any is held, to keep their order: the tick publishes them once
 * the broker is back. console is borrowed.
 */
static void
worker_event(struct worker *w, const char *build_id, enum job_state state,
    const char *message, const char *image_id, json_t *console)
{
	json_t		*ev;
	struct err	 err;
	char		*body, *key, stamp[32];

	util_utc_stamp(stamp);
	ev = json_pack("{s:s, s:s, s:i, s:s?, s:s?, s:s, s:s}", "build_id", build_id,
	    "state", job_state_name(state), "progress", worker_progress(state),
	    "message", message, "image_id", image_id, "worker", w->cfg->host, "at", stamp);
	/*
	 * Everyone with access to the broker can read events: the console's address goes out,
	 * its password only in answers to the build's own project (isoforge console).
	 */
	if (console != NULL) {
		json_object_set_new(ev, "console", json_deep_copy(console));
		json_object_del(json_object_get(ev, "console"), "password");
	}
	body = json_dumps(ev, JSON_COMPACT);
	key = xasprintf("build.%s.%s", build_id, job_state_name(state));
	err_clear(&err);
	pthread_mutex_lock(&w->pub_mu);
	if (w->held != NULL) {
		worker_hold(w, key, body);
		key = body = NULL;
	} else if (worker_publish_locked(w, MQ_EVENTS, key, NULL, body, 0, &err) != 0) {
		log_warnx("build %s: event %s held until RabbitMQ answers: %s", build_id,
		    job_state_name(state), err.msg);
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
worker_transition(struct worker *w, const char *build_id, enum job_state state,
    const char *message, struct err *err)
{
	struct job	*j;
	json_t		*console = NULL;

	if (jobstore_set_state(w->js, build_id, state, message, err) != 0)
		return -1;
	log_info("build %s: %s%s%s", build_id, job_state_name(state),
	    message != NULL ? ": " : "", message != NULL ? message : "");
	j = jobstore_get(w->js, build_id, NULL);
	if (j != NULL && j->console != NULL)
		console = json_loads(j->console, 0, NULL);
	worker_event(w, build_id, state, message, j != NULL ? j->image_id : NULL, console);
	json_decref(console);
	job_free(&j);
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

/* Refuses a request: dead-letters it with reason, then acks it. */
static void
worker_refuse(struct worker *w, struct mq_conn *c, amqp_envelope_t *env, const char *reason)
{
	struct err	 err;

	log_warnx("request refused: %s", reason);
	err_clear(&err);
	if (worker_dead_letter(w, env, reason, &err) == 0) {
		mq_ack(c, env->delivery_tag, &err);
		return;
	}
	/* without a publisher the queue's own dead-lettering keeps the message, sans reason */
	log_warnx("request refused without its reason (%s): dead-lettering it as it is",
	    err.msg);
	mq_reject(c, env->delivery_tag, 0, &err);
}

/* Takes a build request: validate, record (durably), ack, announce, start. */
static void
worker_on_request(struct worker *w, struct mq_conn *c, amqp_envelope_t *env)
{
	struct build_request	*req = NULL;
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
	if (env->message.body.len > WORKER_MAX_BODY) {
		reason = xasprintf("body: %zu bytes, more than the %d KiB a request may have",
		    env->message.body.len, WORKER_MAX_BODY / 1024);
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
	/* the token is stored apart from the request and never leaves the job store */
	canon = request_to_json(req);
	json_object_del(canon, "token");
	json_object_set_new(canon, "build_id", json_string(build_id));
	canon_s = json_dumps(canon, JSON_COMPACT | JSON_SORT_KEYS);
	rc = jobstore_add(w->js, build_id, canon_s, req->token, NULL, NULL, &err);
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
		goto cleanup;
	}
	log_info("build %s: accepted (%s)", build_id, req->name);
	worker_event(w, build_id, JOB_QUEUED, "accepted", NULL, NULL);
	worker_build_start(w, build_id, RESUME_RESTART);
	if (worker_update_consuming(w, &err) != 0)
		log_warnx("%s", err.msg);
cleanup:
	free(canon_s);
	json_decref(canon);
	request_free(&req);
}

/*
 * The project a token belongs to, validated by Keystone with isoforge's service session
 * (loop thread only). allow_expired for a build's stored token. Caller frees.
 */
static char *
worker_token_project(struct worker *w, const char *token, int allow_expired, struct err *err)
{
	struct keystone_token_info	*info;
	char				*project = NULL;

	if (w->auth == NULL && (w->auth = ws_service_session(w->cfg, &w->auth_http, err)) == NULL)
		return NULL;
	if ((info = keystone_validate(w->auth, token, allow_expired, 0, err)) == NULL)
		return NULL;
	if (info->project_id != NULL)
		project = xstrdup(info->project_id);
	else
		err_set(err, ERR_AUTH, "token: not scoped to a project");
	keystone_token_info_free(&info);
	return project;
}

/* The project of a build: recorded at resolving, else learnt from its stored token. */
static char *
worker_job_project(struct worker *w, const struct job *j, struct err *err)
{
	char	*p;

	if (j->project_id != NULL)
		return xstrdup(j->project_id);
	if (j->token == NULL) {
		err_set(err, ERR_AUTH, "build %s: its project is not known", j->build_id);
		return NULL;
	}
	if ((p = worker_token_project(w, j->token, 1, err)) != NULL)
		jobstore_set_field(w->js, j->build_id, "project_id", p, NULL);
	return p;
}

/* Who may act on a build: a token of the build's project (validated by Keystone). */
static int
worker_authorize(struct worker *w, const char *project, const struct job *j, struct err *err)
{
	char	*jp;
	int	 ok;

	if ((jp = worker_job_project(w, j, err)) == NULL)
		return -1;
	ok = strcmp(jp, project) == 0;
	free(jp);
	if (!ok) {
		/* as Glance does for another project's image: say nothing about it */
		err_set(err, ERR_NOTFOUND, "build %s: not found", j->build_id);
		return -1;
	}
	return 0;
}

/* Replies to a control message that asked for it (reply_to + correlation_id). */
static void
worker_reply(struct worker *w, const amqp_envelope_t *env, json_t *reply)
{
	const amqp_basic_properties_t	*in = &env->message.properties;
	amqp_basic_properties_t		 props;
	struct err			 err;
	char				*body, *to;

	if (!(in->_flags & AMQP_BASIC_REPLY_TO_FLAG))
		return;
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

/* The builds of project as JSON (list replies). */
static json_t *
worker_list(struct worker *w, const char *project)
{
	struct job	**jobs;
	json_t		*a = json_array();
	char		*p;
	size_t		 n, i;
	struct err	 err;

	err_clear(&err);
	if (jobstore_list(w->js, 0, &jobs, &n, &err) != 0) {
		log_warnx("list: %s", err.msg);
		return a;
	}
	for (i = 0; i < n; i++) {
		err_clear(&err);
		if ((p = worker_job_project(w, jobs[i], &err)) == NULL)
			continue;
		if (strcmp(p, project) == 0)
			json_array_append_new(a, job_to_json(jobs[i]));
		free(p);
	}
	jobs_free(&jobs, n);
	return a;
}

/*
 * A control message (every worker sees each one; the owner of the build acts):
 * {"schema": "isoforge.control/1", "action": "status|finish|cancel|list", "build_id", "token"}.
 * The token must be valid and of the build's project; list answers with the project's builds.
 */
static void
worker_on_control(struct worker *w, amqp_envelope_t *env)
{
	struct worker_build	*b;
	struct job		*j = NULL;
	struct err		 err;
	json_t			*msg, *reply = NULL;
	const char		*schema = NULL, *action = NULL, *build_id = NULL, *token = NULL;
	char			*project = NULL;

	err_clear(&err);
	msg = json_loadb(env->message.body.bytes, env->message.body.len, 0, NULL);
	if (msg == NULL || json_unpack(msg, "{s:s, s:s, s?s, s?s}", "schema", &schema,
	    "action", &action, "build_id", &build_id, "token", &token) != 0 ||
	    strcmp(schema, MQ_CONTROL_SCHEMA) != 0) {
		log_warnx("control message ignored: not %s", MQ_CONTROL_SCHEMA);
		goto cleanup;
	}
	if (strcmp(action, "list") != 0 &&
	    (build_id == NULL || (j = jobstore_get(w->js, build_id, NULL)) == NULL))
		goto cleanup;	/* another worker's build (or none): its owner answers */
	if (token == NULL) {
		reply = json_pack("{s:b, s:s}", "ok", 0, "error", "token: missing");
		goto cleanup;
	}
	if ((project = worker_token_project(w, token, 0, &err)) == NULL) {
		reply = json_pack("{s:b, s:s}", "ok", 0, "error", err.msg);
		goto cleanup;
	}
	if (strcmp(action, "list") == 0) {
		reply = json_pack("{s:b, s:o}", "ok", 1, "builds", worker_list(w, project));
		goto cleanup;
	}
	if (worker_authorize(w, project, j, &err) != 0)
		goto cleanup;	/* not theirs: as if unknown here */
	if (strcmp(action, "status") == 0) {
		reply = json_pack("{s:b, s:o}", "ok", 1, "build", job_to_json(j));
		json_object_set_new(json_object_get(reply, "build"), "history",
		    jobstore_history(w->js, build_id, NULL));
	} else if (strcmp(action, "finish") == 0 || strcmp(action, "cancel") == 0) {
		pthread_mutex_lock(&w->mu);
		if ((b = worker_find(w, build_id)) != NULL) {
			if (action[0] == 'f')
				b->finish = 1;
			else
				b->cancel = 1;
		}
		pthread_mutex_unlock(&w->mu);
		/* an install in progress: tell the domain now (we are on the loop thread) */
		if (b != NULL && b->bb != NULL && b->bb->state == BUILD_INSTALLING) {
			if (action[0] == 'f')
				build_request_finish(b->bb);
			else
				build_request_cancel(b->bb);
		}
		log_info("build %s: %s asked", build_id, action);
		reply = b != NULL ? json_pack("{s:b, s:s, s:s}", "ok", 1, "build_id", build_id,
		    "state", job_state_name(j->state)) :
		    json_pack("{s:b, s:s, s:s}", "ok", 0, "build_id", build_id, "error",
		    "the build is not running");
	} else
		reply = json_pack("{s:b, s:s}", "ok", 0, "error", "action: unknown");
cleanup:
	if (reply != NULL) {
		worker_reply(w, env, reply);
		json_decref(reply);
	}
	free(project);
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
		worker_on_control(w, env);
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
	if (mq_connect(w->url, w->attempts, (int)w->cfg->heartbeat, 0, WORKER_CONNECT_TIMEOUT,
	    &w->cons, &err) != 0 ||
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
};

static void
worker_remove_domain_call(void *arg)
{
	struct worker_rm	*r = arg;
	struct err		 e;

	err_clear(&e);
	if (virt_remove_by_name(r->w->virt, r->name, &e) != 0)
		log_warnx("domain %s not removed: %s", r->name, e.msg);
}

static void	worker_in_loop(struct worker *, void (*)(void *), void *);

/* Destroys and undefines a build's domain (from any thread). */
static void
worker_remove_domain(struct worker *w, const char *name)
{
	struct worker_rm	 r = { w, name };

	worker_in_loop(w, worker_remove_domain_call, &r);
}

/* Removes what a build created (an active build keeps its image); ws may be NULL. */
static void
worker_cleanup(struct worker *w, const char *build_id, enum job_state state, struct ws *ws)
{
	struct job	*j;
	struct err	 err;
	json_t		*r;
	size_t		 i;
	const char	*kind, *value;

	if ((j = jobstore_get(w->js, build_id, NULL)) == NULL)
		return;
	json_array_foreach(j->resources, i, r) {
		kind = json_string_value(json_object_get(r, "kind"));
		value = json_string_value(json_object_get(r, "value"));
		err_clear(&err);
		if (strcmp(kind, "glance_image") == 0) {
			if (state == JOB_ACTIVE)
				continue;
			if (ws == NULL || ws->glance == NULL) {
				log_warnx("build %s: image %s left in Glance: no session to delete "
				    "it", build_id, value);
				continue;
			}
			if (ws_delete_image(ws, value, &err) != 0)
				continue;
			log_info("build %s: image %s deleted", build_id, value);
		} else if (strcmp(kind, "domain") == 0) {
			if (w->virt == NULL)
				continue;
			worker_remove_domain(w, value);
		} else if (strcmp(kind, "file") == 0 || strcmp(kind, "dir") == 0) {
			if (util_rmtree(value, &err) != 0) {
				log_warnx("build %s: cleanup: %s", build_id, err.msg);
				continue;
			}
		} else {
			log_warnx("build %s: cleanup of %s %s is not supported by this worker yet",
			    build_id, kind, value);
			continue;
		}
		jobstore_remove_resource(w->js, build_id, kind, value, NULL);
	}
	job_free(&j);
}

/* Ends a build: records and announces the terminal state, cleans up, forgets the token. */
static void
worker_build_end(struct worker *w, const char *build_id, enum job_state state,
    const char *message, struct ws *ws)
{
	struct err	 err;

	err_clear(&err);
	if (worker_transition(w, build_id, state, message, &err) != 0)
		log_warnx("build %s: %s", build_id, err.msg);
	worker_cleanup(w, build_id, state, ws);
	jobstore_forget_token(w->js, build_id, NULL);
}

/* The build's request (with its token put back) for the pipeline; caller frees. */
static struct build_request *
worker_load_request(const struct job *j, struct err *err)
{
	struct build_request	*req;
	json_t			*o;
	char			*body;

	if ((o = json_loads(j->request, 0, NULL)) == NULL) {
		err_set(err, ERR_INTERNAL, "the stored request is not JSON");
		return NULL;
	}
	if (j->token != NULL)
		json_object_set_new(o, "token", json_string(j->token));
	body = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	req = request_parse(body, strlen(body), REQUEST_FULL, err);
	explicit_bzero(body, strlen(body));
	free(body);
	return req;
}

/* 1 once the worker stops and leaves running installs to libvirt. */
static int
worker_abandoned(struct worker *w)
{
	int	 a;

	pthread_mutex_lock(&w->mu);
	a = w->abandon;
	pthread_mutex_unlock(&w->mu);
	return a;
}

/* 1 when a cancel was asked for the build. */
static int
worker_cancelled(struct worker_build *b)
{
	int	 c;

	pthread_mutex_lock(&b->w->mu);
	c = b->cancel;
	pthread_mutex_unlock(&b->w->mu);
	return c;
}

/* Another worker may have built this build_id already (a redelivered request): look in Glance. */
static char *
worker_built_before(struct ws *ws, const char *build_id)
{
	struct glance_list_opts	 o;
	json_t			*imgs;
	char			*id = NULL;

	memset(&o, 0, sizeof(o));
	o.filters = json_pack("{s:s}", "isoforge_build_id", build_id);
	o.status = "active";
	imgs = glance_image_list(ws->glance, &o, NULL);
	json_decref(o.filters);
	if (imgs != NULL && json_array_size(imgs) > 0)
		id = xstrdup(json_string_value(json_object_get(json_array_get(imgs, 0), "id")));
	json_decref(imgs);
	return id;
}

/* Runs fn(arg) on the loop thread and waits for it (directly when already there). */
static void
worker_in_loop(struct worker *w, void (*fn)(void *), void *arg)
{
	struct worker_call	 c, **cp;

	if (pthread_equal(pthread_self(), w->loop_thread)) {
		fn(arg);
		return;
	}
	memset(&c, 0, sizeof(c));
	c.fn = fn;
	c.arg = arg;
	pthread_mutex_lock(&w->mu);
	for (cp = &w->calls; *cp != NULL; cp = &(*cp)->next)
		;
	*cp = &c;
	pthread_mutex_unlock(&w->mu);
	loop_wakeup(w->loop);
	pthread_mutex_lock(&w->mu);
	while (!c.done)
		pthread_cond_wait(&w->cv, &w->mu);
	pthread_mutex_unlock(&w->mu);
}

/* Loop timer at every iteration: runs the calls build threads queued. */
static void
worker_calls_cb(int id, void *arg)
{
	struct worker		*w = arg;
	struct worker_call	*c;

	(void)id;
	for (;;) {
		pthread_mutex_lock(&w->mu);
		if ((c = w->calls) != NULL)
			w->calls = c->next;
		pthread_mutex_unlock(&w->mu);
		if (c == NULL)
			return;
		c->fn(c->arg);
		pthread_mutex_lock(&w->mu);
		c->done = 1;
		pthread_cond_broadcast(&w->cv);
		pthread_mutex_unlock(&w->mu);
	}
}

/* service/pipeline/build's state changes → the job store and events (the worker's own states aside). */
static void
worker_on_build_state(struct build *bb, enum build_state s, const char *message, void *arg)
{
	struct worker_build	*b = arg;
	struct err		 err;
	enum job_state		 js;

	(void)bb;
	switch (s) {
	case BUILD_ASSEMBLING:		js = JOB_ASSEMBLING; break;
	case BUILD_INSTALLING:		js = JOB_INSTALLING; break;
	case BUILD_CUSTOMIZING:		js = JOB_CUSTOMIZING; break;
	case BUILD_SNAPSHOTTING:	js = JOB_SNAPSHOTTING; break;
	case BUILD_REGISTERING:		js = JOB_UPLOADING; break;
	default:
		return;		/* resolving and the ends are the worker's */
	}
	err_clear(&err);
	if (worker_transition(b->w, b->build_id, js, message, &err) != 0)
		log_warnx("build %s: %s", b->build_id, err.msg);
}

/* Loop thread: build_assemble (qemu-img create, plan, XML, define). */
static void
worker_assemble_call(void *arg)
{
	struct worker_build	*b = arg;

	err_clear(&b->install_err);
	b->install_rc = build_assemble(b->bb, &b->install_err);
}

/* Loop thread: removes the domain and work files of the build. */
static void
worker_build_cleanup_call(void *arg)
{
	struct worker_build	*b = arg;

	build_cleanup(b->bb);
}

/* Loop thread: the install's outcome; wakes the build thread. */
static void
worker_outcome_cb(struct virt_domain *d, enum virt_outcome o, const char *reason, void *arg)
{
	struct worker_build	*b = arg;

	(void)d;
	b->bb->outcome = o;
	free(b->bb->outcome_reason);
	b->bb->outcome_reason = reason != NULL ? xstrdup(reason) : NULL;
	if (b->timeout_timer > 0) {
		loop_timer_remove(b->w->loop, b->timeout_timer);
		b->timeout_timer = 0;
	}
	pthread_mutex_lock(&b->w->mu);
	b->outcome_done = 1;
	pthread_cond_broadcast(&b->w->cv);
	pthread_mutex_unlock(&b->w->mu);
}

static void
worker_install_timeout_cb(int id, void *arg)
{
	struct worker_build	*b = arg;

	loop_timer_remove(b->w->loop, id);
	b->timeout_timer = 0;
	b->bb->timed_out = 1;
	log_warnx("build %s: install timed out after %.0f s", b->build_id, b->bb->timeout_s);
	build_request_cancel(b->bb);
}

/* Loop thread: starts the install, records and announces its console, arms the timeout. */
static void
worker_install_call(void *arg)
{
	struct worker_build	*b = arg;
	struct build		*bb = b->bb;
	struct virt_console	 c;
	struct err		 e;
	json_t			*console;
	char			*cs;

	err_clear(&b->install_err);
	b->outcome_done = 0;
	bb->outcome = VIRT_RUNNING;
	if (b->how == RESUME_WATCH) {
		/* started by the worker's previous run: the domain, the plan, then the watch */
		if ((b->install_rc = build_reattach(bb, &b->install_err)) != 0)
			return;
		bb->state = BUILD_INSTALLING;
		if ((b->install_rc = virt_watch(bb->dom, worker_outcome_cb, b,
		    &b->install_err)) != 0)
			return;
		if (virt_domain_outcome(bb->dom, NULL) != VIRT_RUNNING) {
			build_set_state(bb, BUILD_INSTALLING, "watched again after a restart: the "
			    "guest stopped while the worker was down");
			return;
		}
	} else {
		bb->install_started_at = util_now();
		/* build_request_finish/cancel act only on an installing build */
		bb->state = BUILD_INSTALLING;
		if ((b->install_rc = virt_start(bb->dom, worker_outcome_cb, b,
		    &b->install_err)) != 0)
			return;
	}
	if (bb->timeout_s > 0)
		b->timeout_timer = loop_timer_add(b->w->loop, (int)(bb->timeout_s * 1000),
		    worker_install_timeout_cb, b, NULL);
	memset(&c, 0, sizeof(c));
	err_clear(&e);
	if (virt_console_get(bb->dom, 1, &c, &e) == 0 && c.port > 0) {
		console = json_pack("{s:s, s:i, s:s?}", "host", c.host, "port", c.port,
		    "password", c.password);
		cs = json_dumps(console, JSON_COMPACT);
		jobstore_set_field(b->w->js, b->build_id, "console", cs, NULL);
		explicit_bzero(cs, strlen(cs));
		free(cs);
		json_decref(console);
		build_set_state(bb, BUILD_INSTALLING, "%sconsole on vnc://%s:%d",
		    b->how == RESUME_WATCH ? "watched again after a restart; " : "", c.host, c.port);
	} else
		build_set_state(bb, BUILD_INSTALLING, "%sno console: %s",
		    b->how == RESUME_WATCH ? "watched again after a restart; " : "", e.msg);
	virt_console_clear(&c);
	pthread_mutex_lock(&b->w->mu);
	if (b->cancel)
		bb->cancel_requested = 1;
	if (b->finish)
		bb->finish_requested = 1;
	pthread_mutex_unlock(&b->w->mu);
	if (bb->cancel_requested)
		build_request_cancel(bb);
	else if (bb->finish_requested)
		build_request_finish(bb);
}

/* installing: as build_install, with the domain watched from the worker's loop thread. */
static int
worker_install(struct worker_build *b, struct err *err)
{
	struct build	*bb = b->bb;

	worker_in_loop(b->w, worker_install_call, b);
	if (b->install_rc != 0) {
		err_set(err, b->install_err.kind, "%s", b->install_err.msg);
		return -1;
	}
	pthread_mutex_lock(&b->w->mu);
	while (!b->outcome_done && !b->w->abandon)
		pthread_cond_wait(&b->w->cv, &b->w->mu);
	pthread_mutex_unlock(&b->w->mu);
	if (!b->outcome_done) {
		/* the worker stops: the install goes on in libvirt, the job store says installing */
		err_set(err, ERR_CANCELLED, "the worker stopped");
		return -1;
	}
	jobstore_set_field(b->w->js, b->build_id, "console", NULL, NULL);
	switch (bb->outcome) {
	case VIRT_POWEROFF:
	case VIRT_FINISHED:
		log_info("build %s: install done (%s) after %.0f s", b->build_id,
		    bb->outcome_reason != NULL ? bb->outcome_reason : "",
		    util_now() - bb->install_started_at);
		return 0;
	case VIRT_CANCELLED:
		if (bb->timed_out)
			err_set(err, ERR_TIMEOUT, "install timed out after %.0f s", bb->timeout_s);
		else
			err_set(err, ERR_CANCELLED, "cancelled by the requester");
		return -1;
	default:
		err_set(err, ERR_IO, "install failed: %s",
		    bb->outcome_reason != NULL ? bb->outcome_reason : "unknown");
		return -1;
	}
}

/* A string property of a Glance image, or NULL. */
static const char *
worker_image_prop(const json_t *img, const char *name)
{
	return json_string_value(json_object_get(img, name));
}

/* Fills service/pipeline/build's build from the request and what resolving found. */
static struct build *
worker_build_prepare(struct worker_build *b, const struct build_request *req, struct ws *ws)
{
	const struct config	*cfg = b->w->cfg;
	struct build		*bb;
	const char		*s;
	long			 t;

	bb = build_new(b->build_id, b->w->loop, b->w->virt);
	bb->name = xstrdup(req->name);
	bb->chain = xstrdup(req->chain != NULL ? req->chain : req->name);
	bb->parent = req->parent_image != NULL ? xstrdup(req->parent_image) : NULL;
	bb->iso = xstrdup(ws->iso_path);
	bb->iso_ref = xstrdup(req->iso_image);
	if ((s = worker_image_prop(ws->iso, "os_hash_value")) != NULL)
		bb->iso_hash = xstrdup(s);	/* Glance's, verified while fetching */
	if (ws->virtio_path != NULL) {
		bb->virtio_win = xstrdup(ws->virtio_path);
		bb->virtio_win_ref = xstrdup(worker_image_prop(ws->virtio, "id"));
	}
	/* the request's OS triple, else the ISO image's own os_* properties */
	s = req->os_type != NULL ? req->os_type : worker_image_prop(ws->iso, "os_type");
	bb->os_type = s != NULL ? xstrdup(s) : NULL;
	s = req->os_distro != NULL ? req->os_distro : worker_image_prop(ws->iso, "os_distro");
	bb->os_distro = s != NULL ? xstrdup(s) : NULL;
	s = req->os_version != NULL ? req->os_version : worker_image_prop(ws->iso, "os_version");
	bb->os_version = s != NULL ? xstrdup(s) : NULL;
	bb->firmware = req->firmware != NULL ? xstrdup(req->firmware) : NULL;
	bb->flavor.vcpus = ws->flavor->vcpus;
	bb->flavor.ram_mib = ws->flavor->ram_mib;
	bb->flavor.disk_gib = ws->flavor->disk_gib;
	t = req->timeout_s > 0 && req->timeout_s < cfg->install_timeout ? req->timeout_s :
	    cfg->install_timeout;
	bb->timeout_s = (double)t;
	bb->finish_grace_s = (double)cfg->finish_grace;
	bb->compress = req->compress;
	bb->domain_type = xstrdup(cfg->domain_type);
	bb->vnc_listen = xstrdup(cfg->vnc_listen);
	bb->guest_network = cfg->guest_network != NULL ? xstrdup(cfg->guest_network) : NULL;
	bb->guest_deny = cfg->guest_deny != NULL ? xstrdup(cfg->guest_deny) : NULL;
	if (req->properties != NULL)
		bb->properties = json_incref(req->properties);
	bb->work_root = xstrdup(cfg->work_dir);
	bb->log_dir = xasprintf("%s/logs", cfg->work_dir);
	bb->on_state = worker_on_build_state;
	bb->cb_arg = b;
	return bb;
}

/* ws_register's callback: the job store learns the image before its data is sent. */
static int
worker_image_created(void *arg, const char *id)
{
	struct worker_build	*b = arg;

	if (jobstore_add_resource(b->w->js, b->build_id, "glance_image", id, NULL) != 0)
		return -1;
	return jobstore_set_field(b->w->js, b->build_id, "image_id", id, NULL);
}

/*
 * A resumed install keeps its clock: the time since the (first) installing transition counts
 * against the install timeout.
 */
static void
worker_resume_clock(struct worker_build *b)
{
	struct build	*bb = b->bb;
	json_t		*h, *t;
	const char	*at = NULL, *st;
	struct tm	 tm;
	double		 elapsed = 0;
	size_t		 i;

	bb->install_started_at = util_now();
	if ((h = jobstore_history(b->w->js, b->build_id, NULL)) == NULL)
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
	if (elapsed <= 0)
		return;
	bb->install_started_at -= elapsed;
	if (bb->timeout_s > 0)
		bb->timeout_s = elapsed < bb->timeout_s - 1 ? bb->timeout_s - elapsed : 1;
}

/* assembling → installing → snapshotting → uploading; 0 when the image is registered. */
static int
worker_build_steps(struct worker_build *b, const struct build_request *req, struct ws *ws,
    struct err *err)
{
	struct build	*bb;
	json_t		*props;
	char		*id, stamp[32];
	int		 version, rc;

	if (worker_abandoned(b->w)) {
		err_set(err, ERR_CANCELLED, "the worker stopped");
		return -1;
	}
	if (b->w->virt == NULL) {
		err_set(err, ERR_INTERNAL, "assembling: no libvirt connection");
		return -1;
	}
	bb = b->bb = worker_build_prepare(b, req, ws);
	if (build_resolve(bb, err) != 0)
		return -1;
	if (b->how == RESUME_WATCH) {
		/* assembled and started by the previous run: watch it (worker_install_call) */
		worker_resume_clock(b);
		goto install;
	}
	worker_in_loop(b->w, worker_assemble_call, b);
	if (bb->work_dir != NULL)
		jobstore_add_resource(b->w->js, b->build_id, "dir", bb->work_dir, NULL);
	if (bb->domain_name != NULL) {
		jobstore_set_field(b->w->js, b->build_id, "domain", bb->domain_name, NULL);
		jobstore_add_resource(b->w->js, b->build_id, "domain", bb->domain_name, NULL);
	}
	if (b->install_rc != 0) {
		err_set(err, b->install_err.kind, "%s", b->install_err.msg);
		return -1;
	}
	if (worker_cancelled(b)) {
		err_set(err, ERR_CANCELLED, "cancelled by the requester");
		return -1;
	}
	if (worker_abandoned(b->w)) {
		err_set(err, ERR_CANCELLED, "the worker stopped");
		return -1;
	}
install:
	if (worker_install(b, err) != 0)
		return -1;
	if (build_snapshot(bb, err) != 0)
		return -1;
	if (worker_cancelled(b)) {
		err_set(err, ERR_CANCELLED, "cancelled by the requester");
		return -1;
	}
	build_set_state(bb, BUILD_REGISTERING, "version of chain %s", bb->chain);
	util_utc_stamp(stamp);
	props = build_image_properties(bb, stamp);
	/* the chain settles those two */
	json_object_del(props, "isoforge_chain");
	json_object_del(props, "isoforge_version");
	id = ws_register(ws, req, b->build_id, bb->snapshot, props, &version,
	    worker_image_created, b, err);
	json_decref(props);
	rc = id != NULL ? 0 : -1;
	if (id != NULL) {
		bb->version = version;
		bb->image_id = id;
	}
	return rc;
}

/*
 * One build's pipeline (DESIGN.md). Resolving, fetching and uploading are the worker's
 * (Keystone, Glance, Nova as the requester); assembling, installing and snapshotting are
 * service/pipeline/build's steps (the local build's), libvirt calls made on the loop thread.
 */
static void *
worker_build_thread(void *arg)
{
	struct worker_build	*b = arg;
	struct worker		*w = b->w;
	struct build_request	*req = NULL;
	struct job		*j = NULL;
	struct ws		 ws;
	struct err		 err;
	enum job_state		 end = JOB_FAILED;
	char			*msg = NULL, *done = NULL;

	memset(&ws, 0, sizeof(ws));
	err_clear(&err);
	if ((j = jobstore_get(w->js, b->build_id, &err)) == NULL) {
		log_warnx("build %s: %s", b->build_id, err.msg);
		goto out;
	}
	if (b->how == RESUME_FAIL || job_state_terminal(j->state)) {
		/* failed (or ended) before a restart: only the clean-up is left */
		if (j->token != NULL)
			ws_open(&ws, w->cfg, j->token, &err);
		worker_cleanup(w, b->build_id, j->state, &ws);
		jobstore_forget_token(w->js, b->build_id, NULL);
		goto out;
	}
	if (b->how == RESUME_WATCH) {
		/*
		 * The install outlived the previous run: the same lookups again (the user's
		 * session, the images, the flavor, the cached ISO) without the transitions, then
		 * the pipeline goes on from installing.
		 */
		if ((req = worker_load_request(j, &err)) == NULL ||
		    ws_open(&ws, w->cfg, req->token, &err) != 0 ||
		    ws_resolve(&ws, req, &err) != 0 || ws_fetch(&ws, &err) != 0)
			goto fail;
		goto steps;
	}
	if (worker_transition(w, b->build_id, JOB_RESOLVING, "checking the token, images and "
	    "flavor", &err) != 0)
		goto fail;
	if ((req = worker_load_request(j, &err)) == NULL ||
	    ws_open(&ws, w->cfg, req->token, &err) != 0)
		goto fail;
	jobstore_set_field(w->js, b->build_id, "project_id", ws.project_id, NULL);
	jobstore_set_field(w->js, b->build_id, "user_id", ws.user_id, NULL);
	if ((done = worker_built_before(&ws, b->build_id)) != NULL) {
		jobstore_set_field(w->js, b->build_id, "image_id", done, NULL);
		msg = xasprintf("built before: image %s", done);
		end = JOB_ACTIVE;
		goto end;
	}
	if (ws_resolve(&ws, req, &err) != 0)
		goto fail;
	if (worker_cancelled(b))
		goto cancelled;
	msg = xasprintf("ISO %s into the cache",
	    json_string_value(json_object_get(ws.iso, "id")));
	if (worker_transition(w, b->build_id, JOB_FETCHING, msg, &err) != 0 ||
	    ws_fetch(&ws, &err) != 0)
		goto fail;
	free(msg);
	msg = NULL;
	if (worker_cancelled(b))
		goto cancelled;
steps:
	if (worker_build_steps(b, req, &ws, &err) != 0) {
		if (worker_abandoned(w))
			goto out;
		if (err.kind == ERR_CANCELLED)
			goto cancelled;
		goto fail;
	}
	end = JOB_ACTIVE;
	msg = xasprintf("image %s, version %d of chain %s", b->bb->image_id, b->bb->version,
	    b->bb->chain);
	goto end;
cancelled:
	end = JOB_CANCELLED;
	free(msg);
	msg = xstrdup("cancelled by the requester");
	goto end;
fail:
	free(msg);
	msg = xstrdup(err.msg);
end:
	if (b->bb != NULL) {
		/* the domain and the work files go in every terminal state */
		worker_in_loop(w, worker_build_cleanup_call, b);
		if (b->bb->work_dir != NULL)
			jobstore_remove_resource(w->js, b->build_id, "dir", b->bb->work_dir, NULL);
		if (b->bb->domain_name != NULL)
			jobstore_remove_resource(w->js, b->build_id, "domain", b->bb->domain_name,
			    NULL);
	}
	worker_build_end(w, b->build_id, end, msg, &ws);
out:
	build_free(&b->bb);
	ws_close(&ws);
	request_free(&req);
	job_free(&j);
	free(done);
	free(msg);
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
			worker_build_end(w, build_id, JOB_FAILED,
			    "the worker could not start a thread", NULL);
		free(b->build_id);
		free(b);
	}
}

/*
 * jobstore_recover's question (loop thread): is the build's domain still in libvirt? Running,
 * or stopped (domains are persistent): virt_watch then tells how it ended. Without libvirt,
 * no: the build can't be watched.
 */
static int
worker_domain_present(void *arg, const char *name)
{
	struct worker	*w = arg;
	struct err	 e;
	int		 rc;

	if (w->virt == NULL)
		return 0;
	err_clear(&e);
	if ((rc = virt_exists(w->virt, name, &e)) == -1)
		log_warnx("domain %s: %s", name, e.msg);
	return rc == 1;
}

/* Picks up what a previous run left: watches installs, fails what can't resume, reruns the rest. */
static int
worker_recover(struct worker *w, struct err *err)
{
	struct job	**jobs;
	enum job_resume	*actions;
	size_t		 n, i;

	if (jobstore_recover(w->js, worker_domain_present, w, &jobs, &actions, &n, err) != 0)
		return -1;
	for (i = 0; i < n; i++) {
		log_info("build %s: after a restart: %s (%s)", jobs[i]->build_id,
		    job_resume_name(actions[i]), job_state_name(jobs[i]->state));
		switch (actions[i]) {
		case RESUME_FAIL:
			/* recorded as failed by jobstore_recover: announce; a thread cleans up */
			worker_event(w, jobs[i]->build_id, JOB_FAILED, jobs[i]->message,
			    jobs[i]->image_id, NULL);
			worker_build_start(w, jobs[i]->build_id, RESUME_FAIL);
			break;
		case RESUME_RESTART:
			/* recorded as queued again by jobstore_recover: announce, clean, run */
			worker_event(w, jobs[i]->build_id, JOB_QUEUED, jobs[i]->message, NULL, NULL);
			worker_cleanup(w, jobs[i]->build_id, JOB_QUEUED, NULL);
			worker_build_start(w, jobs[i]->build_id, actions[i]);
			break;
		case RESUME_WATCH:
			worker_build_start(w, jobs[i]->build_id, actions[i]);
			break;
		case RESUME_NONE:
			break;
		}
	}
	jobs_free(&jobs, n);
	free(actions);
	/* ended builds whose clean-up a stop cut short still hold a token */
	if (jobstore_list(w->js, 0, &jobs, &n, err) != 0)
		return -1;
	for (i = 0; i < n; i++)
		if (job_state_terminal(jobs[i]->state) && jobs[i]->token != NULL)
			worker_build_start(w, jobs[i]->build_id, RESUME_FAIL);
	jobs_free(&jobs, n);
	return 0;
}

struct worker *
worker_new(const struct config *cfg, struct loop *loop, struct err *err)
{
	struct worker	*w;
	char		*path;
	int		 rc;

	w = xcalloc(1, sizeof(*w));
	w->cfg = cfg;
	w->loop = loop;
	pthread_mutex_init(&w->pub_mu, NULL);
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	w->held_tail = &w->held;
	w->loop_thread = pthread_self();
	if (mq_url_parse(cfg->transport_url, &w->url, err) != 0 ||
	    util_mkdirs(cfg->work_dir, err) != 0)
		goto fail;
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
	struct err	 e;

	if ((w->tick = loop_timer_add(w->loop, WORKER_TICK_MS, worker_tick, w, NULL)) < 0 ||
	    (w->calls_timer = loop_timer_add(w->loop, 0, worker_calls_cb, w, NULL)) < 0) {
		err_set(err, ERR_INTERNAL, "no timer");
		return -1;
	}
	/* libvirt reconnects by itself; a worker without it still answers and cleans up */
	err_clear(&e);
	if (virt_event_init(w->loop, &e) != 0 ||
	    (w->virt = virt_open(w->loop, w->cfg->libvirt_uri, &e)) == NULL)
		log_warnx("libvirt %s: %s; builds will fail at assembling", w->cfg->libvirt_uri,
		    e.msg);
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
	 * them end first, serving their loop calls; installs are left running.
	 */
	pthread_mutex_lock(&w->mu);
	w->abandon = 1;
	pthread_cond_broadcast(&w->cv);
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
	if (w->calls_timer > 0)
		loop_timer_remove(w->loop, w->calls_timer);
	virt_free(&w->virt);
	worker_disconnect(w);
	worker_flush_held(w);		/* a last try: the broker may be back */
	worker_drop_held(w);
	mq_close(&w->pub);
	keystone_free(&w->auth);
	http_client_free(&w->auth_http);
	jobstore_close(&w->js);
	mq_url_free(&w->url);
	pthread_mutex_destroy(&w->pub_mu);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
	free(w);
	*wp = NULL;
}
