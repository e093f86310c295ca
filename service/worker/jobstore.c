/* jobstore.c — builds, their transitions and what they created, in SQLite (WAL, fsync'd). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "service/worker/jobstore.h"
#include "base/log.h"
#include "base/util.h"

struct jobstore {
	sqlite3		*db;
	char		*path;
	/* one connection shared by the build threads: a transaction at a time */
	pthread_mutex_t	 mu;
};


static const char *jobstore_schema =
    "CREATE TABLE IF NOT EXISTS builds ("
    " build_id TEXT PRIMARY KEY,"
    " state TEXT NOT NULL,"
    " request TEXT NOT NULL,"
    " trust_id TEXT,"
    " project_id TEXT,"
    " user_id TEXT,"
    " message TEXT,"
    " domain TEXT,"
    " image_id TEXT,"
    " version TEXT,"
    " console TEXT,"
    " created_at TEXT NOT NULL,"
    " updated_at TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS transitions ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " build_id TEXT NOT NULL REFERENCES builds(build_id),"
    " state TEXT NOT NULL,"
    " at TEXT NOT NULL,"
    " message TEXT);"
    "CREATE TABLE IF NOT EXISTS resources ("
    " build_id TEXT NOT NULL REFERENCES builds(build_id),"
    " kind TEXT NOT NULL,"
    " value TEXT NOT NULL,"
    " PRIMARY KEY (build_id, kind, value));"
    "CREATE INDEX IF NOT EXISTS transitions_build ON transitions(build_id);";

/* The state of a stored name; -1 for a name this worker does not know. */
static int
job_state_parse(const char *name, enum build_state *out)
{
	int	 s = build_state_from_name(name);

	if (s < 0)
		return -1;
	*out = (enum build_state)s;
	return 0;
}

/* Fills err from the database's last error; one place translates SQLite errors. */
static int
js_fail(struct jobstore *js, const char *what, struct err *err)
{
	err_set(err, ERR_IO, "job store %s: %s: %s", js->path, what, sqlite3_errmsg(js->db));
	return -1;
}

static int
js_exec(struct jobstore *js, const char *sql, struct err *err)
{
	if (sqlite3_exec(js->db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return js_fail(js, sql, err);
	return 0;
}

/* Prepares sql and binds the NULL-terminated text arguments (a NULL value binds NULL). */
static sqlite3_stmt *
js_prepare(struct jobstore *js, const char *sql, struct err *err, int nargs, ...)
{
	sqlite3_stmt	*st;
	va_list		 ap;
	const char	*v;
	int		 i;

	if (sqlite3_prepare_v2(js->db, sql, -1, &st, NULL) != SQLITE_OK) {
		js_fail(js, "prepare", err);
		return NULL;
	}
	va_start(ap, nargs);
	for (i = 1; i <= nargs; i++) {
		v = va_arg(ap, const char *);
		if (v == NULL)
			sqlite3_bind_null(st, i);
		else
			sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
	}
	va_end(ap);
	return st;
}

/* Runs a statement that returns no rows; finalizes it. */
static int
js_step_done(struct jobstore *js, sqlite3_stmt *st, struct err *err)
{
	int	 rc;

	if (st == NULL)
		return -1;
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return js_fail(js, "write", err);
	return 0;
}

/* 1 when table builds has column name (0 when not, -1 on error). */
static int
js_has_column(struct jobstore *js, const char *name, struct err *err)
{
	sqlite3_stmt	*st;
	int		 rc, found = 0;

	if ((st = js_prepare(js, "SELECT name FROM pragma_table_info('builds')", err, 0)) == NULL)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if (strcmp((const char *)sqlite3_column_text(st, 0), name) == 0)
			found = 1;
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return js_fail(js, "read", err);
	return found;
}

/*
 * A store written by a worker of contract v1 kept users' bearer tokens in builds.token: they
 * are overwritten (secure_delete) and the column dropped; builds get a trust_id column (a v1
 * build has none: it fails where it needs the cloud). Its builds are all still there.
 */
static int
js_migrate(struct jobstore *js, struct err *err)
{
	int	 has;

	/* the image's version in its chain (for events), added with contract v2 */
	if ((has = js_has_column(js, "version", err)) < 0 ||
	    (has == 0 && js_exec(js, "ALTER TABLE builds ADD COLUMN version TEXT", err) != 0))
		return -1;
	if ((has = js_has_column(js, "token", err)) <= 0)
		return has;
	log_info("job store %s: contract v1 store: erasing its tokens, adding trust ids",
	    js->path);
	if (js_exec(js, "PRAGMA secure_delete=ON", err) != 0 ||
	    js_exec(js, "BEGIN IMMEDIATE", err) != 0)
		return -1;
	if (js_exec(js, "UPDATE builds SET token = NULL", err) != 0 ||
	    js_exec(js, "ALTER TABLE builds DROP COLUMN token", err) != 0 ||
	    js_exec(js, "ALTER TABLE builds ADD COLUMN trust_id TEXT", err) != 0 ||
	    js_exec(js, "COMMIT", err) != 0) {
		js_exec(js, "ROLLBACK", NULL);
		return -1;
	}
	/* the old rows' bytes out of the WAL and the free pages too */
	if (js_exec(js, "PRAGMA wal_checkpoint(TRUNCATE)", err) != 0 ||
	    js_exec(js, "VACUUM", err) != 0 ||
	    js_exec(js, "PRAGMA wal_checkpoint(TRUNCATE)", err) != 0)
		return -1;
	return 0;
}

int
jobstore_open(const char *path, struct jobstore **out, struct err *err)
{
	struct jobstore	*js;
	int		 fd;

	*out = NULL;
	/* the store holds users' trust ids and build requests: only the worker's user reads it */
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) == -1) {
		err_set(err, ERR_IO, "job store %s: %s", path, strerror(errno));
		return -1;
	}
	if (fchmod(fd, 0600) == -1) {
		err_set(err, ERR_IO, "job store %s: chmod: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	js = xcalloc(1, sizeof(*js));
	js->path = xstrdup(path);
	pthread_mutex_init(&js->mu, NULL);
	if (sqlite3_open_v2(path, &js->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX,
	    NULL) != SQLITE_OK) {
		err_set(err, ERR_IO, "job store %s: %s", path,
		    js->db != NULL ? sqlite3_errmsg(js->db) : "cannot open");
		goto fail;
	}
	sqlite3_busy_timeout(js->db, 5000);
	/* FULL: a transition is on disk before the event announcing it is published */
	if (js_exec(js, "PRAGMA journal_mode=WAL", err) != 0 ||
	    js_exec(js, "PRAGMA synchronous=FULL", err) != 0 ||
	    js_exec(js, "PRAGMA foreign_keys=ON", err) != 0 ||
	    js_exec(js, jobstore_schema, err) != 0 || js_migrate(js, err) != 0)
		goto fail;
	*out = js;
	return 0;
fail:
	jobstore_close(&js);
	return -1;
}

void
jobstore_close(struct jobstore **jsp)
{
	struct jobstore	*js;

	if (jsp == NULL || (js = *jsp) == NULL)
		return;
	if (js->db != NULL)
		sqlite3_close(js->db);
	pthread_mutex_destroy(&js->mu);
	free(js->path);
	free(js);
	*jsp = NULL;
}

/* Appends a transition row (inside the caller's transaction). */
static int
js_transition(struct jobstore *js, const char *build_id, const char *state, const char *at,
    const char *message, struct err *err)
{
	return js_step_done(js, js_prepare(js, "INSERT INTO transitions (build_id, state, at, "
	    "message) VALUES (?, ?, ?, ?)", err, 4, build_id, state, at, message), err);
}

static int
jobstore_add_locked(struct jobstore *js, const char *build_id, const char *request_json,
    const char *trust_id, const char *project_id, const char *user_id, struct err *err)
{
	sqlite3_stmt	*st;
	char		 now[32];
	int		 changed;

	util_utc_stamp(now);
	if (js_exec(js, "BEGIN IMMEDIATE", err) != 0)
		return -1;
	st = js_prepare(js, "INSERT OR IGNORE INTO builds (build_id, state, request, trust_id, "
	    "project_id, user_id, message, created_at, updated_at) "
	    "VALUES (?, 'queued', ?, ?, ?, ?, 'accepted', ?, ?)", err, 7, build_id, request_json,
	    trust_id, project_id, user_id, now, now);
	if (js_step_done(js, st, err) != 0)
		goto rollback;
	changed = sqlite3_changes(js->db);
	if (changed == 0) {
		js_exec(js, "ROLLBACK", NULL);
		return 1;
	}
	if (js_transition(js, build_id, "queued", now, "accepted", err) != 0)
		goto rollback;
	/* the trust is something to clean up from the first moment: it goes with the build */
	if (trust_id != NULL && js_step_done(js, js_prepare(js, "INSERT OR IGNORE INTO resources "
	    "(build_id, kind, value) VALUES (?, 'trust', ?)", err, 2, build_id, trust_id),
	    err) != 0)
		goto rollback;
	if (js_exec(js, "COMMIT", err) != 0)
		goto rollback;
	return 0;
rollback:
	js_exec(js, "ROLLBACK", NULL);
	return -1;
}

int
jobstore_add(struct jobstore *js, const char *build_id, const char *request_json,
    const char *trust_id, const char *project_id, const char *user_id, struct err *err)
{
	int 	r;

	pthread_mutex_lock(&js->mu);
	r = jobstore_add_locked(js, build_id, request_json, trust_id, project_id, user_id, err);
	pthread_mutex_unlock(&js->mu);
	return r;
}

/* Reads the state of build_id into *state; ERR_NOTFOUND when unknown. */
static int
js_state(struct jobstore *js, const char *build_id, enum build_state *state, struct err *err)
{
	sqlite3_stmt	*st;
	int		 rc, ret = -1;

	if ((st = js_prepare(js, "SELECT state FROM builds WHERE build_id = ?", err, 1,
	    build_id)) == NULL)
		return -1;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		if (job_state_parse((const char *)sqlite3_column_text(st, 0), state) == 0)
			ret = 0;
		else
			err_set(err, ERR_INTERNAL, "job store: build %s has an unknown state",
			    build_id);
	} else if (rc == SQLITE_DONE)
		err_set(err, ERR_NOTFOUND, "build %s: not known to this worker", build_id);
	else
		js_fail(js, "read", err);
	sqlite3_finalize(st);
	return ret;
}

static int
jobstore_set_state_locked(struct jobstore *js, const char *build_id, enum build_state state,
    const char *message, struct err *err)
{
	enum build_state	 cur;
	char		 now[32];
	const char	*sql;

	util_utc_stamp(now);
	if (js_exec(js, "BEGIN IMMEDIATE", err) != 0)
		return -1;
	if (js_state(js, build_id, &cur, err) != 0)
		goto rollback;
	if (build_state_terminal(cur)) {
		err_set(err, ERR_CONFLICT, "build %s is already %s", build_id,
		    build_state_name(cur));
		goto rollback;
	}
	/* the trust stays until the clean-up (it may delete a Glance image as the user) */
	sql = build_state_terminal(state) ?
	    "UPDATE builds SET state = ?, message = ?, updated_at = ?, console = NULL "
	    "WHERE build_id = ?" :
	    "UPDATE builds SET state = ?, message = ?, updated_at = ? WHERE build_id = ?";
	if (js_step_done(js, js_prepare(js, sql, err, 4, build_state_name(state), message, now,
	    build_id), err) != 0)
		goto rollback;
	if (js_transition(js, build_id, build_state_name(state), now, message, err) != 0)
		goto rollback;
	if (js_exec(js, "COMMIT", err) != 0)
		goto rollback;
	return 0;
rollback:
	js_exec(js, "ROLLBACK", NULL);
	return -1;
}

int
jobstore_set_state(struct jobstore *js, const char *build_id, enum build_state state,
    const char *message, struct err *err)
{
	int 	r;

	pthread_mutex_lock(&js->mu);
	r = jobstore_set_state_locked(js, build_id, state, message, err);
	pthread_mutex_unlock(&js->mu);
	return r;
}

static int
jobstore_set_field_locked(struct jobstore *js, const char *build_id, const char *field,
    const char *value, struct err *err)
{
	static const char *const fields[] = { "domain", "image_id", "version", "console",
	    "project_id", "user_id" };
	sqlite3_stmt	*st;
	char		*sql, now[32];
	size_t		 i;
	int		 ret;

	for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if (strcmp(fields[i], field) == 0)
			break;
	if (i == sizeof(fields) / sizeof(fields[0])) {
		err_set(err, ERR_INTERNAL, "job store: no field %s", field);
		return -1;
	}
	util_utc_stamp(now);
	/* field is one of the fixed names above, never input */
	sql = xasprintf("UPDATE builds SET %s = ?, updated_at = ? WHERE build_id = ?", fields[i]);
	st = js_prepare(js, sql, err, 3, value, now, build_id);
	free(sql);
	if ((ret = js_step_done(js, st, err)) == 0 && sqlite3_changes(js->db) == 0) {
		err_set(err, ERR_NOTFOUND, "build %s: not known to this worker", build_id);
		ret = -1;
	}
	return ret;
}

int
jobstore_set_field(struct jobstore *js, const char *build_id, const char *field,
    const char *value, struct err *err)
{
	int 	r;

	pthread_mutex_lock(&js->mu);
	r = jobstore_set_field_locked(js, build_id, field, value, err);
	pthread_mutex_unlock(&js->mu);
	return r;
}

int
jobstore_add_resource(struct jobstore *js, const char *build_id, const char *kind,
    const char *value, struct err *err)
{
	int 	r;

	pthread_mutex_lock(&js->mu);
	r = js_step_done(js, js_prepare(js, "INSERT OR IGNORE INTO resources (build_id, kind, "
	    "value) VALUES (?, ?, ?)", err, 3, build_id, kind, value), err);
	pthread_mutex_unlock(&js->mu);
	return r;
}

int
jobstore_remove_resource(struct jobstore *js, const char *build_id, const char *kind,
    const char *value, struct err *err)
{
	int 	r;

	pthread_mutex_lock(&js->mu);
	r = js_step_done(js, js_prepare(js, "DELETE FROM resources WHERE build_id = ? AND "
	    "kind = ? AND value = ?", err, 3, build_id, kind, value), err);
	pthread_mutex_unlock(&js->mu);
	return r;
}

static char *
col_dup(sqlite3_stmt *st, int i)
{
	const unsigned char	*t = sqlite3_column_text(st, i);

	return t == NULL ? NULL : xstrdup((const char *)t);
}

static void
col_copy(sqlite3_stmt *st, int i, char out[32])
{
	const unsigned char	*t = sqlite3_column_text(st, i);

	snprintf(out, 32, "%s", t == NULL ? "" : (const char *)t);
}

/* Loads the resources of job j. */
static int
js_resources(struct jobstore *js, struct job *j, struct err *err)
{
	sqlite3_stmt	*st;
	int		 rc;

	j->resources = json_array();
	if ((st = js_prepare(js, "SELECT kind, value FROM resources WHERE build_id = ? "
	    "ORDER BY rowid", err, 1, j->build_id)) == NULL)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		json_array_append_new(j->resources, json_pack("{s:s, s:s}",
		    "kind", (const char *)sqlite3_column_text(st, 0),
		    "value", (const char *)sqlite3_column_text(st, 1)));
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return js_fail(js, "read", err);
	return 0;
}

#define JOB_COLUMNS "build_id, state, request, trust_id, project_id, user_id, message, domain, " \
	"image_id, console, created_at, updated_at, version"

/* Builds a job from a row of JOB_COLUMNS. */
static struct job *
js_row(sqlite3_stmt *st)
{
	struct job	*j;

	j = xcalloc(1, sizeof(*j));
	j->build_id = col_dup(st, 0);
	if (job_state_parse((const char *)sqlite3_column_text(st, 1), &j->state) != 0)
		j->state = BUILD_FAILED;
	j->request = col_dup(st, 2);
	j->trust_id = col_dup(st, 3);
	j->project_id = col_dup(st, 4);
	j->user_id = col_dup(st, 5);
	j->message = col_dup(st, 6);
	j->domain = col_dup(st, 7);
	j->image_id = col_dup(st, 8);
	j->console = col_dup(st, 9);
	col_copy(st, 10, j->created_at);
	col_copy(st, 11, j->updated_at);
	j->version = col_dup(st, 12);
	return j;
}

static struct job *
jobstore_get_locked(struct jobstore *js, const char *build_id, struct err *err)
{
	sqlite3_stmt	*st;
	struct job	*j = NULL;
	int		 rc;

	if ((st = js_prepare(js, "SELECT " JOB_COLUMNS " FROM builds WHERE build_id = ?", err, 1,
	    build_id)) == NULL)
		return NULL;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		j = js_row(st);
	else if (rc == SQLITE_DONE)
		err_set(err, ERR_NOTFOUND, "build %s: not known to this worker", build_id);
	else
		js_fail(js, "read", err);
	sqlite3_finalize(st);
	if (j != NULL && js_resources(js, j, err) != 0)
		job_free(&j);
	return j;
}

struct job *
jobstore_get(struct jobstore *js, const char *build_id, struct err *err)
{
	struct job	*r;

	pthread_mutex_lock(&js->mu);
	r = jobstore_get_locked(js, build_id, err);
	pthread_mutex_unlock(&js->mu);
	return r;
}

static int
jobstore_list_locked(struct jobstore *js, int active_only, struct job ***jobsp, size_t *np,
    struct err *err)
{
	sqlite3_stmt	*st;
	struct job	**jobs = NULL;
	size_t		 n = 0, i;
	int		 rc;

	*jobsp = NULL;
	*np = 0;
	st = js_prepare(js, active_only ?
	    "SELECT " JOB_COLUMNS " FROM builds WHERE state NOT IN ('active', 'failed', "
	    "'cancelled') ORDER BY created_at, rowid" :
	    "SELECT " JOB_COLUMNS " FROM builds ORDER BY created_at, rowid", err, 0);
	if (st == NULL)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		jobs = xrealloc(jobs, (n + 1) * sizeof(*jobs));
		jobs[n++] = js_row(st);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		jobs_free(&jobs, n);
		return js_fail(js, "read", err);
	}
	for (i = 0; i < n; i++)
		if (js_resources(js, jobs[i], err) != 0) {
			jobs_free(&jobs, n);
			return -1;
		}
	*jobsp = jobs;
	*np = n;
	return 0;
}

int
jobstore_list(struct jobstore *js, int active_only, struct job ***jobsp, size_t *np,
    struct err *err)
{
	int 	r;

	pthread_mutex_lock(&js->mu);
	r = jobstore_list_locked(js, active_only, jobsp, np, err);
	pthread_mutex_unlock(&js->mu);
	return r;
}

static json_t *
jobstore_history_locked(struct jobstore *js, const char *build_id, struct err *err)
{
	sqlite3_stmt	*st;
	json_t		*h;
	const char	*msg;
	int		 rc;

	if ((st = js_prepare(js, "SELECT state, at, message FROM transitions WHERE build_id = ? "
	    "ORDER BY seq", err, 1, build_id)) == NULL)
		return NULL;
	h = json_array();
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		msg = (const char *)sqlite3_column_text(st, 2);
		json_array_append_new(h, json_pack("{s:s, s:s, s:s?}",
		    "state", (const char *)sqlite3_column_text(st, 0),
		    "at", (const char *)sqlite3_column_text(st, 1), "message", msg));
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		json_decref(h);
		js_fail(js, "read", err);
		return NULL;
	}
	return h;
}

json_t *
jobstore_history(struct jobstore *js, const char *build_id, struct err *err)
{
	json_t	*r;

	pthread_mutex_lock(&js->mu);
	r = jobstore_history_locked(js, build_id, err);
	pthread_mutex_unlock(&js->mu);
	return r;
}

json_t *
job_to_json(const struct job *j)
{
	json_t	*o, *req, *console;

	o = json_pack("{s:s, s:s, s:s?, s:s?, s:s?, s:s?, s:s?, s:s, s:s}",
	    "build_id", j->build_id, "state", build_state_name(j->state),
	    "message", j->message, "project_id", j->project_id, "user_id", j->user_id,
	    "domain", j->domain, "image_id", j->image_id,
	    "created_at", j->created_at, "updated_at", j->updated_at);
	if (j->version != NULL)
		json_object_set_new(o, "version", json_integer(atoi(j->version)));
	if (j->request != NULL && (req = json_loads(j->request, 0, NULL)) != NULL)
		json_object_set_new(o, "request", req);
	/* where the console is, never its password (replies travel on the bus) */
	if (j->console != NULL && (console = json_loads(j->console, 0, NULL)) != NULL) {
		json_object_del(console, "password");
		json_object_set_new(o, "console", console);
	}
	if (j->resources != NULL) {
		json_t	*r, *a = json_array();
		size_t	 i;

		/* what is left to clean up, but a trust only as a kind: its id stays here */
		json_array_foreach(j->resources, i, r) {
			if (strcmp(json_string_value(json_object_get(r, "kind")), "trust") == 0)
				json_array_append_new(a, json_pack("{s:s}", "kind", "trust"));
			else
				json_array_append(a, r);
		}
		json_object_set_new(o, "resources", a);
	}
	return o;
}

void
job_free(struct job **jp)
{
	struct job	*j;

	if (jp == NULL || (j = *jp) == NULL)
		return;
	free(j->build_id);
	free(j->request);
	free(j->trust_id);
	free(j->version);
	free(j->project_id);
	free(j->user_id);
	free(j->message);
	free(j->domain);
	free(j->image_id);
	free(j->console);
	json_decref(j->resources);
	free(j);
	*jp = NULL;
}

void
jobs_free(struct job ***jobsp, size_t n)
{
	size_t	 i;

	if (jobsp == NULL || *jobsp == NULL)
		return;
	for (i = 0; i < n; i++)
		job_free(&(*jobsp)[i]);
	free(*jobsp);
	*jobsp = NULL;
}

enum job_resume
jobstore_resume_action(enum build_state state, int has)
{
	switch (state) {
	case BUILD_ACTIVE:
	case BUILD_FAILED:
	case BUILD_CANCELLED:
		return RESUME_NONE;
	case BUILD_QUEUED:
	case BUILD_RESOLVING:
	case BUILD_FETCHING:
	case BUILD_ASSEMBLING:
		/* only lookups, a verified cache and work files so far: clean and redo */
		return RESUME_RESTART;
	case BUILD_INSTALLING:
		/*
		 * libvirt keeps the install running across our restart. A domain that is
		 * gone may have ended cleanly or died with its host: we can't tell, so the
		 * disk is not trusted.
		 */
		return (has & JOB_HAS_DOMAIN) ? RESUME_WATCH : RESUME_FAIL;
	case BUILD_SNAPSHOTTING:
	case BUILD_UPLOADING:
		/*
		 * The install ended well (or the build would not be here) and its disk is not
		 * touched by a conversion or an upload: both can start again from it.
		 */
		return (has & JOB_HAS_DISK) ? RESUME_SNAPSHOT : RESUME_FAIL;
	case BUILD_CUSTOMIZING:
	default:
		/* scripts cut in the middle left the disk in a state nobody knows */
		return RESUME_FAIL;
	}
}

const char *
job_resume_name(enum job_resume r)
{
	switch (r) {
	case RESUME_NONE:
		return "none";
	case RESUME_WATCH:
		return "watch";
	case RESUME_SNAPSHOT:
		return "snapshot again";
	case RESUME_RESTART:
		return "restart";
	case RESUME_FAIL:
		return "fail";
	}
	return "unknown";
}

int
jobstore_recover(struct jobstore *js, int (*present)(void *, const struct job *), void *arg,
    struct job ***jobsp, enum job_resume **actionsp, size_t *np, struct err *err)
{
	struct job	**jobs;
	enum job_resume	*actions;
	enum build_state	 was;
	char		*msg;
	size_t		 n, i;
	int		 has;

	*jobsp = NULL;
	*actionsp = NULL;
	*np = 0;
	if (jobstore_list(js, 1, &jobs, &n, err) != 0)
		return -1;
	actions = xcalloc(n > 0 ? n : 1, sizeof(*actions));
	for (i = 0; i < n; i++) {
		has = present != NULL ? present(arg, jobs[i]) : 0;
		actions[i] = jobstore_resume_action(jobs[i]->state, has);
		was = jobs[i]->state;
		if (actions[i] == RESUME_FAIL) {
			msg = xasprintf("the worker restarted while the build was %s; it can't "
			    "be resumed", build_state_name(was));
			if (jobstore_set_state(js, jobs[i]->build_id, BUILD_FAILED, msg, err) != 0) {
				free(msg);
				goto fail;
			}
			jobs[i]->state = BUILD_FAILED;
			free(jobs[i]->message);
			jobs[i]->message = msg;
		} else if (actions[i] == RESUME_RESTART && was != BUILD_QUEUED) {
			msg = xasprintf("the worker restarted while the build was %s; building "
			    "again", build_state_name(was));
			if (jobstore_set_state(js, jobs[i]->build_id, BUILD_QUEUED, msg, err) != 0) {
				free(msg);
				goto fail;
			}
			jobs[i]->state = BUILD_QUEUED;
			free(jobs[i]->message);
			jobs[i]->message = msg;
		}
	}
	*jobsp = jobs;
	*actionsp = actions;
	*np = n;
	return 0;
fail:
	jobs_free(&jobs, n);
	free(actions);
	return -1;
}
