/* view.c — the builds view of one isoforge-api process: SQLite in [api] state_dir, fed by its
 * own durable queue isoforge.api.<host> bound to isoforge.events (build.#), reconnecting with
 * backoff while the view keeps answering; and the publisher the HTTP threads share. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "base/log.h"
#include "base/util.h"
#include "service/api/api.h"
#include "service/common/amqp.h"

#define VIEW_BACKOFF_MAX	60.0
#define VIEW_CONNECT_TIMEOUT	5.0
#define VIEW_PUBLISH_TIMEOUT	10.0
#define VIEW_TAG		"isoforge-api"

/* A thread's own read connection with its prepared statement (WAL: readers do not wait for
 * each other nor for the writer, and a statement is parsed once per thread, not per request). */
struct view_reader {
	struct view_reader	*next;
	struct api_view		*view;
	sqlite3			*db;
	sqlite3_stmt		*build;		/* SELECT ... WHERE id = ? */
};

static __thread struct view_reader *view_self;

struct api_view {
	struct api		*api;
	char			*path;
	sqlite3			*db;		/* writes (and the rest), under db_mu */
	pthread_mutex_t		 db_mu;
	pthread_mutex_t		 readers_mu;
	struct view_reader	*readers;
	struct mq_url		*url;
	char			*queue;		/* isoforge.api.<host> */
	/* the consumer: the loop's thread only */
	struct mq_conn		*cons;
	int			 watch;
	int			 timer;
	size_t			 attempts;
	/* the publisher: any thread, under pub_mu */
	pthread_mutex_t		 pub_mu;
	struct mq_conn		*pub;
	size_t			 pub_attempts;
};

static const char *const view_schema =
    "PRAGMA journal_mode=WAL;"
    "CREATE TABLE IF NOT EXISTS builds ("
    " id TEXT PRIMARY KEY, project_id TEXT, user_id TEXT, name TEXT, chain TEXT,"
    " state TEXT NOT NULL, progress INTEGER NOT NULL DEFAULT 0, message TEXT, image_id TEXT,"
    " version INTEGER, worker TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,"
    " summary TEXT, deleted INTEGER NOT NULL DEFAULT 0, console_host TEXT, console_port INTEGER);"
    "CREATE INDEX IF NOT EXISTS builds_project ON builds (project_id, created_at);"
    "CREATE TABLE IF NOT EXISTS events ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT, build_id TEXT NOT NULL, state TEXT NOT NULL,"
    " progress INTEGER, message TEXT, time TEXT,"
    " UNIQUE (build_id, state, progress, message, time));"
    "CREATE INDEX IF NOT EXISTS events_build ON events (build_id, seq);";

int
api_state_terminal(const char *s)
{
	return s != NULL && (strcmp(s, "active") == 0 || strcmp(s, "failed") == 0 ||
	    strcmp(s, "cancelled") == 0);
}

static int
view_sql_err(struct api_view *v, const char *what, struct err *err)
{
	err_set(err, ERR_IO, "builds view: %s: %s", what, sqlite3_errmsg(v->db));
	return -1;
}

struct api_view *
api_view_open(struct api *a, struct err *err)
{
	struct api_view	*v;
	char		*path = NULL, *msg = NULL;

	v = xcalloc(1, sizeof(*v));
	v->api = a;
	v->watch = -1;
	v->timer = -1;
	pthread_mutex_init(&v->db_mu, NULL);
	pthread_mutex_init(&v->pub_mu, NULL);
	pthread_mutex_init(&v->readers_mu, NULL);
	v->queue = xasprintf("isoforge.api.%s", a->host);
	if (mq_url_parse(a->cfg->transport_url, &v->url, err) != 0)
		goto fail;
	if (util_mkdir_private(a->cfg->api_state_dir, err) != 0)
		goto fail;
	path = xasprintf("%s/builds.db", a->cfg->api_state_dir);
	/* the file is created 0600: it names users and projects */
	{
		mode_t	 old = umask(077);
		int	 rc = sqlite3_open_v2(path, &v->db, SQLITE_OPEN_READWRITE |
		    SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL);

		umask(old);
		if (rc != SQLITE_OK) {
			err_set(err, ERR_IO, "%s: %s", path, v->db != NULL ?
			    sqlite3_errmsg(v->db) : "cannot open");
			goto fail;
		}
	}
	chmod(path, 0600);
	sqlite3_busy_timeout(v->db, 5000);
	if (sqlite3_exec(v->db, view_schema, NULL, NULL, &msg) != SQLITE_OK) {
		err_set(err, ERR_IO, "%s: %s", path, msg != NULL ? msg : "schema");
		sqlite3_free(msg);
		goto fail;
	}
	v->path = path;
	return v;
fail:
	free(path);
	api_view_close(&v);
	return NULL;
}

void
api_view_close(struct api_view **vp)
{
	struct api_view		*v;
	struct view_reader	*r;

	if (vp == NULL || (v = *vp) == NULL)
		return;
	if (v->watch > 0)
		loop_watch_remove(v->api->loop, v->watch);
	if (v->timer > 0)
		loop_timer_remove(v->api->loop, v->timer);
	mq_close(&v->cons);
	mq_close(&v->pub);
	while ((r = v->readers) != NULL) {
		v->readers = r->next;
		sqlite3_finalize(r->build);
		sqlite3_close(r->db);
		free(r);
	}
	view_self = NULL;
	if (v->db != NULL)
		sqlite3_close(v->db);
	free(v->path);
	mq_url_free(&v->url);
	free(v->queue);
	pthread_mutex_destroy(&v->db_mu);
	pthread_mutex_destroy(&v->pub_mu);
	pthread_mutex_destroy(&v->readers_mu);
	free(v);
	*vp = NULL;
}

/* Binds text or NULL. */
static void
view_bind_text(sqlite3_stmt *st, int i, const char *s)
{
	if (s != NULL)
		sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

static const char *
view_jstr(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

int
api_view_apply(struct api_view *v, const json_t *ev, struct err *err)
{
	const char	*id = view_jstr(ev, "build_id"), *state = view_jstr(ev, "state");
	const char	*time_s = view_jstr(ev, "time"), *message = view_jstr(ev, "message");
	const json_t	*build = json_object_get(ev, "build");
	json_t		*pv = json_object_get(ev, "progress"), *ver = json_object_get(ev, "version");
	sqlite3_stmt	*st = NULL;
	char		 now[32], *summary = NULL;
	int		 ret = -1;

	if (id == NULL || !util_is_uuid(id) || state == NULL) {
		err_set(err, ERR_INVAL, "event: no build_id or state");
		return -1;
	}
	util_utc_stamp(now);
	if (time_s == NULL)
		time_s = now;
	pthread_mutex_lock(&v->db_mu);
	sqlite3_exec(v->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	/* a build first seen by a later event (the queued one may come after it) */
	if (sqlite3_prepare_v2(v->db, "INSERT OR IGNORE INTO builds (id, project_id, state, "
	    "created_at, updated_at) VALUES (?, ?, ?, ?, ?)", -1, &st, NULL) != SQLITE_OK)
		goto sqlfail;
	view_bind_text(st, 1, id);
	view_bind_text(st, 2, view_jstr(ev, "project_id"));
	view_bind_text(st, 3, state);
	view_bind_text(st, 4, time_s);
	view_bind_text(st, 5, time_s);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto sqlfail;
	sqlite3_finalize(st);
	st = NULL;
	if (json_is_object(build)) {
		summary = json_dumps(build, JSON_COMPACT);
		if (sqlite3_prepare_v2(v->db, "UPDATE builds SET summary = ?, name = ?, chain = ?, "
		    "user_id = ?, project_id = COALESCE(?, project_id), created_at = COALESCE(?, "
		    "created_at) WHERE id = ?", -1, &st, NULL) != SQLITE_OK)
			goto sqlfail;
		view_bind_text(st, 1, summary);
		view_bind_text(st, 2, view_jstr(build, "name"));
		view_bind_text(st, 3, view_jstr(build, "chain"));
		view_bind_text(st, 4, view_jstr(build, "user_id"));
		view_bind_text(st, 5, view_jstr(build, "project_id"));
		view_bind_text(st, 6, view_jstr(build, "created_at"));
		view_bind_text(st, 7, id);
		if (sqlite3_step(st) != SQLITE_DONE)
			goto sqlfail;
		sqlite3_finalize(st);
		st = NULL;
	}
	/* the state moves on, except out of a terminal state and back to queued */
	if (sqlite3_prepare_v2(v->db, "UPDATE builds SET state = CASE WHEN state IN ('active', "
	    "'failed', 'cancelled') OR ?1 = 'queued' THEN state ELSE ?1 END, "
	    "progress = CASE WHEN state IN ('active', 'failed', 'cancelled') THEN progress "
	    "ELSE COALESCE(?2, progress) END, message = CASE WHEN state IN ('active', 'failed', "
	    "'cancelled') AND ?1 NOT IN ('active', 'failed', 'cancelled') THEN message ELSE "
	    "COALESCE(?3, message) END, image_id = COALESCE(?4, image_id), "
	    "version = COALESCE(?5, version), worker = COALESCE(?6, worker), "
	    "updated_at = MAX(updated_at, ?7) WHERE id = ?8", -1, &st, NULL) != SQLITE_OK)
		goto sqlfail;
	view_bind_text(st, 1, state);
	if (json_is_integer(pv))
		sqlite3_bind_int64(st, 2, json_integer_value(pv));
	else
		sqlite3_bind_null(st, 2);
	view_bind_text(st, 3, message);
	view_bind_text(st, 4, view_jstr(ev, "image_id"));
	if (json_is_integer(ver))
		sqlite3_bind_int64(st, 5, json_integer_value(ver));
	else
		sqlite3_bind_null(st, 5);
	view_bind_text(st, 6, view_jstr(ev, "worker"));
	view_bind_text(st, 7, time_s);
	view_bind_text(st, 8, id);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto sqlfail;
	sqlite3_finalize(st);
	st = NULL;
	/* the console of an install (null once it ended) */
	if (json_object_get(ev, "console") != NULL || api_state_terminal(state)) {
		const json_t	*con = json_object_get(ev, "console");

		if (sqlite3_prepare_v2(v->db, "UPDATE builds SET console_host = ?, console_port = ? "
		    "WHERE id = ?", -1, &st, NULL) != SQLITE_OK)
			goto sqlfail;
		if (json_is_object(con) && !api_state_terminal(state) &&
		    json_is_integer(json_object_get(con, "port"))) {
			view_bind_text(st, 1, view_jstr(con, "host"));
			sqlite3_bind_int64(st, 2, json_integer_value(json_object_get(con, "port")));
		} else {
			sqlite3_bind_null(st, 1);
			sqlite3_bind_null(st, 2);
		}
		view_bind_text(st, 3, id);
		if (sqlite3_step(st) != SQLITE_DONE)
			goto sqlfail;
		sqlite3_finalize(st);
		st = NULL;
	}
	if (sqlite3_prepare_v2(v->db, "INSERT OR IGNORE INTO events (build_id, state, progress, "
	    "message, time) VALUES (?, ?, ?, ?, ?)", -1, &st, NULL) != SQLITE_OK)
		goto sqlfail;
	view_bind_text(st, 1, id);
	view_bind_text(st, 2, state);
	sqlite3_bind_int64(st, 3, json_is_integer(pv) ? json_integer_value(pv) : 0);
	view_bind_text(st, 4, message != NULL ? message : "");
	view_bind_text(st, 5, time_s);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto sqlfail;
	sqlite3_exec(v->db, "COMMIT", NULL, NULL, NULL);
	ret = 0;
	goto cleanup;
sqlfail:
	view_sql_err(v, "event", err);
	sqlite3_exec(v->db, "ROLLBACK", NULL, NULL, NULL);
cleanup:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&v->db_mu);
	free(summary);
	return ret;
}

#define VIEW_COLUMNS	"id, project_id, user_id, name, chain, state, progress, message, " \
			"image_id, version, worker, created_at, updated_at, summary"

static const char *
view_col(sqlite3_stmt *st, int i)
{
	return (const char *)sqlite3_column_text(st, i);
}

static void
view_set_str(json_t *o, const char *k, const char *s)
{
	json_object_set_new(o, k, s != NULL ? json_string(s) : json_null());
}

/* BUILD of docs/api.md from a row of VIEW_COLUMNS. */
static json_t *
view_row_build(struct api_view *v, sqlite3_stmt *st)
{
	static const char *const from_summary[] = { "parent_image", "from_image", "iso_image",
		"virtio_win_image", "flavor", "os", "firmware", "install", NULL };
	const char	*id = view_col(st, 0), *sum = view_col(st, 13);
	json_t		*b = json_object(), *summary = NULL, *x;
	size_t		 i;
	char		*self;

	if (sum != NULL)
		summary = json_loads(sum, 0, NULL);
	json_object_set_new(b, "id", json_string(id));
	view_set_str(b, "name", view_col(st, 3));
	view_set_str(b, "state", view_col(st, 5));
	json_object_set_new(b, "progress", json_integer(sqlite3_column_int64(st, 6)));
	view_set_str(b, "message", view_col(st, 7));
	view_set_str(b, "project_id", view_col(st, 1));
	view_set_str(b, "user_id", view_col(st, 2));
	view_set_str(b, "chain", view_col(st, 4));
	json_object_set_new(b, "version", sqlite3_column_type(st, 9) == SQLITE_NULL ?
	    json_null() : json_integer(sqlite3_column_int64(st, 9)));
	view_set_str(b, "image_id", view_col(st, 8));
	for (i = 0; from_summary[i] != NULL; i++) {
		x = summary != NULL ? json_object_get(summary, from_summary[i]) : NULL;
		json_object_set(b, from_summary[i], x != NULL ? x : json_null());
	}
	view_set_str(b, "worker", view_col(st, 10));
	view_set_str(b, "created_at", view_col(st, 11));
	view_set_str(b, "updated_at", view_col(st, 12));
	self = xasprintf("%s/v1/builds/%s", v->api->base_url, id);
	json_object_set_new(b, "links", json_pack("[{s:s, s:s}]", "rel", "self", "href", self));
	free(self);
	json_decref(summary);
	return b;
}

/* The calling thread's reader, opened on first use; NULL (err filled) when it cannot be. */
static struct view_reader *
view_reader(struct api_view *v, struct err *err)
{
	struct view_reader	*r = view_self;

	if (r != NULL && r->view == v)
		return r;
	r = xcalloc(1, sizeof(*r));
	r->view = v;
	if (sqlite3_open_v2(v->path, &r->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
	    NULL) != SQLITE_OK ||
	    sqlite3_busy_timeout(r->db, 5000) != SQLITE_OK ||
	    sqlite3_prepare_v2(r->db, "SELECT " VIEW_COLUMNS " FROM builds WHERE id = ? AND "
	    "deleted = 0 AND (?2 IS NULL OR project_id = ?2)", -1, &r->build, NULL) != SQLITE_OK) {
		err_set(err, ERR_IO, "builds view: %s: %s", v->path, r->db != NULL ?
		    sqlite3_errmsg(r->db) : "cannot open");
		sqlite3_finalize(r->build);
		sqlite3_close(r->db);
		free(r);
		return NULL;
	}
	pthread_mutex_lock(&v->readers_mu);
	r->next = v->readers;
	v->readers = r;
	pthread_mutex_unlock(&v->readers_mu);
	view_self = r;
	return r;
}

json_t *
api_view_build(struct api_view *v, const char *id, const char *project, struct err *err)
{
	struct view_reader	*r;
	sqlite3_stmt		*st;
	json_t			*b = NULL;
	int			 rc;

	if ((r = view_reader(v, err)) == NULL)
		return NULL;
	st = r->build;
	view_bind_text(st, 1, id);
	view_bind_text(st, 2, project);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		b = view_row_build(v, st);
	else if (rc == SQLITE_DONE)
		err_set(err, ERR_NOTFOUND, "build %s: not found", id);
	else
		err_set(err, ERR_IO, "builds view: select: %s", sqlite3_errmsg(r->db));
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return b;
}

json_t *
api_view_list(struct api_view *v, const struct api_list *l, int *more, struct err *err)
{
	sqlite3_stmt	*st = NULL;
	json_t		*out = NULL;
	struct buf	 q;
	const char	*key = l->sort_key, *cmp = l->desc ? "<" : ">";
	int		 rc, n = 0;

	*more = 0;
	/* key is one of four column names (checked by the caller), never user text */
	buf_init(&q);
	buf_printf(&q, "SELECT " VIEW_COLUMNS " FROM builds WHERE deleted = 0 "
	    "AND (?1 IS NULL OR project_id = ?1) AND (?2 IS NULL OR state = ?2) "
	    "AND (?3 IS NULL OR chain = ?3) AND (?4 IS NULL OR name = ?4) ");
	if (l->marker != NULL)
		buf_printf(&q, "AND (COALESCE(%s, ''), id) %s (SELECT COALESCE(%s, ''), id FROM "
		    "builds WHERE id = ?5) ", key, cmp, key);
	buf_printf(&q, "ORDER BY COALESCE(%s, '') %s, id %s LIMIT ?6", key,
	    l->desc ? "DESC" : "ASC", l->desc ? "DESC" : "ASC");
	pthread_mutex_lock(&v->db_mu);
	if (l->marker != NULL) {
		if (sqlite3_prepare_v2(v->db, "SELECT 1 FROM builds WHERE id = ? AND deleted = 0 "
		    "AND (?2 IS NULL OR project_id = ?2)", -1, &st, NULL) != SQLITE_OK) {
			view_sql_err(v, "select", err);
			goto cleanup;
		}
		view_bind_text(st, 1, l->marker);
		view_bind_text(st, 2, l->project);
		rc = sqlite3_step(st);
		sqlite3_finalize(st);
		st = NULL;
		if (rc != SQLITE_ROW) {
			err_set(err, ERR_NOTFOUND, "marker: no build %s", l->marker);
			goto cleanup;
		}
	}
	if (sqlite3_prepare_v2(v->db, q.data, -1, &st, NULL) != SQLITE_OK) {
		view_sql_err(v, "select", err);
		goto cleanup;
	}
	view_bind_text(st, 1, l->project);
	view_bind_text(st, 2, l->state);
	view_bind_text(st, 3, l->chain);
	view_bind_text(st, 4, l->name);
	if (l->marker != NULL)
		view_bind_text(st, 5, l->marker);
	sqlite3_bind_int(st, 6, l->limit + 1);
	out = json_array();
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n++ == l->limit) {
			*more = 1;
			break;
		}
		json_array_append_new(out, view_row_build(v, st));
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		view_sql_err(v, "select", err);
		json_decref(out);
		out = NULL;
	}
cleanup:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&v->db_mu);
	buf_free(&q);
	return out;
}

json_t *
api_view_events(struct api_view *v, const char *id, struct err *err)
{
	sqlite3_stmt	*st = NULL;
	json_t		*out = NULL;
	int		 rc;

	pthread_mutex_lock(&v->db_mu);
	if (sqlite3_prepare_v2(v->db, "SELECT state, progress, message, time FROM events WHERE "
	    "build_id = ? ORDER BY seq", -1, &st, NULL) != SQLITE_OK) {
		view_sql_err(v, "events", err);
		goto cleanup;
	}
	view_bind_text(st, 1, id);
	out = json_array();
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		json_array_append_new(out, json_pack("{s:s, s:I, s:s, s:s}", "state",
		    view_col(st, 0), "progress", (json_int_t)sqlite3_column_int64(st, 1),
		    "message", view_col(st, 2) != NULL ? view_col(st, 2) : "",
		    "time", view_col(st, 3) != NULL ? view_col(st, 3) : ""));
	if (rc != SQLITE_DONE) {
		view_sql_err(v, "events", err);
		json_decref(out);
		out = NULL;
	}
cleanup:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&v->db_mu);
	return out;
}

int
api_view_forget(struct api_view *v, const char *id, const char *project, struct err *err)
{
	sqlite3_stmt	*st = NULL;
	int		 rc, ret = -1;

	pthread_mutex_lock(&v->db_mu);
	if (sqlite3_prepare_v2(v->db, "SELECT state FROM builds WHERE id = ? AND deleted = 0 "
	    "AND (?2 IS NULL OR project_id = ?2)", -1, &st, NULL) != SQLITE_OK) {
		view_sql_err(v, "forget", err);
		goto cleanup;
	}
	view_bind_text(st, 1, id);
	view_bind_text(st, 2, project);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		err_set(err, ERR_NOTFOUND, "build %s: not found", id);
		goto cleanup;
	}
	if (rc != SQLITE_ROW) {
		view_sql_err(v, "forget", err);
		goto cleanup;
	}
	if (!api_state_terminal(view_col(st, 0))) {
		err_set(err, ERR_CONFLICT, "build %s is %s: cancel it first", id, view_col(st, 0));
		goto cleanup;
	}
	sqlite3_finalize(st);
	/* marked, not removed: a late event must not bring the record back */
	if (sqlite3_prepare_v2(v->db, "UPDATE builds SET deleted = 1, summary = NULL WHERE id = ?",
	    -1, &st, NULL) != SQLITE_OK) {
		st = NULL;
		view_sql_err(v, "forget", err);
		goto cleanup;
	}
	view_bind_text(st, 1, id);
	if (sqlite3_step(st) != SQLITE_DONE) {
		view_sql_err(v, "forget", err);
		goto cleanup;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (sqlite3_prepare_v2(v->db, "DELETE FROM events WHERE build_id = ?", -1, &st,
	    NULL) == SQLITE_OK) {
		view_bind_text(st, 1, id);
		sqlite3_step(st);
	}
	ret = 0;
cleanup:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&v->db_mu);
	return ret;
}

int
api_view_console(struct api_view *v, const char *id, const char *project, char **state,
    char **host, int *port, struct err *err)
{
	sqlite3_stmt	*st = NULL;
	int		 rc, ret = -1;

	*state = *host = NULL;
	*port = 0;
	pthread_mutex_lock(&v->db_mu);
	if (sqlite3_prepare_v2(v->db, "SELECT state, console_host, console_port FROM builds "
	    "WHERE id = ? AND deleted = 0 AND (?2 IS NULL OR project_id = ?2)", -1, &st,
	    NULL) != SQLITE_OK) {
		view_sql_err(v, "console", err);
		goto cleanup;
	}
	view_bind_text(st, 1, id);
	view_bind_text(st, 2, project);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		err_set(err, ERR_NOTFOUND, "build %s: not found", id);
	else if (rc != SQLITE_ROW)
		view_sql_err(v, "console", err);
	else {
		*state = xstrdup(view_col(st, 0));
		if (view_col(st, 1) != NULL) {
			*host = xstrdup(view_col(st, 1));
			*port = sqlite3_column_int(st, 2);
		}
		ret = 0;
	}
cleanup:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&v->db_mu);
	return ret;
}

/* Seconds before connection attempt n: 1, 2, 4 ... 60, with jitter. */
static double
view_backoff(size_t n)
{
	double		 d = 1.0;
	unsigned char	 r;

	while (n-- > 0 && d < VIEW_BACKOFF_MAX)
		d *= 2;
	if (d > VIEW_BACKOFF_MAX)
		d = VIEW_BACKOFF_MAX;
	util_random(&r, 1);
	return d * (0.5 + r / 510.0);
}

/* Makes sure the publisher is connected; pub_mu held. */
static int
view_pub_ready(struct api_view *v, struct err *err)
{
	if (v->pub != NULL && !v->pub->broken)
		return 0;
	mq_close(&v->pub);
	if (mq_connect(v->url, v->pub_attempts++, (int)v->api->cfg->heartbeat, 1,
	    VIEW_CONNECT_TIMEOUT, &v->pub, err) != 0)
		return -1;
	if (mq_declare_topology(v->pub, err) != 0) {
		mq_close(&v->pub);
		return -1;
	}
	v->pub_attempts = 0;
	return 0;
}

int
api_view_publish(struct api_view *v, const char *exchange, const char *key, const char *body,
    struct err *err)
{
	struct err	 e;
	int		 attempt, ret = -1;

	pthread_mutex_lock(&v->pub_mu);
	for (attempt = 0; attempt < 2; attempt++) {
		err_clear(&e);
		if (view_pub_ready(v, &e) == 0 && mq_publish(v->pub, exchange, key, NULL, body,
		    strlen(body), 1, VIEW_PUBLISH_TIMEOUT, &e) == 0) {
			ret = 0;
			break;
		}
		/* an idle connection the broker dropped: once more on a new one */
		if (v->pub != NULL && !v->pub->broken)
			break;
	}
	pthread_mutex_unlock(&v->pub_mu);
	if (ret != 0)
		err_set(err, e.kind, "%s", e.msg);
	return ret;
}

static void view_connect(struct api_view *);

/* Drops the consumer and schedules the next attempt. */
static void
view_disconnect(struct api_view *v, const char *why)
{
	double	 delay = view_backoff(v->attempts++);

	if (v->watch > 0)
		loop_watch_remove(v->api->loop, v->watch);
	v->watch = -1;
	mq_close(&v->cons);
	log_warnx("events: %s; connecting again in %.1f s (the view answers meanwhile)", why,
	    delay);
	loop_timer_update(v->api->loop, v->timer, (int)(delay * 1000));
}

/* A delivery from isoforge.events. */
static void
view_on_delivery(void *arg, struct mq_conn *c, amqp_envelope_t *env)
{
	struct api_view	*v = arg;
	struct err	 err;
	json_t		*ev;

	err_clear(&err);
	ev = json_loadb(env->message.body.bytes, env->message.body.len, 0, NULL);
	if (ev == NULL || api_view_apply(v, ev, &err) != 0) {
		/* not an event we can read: dropped (kept, it would come back forever) */
		if (err.kind == ERR_IO) {
			log_warnx("%s; the event comes again", err.msg);
			mq_reject(c, env->delivery_tag, 1, &err);
			json_decref(ev);
			return;
		}
		log_warnx("events: a message that is no event: %s", ev == NULL ? "not JSON" :
		    err.msg);
	}
	json_decref(ev);
	mq_ack(c, env->delivery_tag, &err);
}

static void
view_pump(struct api_view *v)
{
	struct err	 err;

	err_clear(&err);
	if (v->cons != NULL && mq_pump(v->cons, 0, view_on_delivery, v, &err) != 0)
		view_disconnect(v, err.msg);
}

static void
view_on_readable(int id, int fd, int events, void *arg)
{
	(void)id;
	(void)fd;
	(void)events;
	view_pump(arg);
}

/* Connects the consumer: topology, our queue bound to build.#, consume. */
static void
view_connect(struct api_view *v)
{
	struct err	 err;
	long		 hb = v->api->cfg->heartbeat;

	err_clear(&err);
	if (mq_connect(v->url, v->attempts, (int)hb, 0, VIEW_CONNECT_TIMEOUT, &v->cons,
	    &err) != 0 ||
	    mq_declare_topology(v->cons, &err) != 0 ||
	    mq_declare_durable_queue(v->cons, v->queue, MQ_EVENTS, "build.#", &err) != 0 ||
	    mq_qos(v->cons, 64, &err) != 0 ||
	    mq_consume(v->cons, v->queue, VIEW_TAG, 0, &err) != 0) {
		view_disconnect(v, err.msg);
		return;
	}
	v->watch = loop_watch_add(v->api->loop, mq_fd(v->cons), LOOP_READ, view_on_readable, v,
	    NULL);
	log_info("events: consuming %s at %s", v->queue, v->cons->where);
	v->attempts = 0;
	/* from now on the timer only keeps heartbeats going (half the heartbeat interval) */
	loop_timer_update(v->api->loop, v->timer, hb > 0 ? (int)(hb * 500) : -1);
	view_pump(v);
}

/* The one timer: a reconnect when the consumer is away, else heartbeats on both connections
 * (librabbitmq sends them when it reads). */
static void
view_on_timer(int id, void *arg)
{
	struct api_view	*v = arg;
	struct err	 err;

	(void)id;
	if (v->cons == NULL) {
		view_connect(v);
		return;
	}
	view_pump(v);
	pthread_mutex_lock(&v->pub_mu);
	err_clear(&err);
	if (v->pub != NULL && mq_pump(v->pub, 0, NULL, NULL, &err) != 0)
		mq_close(&v->pub);
	pthread_mutex_unlock(&v->pub_mu);
}

int
api_view_start(struct api_view *v, struct err *err)
{
	if ((v->timer = loop_timer_add(v->api->loop, -1, view_on_timer, v, NULL)) < 0) {
		err_set(err, ERR_INTERNAL, "cannot add a timer");
		return -1;
	}
	view_connect(v);
	return 0;
}
