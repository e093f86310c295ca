/* test_http_tls.c — TLS verification against a real TLS server (openssl s_server with a
 * self-signed certificate made here): refused by default, accepted with the CA file option,
 * accepted without verification when asked to be insecure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "drivers/http.h"
#include "base/proc.h"
#include "base/util.h"

static char	*url, *cert;
static pid_t	 server = -1;

static int
free_port(void)
{
	struct sockaddr_in	 sa;
	socklen_t		 len = sizeof(sa);
	int			 s = socket(AF_INET, SOCK_STREAM, 0), port;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(s, (struct sockaddr *)&sa, sizeof(sa)) == -1 ||
	    getsockname(s, (struct sockaddr *)&sa, &len) == -1)
		abort();
	port = ntohs(sa.sin_port);
	close(s);
	return port;
}

static int
listening(int port)
{
	struct sockaddr_in	 sa;
	int			 s = socket(AF_INET, SOCK_STREAM, 0), ok;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ok = connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(s);
	return ok;
}

static int
setup(void **state)
{
	const char	*tmp = getenv("TEST_TMP") ? getenv("TEST_TMP") : "/tmp";
	char		*key = xasprintf("%s/tls-key.pem", tmp), *accept;
	struct err	 e;
	int		 port = free_port(), i;

	(void)state;
	cert = xasprintf("%s/tls-cert.pem", tmp);
	{
		char *const argv[] = { "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
		    "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1",
		    "-addext", "subjectAltName=IP:127.0.0.1", NULL };

		err_clear(&e);
		if (proc_run(argv, 60, NULL, &e) == -1) {
			printf("openssl req: %s\n", e.msg);
			return -1;
		}
	}
	accept = xasprintf("127.0.0.1:%d", port);
	if ((server = fork()) == 0) {
		char *const argv[] = { "openssl", "s_server", "-quiet", "-www", "-accept", accept,
		    "-cert", cert, "-key", key, NULL };

		execvp(argv[0], argv);
		_exit(127);
	}
	for (i = 0; i < 100 && !listening(port); i++)
		usleep(100000);
	url = xasprintf("https://127.0.0.1:%d/", port);
	free(accept);
	free(key);
	return listening(port) ? 0 : -1;
}

static int
teardown(void **state)
{
	(void)state;
	if (server > 0) {
		kill(server, SIGTERM);
		waitpid(server, NULL, 0);
	}
	free(url);
	free(cert);
	return 0;
}

/* GET url with opts; returns http_request's result and fills e. */
static int
get(const struct http_opts *o, struct err *e)
{
	struct http_client	*h = http_client_new(o);
	struct http_req		 req;
	struct http_resp	 resp;
	int			 rc;

	http_req_init(&req);
	http_resp_init(&resp);
	req.url = url;
	err_clear(e);
	rc = http_request(h, &req, &resp, e);
	http_resp_free(&resp);
	http_client_free(&h);
	return rc;
}

static void
test_untrusted_refused(void **state)
{
	struct http_opts	 o;
	struct err		 e;

	(void)state;
	memset(&o, 0, sizeof(o));
	o.retries = -1;
	assert_int_equal(get(&o, &e), -1);
	assert_int_equal(e.kind, ERR_NET);
	assert_non_null(strstr(e.msg, "TLS"));
	printf("untrusted: %s\n", e.msg);
}

static void
test_ca_file_trusted(void **state)
{
	struct http_opts	 o;
	struct err		 e;

	(void)state;
	memset(&o, 0, sizeof(o));
	o.ca_file = cert;
	if (get(&o, &e) == -1)
		fail_msg("with the CA file: %s", e.msg);
}

static void
test_insecure(void **state)
{
	struct http_opts	 o;
	struct err		 e;

	(void)state;
	memset(&o, 0, sizeof(o));
	o.insecure = 1;
	if (get(&o, &e) == -1)
		fail_msg("insecure: %s", e.msg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_untrusted_refused),
		cmocka_unit_test(test_ca_file_trusted),
		cmocka_unit_test(test_insecure),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
