/* test_http_faults.c — faults injected in front of the real Glance by a small relay in this
 * process: 503/429 answers are retried for idempotent calls (and only for them), a server that
 * stops answering times out. Everything not injected is relayed to Glance unchanged. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/util.h"
#include "tests/cloud/clients_common.h"

enum fault { FAULT_NONE, FAULT_503, FAULT_429, FAULT_STALL };

/* The relay: connections accepted while faults[] has entries get them, in order. */
static struct {
	int			 lfd;
	int			 port;
	struct sockaddr_in	 up;		/* Glance */
	pthread_mutex_t		 mu;
	enum fault		 faults[8];
	int			 nfaults;
	int			 accepted;
	volatile int		 stop;
	pthread_t		 thread;
} relay = { .mu = PTHREAD_MUTEX_INITIALIZER };

static void
relay_faults(int n, ...)
{
	va_list	 ap;
	int	 i;

	pthread_mutex_lock(&relay.mu);
	va_start(ap, n);
	for (i = 0; i < n; i++)
		relay.faults[i] = va_arg(ap, enum fault);
	va_end(ap);
	relay.nfaults = n;
	relay.accepted = 0;
	pthread_mutex_unlock(&relay.mu);
}

/* Reads up to the end of the request head; the body (none in these tests' faults) is left. */
static void
relay_read_head(int fd)
{
	char	 b[8192];
	size_t	 n = 0;
	ssize_t	 r;

	while (n < sizeof(b) - 1 && (r = read(fd, b + n, sizeof(b) - 1 - n)) > 0) {
		n += (size_t)r;
		b[n] = '\0';
		if (strstr(b, "\r\n\r\n") != NULL)
			break;
	}
}

static void
relay_answer(int fd, int status)
{
	char	 msg[512];
	const char *body = "{\"message\": \"injected by the test relay\", \"code\": \"x\"}";
	int	 n;

	n = snprintf(msg, sizeof(msg), "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
	    "Retry-After: 0\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s", status,
	    status == 503 ? "Service Unavailable" : "Too Many Requests", strlen(body), body);
	if (write(fd, msg, (size_t)n) != n)
		return;
}

static int
pending(void)
{
	int	 n;

	pthread_mutex_lock(&relay.mu);
	n = relay.nfaults;
	pthread_mutex_unlock(&relay.mu);
	return n > 0;
}

/* Copies between client and Glance until either closes or a new connection comes. */
static void
relay_pump(int c)
{
	struct pollfd	 p[3];
	char		 b[65536];
	ssize_t		 r;
	int		 u = socket(AF_INET, SOCK_STREAM, 0), i;

	if (connect(u, (struct sockaddr *)&relay.up, sizeof(relay.up)) == -1) {
		close(u);
		return;
	}
	for (;;) {
		p[0].fd = c; p[1].fd = u; p[2].fd = relay.lfd;
		p[0].events = p[1].events = p[2].events = POLLIN;
		if (poll(p, 3, 200) < 0 || relay.stop)
			break;
		if (p[2].revents & POLLIN)
			break;		/* the client opened a new connection: serve that one */
		for (i = 0; i < 2; i++) {
			if (!(p[i].revents & (POLLIN | POLLHUP)))
				continue;
			/* A new request on a kept-alive connection while faults wait: drop the
			 * connection, so the client reconnects and meets them. */
			if (i == 0 && pending())
				goto done;
			if ((r = read(p[i].fd, b, sizeof(b))) <= 0)
				goto done;
			if (write(i == 0 ? u : c, b, (size_t)r) != r)
				goto done;
		}
	}
done:
	close(u);
}

static void *
relay_main(void *arg)
{
	struct pollfd	 p;
	enum fault	 f;
	int		 c, i;

	(void)arg;
	while (!relay.stop) {
		p.fd = relay.lfd;
		p.events = POLLIN;
		if (poll(&p, 1, 200) <= 0)
			continue;
		if ((c = accept(relay.lfd, NULL, NULL)) < 0)
			continue;
		pthread_mutex_lock(&relay.mu);
		f = relay.nfaults > 0 ? relay.faults[0] : FAULT_NONE;
		if (relay.nfaults > 0) {
			for (i = 1; i < relay.nfaults; i++)
				relay.faults[i - 1] = relay.faults[i];
			relay.nfaults--;
		}
		relay.accepted++;
		pthread_mutex_unlock(&relay.mu);
		if (f == FAULT_503 || f == FAULT_429) {
			relay_read_head(c);
			relay_answer(c, f == FAULT_503 ? 503 : 429);
		} else if (f == FAULT_STALL) {
			relay_read_head(c);
			while (!relay.stop && poll(&p, 1, 100) == 0)
				;	/* say nothing until the client gives up and reconnects */
		} else
			relay_pump(c);
		close(c);
	}
	return NULL;
}

static void
relay_start(void)
{
	struct sockaddr_in	 sa;
	socklen_t		 len = sizeof(sa);
	const char		*g = getenv("GLANCE_URL");
	int			 one = 1, port;

	assert_int_equal(sscanf(g, "http://127.0.0.1:%d", &port), 1);
	memset(&relay.up, 0, sizeof(relay.up));
	relay.up.sin_family = AF_INET;
	relay.up.sin_port = htons((uint16_t)port);
	relay.up.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	relay.lfd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(relay.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(relay.lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(relay.lfd, (struct sockaddr *)&sa, &len), 0);
	assert_int_equal(listen(relay.lfd, 8), 0);
	relay.port = ntohs(sa.sin_port);
	assert_int_equal(pthread_create(&relay.thread, NULL, relay_main, NULL), 0);
}

static struct http_client	*http;
static struct keystone		*alice;
static struct glance		*g;

static int
accepted(void)
{
	int	 n;

	pthread_mutex_lock(&relay.mu);
	n = relay.accepted;
	pthread_mutex_unlock(&relay.mu);
	return n;
}

static void
test_idempotent_retried(void **state)
{
	struct err	 e;
	json_t		*list;

	(void)state;
	err_clear(&e);
	relay_faults(2, FAULT_503, FAULT_429);
	list = glance_image_list(g, NULL, &e);
	if (list == NULL)
		fail_msg("list: %s", e.msg);
	assert_int_equal(accepted(), 3);
	json_decref(list);
}

static void
test_post_not_retried(void **state)
{
	struct err	 e;
	json_t		*body, *img;

	(void)state;
	err_clear(&e);
	relay_faults(1, FAULT_503);
	body = json_pack("{s:s,s:s,s:s}", "name", "never", "disk_format", "raw",
	    "container_format", "bare");
	img = glance_image_create(g, body, &e);
	assert_null(img);
	assert_int_equal(e.kind, ERR_REMOTE);
	assert_int_equal(e.status, 503);
	assert_non_null(strstr(e.msg, "injected by the test relay"));
	assert_int_equal(accepted(), 1);
	printf("503: %s\n", e.msg);
	json_decref(body);
}

static void
test_retries_exhausted(void **state)
{
	struct err	 e;

	(void)state;
	err_clear(&e);
	relay_faults(4, FAULT_503, FAULT_503, FAULT_503, FAULT_503);
	assert_null(glance_image_list(g, NULL, &e));
	assert_int_equal(e.status, 503);
	assert_int_equal(accepted(), 4);	/* 1 + the default 3 retries */
}

static void
test_stall_times_out(void **state)
{
	struct http_opts	 o;
	struct http_client	*h;
	struct http_req		 req;
	struct http_resp	 resp;
	struct err		 e;
	char			*url = xasprintf("http://127.0.0.1:%d/versions", relay.port);
	double			 t0;

	(void)state;
	memset(&o, 0, sizeof(o));
	o.timeout_s = 0.5;
	o.retries = -1;
	h = http_client_new(&o);
	relay_faults(1, FAULT_STALL);
	http_req_init(&req);
	http_resp_init(&resp);
	req.url = url;
	err_clear(&e);
	t0 = util_now();
	assert_int_equal(http_request(h, &req, &resp, &e), -1);
	assert_int_equal(e.kind, ERR_TIMEOUT);
	assert_true(util_now() - t0 < 5);
	printf("stall: %s\n", e.msg);
	http_resp_free(&resp);
	http_client_free(&h);
	free(url);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_idempotent_retried),
		cmocka_unit_test(test_post_not_retried),
		cmocka_unit_test(test_retries_exhausted),
		cmocka_unit_test(test_stall_times_out),
	};
	struct http_opts	 o;
	struct err		 e;
	char			*ep;
	int			 rc;

	cloud_require();
	relay_start();
	memset(&o, 0, sizeof(o));
	o.backoff_s = 0.05;
	http = http_client_new(&o);
	alice = cloud_session(http, "");
	ep = xasprintf("http://127.0.0.1:%d", relay.port);
	err_clear(&e);
	g = glance_new(alice, ep, &e);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	relay.stop = 1;
	pthread_join(relay.thread, NULL);
	close(relay.lfd);
	glance_free(&g);
	keystone_free(&alice);
	http_client_free(&http);
	free(ep);
	return rc;
}
