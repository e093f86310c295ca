/*
 * test_worker_amqp.c — isoforged against the minicloud's RabbitMQ:
 * - malformed JSON, wrong types, missing fields, an oversized body (dead-lettered without its
 *   body, never read), an unknown schema, a contract v1 request and a v2 request with a token
 *   field are each dead-lettered to isoforge.rejected with an x-isoforge-error header naming
 *   what is wrong (and never the token), while a valid v2 request is accepted (recorded with
 *   its trust id, acked, announced: isoforge.event/2) and a repeat of it is a no-op;
 * - a restarted worker fails (and announces) builds that can't resume and runs again those
 *   that can, from what its job store says; the failed ones' trusts are deleted;
 * - control v2: a status reply only to RabbitMQ's direct reply-to, never to another reply_to,
 *   and without the console's password or the trust id; a v1 control message is ignored.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "service/common/amqp.h"
#include "tests/cloud/worker_common.h"
#include "service/worker/jobstore.h"

#define REFUSED_TOKEN	"secret-refused-token-0123456789"
#define ISO_ID	"11111111-1111-4111-8111-111111111111"

struct fixture {
	char		*tmp;
	char		*conf;
	char		*log;
	struct mq_url	*url;
	struct mq_conn	*c;		/* publishes, reads rejected */
	struct mq_conn	*ev;		/* consumes events */
	char		*events_queue;
	pid_t		 worker;
};

static struct fixture	fx;

/* Starts isoforged (log to fx.log), ready once it consumes the build queue. */
static void
start_worker(void)
{
	fx.worker = cloud_worker_spawn(fx.conf, fx.log);
	cloud_worker_wait_ready(fx.c, 100);
}

/* SIGTERM, and the worker must exit 0 (also: no sanitizer report). */
static void
stop_worker(void)
{
	cloud_worker_stop(&fx.worker);
}

/* Writes the worker's configuration with work_dir TEST_TMP/<work>. */
static void
write_conf_url(const char *work, const char *url)
{
	cloud_worker_conf(fx.conf, url, "test-worker", fx.tmp, work, NULL);
}

static void
write_conf(const char *work)
{
	write_conf_url(work, cloud_env("ISOFORGE_TRANSPORT_URL"));
}

static int
setup(void **state)
{
	const char	*url = cloud_env("ISOFORGE_TRANSPORT_URL"), *tmp = cloud_env("TEST_TMP");
	struct err	 err;

	(void)state;
	err_clear(&err);
	memset(&fx, 0, sizeof(fx));
	fx.tmp = xstrdup(tmp != NULL ? tmp : "/tmp");
	fx.conf = xasprintf("%s/isoforge.conf", fx.tmp);
	fx.log = xasprintf("%s/isoforged.log", fx.tmp);
	cloud_must(mq_url_parse(url, &fx.url, &err), &err);
	cloud_must(mq_connect(fx.url, 0, 0, 1, 5, &fx.c, &err), &err);
	cloud_must(mq_declare_topology(fx.c, &err), &err);
	/* earlier tests' leftovers must not count */
	cloud_queue_purge(fx.c, MQ_QUEUE_BUILD);
	cloud_queue_purge(fx.c, MQ_QUEUE_REJECTED);
	cloud_must(mq_connect(fx.url, 0, 0, 0, 5, &fx.ev, &err), &err);
	fx.events_queue = mq_declare_private_queue(fx.ev, MQ_EVENTS, "build.#", &err);
	assert_non_null(fx.events_queue);
	cloud_must(mq_consume(fx.ev, fx.events_queue, "events", 1, &err), &err);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	stop_worker();
	free(fx.events_queue);
	mq_close(&fx.ev);
	mq_close(&fx.c);
	mq_url_free(&fx.url);
	free(fx.conf);
	free(fx.log);
	free(fx.tmp);
	return 0;
}

/* Publishes body as a request with message_id id (persistent, JSON). */
static void
publish(const char *id, const char *body, size_t len)
{
	cloud_publish(fx.c, MQ_RK_REQUEST, id, body, len, 10);
}

/* One message from queue by basic.get, waiting up to wait_s; 0 when none came. */
static int
get_one(const char *queue, amqp_message_t *msg, double wait_s)
{
	return cloud_get_one(fx.c, queue, msg, wait_s);
}

struct seen {
	char	*keys[32];
	int	 n;
};

static void
on_event(void *arg, struct mq_conn *c, amqp_envelope_t *env)
{
	struct seen	*s = arg;

	(void)c;
	if (s->n < 32)
		s->keys[s->n++] = xstrndup(env->routing_key.bytes, env->routing_key.len);
}

/* Collects event routing keys for wait_s seconds. */
static void
collect_events(struct seen *s, double wait_s)
{
	struct err	 err;
	double		 end = util_now() + wait_s;

	err_clear(&err);
	while (util_now() < end)
		cloud_must(mq_pump(fx.ev, 0.2, on_event, s, &err), &err);
}

static int
seen_key(const struct seen *s, const char *key)
{
	int	 i, n = 0;

	for (i = 0; i < s->n; i++)
		if (strcmp(s->keys[i], key) == 0)
			n++;
	return n;
}

static void
seen_free(struct seen *s)
{
	int	 i;

	for (i = 0; i < s->n; i++)
		free(s->keys[i]);
	s->n = 0;
}

static void
test_invalid_dead_lettered_valid_accepted(void **state)
{
	static const char valid_id[] = "0b9e7c3e-7d4e-4f7a-9a52-1f2e3d4c5b6a";
	struct {
		const char	*id;
		char		*body;
		const char	*want;		/* in x-isoforge-error */
		const char	*want2;
		int		 got;
	} cases[7];
	amqp_message_t	 msg;
	struct seen	 events = { { 0 }, 0 };
	struct jobstore	*js;
	struct job	*j;
	struct err	 err;
	char		*big, *valid, *reason, *mid, *path, *key, *logtext;
	size_t		 i, k, ncases = sizeof(cases) / sizeof(cases[0]);

	(void)state;
	write_conf("work");
	start_worker();
	big = xmalloc(70 * 1024 + 1);
	memset(big, 'x', 70 * 1024);
	big[70 * 1024] = '\0';
	/* every refused body carries a token: the reasons must never repeat it */
	cases[0].id = "malformed";
	cases[0].body = xstrdup("{\"schema\": \"isoforge.build/2\", \"name\": \"n\", "
	    "\"trust_id\": \"" REFUSED_TOKEN);	/* the JSON ends inside the trust id */
	cases[0].want = "JSON";
	cases[0].want2 = NULL;
	cases[1].id = "wrong-types";
	cases[1].body = xstrdup("{\"schema\": \"isoforge.build/2\", \"trust_id\": \"t1\", "
	    "\"name\": 5, \"iso_image\": \"" ISO_ID "\", \"flavor\": [\"f\"]}");
	cases[1].want = "name: must be";
	cases[1].want2 = "flavor: must be";
	cases[2].id = "missing";
	cases[2].body = xstrdup("{\"schema\": \"isoforge.build/2\", \"name\": \"n\"}");
	cases[2].want = "iso_image";
	cases[2].want2 = "trust_id: missing";
	cases[3].id = "oversized";
	cases[3].body = xasprintf("{\"schema\": \"isoforge.build/2\", \"trust_id\": \"t3\", "
	    "\"name\": \"%s\", \"iso_image\": \"" ISO_ID "\", \"flavor\": \"f\"}", big);
	cases[3].want = "64 KiB";
	cases[3].want2 = "dropped unread";
	cases[4].id = "schema";
	cases[4].body = xstrdup("{\"schema\": \"isoforge.build/99\", \"token\": \"" REFUSED_TOKEN "\", "
	    "\"name\": \"n\", \"iso_image\": \"" ISO_ID "\", \"flavor\": \"f\"}");
	cases[4].want = "schema";
	cases[4].want2 = NULL;
	/* contract v1, with the token it carried: refused for its schema */
	cases[5].id = "v1";
	cases[5].body = xstrdup("{\"schema\": \"isoforge.build/1\", \"token\": \"" REFUSED_TOKEN "\", "
	    "\"name\": \"n\", \"iso_image\": \"" ISO_ID "\", \"flavor\": \"f\"}");
	cases[5].want = "isoforge.build/1 is refused";
	cases[5].want2 = "trust_id";
	/* v2 with a token field as well as its trust */
	cases[6].id = "v2-token";
	cases[6].body = xstrdup("{\"schema\": \"isoforge.build/2\", \"trust_id\": \"t6\", "
	    "\"token\": \"" REFUSED_TOKEN "\", \"name\": \"n\", \"iso_image\": \"" ISO_ID "\", "
	    "\"flavor\": \"f\"}");
	cases[6].want = "token: refused";
	cases[6].want2 = NULL;
	free(big);

	valid = xasprintf("{\"schema\": \"isoforge.build/2\", \"build_id\": \"%s\", "
	    "\"trust_id\": \"validtrust0123\", \"name\": \"t-valid\", \"iso_image\": "
	    "\"" ISO_ID "\", \"flavor\": \"tiny\"}", valid_id);
	for (i = 0; i < ncases; i++) {
		publish(cases[i].id, cases[i].body, strlen(cases[i].body));
		cases[i].got = 0;
	}
	publish("valid", valid, strlen(valid));

	for (k = 0; k < ncases; k++) {
		if (!get_one(MQ_QUEUE_REJECTED, &msg, 15))
			fail_msg("only %zu of %zu refused requests reached %s", k, ncases,
			    MQ_QUEUE_REJECTED);
		mid = (msg.properties._flags & AMQP_BASIC_MESSAGE_ID_FLAG) ?
		    xstrndup(msg.properties.message_id.bytes, msg.properties.message_id.len) :
		    xstrdup("?");
		if (strcmp(mid, "valid") == 0)
			fail_msg("the valid request was dead-lettered");
		for (i = 0; i < ncases && strcmp(cases[i].id, mid) != 0; i++)
			;
		if (i == ncases)
			fail_msg("unexpected message %s in %s", mid, MQ_QUEUE_REJECTED);
		/*
		 * the body is kept unchanged, the reason is added; but an oversized body was never
		 * read (test_worker_bus): its dead letter has none
		 */
		if (strcmp(mid, "oversized") == 0)
			assert_int_equal(msg.body.len, 0);
		else {
			assert_int_equal(msg.body.len, strlen(cases[i].body));
			assert_memory_equal(msg.body.bytes, cases[i].body, msg.body.len);
		}
		reason = mq_header_string(&msg.properties, MQ_ERROR_HEADER);
		if (reason == NULL) {
			fail_msg("%s: no %s header", mid, MQ_ERROR_HEADER);
			return;
		}
		printf("# %s: %s\n", mid, reason);
		if (strcasestr(reason, cases[i].want) == NULL ||
		    (cases[i].want2 != NULL && strstr(reason, cases[i].want2) == NULL))
			fail_msg("%s: reason '%s' does not name '%s'", mid, reason, cases[i].want);
		if (strstr(reason, "secret") != NULL)
			fail_msg("%s: the reason repeats the token: %s", mid, reason);
		assert_non_null(msg.properties._flags & AMQP_BASIC_CONTENT_TYPE_FLAG ?
		    "ok" : NULL);
		cases[i].got++;
		free(reason);
		free(mid);
		amqp_destroy_message(&msg);
	}
	for (i = 0; i < ncases; i++)
		assert_int_equal(cases[i].got, 1);

	/* the valid one: announced as queued, recorded in the job store, not left in the queue */
	collect_events(&events, 3);
	key = xasprintf("build.%s.queued", valid_id);
	if (seen_key(&events, key) != 1)
		fail_msg("event %s seen %d times", key, seen_key(&events, key));
	assert_int_equal(get_one(MQ_QUEUE_REJECTED, &msg, 1) ? 1 : 0, 0);

	/* the same build_id again changes nothing */
	seen_free(&events);
	publish("valid-again", valid, strlen(valid));
	collect_events(&events, 3);
	assert_int_equal(seen_key(&events, key), 0);
	free(key);
	seen_free(&events);
	stop_worker();

	err_clear(&err);
	path = xasprintf("%s/work/jobs.db", fx.tmp);
	cloud_must(jobstore_open(path, &js, &err), &err);
	j = jobstore_get(js, valid_id, &err);
	if (j == NULL)
		fail_msg("%s", err.msg);
	assert_non_null(strstr(j->request, "t-valid"));
	/* the trust id is kept apart from the request (which status replies show) */
	assert_null(strstr(j->request, "validtrust0123"));
	assert_string_equal(j->trust_id, "validtrust0123");
	job_free(&j);
	jobstore_close(&js);
	free(path);

	logtext = util_read_file(fx.log, 1 << 20, NULL, &err);
	assert_non_null(logtext);
	assert_non_null(strstr(logtext, "repeated request"));
	/* tokens are never logged */
	assert_null(strstr(logtext, REFUSED_TOKEN));
	free(logtext);
	for (i = 0; i < ncases; i++)
		free(cases[i].body);
	free(valid);
}

/* Builds left by a "previous run" in the job store, and what a restart must make of them. */
static void
test_restart_resumes_or_fails(void **state)
{
	static const struct {
		const char	*id;
		enum build_state	 state;
		const char	*domain;
		const char	*event;		/* expected next event, NULL: none */
	} b[] = {
		{ "aaaaaaaa-0000-4000-8000-000000000001", BUILD_INSTALLING, "isoforge-gone", "failed" },
		{ "aaaaaaaa-0000-4000-8000-000000000002", BUILD_UPLOADING, NULL, "failed" },
		{ "aaaaaaaa-0000-4000-8000-000000000003", BUILD_FETCHING, NULL, "queued" },
		{ "aaaaaaaa-0000-4000-8000-000000000004", BUILD_ACTIVE, NULL, NULL },
	};
	struct jobstore	*js;
	struct job	*j;
	struct seen	 events = { { 0 }, 0 };
	struct err	 err;
	json_t		*h;
	char		*path, *key, *dir;
	size_t		 i;

	(void)state;
	err_clear(&err);
	dir = xasprintf("%s/work-resume", fx.tmp);
	cloud_must(util_mkdirs(dir, &err), &err);
	path = xasprintf("%s/jobs.db", dir);
	cloud_must(jobstore_open(path, &js, &err), &err);
	for (i = 0; i < sizeof(b) / sizeof(b[0]); i++) {
		cloud_must(jobstore_add(js, b[i].id, "{\"name\": \"r\"}", "notatrust0123", NULL, NULL,
		    &err), &err);
		cloud_must(jobstore_set_state(js, b[i].id, b[i].state, NULL, &err), &err);
		if (b[i].domain != NULL)
			cloud_must(jobstore_set_field(js, b[i].id, "domain", b[i].domain, &err), &err);
	}
	jobstore_close(&js);

	write_conf("work-resume");
	start_worker();
	collect_events(&events, 3);
	stop_worker();
	for (i = 0; i < sizeof(b) / sizeof(b[0]); i++) {
		if (b[i].event == NULL)
			continue;
		key = xasprintf("build.%s.%s", b[i].id, b[i].event);
		if (seen_key(&events, key) != 1)
			fail_msg("event %s seen %d times", key, seen_key(&events, key));
		free(key);
	}
	key = xasprintf("build.%s.", b[3].id);
	for (i = 0; i < (size_t)events.n; i++)
		assert_null(strstr(events.keys[i], key));
	free(key);
	seen_free(&events);

	cloud_must(jobstore_open(path, &js, &err), &err);
	for (i = 0; i < 2; i++) {
		j = jobstore_get(js, b[i].id, &err);
		assert_non_null(j);
		assert_int_equal(j->state, BUILD_FAILED);
		assert_non_null(strstr(j->message, "can't be resumed"));
		/* its trust deleted (Keystone: not there, which counts as deleted) */
		assert_int_equal(json_array_size(j->resources), 0);
		job_free(&j);
	}
	/* the fetching build was queued again, then run again */
	h = jobstore_history(js, b[2].id, &err);
	assert_true(json_array_size(h) >= 4);
	assert_string_equal(json_string_value(json_object_get(json_array_get(h, 2), "state")),
	    "queued");
	assert_string_equal(json_string_value(json_object_get(json_array_get(h, 3), "state")),
	    "resolving");
	json_decref(h);
	jobstore_close(&js);
	free(path);
	free(dir);
}

/*
 * A fault injector in front of the real RabbitMQ: a TCP proxy whose connections the test
 * can cut at once (as a broker restart or a network failure would).
 */
struct proxy {
	int		 listen_fd;
	int		 port;
	int		 ctl[2];	/* write 'c' to cut every connection, 'q' to quit */
	const char	*up_host;
	int		 up_port;
	pthread_t	 thread;
};

static int
proxy_dial(const struct proxy *p)
{
	struct sockaddr_in	 sa;
	int			 fd;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)p->up_port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void *
proxy_run(void *arg)
{
	struct proxy	*p = arg;
	struct pollfd	 pf[66];
	int		 fds[64], n = 0, i, k, c, u;
	char		 buf[16384], cmd;
	ssize_t		 r;

	for (;;) {
		pf[0].fd = p->ctl[0];
		pf[0].events = POLLIN;
		pf[1].fd = p->listen_fd;
		pf[1].events = POLLIN;
		for (i = 0; i < n; i++) {
			pf[2 + i].fd = fds[i];
			pf[2 + i].events = POLLIN;
		}
		if (poll(pf, (nfds_t)(2 + n), -1) < 0)
			continue;
		if (pf[0].revents & POLLIN) {
			if (read(p->ctl[0], &cmd, 1) != 1 || cmd == 'q')
				break;
			for (i = 0; i < n; i++)
				close(fds[i]);
			n = 0;
			continue;
		}
		if ((pf[1].revents & POLLIN) && n + 2 <= 64) {
			c = accept4(p->listen_fd, NULL, NULL, SOCK_CLOEXEC);
			if (c >= 0 && (u = proxy_dial(p)) >= 0) {
				fds[n++] = c;
				fds[n++] = u;
			} else if (c >= 0)
				close(c);
		}
		for (i = 0; i < n; i++) {
			if (!(pf[2 + i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			k = i ^ 1;	/* pairs: client at even, upstream at odd */
			r = read(fds[i], buf, sizeof(buf));
			if (r <= 0 || write(fds[k], buf, (size_t)r) != r) {
				close(fds[i & ~1]);
				close(fds[i | 1]);
				memmove(&fds[i & ~1], &fds[(i & ~1) + 2],
				    (size_t)(n - (i & ~1) - 2) * sizeof(int));
				n -= 2;
				break;	/* the poll array no longer matches */
			}
		}
	}
	for (i = 0; i < n; i++)
		close(fds[i]);
	return NULL;
}

static void
proxy_start(struct proxy *p, const char *host, int port)
{
	struct sockaddr_in	 sa;
	socklen_t		 len = sizeof(sa);

	memset(p, 0, sizeof(*p));
	p->up_host = host;
	p->up_port = port;
	p->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(p->listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(p->listen_fd, 16), 0);
	assert_int_equal(getsockname(p->listen_fd, (struct sockaddr *)&sa, &len), 0);
	p->port = ntohs(sa.sin_port);
	assert_int_equal(pipe2(p->ctl, O_CLOEXEC), 0);
	assert_int_equal(pthread_create(&p->thread, NULL, proxy_run, p), 0);
}

static void
proxy_cmd(struct proxy *p, char cmd)
{
	assert_int_equal(write(p->ctl[1], &cmd, 1), 1);
}

static void
proxy_stop(struct proxy *p)
{
	proxy_cmd(p, 'q');
	pthread_join(p->thread, NULL);
	close(p->listen_fd);
	close(p->ctl[0]);
	close(p->ctl[1]);
}

/* The broker goes away under a running worker: it connects again and goes on working. */
static void
test_reconnects(void **state)
{
	static const char id[] = "bbbbbbbb-0000-4000-8000-000000000001";
	const struct mq_host	*h = &fx.url->hosts[0];
	struct proxy		 p;
	struct seen		 events = { { 0 }, 0 };
	char			*url, *body, *key, *logtext;
	struct err		 err;
	int			 i;

	(void)state;
	proxy_start(&p, h->host, h->port);
	/* credentials as they are in the minicloud's URL: plain letters and digits */
	url = xasprintf("rabbit://%s:%s@127.0.0.1:%d/", h->user, h->pass, p.port);
	write_conf_url("work-reconnect", url);
	start_worker();
	proxy_cmd(&p, 'c');
	/* the consumer disappears with its connection, then comes back */
	for (i = 0; i < 50 && cloud_queue_consumers(fx.c, MQ_QUEUE_BUILD) > 0; i++)
		usleep(100 * 1000);
	for (i = 0; i < 150 && cloud_queue_consumers(fx.c, MQ_QUEUE_BUILD) == 0; i++)
		usleep(100 * 1000);
	assert_true(cloud_queue_consumers(fx.c, MQ_QUEUE_BUILD) >= 1);
	/* and a request after that is taken, its event published over a new publisher */
	body = xasprintf("{\"schema\": \"isoforge.build/2\", \"build_id\": \"%s\", "
	    "\"trust_id\": \"t\", \"name\": \"r\", \"iso_image\": \"" ISO_ID "\", "
	    "\"flavor\": \"tiny\"}", id);
	publish("after-cut", body, strlen(body));
	collect_events(&events, 3);
	key = xasprintf("build.%s.queued", id);
	if (seen_key(&events, key) != 1)
		fail_msg("event %s seen %d times", key, seen_key(&events, key));
	stop_worker();
	proxy_stop(&p);
	err_clear(&err);
	logtext = util_read_file(fx.log, 1 << 20, NULL, &err);
	assert_non_null(logtext);
	assert_non_null(strstr(logtext, "connecting again"));
	assert_null(strstr(logtext, h->pass));
	free(logtext);
	seen_free(&events);
	free(key);
	free(body);
	free(url);
}

/* Publishes a control message on c with reply_to (NULL: none) and correlation_id corr. */
static void
publish_control(struct mq_conn *c, const char *body, const char *reply_to, const char *corr)
{
	amqp_basic_properties_t	 p;
	struct err		 err;

	memset(&p, 0, sizeof(p));
	p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG;
	p.content_type = amqp_cstring_bytes("application/json");
	p.correlation_id = amqp_cstring_bytes(corr);
	if (reply_to != NULL) {
		p._flags |= AMQP_BASIC_REPLY_TO_FLAG;
		p.reply_to = amqp_cstring_bytes(reply_to);
	}
	err_clear(&err);
	cloud_must(mq_publish(c, MQ_EXCHANGE, MQ_RK_CONTROL, &p, body, strlen(body), 0, 10, &err), &err);
}

struct replies {
	int	 n;
	char	*last;
};

static void
on_reply(void *arg, struct mq_conn *c, amqp_envelope_t *env)
{
	struct replies	*r = arg;

	(void)c;
	r->n++;
	free(r->last);
	r->last = xstrndup(env->message.body.bytes, env->message.body.len);
}

static void
pump_for(struct mq_conn *c, struct replies *r, double wait_s)
{
	struct err	 err;
	double		 end = util_now() + wait_s;

	err_clear(&err);
	while (util_now() < end && r->n == 0)
		cloud_must(mq_pump(c, 0.2, on_reply, r, &err), &err);
}

/* Control v2: replies only by direct reply-to, with nothing secret in them. */
static void
test_control_direct_reply_only(void **state)
{
	static const char id[] = "cccccccc-0000-4000-8000-000000000001";
	struct jobstore	*js;
	struct mq_conn	*c = NULL;
	struct replies	 r = { 0, NULL };
	struct err	 err;
	char		*dir, *path, *q, *status, *v1;

	(void)state;
	err_clear(&err);
	dir = xasprintf("%s/work-control", fx.tmp);
	cloud_must(util_mkdirs(dir, &err), &err);
	path = xasprintf("%s/jobs.db", dir);
	cloud_must(jobstore_open(path, &js, &err), &err);
	cloud_must(jobstore_add(js, id, "{\"name\": \"ctl\"}", "secrettrust0123", "p-ctl", NULL, &err),
	    &err);
	cloud_must(jobstore_set_state(js, id, BUILD_CANCELLED, "cancelled", &err), &err);
	cloud_must(jobstore_set_field(js, id, "console", "{\"host\": \"127.0.0.1\", \"port\": 5901, "
	    "\"password\": \"vncsecret\"}", &err), &err);
	jobstore_close(&js);
	write_conf("work-control");
	start_worker();

	cloud_must(mq_connect(fx.url, 0, 0, 0, 5, &c, &err), &err);
	status = xasprintf("{\"schema\": \"isoforge.control/2\", \"action\": \"status\", "
	    "\"build_id\": \"%s\"}", id);
	/* 1. an ordinary queue as reply_to: no answer */
	q = mq_declare_private_queue(c, "", NULL, &err);
	assert_non_null(q);
	cloud_must(mq_consume(c, q, "plain", 1, &err), &err);
	publish_control(c, status, q, "c1");
	pump_for(c, &r, 3);
	assert_int_equal(r.n, 0);
	/* 2. contract v1 (with a token) and direct reply-to: ignored */
	cloud_must(mq_consume(c, MQ_DIRECT_REPLY_TO, "direct", 1, &err), &err);
	v1 = xasprintf("{\"schema\": \"isoforge.control/1\", \"action\": \"status\", "
	    "\"build_id\": \"%s\", \"token\": \"" REFUSED_TOKEN "\"}", id);
	publish_control(c, v1, MQ_DIRECT_REPLY_TO, "c2");
	pump_for(c, &r, 3);
	assert_int_equal(r.n, 0);
	/* 3. v2 with direct reply-to: the status, nothing secret */
	publish_control(c, status, MQ_DIRECT_REPLY_TO, "c3");
	pump_for(c, &r, 10);
	assert_int_equal(r.n, 1);
	printf("# reply: %s\n", r.last);
	assert_non_null(strstr(r.last, "\"state\":\"cancelled\""));
	assert_non_null(strstr(r.last, "5901"));
	assert_null(strstr(r.last, "vncsecret"));
	assert_null(strstr(r.last, "secrettrust0123"));
	stop_worker();
	mq_close(&c);
	free(r.last);
	free(v1);
	free(status);
	free(q);
	free(path);
	free(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_invalid_dead_lettered_valid_accepted),
		cmocka_unit_test(test_restart_resumes_or_fails),
		cmocka_unit_test(test_reconnects),
		cmocka_unit_test(test_control_direct_reply_only),
	};

	if (cloud_env("ISOFORGE_TRANSPORT_URL") == NULL) {
		printf("no ISOFORGE_TRANSPORT_URL (the minicloud's env.sh): skipped\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, setup, teardown);
}
