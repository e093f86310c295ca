/*
 * test_worker_bus.c — what the bus can do to isoforged, against the minicloud's RabbitMQ:
 * - an 8 MiB request is dead-lettered to isoforge.rejected with the reason and no body, and an
 *   8 MiB control message is ignored, both without the worker's memory growing by their size
 *   (VmHWM of /proc/PID/status before and after): librabbitmq would have allocated the body;
 * - a listener that accepts TCP and never answers: the worker logs the timeout, tries again,
 *   and SIGTERM still stops it in less than 5 s;
 * - AMQP over TLS (the minicloud's TLS listener, its test CA as [oslo_messaging_rabbit]
 *   ssl_ca_file): the worker takes a request; with CAs that did not sign the broker's
 *   certificate it refuses to connect, and says so.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "service/common/amqp.h"
#include "tests/cloud/worker_common.h"

#define BIG		(8 * 1024 * 1024)
/* how much more the worker's peak RSS may be after a BIG message (it would be >= BIG) */
#define GROWTH_MAX	(3 * 1024 * 1024)

struct fixture {
	char		*tmp;
	char		*conf;
	char		*log;
	struct mq_url	*url;
	struct mq_conn	*c;		/* publishes, reads rejected */
	pid_t		 worker;
};

static struct fixture	fx;

/* Starts isoforged (log to fx.log); with wait, until it consumes the build queue. */
static void
start_worker(int wait)
{
	int	 status;

	/* a test that failed midway left its worker: it goes first */
	if (fx.worker > 0) {
		kill(fx.worker, SIGKILL);
		waitpid(fx.worker, &status, 0);
		fx.worker = 0;
	}
	fx.worker = cloud_worker_spawn(fx.conf, fx.log);
	if (wait)
		cloud_worker_wait_ready(fx.c, 150);
}

/* SIGTERM; the worker must exit 0 (no sanitizer report); returns how long it took. */
static double
stop_worker(void)
{
	return cloud_worker_stop(&fx.worker);
}

/*
 * The worker's configuration: transport url, extra lines (a section and its keys) or NULL;
 * the log starts empty.
 */
static void
write_conf(const char *url, const char *extra)
{
	FILE	*f;

	if ((f = fopen(fx.log, "w")) != NULL)
		fclose(f);
	cloud_worker_conf(fx.conf, url, "bus-worker", fx.tmp, "work", extra);
}

/* How many times needle is in the worker's log. */
static int
log_count(const char *needle)
{
	struct err	 err;
	char		*text, *p;
	int		 n = 0;

	err_clear(&err);
	if ((text = util_read_file(fx.log, 16 << 20, NULL, &err)) == NULL)
		return 0;
	for (p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	free(text);
	return n;
}

/* Shows the lines of the worker's log that hold needle, as comments of the test's output. */
static void
log_show(const char *needle)
{
	struct err	 err;
	char		*text, *line, *save = NULL;

	err_clear(&err);
	if ((text = util_read_file(fx.log, 16 << 20, NULL, &err)) == NULL)
		return;
	for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save))
		if (strstr(line, needle) != NULL)
			printf("# log: %s\n", line);
	free(text);
}

/* Waits up to wait_s for needle to be in the log n times at least. */
static int
log_wait(const char *needle, int n, double wait_s)
{
	double	 end = util_now() + wait_s;

	while (util_now() < end) {
		if (log_count(needle) >= n)
			return 1;
		usleep(100 * 1000);
	}
	return log_count(needle) >= n;
}

/* The peak resident size of pid (VmHWM), in bytes. */
static long long
vm_hwm(pid_t pid)
{
	char		 path[64], line[256];
	long long	 kb = -1;
	FILE		*f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	assert_non_null(f = fopen(path, "r"));
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmHWM: %lld kB", &kb) == 1)
			break;
	fclose(f);
	assert_true(kb > 0);
	return kb * 1024;
}

static int
setup(void **state)
{
	const char	*url = cloud_env("ISOFORGE_TRANSPORT_URL"), *tmp = cloud_env("TEST_TMP");
	struct err	 err;

	(void)state;
	if (url == NULL) {
		printf("needs the minicloud (ISOFORGE_TRANSPORT_URL): skipped\n");
		exit(77);
	}
	err_clear(&err);
	memset(&fx, 0, sizeof(fx));
	fx.tmp = xstrdup(tmp != NULL ? tmp : "/tmp");
	fx.conf = xasprintf("%s/isoforge.conf", fx.tmp);
	fx.log = xasprintf("%s/isoforged.log", fx.tmp);
	cloud_must(mq_url_parse(url, &fx.url, &err), &err);
	cloud_must(mq_connect(fx.url, 0, 0, 1, 5, &fx.c, &err), &err);
	/* this side must read the 8 MiB messages back */
	fx.c->max_body = 2 * BIG;
	cloud_must(mq_declare_topology(fx.c, &err), &err);
	cloud_queue_purge(fx.c, MQ_QUEUE_BUILD);
	cloud_queue_purge(fx.c, MQ_QUEUE_REJECTED);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	stop_worker();
	mq_close(&fx.c);
	mq_url_free(&fx.url);
	free(fx.conf);
	free(fx.log);
	free(fx.tmp);
	return 0;
}

/* Publishes body on the isoforge exchange with key, message_id id. */
static void
publish(const char *key, const char *id, const char *body, size_t len)
{
	cloud_publish(fx.c, key, id, body, len, 30);
}

/* One message from queue by basic.get, waiting up to wait_s; 0 when none came. */
static int
get_one(const char *queue, amqp_message_t *msg, double wait_s)
{
	return cloud_get_one(fx.c, queue, msg, wait_s);
}

/* A body of BIG bytes that is a request but for its size (a 8 MiB name). */
static char *
big_request(void)
{
	static const char	 head[] = "{\"schema\": \"isoforge.build/1\", \"token\": \"t\", "
	    "\"iso_image\": \"11111111-1111-4111-8111-111111111111\", \"flavor\": \"f\", "
	    "\"name\": \"";
	char			*b = xmalloc(BIG);

	memset(b, 'x', BIG);
	memcpy(b, head, sizeof(head) - 1);
	memcpy(b + BIG - 2, "\"}", 2);
	return b;
}

static void
test_oversized_dropped_unread(void **state)
{
	amqp_message_t	 msg;
	long long	 before, after;
	char		*big, *reason, *mid, small[] = "{not json";
	int		 ok;

	(void)state;
	write_conf(cloud_env("ISOFORGE_TRANSPORT_URL"), NULL);
	start_worker(1);
	/* settled: connected, consuming, its first tick done */
	sleep(2);
	before = vm_hwm(fx.worker);
	big = big_request();
	publish(MQ_RK_REQUEST, "huge", big, BIG);

	ok = get_one(MQ_QUEUE_REJECTED, &msg, 30);
	if (!ok) {
		free(big);
		fail_msg("the 8 MiB request was not dead-lettered");
	}
	mid = xstrndup(msg.properties.message_id.bytes, msg.properties.message_id.len);
	assert_string_equal(mid, "huge");
	reason = mq_header_string(&msg.properties, MQ_ERROR_HEADER);
	assert_non_null(reason);
	printf("# dead letter of the 8 MiB request: %zu bytes of body, %s: %s\n", msg.body.len,
	    MQ_ERROR_HEADER, reason);
	assert_non_null(strstr(reason, "8388608 bytes"));
	assert_non_null(strstr(reason, "64 KiB"));
	/* never read, so not sent again */
	assert_int_equal(msg.body.len, 0);
	free(reason);
	free(mid);
	amqp_destroy_message(&msg);
	after = vm_hwm(fx.worker);
	printf("# VmHWM %lld kB before, %lld kB after the 8 MiB request\n", before / 1024,
	    after / 1024);
	if (after - before > GROWTH_MAX)
		fail_msg("the worker's peak RSS grew by %lld kB for an 8 MiB request",
		    (after - before) / 1024);

	/* a control message as big: ignored, with a line, and not held either */
	publish(MQ_RK_CONTROL, "huge-control", big, BIG);
	if (!log_wait("control message ignored: body: 8388608 bytes", 1, 30))
		fail_msg("the 8 MiB control message was not ignored with a reason");
	after = vm_hwm(fx.worker);
	printf("# VmHWM %lld kB after the 8 MiB control message\n", after / 1024);
	if (after - before > GROWTH_MAX)
		fail_msg("the worker's peak RSS grew by %lld kB for 8 MiB messages",
		    (after - before) / 1024);
	free(big);

	/* still consuming on the same connection: a small bad request is refused as ever */
	publish(MQ_RK_REQUEST, "small", small, strlen(small));
	ok = get_one(MQ_QUEUE_REJECTED, &msg, 15);
	if (!ok)
		fail_msg("the worker stopped taking requests after the big ones");
	assert_int_equal(msg.body.len, strlen(small));
	amqp_destroy_message(&msg);
	assert_int_equal(log_count("connecting again"), 0);
	stop_worker();
}

/* A TCP listener on 127.0.0.1 that the kernel accepts connections for; nobody ever answers. */
static int
silent_listener(int *port)
{
	struct sockaddr_in	 sa;
	socklen_t		 len = sizeof(sa);
	int			 fd;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 64), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	*port = ntohs(sa.sin_port);
	return fd;
}

static void
test_silent_broker(void **state)
{
	struct pollfd	 pf;
	char		*url;
	double		 took;
	int		 fd, held, port;

	(void)state;
	fd = silent_listener(&port);
	url = xasprintf("rabbit://guest:guest@127.0.0.1:%d/", port);
	write_conf(url, NULL);
	start_worker(0);
	/* a timeout, then another attempt that times out too */
	if (!log_wait("timed out", 2, 40))
		fail_msg("the worker did not time out twice against a silent broker");
	assert_true(log_count("trying again") >= 2);
	/*
	 * SIGTERM as the next attempt's handshake starts: it must not hold the worker. The
	 * connections of the earlier attempts wait in the accept queue: they go first.
	 */
	assert_int_equal(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
	while ((held = accept(fd, NULL, NULL)) >= 0)
		close(held);
	pf.fd = fd;
	pf.events = POLLIN;
	assert_int_equal(poll(&pf, 1, 70 * 1000), 1);
	assert_true((held = accept(fd, NULL, NULL)) >= 0);
	took = stop_worker();
	close(held);
	log_show("RabbitMQ");
	log_show("signal");
	printf("# stopped %.2f s after SIGTERM\n", took);
	if (took >= 5.0)
		fail_msg("the worker took %.1f s to stop after SIGTERM", took);
	close(fd);
	free(url);
}

static void
test_tls(void **state)
{
	const char	*tls_url = cloud_env("ISOFORGE_TRANSPORT_URL_TLS"), *ca = cloud_env("RABBITMQ_TLS_CA");
	amqp_message_t	 msg;
	char		*extra, bad[] = "{\"schema\": \"isoforge.build/1\"";

	(void)state;
	if (tls_url == NULL || ca == NULL)
		fail_msg("the minicloud has no TLS listener (ISOFORGE_TRANSPORT_URL_TLS)");
	/* the test CA: connects over TLS and takes requests */
	extra = xasprintf("[oslo_messaging_rabbit]\nssl_ca_file = %s\n", ca);
	write_conf(tls_url, extra);
	free(extra);
	start_worker(1);
	publish(MQ_RK_REQUEST, "over-tls", bad, strlen(bad));
	if (!get_one(MQ_QUEUE_REJECTED, &msg, 15))
		fail_msg("the worker over TLS did not take the request");
	assert_int_equal(msg.body.len, strlen(bad));
	amqp_destroy_message(&msg);
	if (!log_wait("connected to RabbitMQ at localhost:", 1, 10)) {
		log_show("RabbitMQ");
		fail_msg("the worker did not say it connected over TLS");
	}
	stop_worker();

	/* the system's CAs did not sign the test broker's certificate: refused, and said why */
	write_conf(tls_url, NULL);
	start_worker(0);
	if (!log_wait("the broker's certificate is not signed by a trusted CA", 1, 20))
		fail_msg("no clear line about an untrusted broker certificate");
	log_show("TLS");
	assert_int_equal(log_count("connected to RabbitMQ"), 0);
	stop_worker();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_oversized_dropped_unread),
		cmocka_unit_test(test_silent_broker),
		cmocka_unit_test(test_tls),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
