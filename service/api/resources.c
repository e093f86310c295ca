/* resources.c — the resources of docs/api.md: the version document, builds (create through a
 * Keystone trust and the bus, list, show, events, actions, forget), chains from Glance as the
 * user, profiles from the templates, remote consoles. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "base/util.h"
#include "drivers/glance.h"
#include "drivers/http.h"
#include "drivers/keystone.h"
#include "isoboot/isoboot.h"
#include "service/api/api.h"
#include "service/common/amqp.h"
#include "service/console/token.h"
#include "service/pipeline/customize.h"
#include "service/pipeline/request.h"
#include "service/pipeline/templates.h"

#define API_REQUEST_SCHEMA	"isoforge.build/2"
#define API_CONTROL_SCHEMA	"isoforge.control/2"
#define API_EVENT_SCHEMA	"isoforge.event/2"
#define API_LIMIT_DEFAULT	50
#define API_LIMIT_MAX		1000

static json_t *
api_version_object(struct api_req *r)
{
	char	*self = xasprintf("%s/v1/", r->api->base_url);
	char	 min[16], max[16];
	json_t	*v;

	snprintf(min, sizeof(min), "1.%d", API_VERSION_MIN);
	snprintf(max, sizeof(max), "1.%d", API_VERSION_MAX);
	v = json_pack("{s:s, s:s, s:s, s:s, s:[{s:s, s:s}]}", "id", "v1.0", "status", "CURRENT",
	    "min_version", min, "max_version", max, "links", "rel", "self", "href", self);
	free(self);
	return v;
}

/* Answers an error of a lower layer: its kind decides the status. */
static void
api_error_from(struct api_req *r, const struct err *e, const char *what)
{
	switch (e->kind) {
	case ERR_NOTFOUND:
		api_error(r, 404, "not_found", "%s", e->msg);
		break;
	case ERR_CONFLICT:
		api_error(r, 409, "conflict", "%s", e->msg);
		break;
	case ERR_INVAL:
		api_error(r, 400, "invalid", "%s", e->msg);
		break;
	case ERR_AUTH:
		api_error(r, 403, "forbidden", "%s: refused (%s)", what, e->msg);
		break;
	case ERR_NET:
	case ERR_TIMEOUT:
	case ERR_REMOTE:
		log_warnx("%s: %s: %s", r->request_id, what, e->msg);
		api_error(r, 503, "unavailable", "%s: unavailable, try again later", what);
		break;
	default:
		log_warnx("%s: %s: %s", r->request_id, what, e->msg);
		api_error(r, 500, "internal", "%s: internal error", what);
		break;
	}
}

/* Authenticates and checks the policy; 0 or -1 (answered). */
static int
api_allow(struct api_req *r, int write, int fresh)
{
	if (api_authenticate(r, fresh) != 0)
		return -1;
	if (write ? !r->caller.can_write : !r->caller.can_read) {
		api_error(r, 403, "forbidden", "policy: your roles in this project may not %s",
		    write ? "create builds or act on them" : "read builds");
		return -1;
	}
	return 0;
}

/* The project a caller sees: its own, or every one for an admin (NULL). */
static const char *
api_scope(struct api_req *r)
{
	return r->caller.is_admin ? NULL : r->caller.project_id;
}

/* GET /v1/builds */
static void
api_builds_list(struct api_req *r)
{
	static const char *const keys[] = { "created_at", "updated_at", "name", "state", NULL };
	static const char *const passed[] = { "state", "chain", "name", "sort", "all_projects",
		NULL };
	struct api_list	 l;
	struct err	 e;
	struct buf	 next;
	const char	*v, *sort, *all;
	char		*end, *esc;
	json_t		*page, *last;
	size_t		 i, n;
	long		 limit = API_LIMIT_DEFAULT;
	int		 more;

	if (api_allow(r, 0, 0) != 0)
		return;
	memset(&l, 0, sizeof(l));
	l.project = r->caller.project_id;
	all = api_query(r, "all_projects");
	if (all != NULL && strcmp(all, "0") != 0 && strcasecmp(all, "false") != 0) {
		if (!r->caller.is_admin) {
			api_error(r, 403, "forbidden", "all_projects: only for admins");
			return;
		}
		l.project = NULL;
	}
	l.state = api_query(r, "state");
	l.chain = api_query(r, "chain");
	l.name = api_query(r, "name");
	l.marker = api_query(r, "marker");
	if ((v = api_query(r, "limit")) != NULL) {
		limit = strtol(v, &end, 10);
		if (*v == '\0' || *end != '\0' || limit < 1) {
			api_error(r, 400, "invalid_query", "limit: must be a positive integer");
			return;
		}
		if (limit > API_LIMIT_MAX)
			limit = API_LIMIT_MAX;
	}
	l.limit = (int)limit;
	l.sort_key = "created_at";
	l.desc = 1;
	if ((sort = api_query(r, "sort")) != NULL) {
		n = strcspn(sort, ":");
		for (i = 0; keys[i] != NULL; i++)
			if (strlen(keys[i]) == n && strncmp(keys[i], sort, n) == 0)
				break;
		if (keys[i] == NULL || (sort[n] == ':' && strcmp(sort + n + 1, "asc") != 0 &&
		    strcmp(sort + n + 1, "desc") != 0)) {
			api_error(r, 400, "invalid_query", "sort: must be KEY[:asc|desc] with KEY one "
			    "of created_at, updated_at, name, state");
			return;
		}
		l.sort_key = keys[i];
		l.desc = sort[n] != ':' || strcmp(sort + n + 1, "desc") == 0;
	}
	err_clear(&e);
	if ((page = api_view_list(r->api->view, &l, &more, &e)) == NULL) {
		if (e.kind == ERR_NOTFOUND)
			api_error(r, 400, "invalid_marker", "%s", e.msg);
		else
			api_error_from(r, &e, "builds view");
		return;
	}
	r->answer = json_pack("{s:o}", "builds", page);
	if (more && (last = json_array_get(page, json_array_size(page) - 1)) != NULL) {
		buf_init(&next);
		buf_printf(&next, "%s/v1/builds?limit=%ld&marker=%s", r->api->base_url, limit,
		    json_string_value(json_object_get(last, "id")));
		for (i = 0; passed[i] != NULL; i++) {
			if ((v = api_query(r, passed[i])) == NULL)
				continue;
			esc = http_escape(v);
			buf_printf(&next, "&%s=%s", passed[i], esc);
			free(esc);
		}
		json_object_set_new(r->answer, "builds_links", json_pack("[{s:s, s:s}]", "rel",
		    "next", "href", next.data));
		buf_free(&next);
	}
	r->status = 200;
}

/* The summary of a new build that its queued event carries (no answers: they hold
 * passwords). New reference. */
static json_t *
api_build_summary(struct api_req *r, const struct build_request *br, const char *created)
{
	json_t	*s = json_object(), *os;

	json_object_set_new(s, "name", json_string(br->name));
	json_object_set_new(s, "chain", br->chain != NULL ? json_string(br->chain) : json_null());
	json_object_set_new(s, "project_id", json_string(r->caller.project_id));
	json_object_set_new(s, "user_id", json_string(r->caller.user_id));
	json_object_set_new(s, "iso_image", br->iso_image != NULL ? json_string(br->iso_image) :
	    json_null());
	json_object_set_new(s, "virtio_win_image", br->virtio_win_image != NULL ?
	    json_string(br->virtio_win_image) : json_null());
	json_object_set_new(s, "flavor", json_string(br->flavor));
	os = json_object();
	if (br->os_type != NULL)
		json_object_set_new(os, "type", json_string(br->os_type));
	if (br->os_distro != NULL)
		json_object_set_new(os, "distro", json_string(br->os_distro));
	if (br->os_version != NULL)
		json_object_set_new(os, "version", json_string(br->os_version));
	json_object_set_new(s, "os", os);
	json_object_set_new(s, "firmware", br->firmware != NULL ? json_string(br->firmware) :
	    json_null());
	json_object_set_new(s, "install", json_pack("{s:s, s:I}", "mode", br->install_mode,
	    "timeout_s", (json_int_t)br->timeout_s));
	json_object_set_new(s, "parent_image", br->parent_image != NULL ?
	    json_string(br->parent_image) : json_null());
	json_object_set_new(s, "from_image", br->from_image != NULL ?
	    json_string(br->from_image) : json_null());
	json_object_set_new(s, "created_at", json_string(created));
	return s;
}

/* Creates the trust a new build acts through; the trust id (caller frees) or NULL answered. */
static char *
api_build_trust(struct api_req *r, struct keystone *user, const struct build_request *br)
{
	const struct keystone_token_info	*svc;
	struct keystone				*service;
	struct err				 e;
	time_t					 expires;
	double					 extra = 0;
	char					*trust = NULL;

	err_clear(&e);
	if ((service = api_service_session(r->api, &e)) == NULL ||
	    (svc = keystone_info(service, &e)) == NULL) {
		api_error_from(r, &e, "keystone");
		return NULL;
	}
	if (br->customize != NULL)
		extra = customize_timeout(br->customize);
	/* the install, the customizing step, then the margin for fetching and uploading */
	expires = time(NULL) + br->timeout_s + (time_t)extra + r->api->cfg->api_trust_margin;
	err_clear(&e);
	/* keystone_trust_create itself keeps builds posted in the same second apart */
	trust = keystone_trust_create(user, svc->user_id, r->caller.project_id, r->caller.roles,
	    expires, &e);
	if (trust == NULL) {
		if (e.kind == ERR_AUTH)
			api_error(r, 403, "forbidden", "keystone refused a trust for this build: %s",
			    e.msg);
		else
			api_error_from(r, &e, "keystone trust");
	}
	return trust;
}

/* POST /v1/builds */
static void
api_builds_create(struct api_req *r)
{
	struct build_request	*br = NULL;
	struct keystone		*service, *user = NULL;
	struct err		 e;
	const char		*key;
	json_t			*body = NULL, *b, *v, *msg = NULL, *ev = NULL;
	char			 id[37], created[32], *text = NULL, *trust = NULL, *rk = NULL;

	if (api_allow(r, 1, 1) != 0)
		return;
	if ((body = api_body_json(r)) == NULL)
		return;
	json_object_foreach(body, key, v) {
		(void)v;
		if (strcmp(key, "build") != 0) {
			api_error(r, 400, "invalid_body", "%s: unknown field", key);
			goto cleanup;
		}
	}
	if (!json_is_object(b = json_object_get(body, "build"))) {
		api_error(r, 400, "invalid_body", "build: missing (an object)");
		goto cleanup;
	}
	/* the worker's own validator, in the API's mode: no schema, id or credentials */
	text = json_dumps(b, JSON_COMPACT);
	err_clear(&e);
	if ((br = request_parse(text, strlen(text), REQUEST_API, &e)) == NULL) {
		api_error(r, 400, "invalid_build", "%s", e.msg);
		goto cleanup;
	}
	util_uuid(id);
	util_utc_stamp(created);
	if ((service = api_service_session(r->api, &e)) == NULL ||
	    (user = keystone_new_for_user(service, r->caller.token, &e)) == NULL) {
		api_error_from(r, &e, "keystone");
		goto cleanup;
	}
	if ((trust = api_build_trust(r, user, br)) == NULL)
		goto cleanup;

	msg = request_to_json(br);
	json_object_del(msg, "token");
	json_object_set_new(msg, "schema", json_string(API_REQUEST_SCHEMA));
	json_object_set_new(msg, "build_id", json_string(id));
	json_object_set_new(msg, "trust_id", json_string(trust));
	free(text);
	text = json_dumps(msg, JSON_COMPACT);
	if (api_view_publish(r->api->view, MQ_EXCHANGE, MQ_RK_REQUEST, text, &e) != 0) {
		struct err	 de;

		log_warnx("%s: build %s: publishing the request: %s", r->request_id, id, e.msg);
		err_clear(&de);
		if (keystone_trust_delete(user, trust, &de) != 0)
			log_warnx("%s: build %s: deleting its trust %s: %s", r->request_id, id,
			    trust, de.msg);
		api_error(r, 503, "bus_unavailable", "the build could not be queued (the message "
		    "bus is unavailable); nothing was started, try again later");
		goto cleanup;
	}
	ev = json_pack("{s:s, s:s, s:s, s:i, s:s, s:n, s:n, s:s, s:n, s:s, s:n, s:o}",
	    "schema", API_EVENT_SCHEMA, "build_id", id, "state", "queued", "progress", 0,
	    "message", "queued", "image_id", "version", "project_id", r->caller.project_id,
	    "worker", "time", created, "console", "build", api_build_summary(r, br, created));
	free(text);
	text = json_dumps(ev, JSON_COMPACT);
	rk = xasprintf("build.%s.queued", id);
	if (api_view_publish(r->api->view, MQ_EVENTS, rk, text, &e) != 0)
		/* the request is on its way: the worker's own events will tell the others */
		log_warnx("%s: build %s: publishing its queued event: %s", r->request_id, id,
		    e.msg);
	err_clear(&e);
	/* this process answers at once, before its queue brings the event back */
	if (api_view_apply(r->api->view, ev, &e) != 0 ||
	    (r->answer = api_view_build(r->api->view, id, NULL, &e)) == NULL) {
		api_error_from(r, &e, "builds view");
		goto cleanup;
	}
	r->answer = json_pack("{s:o}", "build", r->answer);
	r->location = xasprintf("%s/v1/builds/%s", r->api->base_url, id);
	r->status = 202;
	log_info("%s: build %s (%s) queued for user %s of project %s", r->request_id, id,
	    br->name, r->caller.user_id, r->caller.project_id);
cleanup:
	keystone_free(&user);
	request_free(&br);
	json_decref(body);
	json_decref(msg);
	json_decref(ev);
	free(text);
	free(trust);
	free(rk);
}

/* Build id as the caller's scope sees it (new reference), or NULL with the error answered. */
static json_t *
api_build_get(struct api_req *r, const char *id)
{
	struct err	 e;
	json_t		*b;

	err_clear(&e);
	if ((b = api_view_build(r->api->view, id, api_scope(r), &e)) == NULL)
		api_error_from(r, &e, "builds view");
	return b;
}

/* GET /v1/builds/{id} */
static void
api_build_show(struct api_req *r, const char *id)
{
	json_t		*b;

	if (api_allow(r, 0, 0) != 0)
		return;
	if ((b = api_build_get(r, id)) == NULL)
		return;
	r->answer = json_pack("{s:o}", "build", b);
	r->status = 200;
}

/* GET /v1/builds/{id}/events */
static void
api_build_events(struct api_req *r, const char *id)
{
	struct err	 e;
	json_t		*b, *evs;

	if (api_allow(r, 0, 0) != 0)
		return;
	if ((b = api_build_get(r, id)) == NULL)
		return;
	json_decref(b);
	err_clear(&e);
	if ((evs = api_view_events(r->api->view, id, &e)) == NULL) {
		api_error_from(r, &e, "builds view");
		return;
	}
	r->answer = json_pack("{s:o}", "events", evs);
	r->status = 200;
}

/* DELETE /v1/builds/{id} */
static void
api_build_forget(struct api_req *r, const char *id)
{
	struct err	 e;

	if (api_allow(r, 1, 0) != 0)
		return;
	err_clear(&e);
	if (api_view_forget(r->api->view, id, api_scope(r), &e) != 0) {
		api_error_from(r, &e, "builds view");
		return;
	}
	r->status = 204;
}

/* POST /v1/builds/{id}/action: {"finish": null} or {"cancel": null} */
static void
api_build_action(struct api_req *r, const char *id)
{
	struct err	 e;
	const char	*action = NULL, *key, *state;
	json_t		*body, *b = NULL, *v, *msg = NULL;
	char		*text = NULL;

	if (api_allow(r, 1, 0) != 0)
		return;
	if ((body = api_body_json(r)) == NULL)
		return;
	json_object_foreach(body, key, v) {
		(void)v;
		if ((strcmp(key, "finish") != 0 && strcmp(key, "cancel") != 0) || action != NULL) {
			api_error(r, 400, "invalid_body", "body: must be {\"finish\": null} or "
			    "{\"cancel\": null}");
			goto cleanup;
		}
		action = key;
	}
	if (action == NULL) {
		api_error(r, 400, "invalid_body", "body: must be {\"finish\": null} or "
		    "{\"cancel\": null}");
		goto cleanup;
	}
	if ((b = api_build_get(r, id)) == NULL)
		goto cleanup;
	err_clear(&e);
	state = json_string_value(json_object_get(b, "state"));
	if (api_state_terminal(state)) {
		api_error(r, 409, "conflict", "build %s is already %s", id, state);
		goto cleanup;
	}
	/* no token: only the services hold broker credentials, the API authorized this */
	msg = json_pack("{s:s, s:s, s:s}", "schema", API_CONTROL_SCHEMA, "action", action,
	    "build_id", id);
	text = json_dumps(msg, JSON_COMPACT);
	if (api_view_publish(r->api->view, MQ_EXCHANGE, MQ_RK_CONTROL, text, &e) != 0) {
		log_warnx("%s: build %s: publishing %s: %s", r->request_id, id, action, e.msg);
		api_error(r, 503, "bus_unavailable", "the message bus is unavailable; try again "
		    "later");
		goto cleanup;
	}
	log_info("%s: build %s: %s asked by user %s", r->request_id, id, action,
	    r->caller.user_id);
	r->status = 202;
cleanup:
	json_decref(body);
	json_decref(b);
	json_decref(msg);
	free(text);
}

/* POST /v1/builds/{id}/remote-console */
static void
api_build_console(struct api_req *r, const char *id)
{
	const struct config	*cfg = r->api->cfg;
	struct err		 e;
	const char		*proto, *type;
	json_t			*body, *rc;
	char			*state = NULL, *host = NULL, *key = NULL, *token = NULL;
	char			*url = NULL, expires_s[32];
	time_t			 expires;
	struct tm		 tm;
	int			 port;

	if (api_allow(r, 1, 0) != 0)
		return;
	if ((body = api_body_json(r)) == NULL)
		return;
	rc = json_object_get(body, "remote_console");
	proto = json_string_value(json_object_get(rc, "protocol"));
	type = json_string_value(json_object_get(rc, "type"));
	if (!json_is_object(rc) || json_object_size(body) != 1 ||
	    (proto != NULL && strcmp(proto, "vnc") != 0) ||
	    (type != NULL && strcmp(type, "novnc") != 0)) {
		api_error(r, 400, "invalid_body", "body: must be {\"remote_console\": "
		    "{\"protocol\": \"vnc\", \"type\": \"novnc\"}}");
		goto cleanup;
	}
	err_clear(&e);
	if (api_view_console(r->api->view, id, api_scope(r), &state, &host, &port, &e) != 0) {
		api_error_from(r, &e, "builds view");
		goto cleanup;
	}
	if (strcmp(state, "installing") != 0 || host == NULL) {
		api_error(r, 409, "conflict", "build %s is %s: it has no console now", id, state);
		goto cleanup;
	}
	expires = time(NULL) + cfg->console_token_ttl;
	key = console_key(cfg);
	if ((token = console_token_mint(key, id, host, port, expires, &e)) == NULL) {
		api_error_from(r, &e, "console");
		goto cleanup;
	}
	url = console_url(cfg->console_base_url, token);
	gmtime_r(&expires, &tm);
	strftime(expires_s, sizeof(expires_s), "%Y-%m-%dT%H:%M:%SZ", &tm);
	r->answer = json_pack("{s:{s:s, s:s, s:s, s:s}}", "remote_console", "protocol", "vnc",
	    "type", "novnc", "url", url, "expires_at", expires_s);
	r->status = 200;
cleanup:
	json_decref(body);
	console_key_free(&key);
	if (token != NULL)
		explicit_bzero(token, strlen(token));
	free(token);
	if (url != NULL)
		explicit_bzero(url, strlen(url));
	free(url);
	free(state);
	free(host);
}

/* The images of the caller's project in Glance (as the user), of chain name or of every chain;
 * new reference, or NULL answered. */
static json_t *
api_chain_images(struct api_req *r, const char *name)
{
	struct glance_list_opts	 o;
	struct keystone		*service, *user = NULL;
	struct glance		*g = NULL;
	struct err		 e;
	json_t			*list = NULL, *filters = json_object();

	err_clear(&e);
	json_object_set_new(filters, "owner", json_string(r->caller.project_id));
	if (name != NULL)
		json_object_set_new(filters, "isoforge_chain", json_string(name));
	memset(&o, 0, sizeof(o));
	o.filters = filters;
	o.sort = "created_at:asc";
	o.page_size = 200;
	if ((service = api_service_session(r->api, &e)) == NULL ||
	    (user = keystone_new_for_user(service, r->caller.token, &e)) == NULL ||
	    (g = glance_new(user, r->api->cfg->glance_endpoint, &e)) == NULL ||
	    (list = glance_image_list(g, &o, &e)) == NULL)
		api_error_from(r, &e, "glance");
	glance_free(&g);
	keystone_free(&user);
	json_decref(filters);
	return list;
}

static long
api_image_version(const json_t *img)
{
	const char	*s = json_string_value(json_object_get(img, "isoforge_version"));

	return s != NULL ? strtol(s, NULL, 10) : 0;
}

/* GET /v1/chains */
static void
api_chains_list(struct api_req *r)
{
	json_t		*imgs, *img, *chains, *c, *out;
	const char	*name, *key;
	size_t		 i;
	long		 v;

	if (api_allow(r, 0, 0) != 0)
		return;
	if ((imgs = api_chain_images(r, NULL)) == NULL)
		return;
	chains = json_object();
	json_array_foreach(imgs, i, img) {
		if ((name = json_string_value(json_object_get(img, "isoforge_chain"))) == NULL)
			continue;
		if ((c = json_object_get(chains, name)) == NULL) {
			c = json_pack("{s:s, s:i, s:i, s:n}", "name", name, "versions", 0,
			    "latest_version", 0, "latest_image");
			json_object_set_new(chains, name, c);
		}
		json_object_set_new(c, "versions", json_integer(json_integer_value(
		    json_object_get(c, "versions")) + 1));
		v = api_image_version(img);
		if (v >= json_integer_value(json_object_get(c, "latest_version"))) {
			json_object_set_new(c, "latest_version", json_integer(v));
			json_object_set(c, "latest_image", json_object_get(img, "id"));
		}
	}
	out = json_array();
	json_object_foreach(chains, key, c) {
		(void)key;
		json_array_append(out, c);
	}
	r->answer = json_pack("{s:o}", "chains", out);
	r->status = 200;
	json_decref(chains);
	json_decref(imgs);
}

static int
api_version_cmp(const void *a, const void *b)
{
	long	 x = json_integer_value(json_object_get(*(json_t *const *)a, "version"));
	long	 y = json_integer_value(json_object_get(*(json_t *const *)b, "version"));

	return x < y ? -1 : x > y;
}

/* GET /v1/chains/{name} */
static void
api_chain_show(struct api_req *r, const char *name)
{
	json_t		*imgs, *img, *versions, *parent, *bid, **sorted;
	size_t		 i, n;

	if (api_allow(r, 0, 0) != 0)
		return;
	if ((imgs = api_chain_images(r, name)) == NULL)
		return;
	n = json_array_size(imgs);
	sorted = xcalloc(n + 1, sizeof(*sorted));
	for (i = 0; i < n; i++) {
		img = json_array_get(imgs, i);
		parent = json_object_get(img, "isoforge_parent");
		bid = json_object_get(img, "isoforge_build_id");
		sorted[i] = json_pack("{s:I, s:O, s:O, s:O, s:O, s:O}",
		    "version", (json_int_t)api_image_version(img),
		    "image_id", json_object_get(img, "id"),
		    "parent", json_is_string(parent) ? parent : json_null(),
		    "build_id", json_is_string(bid) ? bid : json_null(),
		    "status", json_object_get(img, "status") != NULL ?
		    json_object_get(img, "status") : json_null(),
		    "created_at", json_object_get(img, "created_at") != NULL ?
		    json_object_get(img, "created_at") : json_null());
	}
	if (n == 0) {
		api_error(r, 404, "not_found", "chain %s: no image of your project", name);
		goto cleanup;
	}
	qsort(sorted, n, sizeof(*sorted), api_version_cmp);
	versions = json_array();
	for (i = 0; i < n; i++) {
		json_array_append_new(versions, sorted[i]);
		sorted[i] = NULL;
	}
	r->answer = json_pack("{s:{s:s, s:o}}", "chain", "name", name, "versions", versions);
	r->status = 200;
cleanup:
	for (i = 0; i < n; i++)
		json_decref(sorted[i]);
	free(sorted);
	json_decref(imgs);
}

static int
api_strcmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
api_set_opt(json_t *o, const char *k, const char *s)
{
	json_object_set_new(o, k, s != NULL ? json_string(s) : json_null());
}

/* GET /v1/profiles */
static void
api_profiles_list(struct api_req *r)
{
	struct isoboot_profile	*p;
	struct dirent		*de;
	struct err		 e;
	const char		*tdir = templates_dir();
	char			*dir, **names = NULL;
	size_t			 n = 0, i, len;
	json_t			*out, *o;
	DIR			*d;

	if (api_allow(r, 0, 0) != 0)
		return;
	dir = xasprintf("%s/profiles", tdir);
	if ((d = opendir(dir)) == NULL) {
		log_warn("%s: %s", r->request_id, dir);
		api_error(r, 500, "internal", "the profiles cannot be read");
		free(dir);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		len = strlen(de->d_name);
		if (len <= 5 || de->d_name[0] == '.' || strcmp(de->d_name + len - 5, ".conf") != 0)
			continue;
		names = xrealloc(names, (n + 1) * sizeof(*names));
		names[n++] = xstrndup(de->d_name, len - 5);
	}
	closedir(d);
	qsort(names, n, sizeof(*names), api_strcmp);
	out = json_array();
	for (i = 0; i < n; i++) {
		err_clear(&e);
		if ((p = templates_load_profile(tdir, names[i], &e)) == NULL) {
			log_warnx("%s: profile %s: %s", r->request_id, names[i], e.msg);
			continue;
		}
		o = json_object();
		api_set_opt(o, "name", p->name);
		api_set_opt(o, "description", p->description);
		api_set_opt(o, "os_type", p->os_type);
		api_set_opt(o, "machine", p->machine);
		api_set_opt(o, "firmware", p->firmware);
		json_object_set_new(o, "secure_boot", json_boolean(p->secure_boot));
		json_object_set_new(o, "tpm", json_boolean(p->tpm));
		api_set_opt(o, "disk_bus", p->disk_bus);
		api_set_opt(o, "cdrom_bus", p->cdrom_bus);
		api_set_opt(o, "nic_model", p->nic_model);
		api_set_opt(o, "video", p->video);
		json_object_set_new(o, "ram_mib", json_integer(p->ram_mib));
		json_object_set_new(o, "vcpus", json_integer(p->vcpus));
		api_set_opt(o, "answers", p->answers);
		api_set_opt(o, "answers_media", p->answers_media);
		json_array_append_new(out, o);
		isoboot_profile_free(&p);
	}
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(dir);
	r->answer = json_pack("{s:o}", "profiles", out);
	r->status = 200;
}

static void
api_method_not_allowed(struct api_req *r)
{
	api_error(r, 405, "method_not_allowed", "%s is not allowed on %s", r->method, r->path);
}

/* 1 when the method is m. */
static int
api_is(struct api_req *r, const char *m)
{
	return strcmp(r->method, m) == 0;
}

void
api_route(struct api_req *r)
{
	char	*path = xstrdup(r->path), *seg[6], *save = NULL, *p;
	size_t	 n = 0;

	for (p = strtok_r(path, "/", &save); p != NULL && n < 6; p = strtok_r(NULL, "/", &save))
		seg[n++] = p;
	if (p != NULL)
		n = 6;	/* too deep: no route */

	if (n == 0) {
		if (!api_is(r, "GET") && !api_is(r, "HEAD"))
			api_method_not_allowed(r);
		else {
			r->answer = json_pack("{s:[o]}", "versions", api_version_object(r));
			r->status = 200;
		}
	} else if (strcmp(seg[0], "v1") != 0) {
		api_error(r, 404, "not_found", "%s: no such resource", r->path);
	} else if (n == 1) {
		if (!api_is(r, "GET") && !api_is(r, "HEAD"))
			api_method_not_allowed(r);
		else {
			r->answer = json_pack("{s:o}", "version", api_version_object(r));
			r->status = 200;
		}
	} else if (strcmp(seg[1], "builds") == 0) {
		if (n == 2) {
			if (api_is(r, "GET"))
				api_builds_list(r);
			else if (api_is(r, "POST"))
				api_builds_create(r);
			else
				api_method_not_allowed(r);
		} else if (!util_is_uuid(seg[2])) {
			api_error(r, 404, "not_found", "build %.64s: not found", seg[2]);
		} else if (n == 3) {
			if (api_is(r, "GET"))
				api_build_show(r, seg[2]);
			else if (api_is(r, "DELETE"))
				api_build_forget(r, seg[2]);
			else
				api_method_not_allowed(r);
		} else if (n == 4 && strcmp(seg[3], "events") == 0) {
			if (api_is(r, "GET"))
				api_build_events(r, seg[2]);
			else
				api_method_not_allowed(r);
		} else if (n == 4 && strcmp(seg[3], "action") == 0) {
			if (api_is(r, "POST"))
				api_build_action(r, seg[2]);
			else
				api_method_not_allowed(r);
		} else if (n == 4 && strcmp(seg[3], "remote-console") == 0) {
			if (api_is(r, "POST"))
				api_build_console(r, seg[2]);
			else
				api_method_not_allowed(r);
		} else
			api_error(r, 404, "not_found", "%s: no such resource", r->path);
	} else if (strcmp(seg[1], "chains") == 0 && n <= 3) {
		if (!api_is(r, "GET"))
			api_method_not_allowed(r);
		else if (n == 2)
			api_chains_list(r);
		else
			api_chain_show(r, seg[2]);
	} else if (strcmp(seg[1], "profiles") == 0 && n == 2) {
		if (!api_is(r, "GET"))
			api_method_not_allowed(r);
		else
			api_profiles_list(r);
	} else
		api_error(r, 404, "not_found", "%s: no such resource", r->path);
	free(path);
}
