/* test_glance.c — Glance v2 against the minicloud: the image life cycle (create, upload,
 * show, download verified, properties, tags, protected, delete), listing with filters and
 * pages, and the errors: 404, 409, another project's private image, a corrupted stored file
 * (checked by the sha512 multihash, and by md5 for an image that has none). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "drivers/hash.h"
#include "base/util.h"
#include "tests/cloud/clients_common.h"

static struct http_client	*http;
static struct keystone		*alice;
static struct glance		*g;
static char			 tmpdir[4096];

/* Writes n bytes of a pattern to a new file; returns its path (caller frees). */
static char *
make_file(const char *name, size_t n)
{
	char		*path = xasprintf("%s/%s", tmpdir, name);
	unsigned char	*p = malloc(n);
	struct err	 e;
	size_t		 i;

	for (i = 0; i < n; i++)
		p[i] = (unsigned char)(i * 7 + i / 251);
	err_clear(&e);
	assert_int_equal(util_write_file(path, p, n, 0600, &e), 0);
	free(p);
	return path;
}

static int
count_progress(void *arg, long long done, long long total)
{
	(void)done;
	(void)total;
	(*(int *)arg)++;
	return 0;
}

static int
cancel_progress(void *arg, long long done, long long total)
{
	(void)arg;
	(void)total;
	return done > 0;
}

/* Number of entries in tmpdir whose name contains s. */
static int
count_files(const char *s)
{
	DIR		*d = opendir(tmpdir);
	struct dirent	*de;
	int		 n = 0;

	while ((de = readdir(d)) != NULL)
		if (strstr(de->d_name, s) != NULL)
			n++;
	closedir(d);
	return n;
}

static void
test_life_cycle(void **state)
{
	struct glance_xfer	 x;
	struct err		 e;
	char			*src = make_file("src.raw", 3 << 20), *dst, *id;
	char			 sha[129], md5[33], sha2[129], md52[33];
	json_t			*img, *props, *tags;
	int			 calls = 0, fd;

	(void)state;
	err_clear(&e);
	assert_int_equal(hash_file(src, sha, md5, &e), 0);
	id = cloud_image_new(g, "life-cycle");
	img = glance_image_show(g, id, &e);
	assert_string_equal(json_string_value(json_object_get(img, "status")), "queued");
	json_decref(img);

	memset(&x, 0, sizeof(x));
	x.progress = count_progress;
	x.arg = &calls;
	x.hash = 1;
	x.expect_sha512 = sha;
	x.expect_md5 = md5;
	assert_int_equal(glance_image_upload_file(g, id, src, &x, &e), 0);
	assert_string_equal(x.sha512, sha);
	assert_string_equal(x.md5, md5);
	assert_int_equal(x.bytes, 3 << 20);
	assert_true(calls > 0);
	img = glance_image_show(g, id, &e);
	assert_string_equal(json_string_value(json_object_get(img, "status")), "active");
	assert_string_equal(json_string_value(json_object_get(img, "os_hash_value")), sha);
	assert_int_equal(json_integer_value(json_object_get(img, "size")), 3 << 20);
	json_decref(img);

	/* Data twice: 409, Glance's message kept. */
	fd = open(src, O_RDONLY);
	assert_int_equal(glance_image_upload(g, id, fd, -1, NULL, &e), -1);
	close(fd);
	assert_int_equal(e.kind, ERR_CONFLICT);
	assert_int_equal(e.status, 409);
	printf("409: %s\n", e.msg);

	/* Download: verified by the multihash alone (md5 not computed), renamed into place. */
	dst = xasprintf("%s/dst.raw", tmpdir);
	err_clear(&e);
	memset(&x, 0, sizeof(x));
	assert_int_equal(glance_image_download(g, id, dst, &x, &e), 0);
	assert_int_equal(hash_file(dst, sha2, md52, &e), 0);
	assert_string_equal(sha2, sha);
	assert_string_equal(md52, md5);
	assert_string_equal(x.sha512, sha);
	assert_string_equal(x.md5, "");
	assert_int_equal(x.bytes, 3 << 20);
	assert_int_equal(count_files(".part"), 0);

	/* md5 as well when asked. */
	unlink(dst);
	memset(&x, 0, sizeof(x));
	x.also_md5 = 1;
	assert_int_equal(glance_image_download(g, id, dst, &x, &e), 0);
	assert_string_equal(x.sha512, sha);
	assert_string_equal(x.md5, md5);
	assert_int_equal(hash_file(dst, sha2, md52, &e), 0);
	assert_string_equal(sha2, sha);
	assert_int_equal(count_files(".part"), 0);

	/* A cancelled download fails as cancelled and leaves nothing behind. */
	unlink(dst);
	memset(&x, 0, sizeof(x));
	x.progress = cancel_progress;
	assert_int_equal(glance_image_download(g, id, dst, &x, &e), -1);
	assert_int_equal(e.kind, ERR_CANCELLED);
	assert_int_equal(access(dst, F_OK), -1);
	assert_int_equal(count_files(".part"), 0);
	err_clear(&e);

	/* Properties: add, replace, remove. */
	props = json_pack("{s:s,s:s}", "isoforge_chain", "c1", "os_type", "linux");
	img = glance_image_set_properties(g, id, props, &e);
	assert_non_null(img);
	assert_string_equal(json_string_value(json_object_get(img, "isoforge_chain")), "c1");
	json_decref(img);
	json_decref(props);
	props = json_pack("{s:s,s:n}", "isoforge_chain", "c2", "os_type");
	img = glance_image_set_properties(g, id, props, &e);
	assert_non_null(img);
	assert_string_equal(json_string_value(json_object_get(img, "isoforge_chain")), "c2");
	assert_null(json_object_get(img, "os_type"));
	json_decref(img);
	json_decref(props);
	props = json_array();
	glance_patch_op(props, "replace", "name", json_string("renamed"));
	img = glance_image_update(g, id, props, &e);
	assert_string_equal(json_string_value(json_object_get(img, "name")), "renamed");
	json_decref(img);
	json_decref(props);

	/* Tags. */
	assert_int_equal(glance_image_tag_add(g, id, "golden", &e), 0);
	assert_int_equal(glance_image_tag_add(g, id, "v 1", &e), 0);
	assert_int_equal(glance_image_tag_remove(g, id, "golden", &e), 0);
	img = glance_image_show(g, id, &e);
	tags = json_object_get(img, "tags");
	assert_int_equal(json_array_size(tags), 1);
	assert_string_equal(json_string_value(json_array_get(tags, 0)), "v 1");
	json_decref(img);

	/* Protected: delete refused; then allowed. */
	assert_int_equal(glance_image_set_protected(g, id, 1, &e), 0);
	assert_int_equal(glance_image_delete(g, id, &e), -1);
	assert_int_equal(e.kind, ERR_CONFLICT);
	printf("protected: %s\n", e.msg);
	err_clear(&e);
	assert_int_equal(glance_image_set_protected(g, id, 0, &e), 0);
	assert_int_equal(glance_image_delete(g, id, &e), 0);
	assert_null(glance_image_show(g, id, &e));
	assert_int_equal(e.kind, ERR_NOTFOUND);
	free(dst);
	free(src);
	free(id);
}

static void
test_list(void **state)
{
	struct glance_list_opts	 o;
	struct err		 e;
	char			 chain[37], *ids[3];
	const char		*tags[] = { "pick-me", NULL };
	json_t			*filters, *props, *img, *list;
	int			 i;

	(void)state;
	err_clear(&e);
	util_uuid(chain);
	for (i = 0; i < 3; i++) {
		char	 name[32];

		snprintf(name, sizeof(name), "list-%d", 2 - i);
		ids[i] = cloud_image_new(g, name);
		props = json_pack("{s:s}", "isoforge_chain", chain);
		img = glance_image_set_properties(g, ids[i], props, &e);
		assert_non_null(img);
		json_decref(img);
		json_decref(props);
	}
	assert_int_equal(glance_image_tag_add(g, ids[1], "pick-me", &e), 0);
	filters = json_pack("{s:s}", "isoforge_chain", chain);
	memset(&o, 0, sizeof(o));
	o.filters = filters;
	o.page_size = 1;		/* three pages, following "next" */
	o.sort = "name:asc";
	list = glance_image_list(g, &o, &e);
	assert_non_null(list);
	assert_int_equal(json_array_size(list), 3);
	assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "name")),
	    "list-0");
	assert_string_equal(json_string_value(json_object_get(json_array_get(list, 2), "name")),
	    "list-2");
	json_decref(list);
	o.max = 2;
	list = glance_image_list(g, &o, &e);
	assert_int_equal(json_array_size(list), 2);
	json_decref(list);
	o.max = 0;
	o.page_size = 0;
	o.tags = tags;
	list = glance_image_list(g, &o, &e);
	assert_int_equal(json_array_size(list), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "id")), ids[1]);
	json_decref(list);
	o.tags = NULL;
	o.status = "active";
	list = glance_image_list(g, &o, &e);
	assert_int_equal(json_array_size(list), 0);
	json_decref(list);
	o.status = "queued";
	list = glance_image_list(g, &o, &e);
	assert_int_equal(json_array_size(list), 3);
	json_decref(list);
	json_decref(filters);
	for (i = 0; i < 3; i++) {
		assert_int_equal(glance_image_delete(g, ids[i], &e), 0);
		free(ids[i]);
	}
}

/* Unknown length: chunked transfer encoding from a pipe fed by a child of ours. */
static void
test_chunked_upload_from_pipe(void **state)
{
	struct glance_xfer	 x;
	struct err		 e;
	char			*src = make_file("pipe.raw", 5 << 20), sha[129], md5[33], *id;
	json_t			*img;
	pid_t			 pid;
	int			 p[2], fd;

	(void)state;
	err_clear(&e);
	assert_int_equal(hash_file(src, sha, md5, &e), 0);
	assert_int_equal(pipe(p), 0);
	if ((pid = fork()) == 0) {
		char	 b[65536];
		ssize_t	 n;

		close(p[0]);
		fd = open(src, O_RDONLY);
		while ((n = read(fd, b, sizeof(b))) > 0)
			if (write(p[1], b, (size_t)n) != n)
				_exit(1);
		_exit(0);
	}
	close(p[1]);
	id = cloud_image_new(g, "chunked");
	memset(&x, 0, sizeof(x));
	x.hash = 1;
	if (glance_image_upload(g, id, p[0], -1, &x, &e) == -1)
		fail_msg("chunked upload: %s", e.msg);
	close(p[0]);
	waitpid(pid, NULL, 0);
	assert_string_equal(x.sha512, sha);
	img = glance_image_show(g, id, &e);
	assert_int_equal(json_integer_value(json_object_get(img, "size")), 5 << 20);
	assert_string_equal(json_string_value(json_object_get(img, "checksum")), md5);
	json_decref(img);
	assert_int_equal(glance_image_delete(g, id, &e), 0);
	free(id);
	free(src);
}

/* Without "Expect: 100-continue" (for servers that never answer it, e.g. uwsgi). */
static void
test_upload_without_expect(void **state)
{
	struct http_opts	 o;
	struct http_client	*h;
	struct keystone		*ks;
	struct glance		*g2;
	struct err		 e;
	char			*src = make_file("noexpect.raw", 2 << 20), *id;
	double			 t0;

	(void)state;
	memset(&o, 0, sizeof(o));
	o.no_expect = 1;
	h = http_client_new(&o);
	ks = cloud_session(h, "");
	err_clear(&e);
	g2 = glance_new(ks, NULL, &e);
	assert_non_null(g2);
	id = cloud_image_new(g2, "no-expect");
	t0 = util_now();
	if (glance_image_upload_file(g2, id, src, NULL, &e) == -1)
		fail_msg("upload: %s", e.msg);
	printf("upload without Expect: %.2f s\n", util_now() - t0);
	assert_int_equal(glance_image_delete(g2, id, &e), 0);
	free(id);
	free(src);
	glance_free(&g2);
	keystone_free(&ks);
	http_client_free(&h);
}

static void
test_not_found(void **state)
{
	struct err	 e;
	char		 uuid[37], *dst = xasprintf("%s/none", tmpdir);

	(void)state;
	util_uuid(uuid);
	err_clear(&e);
	assert_null(glance_image_show(g, uuid, &e));
	assert_int_equal(e.kind, ERR_NOTFOUND);
	assert_int_equal(e.status, 404);
	err_clear(&e);
	assert_int_equal(glance_image_download(g, uuid, dst, NULL, &e), -1);
	assert_int_equal(e.kind, ERR_NOTFOUND);
	assert_int_equal(glance_image_delete(g, uuid, &e), -1);
	assert_int_equal(access(dst, F_OK), -1);
	free(dst);
}

/* Glance answers 404 (not 403) for another project's private image: we say so clearly. */
static void
test_other_projects_private_image(void **state)
{
	struct keystone	*bob = cloud_session(http, "ALT_");
	struct glance	*gb;
	struct err	 e;
	char		*src = make_file("private.raw", 4096), *id, *dst;
	json_t		*img;

	(void)state;
	err_clear(&e);
	id = cloud_image_new(g, "alice-private");
	assert_int_equal(glance_image_upload_file(g, id, src, NULL, &e), 0);
	gb = glance_new(bob, NULL, &e);
	assert_non_null(gb);
	assert_null(glance_image_show(gb, id, &e));
	assert_int_equal(e.kind, ERR_NOTFOUND);
	assert_non_null(strstr(e.msg, "not found or not visible to your project"));
	printf("bob: %s\n", e.msg);
	dst = xasprintf("%s/bob.raw", tmpdir);
	err_clear(&e);
	assert_int_equal(glance_image_download(gb, id, dst, NULL, &e), -1);
	assert_int_equal(e.kind, ERR_NOTFOUND);
	assert_int_equal(access(dst, F_OK), -1);
	err_clear(&e);
	assert_int_equal(glance_image_delete(gb, id, &e), -1);
	assert_int_equal(e.kind, ERR_NOTFOUND);
	err_clear(&e);
	img = glance_image_show(g, id, &e);	/* still there for alice */
	assert_non_null(img);
	json_decref(img);
	assert_int_equal(glance_image_delete(g, id, &e), 0);
	glance_free(&gb);
	keystone_free(&bob);
	free(dst);
	free(src);
	free(id);
}

/* A real fault: the stored file changes under Glance. The download fails; nothing is left. */
static void
test_hash_mismatch(void **state)
{
	struct glance_xfer x;
	struct err	 e;
	char		*src = make_file("good.raw", 1 << 20), *id, *stored, *dst;
	int		 fd;

	(void)state;
	err_clear(&e);
	/* An upload whose expected digest differs from what Glance computed is reported. */
	memset(&x, 0, sizeof(x));
	x.expect_sha512 = "00";
	id = cloud_image_new(g, "expect-other");
	assert_int_equal(glance_image_upload_file(g, id, src, &x, &e), -1);
	assert_int_equal(e.kind, ERR_IO);
	assert_non_null(strstr(e.msg, "hash mismatch"));
	err_clear(&e);
	assert_int_equal(glance_image_delete(g, id, &e), 0);
	free(id);

	id = cloud_image_new(g, "to-corrupt");
	assert_int_equal(glance_image_upload_file(g, id, src, NULL, &e), 0);
	stored = xasprintf("%s/glance/images/%s", cloud_dir(), id);
	fd = open(stored, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "CORRUPT", 7, 4242), 7);
	close(fd);
	dst = xasprintf("%s/corrupt.raw", tmpdir);
	assert_int_equal(glance_image_download(g, id, dst, NULL, &e), -1);
	assert_int_equal(e.kind, ERR_IO);
	assert_non_null(strstr(e.msg, "hash mismatch: sha512"));
	printf("corrupt: %s\n", e.msg);
	assert_int_equal(access(dst, F_OK), -1);
	assert_int_equal(count_files("corrupt"), 0);
	err_clear(&e);
	assert_int_equal(glance_image_delete(g, id, &e), 0);
	free(dst);
	free(stored);
	free(src);
	free(id);
}

/* Makes image id look like one from before Glance's multihash: no os_hash_algo/value. A fault
 * injected into the real Glance's database (what older releases left in it). */
static void
forget_multihash(const char *id)
{
	char		*db = xasprintf("%s/glance/glance.db", cloud_dir());
	sqlite3		*c;
	sqlite3_stmt	*st;

	assert_int_equal(sqlite3_open(db, &c), SQLITE_OK);
	sqlite3_busy_timeout(c, 10000);
	assert_int_equal(sqlite3_prepare_v2(c, "UPDATE images SET os_hash_algo = NULL, "
	    "os_hash_value = NULL WHERE id = ?", -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	assert_int_equal(sqlite3_changes(c), 1);
	sqlite3_finalize(st);
	sqlite3_close(c);
	free(db);
}

/* An image without the multihash is verified by md5 (checksum): good data passes, a corrupted
 * stored file is refused and leaves nothing. */
static void
test_md5_only_image(void **state)
{
	struct glance_xfer x;
	struct err	 e;
	char		*src = make_file("old.raw", 1 << 20), *id, *stored, *dst;
	char		 sha[129], md5[33];
	json_t		*img;
	int		 fd;

	(void)state;
	err_clear(&e);
	assert_int_equal(hash_file(src, sha, md5, &e), 0);
	id = cloud_image_new(g, "no-multihash");
	assert_int_equal(glance_image_upload_file(g, id, src, NULL, &e), 0);
	forget_multihash(id);
	img = glance_image_show(g, id, &e);
	assert_non_null(img);
	assert_null(json_string_value(json_object_get(img, "os_hash_value")));
	assert_string_equal(json_string_value(json_object_get(img, "checksum")), md5);
	json_decref(img);

	dst = xasprintf("%s/old.dst", tmpdir);
	memset(&x, 0, sizeof(x));
	if (glance_image_download(g, id, dst, &x, &e) == -1)
		fail_msg("download: %s", e.msg);
	assert_string_equal(x.md5, md5);
	assert_string_equal(x.sha512, "");
	assert_int_equal(unlink(dst), 0);

	stored = xasprintf("%s/glance/images/%s", cloud_dir(), id);
	fd = open(stored, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "CORRUPT", 7, 4242), 7);
	close(fd);
	assert_int_equal(glance_image_download(g, id, dst, NULL, &e), -1);
	assert_int_equal(e.kind, ERR_IO);
	assert_non_null(strstr(e.msg, "hash mismatch: md5"));
	printf("corrupt, md5 only: %s\n", e.msg);
	assert_int_equal(access(dst, F_OK), -1);
	assert_int_equal(count_files("old.dst"), 0);
	err_clear(&e);
	assert_int_equal(glance_image_delete(g, id, &e), 0);
	free(dst);
	free(stored);
	free(src);
	free(id);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_life_cycle),
		cmocka_unit_test(test_list),
		cmocka_unit_test(test_chunked_upload_from_pipe),
		cmocka_unit_test(test_upload_without_expect),
		cmocka_unit_test(test_not_found),
		cmocka_unit_test(test_other_projects_private_image),
		cmocka_unit_test(test_hash_mismatch),
		cmocka_unit_test(test_md5_only_image),
	};
	struct err	 e;
	int		 rc;

	cloud_require();
	snprintf(tmpdir, sizeof(tmpdir), "%s", getenv("TEST_TMP") ? getenv("TEST_TMP") : "/tmp");
	http = cloud_http();
	alice = cloud_session(http, "");
	err_clear(&e);
	if ((g = glance_new(alice, NULL, &e)) == NULL) {
		fprintf(stderr, "glance: %s\n", e.msg);
		return 1;
	}
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	glance_free(&g);
	keystone_free(&alice);
	http_client_free(&http);
	return rc;
}
