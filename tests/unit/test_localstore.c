/* test_localstore.c — versions under concurrency, add/get/list/delete, hostile chain names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "drivers/localstore.h"
#include "drivers/qemuimg.h"
#include "base/proc.h"

static char	 base[2048];

/* A fresh directory below the test's; caller frees. */
static char *
fresh_dir(const char *name)
{
	char	*d = xasprintf("%s/%s", base, name);

	assert_int_equal(mkdir(d, 0755), 0);
	return d;
}

/* A small qcow2 with some data in it (converted from raw), at path. */
static void
make_image(const char *dir, const char *path, const char *content)
{
	char		*raw = xasprintf("%s/src.raw", dir);
	struct err	 e;

	err_clear(&e);
	assert_int_equal(util_write_file(raw, content, strlen(content), 0644, &e), 0);
	assert_int_equal(truncate(raw, 1 << 20), 0);
	assert_int_equal(qemuimg_convert(raw, path, 0, NULL, NULL, &e), 0);
	unlink(raw);
	free(raw);
}

static void
test_escape_chain(void **state)
{
	char	*s;

	(void)state;
	s = localstore_escape_chain("win2019-de_x");
	assert_string_equal(s, "win2019-de_x");
	free(s);
	s = localstore_escape_chain("../x");
	assert_string_equal(s, "%2E%2E%2Fx");
	free(s);
	s = localstore_escape_chain("a/b c%");
	assert_string_equal(s, "a%2Fb%20c%25");
	free(s);
	s = localstore_escape_chain(".");
	assert_string_equal(s, "%2E");
	free(s);
	assert_null(localstore_escape_chain(""));
	assert_null(localstore_escape_chain(NULL));
	assert_null(localstore_escape_chain("0123456789012345678901234567890123456789"
	    "0123456789012345678901234567890123456789x"));
}

/* Two processes reserve versions of one chain at once: every number is handed out once. */
static void
test_versions_concurrent(void **state)
{
	char		*d = fresh_dir("conc"), *out[2];
	int		 seen[101], i, k, status, v;
	pid_t		 pid[2];

	(void)state;
	memset(seen, 0, sizeof(seen));
	for (k = 0; k < 2; k++) {
		out[k] = xasprintf("%s/out%d", base, k);
		if ((pid[k] = fork()) == 0) {
			struct localstore	*ls;
			struct err		 e;
			FILE			*f = fopen(out[k], "w");

			err_clear(&e);
			if (f == NULL || localstore_open(d, &ls, &e) == -1)
				_exit(1);
			for (i = 0; i < 50; i++) {
				if (localstore_next_version(ls, "race", &v, &e) == -1)
					_exit(2);
				fprintf(f, "%d\n", v);
			}
			fclose(f);
			localstore_free(&ls);
			_exit(0);
		}
		assert_true(pid[k] > 0);
	}
	for (k = 0; k < 2; k++) {
		FILE	*f;
		int	 n = 0;

		assert_int_equal(waitpid(pid[k], &status, 0), pid[k]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
		f = fopen(out[k], "r");
		assert_non_null(f);
		while (fscanf(f, "%d", &v) == 1) {
			assert_true(v >= 1 && v <= 100);
			assert_int_equal(seen[v], 0);
			seen[v] = 1;
			n++;
		}
		fclose(f);
		assert_int_equal(n, 50);
		unlink(out[k]);
		free(out[k]);
	}
	for (v = 1; v <= 100; v++)
		assert_int_equal(seen[v], 1);
	free(d);
}

/* The digest tool's answer for path equals want (checked independently of drivers/hash). */
static void
assert_digest(const char *tool, const char *path, const char *want)
{
	char *const		 argv[] = { (char *)tool, (char *)path, NULL };
	struct proc_result	 r;
	struct err		 e;

	err_clear(&e);
	assert_non_null(want);
	assert_int_equal(proc_run(argv, 30, &r, &e), 0);
	assert_true(r.out.len > strlen(want));
	assert_memory_equal(r.out.data, want, strlen(want));
	assert_int_equal(r.out.data[strlen(want)], ' ');
	proc_result_free(&r);
}

static void
test_add_get_list_delete(void **state)
{
	struct localstore	*ls = NULL;
	struct err		 e;
	char			*d = fresh_dir("store"), *work = fresh_dir("work");
	char			*img = xasprintf("%s/disk.qcow2", work), *ids[3], *path, ver[16];
	json_t			*meta, *rec, *list;
	int			 i, v;

	(void)state;
	err_clear(&e);
	assert_int_equal(localstore_open(d, &ls, &e), 0);
	/* versions 1..3 of chain "c1", added out of order; one image of another chain */
	for (i = 0; i < 3; i++) {
		assert_int_equal(localstore_next_version(ls, "c1", &v, &e), 0);
		assert_int_equal(v, i + 1);
	}
	for (i = 2; i >= 0; i--) {
		char	 content[64];

		snprintf(content, sizeof(content), "image number %d", i);
		make_image(work, img, content);
		snprintf(ver, sizeof(ver), "%d", i + 1);
		meta = json_pack("{s:s, s:{s:s, s:s, s:s, s:s}}", "name", "win", "properties",
		    "isoforge_chain", "c1", "isoforge_version", ver, "hw_disk_bus", "virtio",
		    "min_disk", "2");
		assert_int_equal(localstore_add(ls, img, meta, &ids[i], &e), 0);
		json_decref(meta);
		/* moved, not copied */
		assert_int_equal(access(img, F_OK), -1);
	}
	/* a version of a chain is registered once */
	make_image(work, img, "again");
	meta = json_pack("{s:s, s:{s:s, s:s}}", "name", "dup", "properties",
	    "isoforge_chain", "c1", "isoforge_version", "2");
	assert_int_equal(localstore_add(ls, img, meta, NULL, &e), -1);
	assert_int_equal(e.kind, ERR_CONFLICT);
	assert_int_equal(access(img, F_OK), 0);
	err_clear(&e);
	json_decref(meta);
	unlink(img);
	make_image(work, img, "other");
	meta = json_pack("{s:s, s:{s:s, s:s}}", "name", "other", "properties",
	    "isoforge_chain", "c2", "isoforge_version", "1");
	assert_int_equal(localstore_add(ls, img, meta, NULL, &e), 0);
	json_decref(meta);

	/* the record is what Glance would show, with the digests of the stored file */
	rec = localstore_get(ls, ids[1], &e);
	assert_non_null(rec);
	assert_string_equal(json_string_value(json_object_get(rec, "id")), ids[1]);
	assert_string_equal(json_string_value(json_object_get(rec, "name")), "win");
	assert_string_equal(json_string_value(json_object_get(rec, "status")), "active");
	assert_string_equal(json_string_value(json_object_get(rec, "disk_format")), "qcow2");
	assert_string_equal(json_string_value(json_object_get(rec, "container_format")), "bare");
	assert_string_equal(json_string_value(json_object_get(rec, "visibility")), "private");
	assert_string_equal(json_string_value(json_object_get(rec, "os_hash_algo")), "sha512");
	assert_int_equal(json_integer_value(json_object_get(rec, "min_disk")), 2);
	assert_int_equal(json_integer_value(json_object_get(rec, "virtual_size")), 1 << 20);
	assert_non_null(json_string_value(json_object_get(rec, "created_at")));
	assert_string_equal(json_string_value(json_object_get(json_object_get(rec, "properties"),
	    "hw_disk_bus")), "virtio");
	assert_null(json_object_get(json_object_get(rec, "properties"), "min_disk"));
	path = localstore_image_path(ls, ids[1]);
	assert_digest("md5sum", path, json_string_value(json_object_get(rec, "checksum")));
	assert_digest("sha512sum", path,
	    json_string_value(json_object_get(rec, "os_hash_value")));
	free(path);
	json_decref(rec);

	list = localstore_list(ls, "c1", &e);
	assert_non_null(list);
	assert_int_equal(json_array_size(list), 3);
	for (i = 0; i < 3; i++)
		assert_string_equal(json_string_value(json_object_get(json_array_get(list, i), "id")),
		    ids[i]);
	json_decref(list);
	list = localstore_list(ls, NULL, &e);
	assert_int_equal(json_array_size(list), 4);
	json_decref(list);
	list = localstore_list(ls, "nope", &e);
	assert_int_equal(json_array_size(list), 0);
	json_decref(list);

	/* a lost counter never hands out a version that is registered */
	path = xasprintf("%s/.chains/c1", d);
	assert_int_equal(unlink(path), 0);
	free(path);
	assert_int_equal(localstore_next_version(ls, "c1", &v, &e), 0);
	assert_int_equal(v, 4);

	assert_int_equal(localstore_delete(ls, ids[0], &e), 0);
	assert_null(localstore_get(ls, ids[0], &e));
	assert_int_equal(e.kind, ERR_NOTFOUND);
	err_clear(&e);
	path = localstore_image_path(ls, ids[0]);
	assert_int_equal(access(path, F_OK), -1);
	free(path);
	assert_int_equal(localstore_delete(ls, ids[0], &e), -1);
	assert_int_equal(e.kind, ERR_NOTFOUND);
	err_clear(&e);
	assert_null(localstore_get(ls, "../../etc/passwd", &e));
	assert_int_equal(e.kind, ERR_NOTFOUND);
	err_clear(&e);
	list = localstore_list(ls, "c1", &e);
	assert_int_equal(json_array_size(list), 2);
	json_decref(list);
	/* versions are never reused, also after a delete */
	assert_int_equal(localstore_next_version(ls, "c1", &v, &e), 0);
	assert_int_equal(v, 5);

	for (i = 0; i < 3; i++)
		free(ids[i]);
	free(img);
	free(work);
	free(d);
	localstore_free(&ls);
	assert_null(ls);
	localstore_free(&ls);
	localstore_free(NULL);
}

/* Chain names are user input: whatever they hold, files stay inside the store. */
static void
test_hostile_chain_names(void **state)
{
	const char *const	 names[] = { "../x", "a/b", "..", ".", "/etc/passwd", ".lock",
	    "x\ny", NULL };
	struct localstore	*ls = NULL;
	struct err		 e;
	char			*d = fresh_dir("hostile"), *p;
	DIR			*dp;
	struct dirent		*de;
	int			 i, v, n = 0;

	(void)state;
	err_clear(&e);
	assert_int_equal(localstore_open(d, &ls, &e), 0);
	for (i = 0; names[i] != NULL; i++) {
		assert_int_equal(localstore_next_version(ls, names[i], &v, &e), 0);
		assert_int_equal(v, 1);
		assert_int_equal(localstore_next_version(ls, names[i], &v, &e), 0);
		assert_int_equal(v, 2);
	}
	assert_int_equal(localstore_next_version(ls, "", &v, &e), -1);
	assert_int_equal(e.kind, ERR_INVAL);
	/* nothing outside the store, nothing in it but .lock and .chains */
	p = xasprintf("%s/x", base);
	assert_int_equal(access(p, F_OK), -1);
	free(p);
	p = xasprintf("%s/a", d);
	assert_int_equal(access(p, F_OK), -1);
	free(p);
	p = xasprintf("%s/.chains", d);
	dp = opendir(p);
	assert_non_null(dp);
	while ((de = readdir(dp)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		assert_int_equal(de->d_type, DT_REG);
		assert_null(strchr(de->d_name, '/'));
		assert_int_not_equal(de->d_name[0], '.');
		n++;
	}
	closedir(dp);
	free(p);
	assert_int_equal(n, 7);
	localstore_free(&ls);
	free(d);
}

/* What is refused leaves the caller's file where it was and registers nothing. */
static void
test_add_refusals(void **state)
{
	struct localstore	*ls = NULL;
	struct err		 e;
	char			*d = fresh_dir("refuse"), *work = fresh_dir("refuse-work");
	char			*raw = xasprintf("%s/disk.raw", work), *img = xasprintf("%s/d.qcow2", work);
	char			*shm = NULL, *id = NULL;
	json_t			*meta = json_pack("{s:s}", "name", "n"), *list;
	struct stat		 a, b;

	(void)state;
	err_clear(&e);
	assert_int_equal(localstore_open(d, &ls, &e), 0);
	assert_int_equal(util_write_file(raw, "just raw bytes", 14, 0644, &e), 0);
	assert_int_equal(localstore_add(ls, raw, meta, &id, &e), -1);
	assert_int_equal(e.kind, ERR_INVAL);
	assert_non_null(strstr(e.msg, "not qcow2"));
	assert_null(id);
	assert_int_equal(access(raw, F_OK), 0);
	err_clear(&e);
	make_image(work, img, "data");
	json_object_set_new(meta, "name", json_string(""));
	assert_int_equal(localstore_add(ls, img, meta, &id, &e), -1);
	assert_int_equal(e.kind, ERR_INVAL);
	assert_int_equal(access(img, F_OK), 0);
	err_clear(&e);
	json_object_set_new(meta, "name", json_string("n"));
	assert_int_equal(localstore_add(ls, "/nonexistent/x.qcow2", meta, &id, &e), -1);
	assert_int_equal(e.kind, ERR_NOTFOUND);
	err_clear(&e);
	list = localstore_list(ls, NULL, &e);
	assert_int_equal(json_array_size(list), 0);
	json_decref(list);

	/* from another file system: copied in, then the source goes */
	if (stat("/dev/shm", &a) == 0 && stat(d, &b) == 0 && a.st_dev != b.st_dev &&
	    access("/dev/shm", W_OK) == 0) {
		shm = xasprintf("/dev/shm/isoforge-test-%ld.qcow2", (long)getpid());
		make_image(work, shm, "elsewhere");
		json_object_set_new(meta, "name", json_string("copied"));
		assert_int_equal(localstore_add(ls, shm, meta, &id, &e), 0);
		assert_int_equal(access(shm, F_OK), -1);
		json_decref(localstore_get(ls, id, &e));
		assert_int_equal(e.kind, ERR_NONE);
		free(id);
		free(shm);
	} else
		print_message("(no second file system: the copy path is not tested)\n");
	json_decref(meta);
	localstore_free(&ls);
	free(raw);
	free(img);
	free(work);
	free(d);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape_chain),
		cmocka_unit_test(test_versions_concurrent),
		cmocka_unit_test(test_add_get_list_delete),
		cmocka_unit_test(test_hostile_chain_names),
		cmocka_unit_test(test_add_refusals),
	};
	const char	*t = getenv("TEST_TMP");
	int		 rc;

	snprintf(base, sizeof(base), "%s/localstore-XXXXXX", t && *t ? t : "/tmp");
	if (mkdtemp(base) == NULL)
		return 1;
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	if (rc == 0)
		util_rmtree(base, NULL);
	return rc;
}
