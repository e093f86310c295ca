/* test_jobstore.c — the job store: durable states, no-op repeats, tokens erased, resume logic. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "service/worker/jobstore.h"

static char *
store_path(const char *name)
{
	const char	*tmp = getenv("TEST_TMP");
	char		*dir, *path;

	if (tmp == NULL) {
		dir = xstrdup("/tmp/test_jobstore.XXXXXX");
		assert_non_null(mkdtemp(dir));
	} else
		dir = xstrdup(tmp);
	path = xasprintf("%s/%s", dir, name);
	unlink(path);
	free(dir);
	return path;
}

static struct jobstore *
open_ok(const char *path)
{
	struct jobstore	*js;
	struct err	 err;

	err_clear(&err);
	if (jobstore_open(path, &js, &err) != 0)
		fail_msg("%s", err.msg);
	return js;
}

static void
test_states(void **state)
{
	(void)state;
	/* the job store keeps the pipeline's own states */
	assert_string_equal(build_state_name(BUILD_SNAPSHOTTING), "snapshotting");
	assert_int_equal(build_state_from_name("uploading"), BUILD_UPLOADING);
	assert_int_equal(build_state_from_name("done"), -1);
	assert_true(build_state_terminal(BUILD_CANCELLED));
	assert_false(build_state_terminal(BUILD_INSTALLING));
}

/* PATH+suffix exists and only its owner may read or write it (it holds tokens). */
static void
must_be_private(const char *path, const char *suffix)
{
	struct stat	 st;
	char		*p = xasprintf("%s%s", path, suffix);

	if (stat(p, &st) != 0)
		fail_msg("%s: missing while the store is open", p);
	if ((st.st_mode & 0077) != 0)
		fail_msg("%s: mode %o", p, st.st_mode & 0777);
	free(p);
}

static void
test_lifecycle(void **state)
{
	struct jobstore	*js;
	struct job	*j;
	struct err	 err;
	struct stat	 st;
	json_t		*h, *o;
	char		*path;
	const char	*id = "6f1c1b8e-2a52-4b0c-9d43-5a0b9b0c1a11";

	(void)state;
	path = store_path("jobs.db");
	js = open_ok(path);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	err_clear(&err);
	assert_int_equal(jobstore_add(js, id, "{\"name\":\"w\"}", "TRUST-1", "p1", "u1",
	    &err), 0);
	/* the write-ahead log and its index exist while the store is open: the owner's alone */
	must_be_private(path, "-wal");
	must_be_private(path, "-shm");
	/* a repeated build_id changes nothing */
	assert_int_equal(jobstore_add(js, id, "{\"name\":\"other\"}", "T2", "p2", "u2", &err), 1);
	assert_int_equal(jobstore_set_state(js, id, BUILD_RESOLVING, "checking", &err), 0);
	assert_int_equal(jobstore_set_field(js, id, "domain", "isoforge-x", &err), 0);
	assert_int_equal(jobstore_add_resource(js, id, "file", "/w/x/root.qcow2", &err), 0);
	assert_int_equal(jobstore_add_resource(js, id, "glance_image", "img-1", &err), 0);
	assert_int_equal(jobstore_add_resource(js, id, "glance_image", "img-1", &err), 0);
	assert_int_equal(jobstore_set_field(js, id, "password", "x", &err), -1);
	assert_int_equal(err.kind, ERR_INTERNAL);
	err_clear(&err);
	assert_int_equal(jobstore_set_field(js, "nope", "domain", "x", &err), -1);
	assert_int_equal(err.kind, ERR_NOTFOUND);
	jobstore_close(&js);
	assert_null(js);

	/* everything survives a reopen (a restart) */
	js = open_ok(path);
	err_clear(&err);
	j = jobstore_get(js, id, &err);
	assert_non_null(j);
	assert_int_equal(j->state, BUILD_RESOLVING);
	assert_string_equal(j->request, "{\"name\":\"w\"}");
	assert_string_equal(j->trust_id, "TRUST-1");
	assert_string_equal(j->project_id, "p1");
	assert_string_equal(j->domain, "isoforge-x");
	assert_string_equal(j->message, "checking");
	/* the file, the image and the trust (recorded with the build) */
	assert_int_equal(json_array_size(j->resources), 3);
	o = job_to_json(j);
	{
		char	*s = json_dumps(o, 0);

		/* a status reply names no trust id */
		assert_null(strstr(s, "TRUST-1"));
		assert_non_null(strstr(s, "\"kind\": \"trust\""));
		assert_non_null(strstr(s, "\"state\": \"resolving\""));
		free(s);
	}
	json_decref(o);
	job_free(&j);
	assert_int_equal(jobstore_remove_resource(js, id, "file", "/w/x/root.qcow2", &err), 0);

	/* terminal: the build can't move any more; the trust goes with the clean-up */
	assert_int_equal(jobstore_set_state(js, id, BUILD_FAILED, "boom", &err), 0);
	assert_int_equal(jobstore_set_state(js, id, BUILD_ACTIVE, "late", &err), -1);
	assert_int_equal(err.kind, ERR_CONFLICT);
	err_clear(&err);
	j = jobstore_get(js, id, &err);
	assert_int_equal(j->state, BUILD_FAILED);
	assert_string_equal(j->trust_id, "TRUST-1");
	job_free(&j);
	assert_int_equal(jobstore_remove_resource(js, id, "trust", "TRUST-1", &err), 0);
	j = jobstore_get(js, id, &err);
	assert_int_equal(json_array_size(j->resources), 1);
	job_free(&j);
	h = jobstore_history(js, id, &err);
	assert_int_equal(json_array_size(h), 3);
	assert_string_equal(json_string_value(json_object_get(json_array_get(h, 0), "state")),
	    "queued");
	assert_string_equal(json_string_value(json_object_get(json_array_get(h, 2), "message")),
	    "boom");
	json_decref(h);
	assert_null(jobstore_get(js, "unknown-id", &err));
	assert_int_equal(err.kind, ERR_NOTFOUND);
	jobstore_close(&js);
	free(path);
}

static void
test_resume_table(void **state)
{
	(void)state;
	assert_int_equal(jobstore_resume_action(BUILD_ACTIVE, 0), RESUME_NONE);
	assert_int_equal(jobstore_resume_action(BUILD_CANCELLED, 1), RESUME_NONE);
	assert_int_equal(jobstore_resume_action(BUILD_QUEUED, 0), RESUME_RESTART);
	assert_int_equal(jobstore_resume_action(BUILD_FETCHING, 0), RESUME_RESTART);
	assert_int_equal(jobstore_resume_action(BUILD_ASSEMBLING, 1), RESUME_RESTART);
	assert_int_equal(jobstore_resume_action(BUILD_INSTALLING, 1), RESUME_WATCH);
	assert_int_equal(jobstore_resume_action(BUILD_INSTALLING, 0), RESUME_FAIL);
	assert_int_equal(jobstore_resume_action(BUILD_INSTALLING, JOB_HAS_DISK), RESUME_FAIL);
	assert_int_equal(jobstore_resume_action(BUILD_SNAPSHOTTING, 0), RESUME_FAIL);
	assert_int_equal(jobstore_resume_action(BUILD_UPLOADING, 0), RESUME_FAIL);
	assert_int_equal(jobstore_resume_action(BUILD_SNAPSHOTTING, JOB_HAS_DISK),
	    RESUME_SNAPSHOT);
	assert_int_equal(jobstore_resume_action(BUILD_UPLOADING, JOB_HAS_DISK | JOB_HAS_DOMAIN),
	    RESUME_SNAPSHOT);
	assert_int_equal(jobstore_resume_action(BUILD_CUSTOMIZING, JOB_HAS_DISK | JOB_HAS_DOMAIN),
	    RESUME_FAIL);
	assert_string_equal(job_resume_name(RESUME_WATCH), "watch");
}

/* The fake host's answer: domains named "*-running" are there, so are the disks of builds
 * named "*-disk". */
static int
fake_present(void *arg, const struct job *j)
{
	(*(int *)arg)++;
	return (j->domain != NULL && strstr(j->domain, "-running") != NULL ? JOB_HAS_DOMAIN : 0) |
	    (strstr(j->build_id, "-disk") != NULL ? JOB_HAS_DISK : 0);
}

static void
test_recover(void **state)
{
	static const struct {
		const char	*id;
		enum build_state	 state;
		const char	*domain;
		enum job_resume	 want;
		enum build_state	 after;
	} b[] = {
		{ "b-queued", BUILD_QUEUED, NULL, RESUME_RESTART, BUILD_QUEUED },
		{ "b-fetch", BUILD_FETCHING, NULL, RESUME_RESTART, BUILD_QUEUED },
		{ "b-inst-run", BUILD_INSTALLING, "isoforge-running", RESUME_WATCH, BUILD_INSTALLING },
		{ "b-inst-gone", BUILD_INSTALLING, "isoforge-gone", RESUME_FAIL, BUILD_FAILED },
		{ "b-upload", BUILD_UPLOADING, "isoforge-x", RESUME_FAIL, BUILD_FAILED },
		{ "b-upload-disk", BUILD_UPLOADING, "isoforge-x", RESUME_SNAPSHOT, BUILD_UPLOADING },
		{ "b-done", BUILD_ACTIVE, NULL, RESUME_NONE, BUILD_ACTIVE },
	};
	struct jobstore	*js;
	struct job	**jobs, *j;
	enum job_resume	*actions;
	struct err	 err;
	json_t		*h;
	char		*path;
	size_t		 n, i, k;
	int		 calls = 0;

	(void)state;
	path = store_path("recover.db");
	js = open_ok(path);
	err_clear(&err);
	for (i = 0; i < sizeof(b) / sizeof(b[0]); i++) {
		assert_int_equal(jobstore_add(js, b[i].id, "{}", "tr", "p", "u", &err), 0);
		if (b[i].state != BUILD_QUEUED)
			assert_int_equal(jobstore_set_state(js, b[i].id, b[i].state, NULL, &err), 0);
		if (b[i].domain != NULL)
			assert_int_equal(jobstore_set_field(js, b[i].id, "domain", b[i].domain,
			    &err), 0);
	}
	jobstore_close(&js);

	js = open_ok(path);
	if (jobstore_recover(js, fake_present, &calls, &jobs, &actions, &n, &err) != 0)
		fail_msg("%s", err.msg);
	assert_int_equal(n, 6);		/* every build but the active one */
	assert_int_equal(calls, 6);	/* asked for each of them */
	for (i = 0; i < n; i++) {
		for (k = 0; strcmp(b[k].id, jobs[i]->build_id) != 0; k++)
			;
		assert_int_equal(actions[i], b[k].want);
		assert_int_equal(jobs[i]->state, b[k].after);
	}
	jobs_free(&jobs, n);
	free(actions);
	/* the decisions were written before being returned */
	for (i = 0; i < sizeof(b) / sizeof(b[0]); i++) {
		j = jobstore_get(js, b[i].id, &err);
		assert_non_null(j);
		assert_int_equal(j->state, b[i].after);
		if (b[i].after == BUILD_FAILED) {
			/* kept for the clean-up the worker does next */
			assert_string_equal(j->trust_id, "tr");
			assert_non_null(strstr(j->message, "can't be resumed"));
		}
		job_free(&j);
	}
	h = jobstore_history(js, "b-fetch", &err);
	assert_int_equal(json_array_size(h), 3);	/* queued, fetching, queued again */
	json_decref(h);
	/* a second recovery finds nothing more to fail */
	calls = 0;
	assert_int_equal(jobstore_recover(js, fake_present, &calls, &jobs, &actions, &n, &err), 0);
	assert_int_equal(n, 4);
	jobs_free(&jobs, n);
	free(actions);
	jobstore_close(&js);
	free(path);
}

/* A store of a contract v1 worker (users' tokens in builds.token): opened by this worker, its
 * builds are all there, the token gone from the table and from the file. */
static void
test_migrate_v1(void **state)
{
	static const char id[] = "dddddddd-0000-4000-8000-000000000001";
	struct jobstore	*js;
	struct job	*j;
	struct err	 err;
	sqlite3		*db;
	char		*path, *data, *side, *sql;
	size_t		 len;
	int		 i;

	(void)state;
	path = store_path("v1.db");
	side = xasprintf("%s-wal", path);
	unlink(side);
	free(side);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA journal_mode=WAL;"
	    "CREATE TABLE builds (build_id TEXT PRIMARY KEY, state TEXT NOT NULL,"
	    " request TEXT NOT NULL, token TEXT, project_id TEXT, user_id TEXT, message TEXT,"
	    " domain TEXT, image_id TEXT, console TEXT, created_at TEXT NOT NULL,"
	    " updated_at TEXT NOT NULL);"
	    "INSERT INTO builds VALUES ('dddddddd-0000-4000-8000-000000000001', 'installing',"
	    " '{\"name\":\"old\"}', 'gAAAAA-V1-BEARER-TOKEN-XYZ', 'p', 'u', NULL,"
	    " 'isoforge-old', NULL, NULL, '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z');",
	    NULL, NULL, NULL), SQLITE_OK);
	/* many more, so that pages are freed and rewritten */
	for (i = 0; i < 300; i++) {
		sql = sqlite3_mprintf("INSERT INTO builds VALUES ('old-%d', 'failed', '{}',"
		    " 'gAAAAA-V1-BEARER-TOKEN-%d', 'p', 'u', NULL, NULL, NULL, NULL, 'x', 'x')", i, i);
		assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
		sqlite3_free(sql);
	}
	sqlite3_close(db);

	err_clear(&err);
	js = open_ok(path);
	j = jobstore_get(js, id, &err);
	assert_non_null(j);
	assert_int_equal(j->state, BUILD_INSTALLING);
	assert_string_equal(j->domain, "isoforge-old");
	assert_null(j->trust_id);
	job_free(&j);
	jobstore_close(&js);
	/* opening it again (already migrated) changes nothing */
	js = open_ok(path);
	assert_non_null((j = jobstore_get(js, id, &err)));
	job_free(&j);
	jobstore_close(&js);
	data = util_read_file(path, 1 << 24, &len, &err);
	assert_non_null(data);
	assert_null(memmem(data, len, "V1-BEARER-TOKEN", 15));
	free(data);
	side = xasprintf("%s-wal", path);
	if ((data = util_read_file(side, 1 << 24, &len, NULL)) != NULL)
		assert_null(memmem(data, len, "V1-BEARER-TOKEN", 15));
	free(data);
	free(side);
	free(path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_states),
		cmocka_unit_test(test_lifecycle),
		cmocka_unit_test(test_resume_table),
		cmocka_unit_test(test_recover),
		cmocka_unit_test(test_migrate_v1),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
