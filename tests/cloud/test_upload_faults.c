/*
 * test_upload_faults.c — Glance failing during a build's upload ends in a retry or a clean
 * failure, never a half-made image. The pipeline's uploading step (registry_glance_ops.add,
 * the very call build_run makes after the snapshot) talks to the real Glance through a relay
 * in this process ([glance] endpoint = the relay) that cuts the image data PUT
 * (/v2/images/ID/file) in the middle and then refuses connections for a while (its listening
 * socket closed: connection refused), or refuses connections before anything is created.
 * Afterwards the images of the build are listed as admin, any status: only the active one
 * may be there (queued, saving, killed all count as half-made).
 *
 * Why not a whole build in tests/worker: the install and snapshot add ~40 s and a VM and
 * touch nothing of the upload; the worker's own clean-up after a failed upload deletes the
 * images recorded through the same notifier (resource glance_image) and cloud_delete_image.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "drivers/glance.h"
#include "service/common/config.h"
#include "service/pipeline/cloud.h"
#include "service/pipeline/request.h"
#include "tests/cloud/clients_common.h"

#define CUT_AFTER	(256 * 1024)	/* bytes of image data relayed before a cut */

/* The relay: pumps connections to Glance, one thread each; cuts and refuses on demand. */
static struct {
	int			 lfd;		/* -1 while refusing */
	int			 port;
	struct sockaddr_in	 up;
	pthread_mutex_t		 mu;
	int			 cut_budget;	/* uploads still to cut */
	int			 cuts;		/* uploads cut */
	double			 refuse_s;	/* refuse connections this long after a cut */
	double			 refused_until;
	int			 refused;	/* connection attempts refused (seen as closed) */
	int			 active;	/* connection threads */
	volatile int		 stop;
	pthread_t		 thread;
} relay = { .lfd = -1, .mu = PTHREAD_MUTEX_INITIALIZER };

static double
now(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
relay_set(int cuts, double refuse_s, double refuse_now_s)
{
	pthread_mutex_lock(&relay.mu);
	relay.cut_budget = cuts;
	relay.cuts = 0;
	relay.refuse_s = refuse_s;
	relay.refused_until = refuse_now_s > 0 ? now() + refuse_now_s : 0;
	pthread_mutex_unlock(&relay.mu);
}

static int
relay_cuts(void)
{
	int	 n;

	pthread_mutex_lock(&relay.mu);
	n = relay.cuts;
	pthread_mutex_unlock(&relay.mu);
	return n;
}

/* Copies between the client and Glance; cuts an image data PUT after CUT_AFTER bytes. */
static void *
relay_conn(void *arg)
{
	struct pollfd	 p[2];
	char		 b[65536];
	ssize_t		 r;
	size_t		 sent = 0;
	int		 c = (int)(intptr_t)arg, u, i, in_put = 0, cut;

	u = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(u, (struct sockaddr *)&relay.up, sizeof(relay.up)) == -1)
		goto done;
	while (!relay.stop) {
		pthread_mutex_lock(&relay.mu);
		cut = now() < relay.refused_until;	/* refusing: kept-alive ones go too */
		pthread_mutex_unlock(&relay.mu);
		if (cut)
			break;
		p[0].fd = c; p[1].fd = u;
		p[0].events = p[1].events = POLLIN;
		if (poll(p, 2, 200) < 0)
			break;
		for (i = 0; i < 2; i++) {
			if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			if ((r = read(p[i].fd, b, sizeof(b))) <= 0)
				goto done;
			if (i == 0 && memmem(b, (size_t)r, "PUT /v2/images/", 15) != NULL &&
			    memmem(b, (size_t)r, "/file ", 6) != NULL) {
				in_put = 1;
				sent = 0;
			}
			if (i == 0 && in_put) {
				sent += (size_t)r;
				cut = 0;
				pthread_mutex_lock(&relay.mu);
				if (sent > CUT_AFTER && relay.cut_budget > 0) {
					relay.cut_budget--;
					relay.cuts++;
					relay.refused_until = now() + relay.refuse_s;
					cut = 1;
				}
				pthread_mutex_unlock(&relay.mu);
				if (cut)
					goto done;	/* mid-body: both sides see the close */
			}
			if (write(i == 0 ? u : c, b, (size_t)r) != r)
				goto done;
		}
	}
done:
	close(u);
	close(c);
	pthread_mutex_lock(&relay.mu);
	relay.active--;
	pthread_mutex_unlock(&relay.mu);
	return NULL;
}

static int
relay_listen(void)
{
	struct sockaddr_in	 sa;
	socklen_t		 len = sizeof(sa);
	int			 one = 1, fd;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)relay.port);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 16) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
		close(fd);
		return -1;
	}
	relay.port = ntohs(sa.sin_port);
	return fd;
}

static void *
relay_main(void *arg)
{
	struct pollfd	 p;
	pthread_t	 t;
	int		 c, refusing;

	(void)arg;
	while (!relay.stop) {
		pthread_mutex_lock(&relay.mu);
		refusing = now() < relay.refused_until;
		pthread_mutex_unlock(&relay.mu);
		if (refusing) {
			if (relay.lfd != -1) {
				close(relay.lfd);	/* connect() now gets ECONNREFUSED */
				relay.lfd = -1;
			}
			usleep(20000);
			continue;
		}
		if (relay.lfd == -1 && (relay.lfd = relay_listen()) == -1) {
			usleep(20000);
			continue;
		}
		p.fd = relay.lfd;
		p.events = POLLIN;
		if (poll(&p, 1, 50) <= 0 || (c = accept(relay.lfd, NULL, NULL)) < 0)
			continue;
		pthread_mutex_lock(&relay.mu);
		relay.active++;
		pthread_mutex_unlock(&relay.mu);
		if (pthread_create(&t, NULL, relay_conn, (void *)(intptr_t)c) != 0) {
			close(c);
			pthread_mutex_lock(&relay.mu);
			relay.active--;
			pthread_mutex_unlock(&relay.mu);
			continue;
		}
		pthread_detach(t);
	}
	if (relay.lfd != -1)
		close(relay.lfd);
	return NULL;
}

static void
relay_start(void)
{
	int	 port;

	assert_int_equal(sscanf(getenv("GLANCE_URL"), "http://127.0.0.1:%d", &port), 1);
	memset(&relay.up, 0, sizeof(relay.up));
	relay.up.sin_family = AF_INET;
	relay.up.sin_port = htons((uint16_t)port);
	relay.up.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	relay.port = 0;
	relay.lfd = relay_listen();
	assert_true(relay.lfd != -1);
	assert_int_equal(pthread_create(&relay.thread, NULL, relay_main, NULL), 0);
}

static void
relay_stop(void)
{
	int	 n;

	relay.stop = 1;
	pthread_join(relay.thread, NULL);
	do {
		pthread_mutex_lock(&relay.mu);
		n = relay.active;
		pthread_mutex_unlock(&relay.mu);
		if (n > 0)
			usleep(50000);
	} while (n > 0);
}

static struct config	*cfg;
static char		*disk, *disk_hash, *iso_id;
static long long	 disk_size;
static struct http_client *http;
static struct keystone	*alice, *admin;
static char		*alice_trust;	/* alice's trust to isoforge, for the builds */
static struct glance	*alice_g, *admin_g;

/* sha512 of a file, hex (Glance's os_hash_value); caller frees. */
static char *
file_sha512(const char *path, long long *size)
{
	EVP_MD_CTX	*ctx = EVP_MD_CTX_new();
	unsigned char	 md[EVP_MAX_MD_SIZE], b[65536];
	unsigned int	 n;
	size_t		 r;
	FILE		*f = fopen(path, "rb");
	char		*hex;

	assert_non_null(f);
	*size = 0;
	EVP_DigestInit_ex(ctx, EVP_sha512(), NULL);
	while ((r = fread(b, 1, sizeof(b), f)) > 0) {
		EVP_DigestUpdate(ctx, b, r);
		*size += (long long)r;
	}
	fclose(f);
	EVP_DigestFinal_ex(ctx, md, &n);
	EVP_MD_CTX_free(ctx);
	hex = xcalloc(2 * n + 1, 1);
	util_hex(md, n, hex);
	return hex;
}

static void
run(char **argv)
{
	int	 status;
	pid_t	 pid = fork();

	if (pid == 0) {
		execvp(argv[0], argv);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static int
setup(void **state)
{
	struct err	 err;
	char		*text, *raw, *iso, *of, *dd[6], *conv[9];
	const char	*tmp = getenv("TEST_TMP") != NULL ? getenv("TEST_TMP") : "/tmp";

	(void)state;
	err_clear(&err);
	relay_start();
	text = xasprintf("[DEFAULT]\ntransport_url = rabbit://x:y@127.0.0.1:1/\n"
	    "[keystone_authtoken]\nauth_url = %s\nusername = %s\npassword = \"%s\"\n"
	    "project_name = %s\n[glance]\nendpoint = http://127.0.0.1:%d\n"
	    "[builds]\nwork_dir = %s/work\ncache_dir = %s/cache\n",
	    getenv("OS_AUTH_URL"), getenv("ISOFORGE_SERVICE_USERNAME"),
	    getenv("ISOFORGE_SERVICE_PASSWORD"), getenv("ISOFORGE_SERVICE_PROJECT_NAME"),
	    relay.port, tmp, tmp);
	cfg = config_parse(text, "test", &err);
	free(text);
	if (cfg == NULL)
		fail_msg("%s", err.msg);
	/* a real qcow2 with 3 MiB of data: Glance inspects what it is given */
	raw = xasprintf("%s/disk.raw", tmp);
	of = xasprintf("of=%s", raw);
	dd[0] = "dd"; dd[1] = "if=/dev/urandom"; dd[2] = of; dd[3] = "bs=1M"; dd[4] = "count=3";
	dd[5] = NULL;
	run(dd);
	disk = xasprintf("%s/disk.qcow2", tmp);
	conv[0] = "qemu-img"; conv[1] = "convert"; conv[2] = "-q"; conv[3] = "-f"; conv[4] = "raw";
	conv[5] = "-O"; conv[6] = "qcow2"; conv[7] = raw; conv[8] = NULL;
	{
		char	*argv[10];

		memcpy(argv, conv, 8 * sizeof(char *));
		argv[8] = disk;
		argv[9] = NULL;
		run(argv);
	}
	free(of);
	free(raw);
	disk_hash = file_sha512(disk, &disk_size);
	assert_true(disk_size > 2 * CUT_AFTER);
	http = cloud_http();
	alice = cloud_session(http, "");
	alice_trust = cloud_trust(alice);
	admin = cloud_session(http, "ADMIN_");
	alice_g = glance_new(alice, NULL, &err);
	admin_g = glance_new(admin, NULL, &err);
	assert_non_null(alice_g);
	assert_non_null(admin_g);
	/* the source ISO the request names (resolved directly, not through the relay) */
	iso = xasprintf("%s/src.iso", tmp);
	if (cloud_fake_iso(alice_g, iso, "t-upload-faults-src", &iso_id, &err) != 0)
		fail_msg("%s", err.msg);
	free(iso);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	relay_stop();
	glance_image_delete(alice_g, iso_id, NULL);
	free(iso_id);
	glance_free(&alice_g);
	glance_free(&admin_g);
	keystone_trust_delete(alice, alice_trust, NULL);
	free(alice_trust);
	keystone_free(&alice);
	keystone_free(&admin);
	http_client_free(&http);
	config_free(&cfg);
	free(disk);
	free(disk_hash);
	return 0;
}

/* The images of build_id as admin, any status (deleted ones are gone from lists). */
static json_t *
images_of(const char *build_id)
{
	struct glance_list_opts	 o;
	struct err		 err;
	json_t			*l;

	memset(&o, 0, sizeof(o));
	o.filters = json_pack("{s:s}", "isoforge_build_id", build_id);
	err_clear(&err);
	l = glance_image_list(admin_g, &o, &err);
	json_decref(o.filters);
	if (l == NULL)
		fail_msg("%s", err.msg);
	return l;
}

/* The pipeline's notifier, as far as uploading tells it: images created. */
static void
on_resource(void *ctx, struct build *b, const char *kind, const char *value, int added)
{
	(void)b;
	(void)value;
	if (strcmp(kind, "glance_image") == 0 && added)
		(*(int *)ctx)++;
}

static const struct notifier_ops test_notifier = { .resource = on_resource };

/* A fresh build of a chain of its own, resolved by the Glance source (sessions open). */
static struct build *
resolved_build(const char *build_id, const char *chain, struct cloud *c, int *created,
    struct err *err)
{
	struct build_request	*req;
	struct build		*b;
	json_t			*o;
	char			*s;

	o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "schema", "isoforge.build/2",
	    "trust_id", alice_trust, "name", "t-upload-faults", "iso_image", iso_id,
	    "flavor", "isoforge.tiny", "chain", chain);
	s = json_dumps(o, 0);
	json_decref(o);
	req = request_parse(s, strlen(s), REQUEST_FULL, err);
	free(s);
	if (req == NULL)
		fail_msg("%s", err->msg);
	cloud_init(c, cfg, req->trust_id);
	b = build_new(build_id);
	build_apply_request(b, req);
	request_free(&req);
	b->notifier = &test_notifier;
	b->notifier_ctx = created;
	*created = 0;
	if (source_glance_ops.resolve(c, b, err) != 0)
		fail_msg("%s", err->msg);
	return b;
}

/* The uploading step of b; returns the image id (caller frees) or NULL (err). */
static char *
upload(struct build *b, struct cloud *c, struct err *err)
{
	json_t	*props = build_image_properties(b, "2026-11-29T00:00:00Z");
	int	 rc;

	rc = registry_glance_ops.add(c, b, disk, props, err);
	json_decref(props);
	return rc == 0 ? xstrdup(b->image_id) : NULL;
}

/* The uploading step of a fresh build through the relay; the image id or NULL (err). */
static char *
register_through_relay(const char *build_id, int *created, struct err *err)
{
	struct build	*b;
	struct cloud	 c;
	char		*id, chain[64], uuid[37];

	util_uuid(uuid);
	snprintf(chain, sizeof(chain), "t-upfault-%s", uuid);
	b = resolved_build(build_id, chain, &c, created, err);
	id = upload(b, &c, err);
	build_free(&b);
	cloud_close(&c);
	return id;
}

/* One cut in the middle of the data, then Glance refuses for 3 s: a new image, active. */
static void
test_cut_upload_retried(void **state)
{
	struct err	 err;
	json_t		*l, *img;
	char		*id, build_id[37];
	int		 created;

	(void)state;
	util_uuid(build_id);
	err_clear(&err);
	relay_set(1, 3.0, 0);
	id = register_through_relay(build_id, &created, &err);
	if (id == NULL)
		fail_msg("no image after a cut upload: %s", err.msg);
	assert_int_equal(relay_cuts(), 1);
	assert_int_equal(created, 2);		/* the half-made one, then this one */
	l = images_of(build_id);
	assert_int_equal(json_array_size(l), 1);
	img = json_array_get(l, 0);
	assert_string_equal(json_string_value(json_object_get(img, "id")), id);
	assert_string_equal(json_string_value(json_object_get(img, "status")), "active");
	assert_int_equal(json_integer_value(json_object_get(img, "size")), disk_size);
	assert_string_equal(json_string_value(json_object_get(img, "os_hash_value")), disk_hash);
	json_decref(l);
	glance_image_delete(alice_g, id, NULL);
	free(id);
}

/* Every upload cut, Glance refusing for 2 s after each: failed with the reason, nothing left. */
static void
test_cut_every_upload_fails_clean(void **state)
{
	struct err	 err;
	json_t		*l;
	char		*id, build_id[37];
	int		 created, cuts;

	(void)state;
	util_uuid(build_id);
	err_clear(&err);
	relay_set(100, 2.0, 0);
	id = register_through_relay(build_id, &created, &err);
	cuts = relay_cuts();
	relay_set(0, 0, 0);
	assert_null(id);
	print_message("failed as expected: %s\n", err.msg);
	assert_int_not_equal(err.kind, ERR_NONE);
	assert_non_null(strstr(err.msg, "after 3 attempts"));
	assert_int_equal(cuts, 3);
	assert_int_equal(created, 3);
	l = images_of(build_id);
	if (json_array_size(l) != 0)
		fail_msg("%zu half-made images of the build left, first %s", json_array_size(l),
		    json_string_value(json_object_get(json_array_get(l, 0), "status")));
	json_decref(l);
}

/*
 * Glance refusing connections for 3 s when the upload step starts: waited out (the chain's
 * listing is an idempotent call the driver tries again; a refused create is tried again by
 * the registry), active.
 */
static void
test_refused_then_retried(void **state)
{
	struct err	 err;
	json_t		*l;
	char		*id, build_id[37];
	int		 created;
	double		 t0, took;

	(void)state;
	util_uuid(build_id);
	err_clear(&err);
	relay_set(0, 0, 0);
	/* resolving goes through the relay too: refuse only once it is done */
	{
		struct build	*b;
		struct cloud	 c;
		char		 chain[64], uuid[37];

		util_uuid(uuid);
		snprintf(chain, sizeof(chain), "t-uprefuse-%.8s", uuid);
		b = resolved_build(build_id, chain, &c, &created, &err);
		relay_set(0, 0, 3.0);
		usleep(100000);		/* the relay closes its socket */
		t0 = now();
		id = upload(b, &c, &err);
		took = now() - t0;
		build_free(&b);
		cloud_close(&c);
	}
	if (id == NULL)
		fail_msg("no image after Glance refused for 3 s: %s", err.msg);
	print_message("registered %.1f s after Glance began refusing for 3 s\n", took + 0.1);
	assert_true(took > 2.5);		/* it did meet the refusal */
	assert_true(created >= 1);
	l = images_of(build_id);
	assert_int_equal(json_array_size(l), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(l, 0), "status")),
	    "active");
	json_decref(l);
	glance_image_delete(alice_g, id, NULL);
	free(id);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cut_upload_retried),
		cmocka_unit_test(test_cut_every_upload_fails_clean),
		cmocka_unit_test(test_refused_then_retried),
	};

	cloud_require();
	return cmocka_run_group_tests(tests, setup, teardown);
}
