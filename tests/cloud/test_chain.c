/*
 * test_chain.c — versions of a chain in Glance are claimed atomically and never given twice:
 * - eight builds of one chain register at once through two glance-api processes on one
 *   database (the minicloud's and a second one this test starts), one of them behind a relay
 *   that holds every image create for 2 s: versions 1–8, each once;
 * - a deleted version's number is not given again; another project's images of the same
 *   chain name, even public ones with high versions, do not count.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "service/pipeline/chain.h"
#include "tests/cloud/clients_common.h"

#define NBUILDS		8
#define DELAY_S		2

static const struct chain_key	 key = { (const unsigned char *)"test-chain-key", 14 };

/* The second glance-api (same config and database, another port) and the delaying relay. */
static struct {
	pid_t		 glance_pid;
	int		 glance_port;
	char		*glance_url;	/* the second glance-api */
	int		 lfd;
	int		 relay_port;
	char		*relay_url;	/* the relay in front of it */
	pthread_t	 thread;
	int		 delayed;	/* creates held, under mu */
	pthread_mutex_t	 mu;
} fx = { .glance_pid = -1, .lfd = -1, .mu = PTHREAD_MUTEX_INITIALIZER };

/* A free port on 127.0.0.1 (the kernel's pick). */
static int
free_port(void)
{
	struct sockaddr_in	 a;
	socklen_t		 len = sizeof(a);
	int			 fd = socket(AF_INET, SOCK_STREAM, 0), port;

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

/* Pumps one relayed connection; a chunk from the client that starts an image create is held. */
static void *
relay_conn(void *arg)
{
	int			 c = (int)(intptr_t)arg, u;
	struct sockaddr_in	 a;
	struct pollfd		 p[2];
	char			 buf[65536];
	ssize_t			 n;
	int			 i;

	u = socket(AF_INET, SOCK_STREAM, 0);
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((uint16_t)fx.glance_port);
	if (connect(u, (struct sockaddr *)&a, sizeof(a)) != 0)
		goto out;
	p[0].fd = c;
	p[1].fd = u;
	p[0].events = p[1].events = POLLIN;
	for (;;) {
		if (poll(p, 2, -1) <= 0)
			break;
		for (i = 0; i < 2; i++) {
			if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			if ((n = read(p[i].fd, buf, sizeof(buf))) <= 0)
				goto out;
			/* a create that commits late: Glance B sees it DELAY_S after it was sent */
			if (i == 0 && n > 17 && memcmp(buf, "POST /v2/images ", 16) == 0) {
				pthread_mutex_lock(&fx.mu);
				fx.delayed++;
				pthread_mutex_unlock(&fx.mu);
				sleep(DELAY_S);
			}
			if (write(p[1 - i].fd, buf, (size_t)n) != n)
				goto out;
		}
	}
out:
	close(u);
	close(c);
	return NULL;
}

static void *
relay_accept(void *arg)
{
	pthread_t	 t;
	int		 c;

	(void)arg;
	while ((c = accept(fx.lfd, NULL, NULL)) >= 0) {
		if (pthread_create(&t, NULL, relay_conn, (void *)(intptr_t)c) == 0)
			pthread_detach(t);
		else
			close(c);
	}
	return NULL;
}

/* Starts a second glance-api on the minicloud's configuration and database, and the relay. */
static int
setup(void **state)
{
	struct sockaddr_in	 a;
	struct err		 err;
	struct http_client	*http;
	struct http_req		 req;
	struct http_resp	 resp;
	char			*conf, *text, *at, *line_end, *newtext, *path, *log;
	int			 i, up = 0;

	(void)state;
	err_clear(&err);
	conf = xasprintf("%s/glance/glance-api.conf", cloud_dir());
	if ((text = util_read_file(conf, 1 << 20, NULL, &err)) == NULL)
		fail_msg("%s", err.msg);
	fx.glance_port = free_port();
	if ((at = strstr(text, "bind_port = ")) == NULL)
		fail_msg("%s: no bind_port", conf);
	line_end = strchr(at, '\n');
	newtext = xasprintf("%.*sbind_port = %d%s", (int)(at - text), text, fx.glance_port,
	    line_end != NULL ? line_end : "");
	path = xasprintf("%s/glance/glance-api-b.conf", cloud_dir());
	if (util_write_file(path, newtext, strlen(newtext), 0600, &err) != 0)
		fail_msg("%s", err.msg);
	log = xasprintf("%s/log/glance-api-b.stderr", cloud_dir());
	if ((fx.glance_pid = fork()) == 0) {
		char	*argv[] = { "glance-api", "--config-file", path, NULL };
		int	 fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		dup2(fd, 1);
		dup2(fd, 2);
		execvp(argv[0], argv);
		_exit(127);
	}
	fx.glance_url = xasprintf("http://127.0.0.1:%d", fx.glance_port);
	http = cloud_http();
	for (i = 0; i < 600 && !up; i++) {
		http_req_init(&req);
		http_resp_init(&resp);
		req.url = fx.glance_url;
		up = http_request(http, &req, &resp, NULL) == 0 || resp.status == 300;
		http_resp_free(&resp);
		if (!up)
			usleep(100000);
	}
	http_client_free(&http);
	if (!up)
		fail_msg("the second glance-api did not answer (see %s)", log);
	fx.relay_port = free_port();
	fx.lfd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((uint16_t)fx.relay_port);
	assert_int_equal(bind(fx.lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fx.lfd, 64), 0);
	fx.relay_url = xasprintf("http://127.0.0.1:%d", fx.relay_port);
	assert_int_equal(pthread_create(&fx.thread, NULL, relay_accept, NULL), 0);
	free(conf);
	free(text);
	free(newtext);
	free(path);
	free(log);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	if (fx.glance_pid > 0) {
		kill(fx.glance_pid, SIGTERM);
		waitpid(fx.glance_pid, NULL, 0);
	}
	if (fx.lfd >= 0) {
		shutdown(fx.lfd, SHUT_RDWR);
		close(fx.lfd);
		pthread_join(fx.thread, NULL);
	}
	free(fx.glance_url);
	free(fx.relay_url);
	return 0;
}

/* One build's registration, as the Glance registry makes it (its own session). */
struct racer {
	const char	*chain;
	const char	*endpoint;	/* NULL: the catalog's Glance */
	const char	*prefix;	/* "" alice, "ALT_" bob */
	int		 version;
	char		*id;
	char		 error[1024];
};

static void *
race(void *arg)
{
	struct racer		*r = arg;
	struct http_client	*http = cloud_http();
	struct keystone		*ks = cloud_session(http, r->prefix);
	const struct keystone_token_info *info;
	struct glance		*g = NULL;
	struct err		 err;
	json_t			*body, *img = NULL;

	err_clear(&err);
	if ((info = keystone_info(ks, &err)) != NULL &&
	    (g = glance_new(ks, r->endpoint, &err)) != NULL) {
		body = json_pack("{s:s, s:s, s:s, s:s}", "name", "chain-race", "disk_format",
		    "qcow2", "container_format", "bare", "visibility", "private");
		img = chain_create_image(g, &key, info->project_id, r->chain, body, &r->version,
		    &err);
		json_decref(body);
	}
	if (img != NULL)
		r->id = xstrdup(json_string_value(json_object_get(img, "id")));
	else
		snprintf(r->error, sizeof(r->error), "%s", err.msg);
	json_decref(img);
	glance_free(&g);
	keystone_free(&ks);
	http_client_free(&http);
	return NULL;
}

/* Registers one version of chain as prefix's project; returns its version (id in *idp). */
static int
claim_one(const char *chain, const char *prefix, char **idp)
{
	struct racer	 r;

	memset(&r, 0, sizeof(r));
	r.chain = chain;
	r.prefix = prefix;
	race(&r);
	if (r.id == NULL)
		fail_msg("%s", r.error);
	*idp = r.id;
	return r.version;
}

/* Deletes the images of racers as alice. */
static void
delete_all(char **ids, int n)
{
	struct http_client	*http = cloud_http();
	struct keystone		*ks = cloud_session(http, "");
	struct glance		*g;
	struct err		 err;
	int			 i;

	err_clear(&err);
	g = glance_new(ks, NULL, &err);
	for (i = 0; i < n; i++) {
		if (ids[i] != NULL)
			glance_image_delete(g, ids[i], NULL);
		free(ids[i]);
	}
	glance_free(&g);
	keystone_free(&ks);
	http_client_free(&http);
}

static void
test_two_glances_delayed_creates(void **state)
{
	struct racer	 r[NBUILDS];
	pthread_t	 t[NBUILDS];
	char		 chain[64], uuid[37], *ids[NBUILDS];
	int		 seen[NBUILDS + 1] = { 0 };
	int		 i;

	(void)state;
	util_uuid(uuid);
	snprintf(chain, sizeof(chain), "race-%.8s", uuid);
	memset(r, 0, sizeof(r));
	for (i = 0; i < NBUILDS; i++) {
		r[i].chain = chain;
		r[i].prefix = "";
		/* half through the minicloud's Glance, half through the second one, held 2 s */
		r[i].endpoint = i % 2 == 0 ? NULL : fx.relay_url;
		assert_int_equal(pthread_create(&t[i], NULL, race, &r[i]), 0);
	}
	for (i = 0; i < NBUILDS; i++)
		pthread_join(t[i], NULL);
	for (i = 0; i < NBUILDS; i++) {
		ids[i] = r[i].id;
		if (r[i].error[0] != '\0')
			fail_msg("build %d: %s", i, r[i].error);
		printf("# build %d via %s: version %d (%s)\n", i, r[i].endpoint != NULL ?
		    "the delayed Glance" : "Glance", r[i].version, r[i].id);
		if (r[i].version < 1 || r[i].version > NBUILDS)
			fail_msg("build %d: version %d, not in 1..%d", i, r[i].version, NBUILDS);
		if (seen[r[i].version]++ != 0)
			fail_msg("version %d given twice", r[i].version);
	}
	pthread_mutex_lock(&fx.mu);
	printf("# %d creates held %d s by the relay\n", fx.delayed, DELAY_S);
	assert_true(fx.delayed >= NBUILDS / 2);
	pthread_mutex_unlock(&fx.mu);
	delete_all(ids, NBUILDS);
}

static void
test_never_reused_and_owned(void **state)
{
	char		 chain[64], uuid[37], *ids[4] = { NULL, NULL, NULL, NULL };
	struct http_client *http;
	struct keystone	*ks;
	struct glance	*g;
	struct err	 err;
	json_t		*img, *body;
	int		 v;

	(void)state;
	util_uuid(uuid);
	snprintf(chain, sizeof(chain), "reuse-%.8s", uuid);
	assert_int_equal(claim_one(chain, "", &ids[0]), 1);
	assert_int_equal(claim_one(chain, "", &ids[1]), 2);
	/* the newest version deleted: its number stays taken */
	delete_all(&ids[1], 1);
	v = claim_one(chain, "", &ids[1]);
	printf("# after deleting version 2: version %d\n", v);
	assert_int_equal(v, 3);
	/* bob's public image of a chain of the same name, version 50, is not alice's */
	http = cloud_http();
	ks = cloud_session(http, "ALT_");
	err_clear(&err);
	g = glance_new(ks, NULL, &err);
	body = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "name", "squat", "disk_format",
	    "qcow2", "container_format", "bare", "visibility", "community", "isoforge_chain",
	    chain, "isoforge_version", "50");
	img = glance_image_create(g, body, &err);
	json_decref(body);
	if (img == NULL)
		fail_msg("%s", err.msg);
	ids[2] = xstrdup(json_string_value(json_object_get(img, "id")));
	json_decref(img);
	v = claim_one(chain, "", &ids[3]);
	printf("# with bob's version 50 in the chain: alice's next is %d\n", v);
	assert_int_equal(v, 4);
	glance_image_delete(g, ids[2], NULL);
	free(ids[2]);
	ids[2] = NULL;
	glance_free(&g);
	keystone_free(&ks);
	http_client_free(&http);
	delete_all(ids, 4);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_two_glances_delayed_creates),
		cmocka_unit_test(test_never_reused_and_owned),
	};

	cloud_require();
	return cmocka_run_group_tests(tests, setup, teardown);
}
