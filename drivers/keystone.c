/* keystone.c — Keystone v3 sessions: token cache and renewal, catalog, token validation. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "drivers/keystone.h"
#include "base/log.h"

#define KEYSTONE_RENEW_MARGIN	120	/* seconds before expiry a token is renewed */

struct keystone {
	struct http_client		*http;
	char				*auth_url;	/* without a trailing slash */
	char				*region;
	char				*interface;
	json_t				*auth_body;	/* own credentials; NULL for a user session */
	char				*token;
	struct keystone_token_info	*info;
	/* A user session: */
	struct keystone			*service;
	char				*user_token;
};

/* Passes an error up: fills err (which may be NULL) with e unless it holds one already. */
static void
keystone_err_copy(struct err *err, const struct err *e)
{
	if (err != NULL && err->kind == ERR_NONE)
		*err = *e;
}

static char *
keystone_strdup_or_null(const char *s)
{
	return s != NULL && *s != '\0' ? xstrdup(s) : NULL;
}

static void
keystone_free_strv(char **v)
{
	char	**p;

	for (p = v; p != NULL && *p != NULL; p++)
		free(*p);
	free(v);
}

void
keystone_token_info_free(struct keystone_token_info **ip)
{
	struct keystone_token_info	*i;

	if (ip == NULL || (i = *ip) == NULL)
		return;
	free(i->user_id);
	free(i->user_name);
	free(i->user_domain_id);
	free(i->project_id);
	free(i->project_name);
	free(i->project_domain_id);
	keystone_free_strv(i->roles);
	free(i->expires_at);
	json_decref(i->catalog);
	free(i);
	*ip = NULL;
}

static char *
keystone_json_str(const json_t *o, const char *k1, const char *k2)
{
	const json_t	*v = json_object_get(o, k1);

	if (k2 != NULL)
		v = json_object_get(v, k2);
	return json_is_string(v) ? xstrdup(json_string_value(v)) : NULL;
}

/* "2026-11-22T04:00:00.000000Z" → time_t (UTC); -1 when it does not parse. */
static time_t
keystone_parse_time(const char *s)
{
	struct tm	 tm;
	const char	*end;

	memset(&tm, 0, sizeof(tm));
	if (s == NULL || (end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm)) == NULL)
		return (time_t)-1;
	return timegm(&tm);
}

struct keystone_token_info *
keystone_token_info_parse(const json_t *body, struct err *err)
{
	const json_t			*tok = json_object_get(body, "token"), *roles, *r;
	struct keystone_token_info	*i;
	size_t				 idx;

	if (!json_is_object(tok)) {
		err_set(err, ERR_REMOTE, "keystone: answer without a token object");
		return NULL;
	}
	i = xcalloc(1, sizeof(*i));
	i->user_id = keystone_json_str(json_object_get(tok, "user"), "id", NULL);
	i->user_name = keystone_json_str(json_object_get(tok, "user"), "name", NULL);
	i->user_domain_id = keystone_json_str(json_object_get(tok, "user"), "domain", "id");
	i->project_id = keystone_json_str(json_object_get(tok, "project"), "id", NULL);
	i->project_name = keystone_json_str(json_object_get(tok, "project"), "name", NULL);
	i->project_domain_id = keystone_json_str(json_object_get(tok, "project"), "domain", "id");
	i->expires_at = keystone_json_str(tok, "expires_at", NULL);
	i->expires = keystone_parse_time(i->expires_at);
	roles = json_object_get(tok, "roles");
	i->roles = xcalloc(json_array_size(roles) + 1, sizeof(char *));
	json_array_foreach(roles, idx, r) {
		if (json_is_string(json_object_get(r, "name")))
			i->roles[i->nroles++] = xstrdup(json_string_value(json_object_get(r, "name")));
	}
	if (json_is_array(json_object_get(tok, "catalog")))
		i->catalog = json_incref(json_object_get(tok, "catalog"));
	if (i->user_id == NULL || i->expires == (time_t)-1) {
		keystone_token_info_free(&i);
		err_set(err, ERR_REMOTE, "keystone: token without user or expiry");
		return NULL;
	}
	return i;
}

int
keystone_token_info_has_role(const struct keystone_token_info *i, const char *role)
{
	size_t	 n;

	for (n = 0; i != NULL && n < i->nroles; n++)
		if (strcmp(i->roles[n], role) == 0)
			return 1;
	return 0;
}

/* {"name": ..} or {"id": ..} for a domain, or NULL when neither is given. */
static json_t *
keystone_domain(const char *name, const char *id)
{
	if (id != NULL && *id != '\0')
		return json_pack("{s:s}", "id", id);
	if (name != NULL && *name != '\0')
		return json_pack("{s:s}", "name", name);
	return NULL;
}

static int
keystone_set(const char *s)
{
	return s != NULL && *s != '\0';
}

json_t *
keystone_auth_body(const struct keystone_auth *a, struct err *err)
{
	json_t	*identity, *user, *ac, *scope = NULL, *project, *d;

	if (keystone_set(a->app_cred_secret) && !keystone_set(a->trust_id)) {
		ac = json_pack("{s:s}", "secret", a->app_cred_secret);
		if (keystone_set(a->app_cred_id))
			json_object_set_new(ac, "id", json_string(a->app_cred_id));
		else if (keystone_set(a->app_cred_name) &&
		    (keystone_set(a->user_id) || keystone_set(a->username))) {
			json_object_set_new(ac, "name", json_string(a->app_cred_name));
			user = keystone_set(a->user_id) ? json_pack("{s:s}", "id", a->user_id) :
			    json_pack("{s:s}", "name", a->username);
			if (!keystone_set(a->user_id) &&
			    (d = keystone_domain(a->user_domain_name, a->user_domain_id)) != NULL)
				json_object_set_new(user, "domain", d);
			json_object_set_new(ac, "user", user);
		} else {
			json_decref(ac);
			err_set(err, ERR_INVAL, "keystone: an application credential needs its id, "
			    "or its name and the user");
			return NULL;
		}
		identity = json_pack("{s:[s],s:o}", "methods", "application_credential",
		    "application_credential", ac);
		return json_pack("{s:{s:o}}", "auth", "identity", identity);
	}
	if (keystone_set(a->trust_id) && keystone_set(a->app_cred_secret)) {
		err_set(err, ERR_INVAL, "keystone: a trust-scoped token needs a password login "
		    "(Keystone refuses a scope with an application credential)");
		return NULL;
	}
	if (!keystone_set(a->password) || (!keystone_set(a->user_id) && !keystone_set(a->username))) {
		err_set(err, ERR_INVAL, "keystone: need a user (name or id) and a password, or an "
		    "application credential");
		return NULL;
	}
	if (keystone_set(a->user_id))
		user = json_pack("{s:s,s:s}", "id", a->user_id, "password", a->password);
	else {
		d = keystone_domain(a->user_domain_name, a->user_domain_id);
		if (d == NULL)
			d = json_pack("{s:s}", "id", "default");
		user = json_pack("{s:s,s:s,s:o}", "name", a->username, "password", a->password,
		    "domain", d);
	}
	identity = json_pack("{s:[s],s:{s:o}}", "methods", "password", "password", "user", user);
	if (keystone_set(a->trust_id))
		scope = json_pack("{s:{s:s}}", "OS-TRUST:trust", "id", a->trust_id);
	else if (keystone_set(a->project_id))
		scope = json_pack("{s:{s:s}}", "project", "id", a->project_id);
	else if (keystone_set(a->project_name)) {
		d = keystone_domain(a->project_domain_name, a->project_domain_id);
		if (d == NULL)
			d = json_pack("{s:s}", "id", "default");
		project = json_pack("{s:s,s:o}", "name", a->project_name, "domain", d);
		scope = json_pack("{s:o}", "project", project);
	}
	if (scope != NULL)
		return json_pack("{s:{s:o,s:o}}", "auth", "identity", identity, "scope", scope);
	return json_pack("{s:{s:o}}", "auth", "identity", identity);
}

static char *
keystone_trim_url(const char *url)
{
	size_t	 n = strlen(url);

	while (n > 0 && url[n - 1] == '/')
		n--;
	return xstrndup(url, n);
}

struct keystone *
keystone_new(struct http_client *http, const struct keystone_auth *a, struct err *err)
{
	struct keystone	*k;
	json_t		*body;

	if (!keystone_set(a->auth_url)) {
		err_set(err, ERR_INVAL, "keystone: no auth URL (OS_AUTH_URL)");
		return NULL;
	}
	if ((body = keystone_auth_body(a, err)) == NULL)
		return NULL;
	k = xcalloc(1, sizeof(*k));
	k->http = http;
	k->auth_url = keystone_trim_url(a->auth_url);
	k->region = keystone_strdup_or_null(a->region);
	k->interface = xstrdup(keystone_set(a->interface) ? a->interface : "public");
	k->auth_body = body;
	return k;
}

void
keystone_free(struct keystone **kp)
{
	struct keystone	*k;

	if (kp == NULL || (k = *kp) == NULL)
		return;
	free(k->auth_url);
	free(k->region);
	free(k->interface);
	json_decref(k->auth_body);
	free(k->token);
	keystone_token_info_free(&k->info);
	free(k->user_token);
	free(k);
	*kp = NULL;
}

struct http_client *
keystone_http(struct keystone *k)
{
	return k->http;
}

/* POST /v3/auth/tokens with the session's credentials; keeps token and info. */
static int
keystone_authenticate(struct keystone *k, struct err *err)
{
	struct http_req		 req;
	struct http_resp	 resp;
	struct err		 e;
	char			*url, *body, *tok = NULL;
	json_t			*root = NULL;
	int			 rc = -1;

	url = xasprintf("%s/auth/tokens", k->auth_url);
	body = json_dumps(k->auth_body, JSON_COMPACT);
	http_req_init(&req);
	http_resp_init(&resp);
	req.method = "POST";
	req.url = url;
	req.body = body;
	req.body_len = strlen(body);
	req.idempotent = 1;	/* a login twice is harmless */
	err_clear(&e);
	if (http_request(k->http, &req, &resp, &e) == -1) {
		if (e.kind == ERR_AUTH || e.status == 401) {
			if (err != NULL && err->kind == ERR_NONE) {
				err_set(err, ERR_AUTH, "keystone: authentication failed: %s", e.msg);
				err->status = e.status;
			}
		} else
			keystone_err_copy(err, &e);
		goto cleanup;
	}
	if ((tok = http_resp_header(&resp, "X-Subject-Token")) == NULL) {
		err_set(err, ERR_REMOTE, "keystone: no X-Subject-Token in the answer");
		goto cleanup;
	}
	if ((root = json_loadb(resp.body.data, resp.body.len, 0, NULL)) == NULL) {
		err_set(err, ERR_REMOTE, "keystone: answer is not JSON");
		goto cleanup;
	}
	keystone_token_info_free(&k->info);
	if ((k->info = keystone_token_info_parse(root, err)) == NULL)
		goto cleanup;
	free(k->token);
	k->token = tok;
	tok = NULL;
	rc = 0;
cleanup:
	if (body != NULL) {
		explicit_bzero(body, strlen(body));
		free(body);
	}
	free(tok);
	free(url);
	json_decref(root);
	http_resp_free(&resp);
	return rc;
}

const char *
keystone_token(struct keystone *k, struct err *err)
{
	if (k->service != NULL)
		return k->user_token;
	if (k->token != NULL && k->info != NULL &&
	    k->info->expires - time(NULL) > KEYSTONE_RENEW_MARGIN)
		return k->token;
	if (keystone_authenticate(k, err) == -1)
		return NULL;
	return k->token;
}

int
keystone_renew(struct keystone *k, struct err *err)
{
	if (k->service != NULL)
		return keystone_renew(k->service, err);
	free(k->token);
	k->token = NULL;
	return keystone_authenticate(k, err);
}

const struct keystone_token_info *
keystone_info(struct keystone *k, struct err *err)
{
	if (k->service == NULL && keystone_token(k, err) == NULL)
		return NULL;
	return k->info;
}

char *
keystone_catalog_find(const json_t *catalog, const char *type, const char *interface,
    const char *region, struct err *err)
{
	const json_t	*svc, *ep, *v;
	size_t		 i, j;

	if (interface == NULL)
		interface = "public";
	json_array_foreach(catalog, i, svc) {
		if (!json_is_string(json_object_get(svc, "type")) ||
		    strcmp(json_string_value(json_object_get(svc, "type")), type) != 0)
			continue;
		json_array_foreach(json_object_get(svc, "endpoints"), j, ep) {
			v = json_object_get(ep, "interface");
			if (!json_is_string(v) || strcmp(json_string_value(v), interface) != 0)
				continue;
			if (region != NULL) {
				const char	*r = json_string_value(json_object_get(ep, "region_id"));

				if (r == NULL)
					r = json_string_value(json_object_get(ep, "region"));
				if (r == NULL || strcmp(r, region) != 0)
					continue;
			}
			if (json_is_string(json_object_get(ep, "url")))
				return keystone_trim_url(json_string_value(json_object_get(ep, "url")));
		}
	}
	err_set(err, ERR_NOTFOUND, "keystone: no %s endpoint for service type %s%s%s in the catalog",
	    interface, type, region ? " in region " : "", region ? region : "");
	return NULL;
}

char *
keystone_endpoint(struct keystone *k, const char *type, struct err *err)
{
	const struct keystone_token_info	*i;

	if ((i = keystone_info(k, err)) == NULL)
		return NULL;
	return keystone_catalog_find(i->catalog, type, k->interface, k->region, err);
}

/* Fills hdrs (3 slots, NULL-terminated) with the session's token headers; caller frees them. */
static int
keystone_auth_headers(struct keystone *k, char *hdrs[3], struct err *err)
{
	const char	*t;

	hdrs[0] = hdrs[1] = hdrs[2] = NULL;
	if ((t = keystone_token(k, err)) == NULL)
		return -1;
	hdrs[0] = xasprintf("X-Auth-Token: %s", t);
	if (k->service != NULL) {
		if ((t = keystone_token(k->service, err)) == NULL) {
			free(hdrs[0]);
			hdrs[0] = NULL;
			return -1;
		}
		hdrs[1] = xasprintf("X-Service-Token: %s", t);
	}
	return 0;
}

static void
keystone_free_headers(char **h)
{
	size_t	 i;

	for (i = 0; h[i] != NULL; i++) {
		explicit_bzero(h[i], strlen(h[i]));
		free(h[i]);
		h[i] = NULL;
	}
}

int
keystone_request(struct keystone *k, const struct http_req *req, struct http_resp *resp,
    struct err *err)
{
	struct http_req	 r = *req;
	struct err	 e;
	const char	**hv = NULL;
	char		*auth[3];
	size_t		 n = 0, i;
	off_t		 start = -1;
	int		 rc = -1, attempt;

	while (req->headers != NULL && req->headers[n] != NULL)
		n++;
	hv = xcalloc(n + 3, sizeof(*hv));
	if (req->upload_fd >= 0)
		start = lseek(req->upload_fd, 0, SEEK_CUR);
	for (attempt = 0; attempt < 2; attempt++) {
		if (keystone_auth_headers(k, auth, err) == -1)
			goto cleanup;
		for (i = 0; auth[i] != NULL; i++)
			hv[i] = auth[i];
		if (n > 0)
			memcpy(hv + i, req->headers, n * sizeof(*hv));
		hv[i + n] = NULL;
		r.headers = hv;
		err_clear(&e);
		rc = http_request(k->http, &r, resp, &e);
		keystone_free_headers(auth);
		if (rc == 0 || resp->status != 401 || attempt > 0)
			break;
		/* The token was revoked or expired early: renew once, then try again. */
		if (req->upload_fd >= 0 && (start < 0 ||
		    lseek(req->upload_fd, start, SEEK_SET) != start))
			break;
		if (req->on_restart != NULL && req->on_restart(req->arg) != 0)
			break;
		log_debug("%s %s: 401, renewing the token", req->method, req->url);
		if (keystone_renew(k, err) == -1)
			goto cleanup;
	}
	if (rc == -1)
		keystone_err_copy(err, &e);
cleanup:
	free(hv);
	return rc;
}

struct keystone_token_info *
keystone_validate(struct keystone *k, const char *subject, int allow_expired, int with_catalog,
    struct err *err)
{
	struct keystone_token_info	*info = NULL;
	struct http_req			 req;
	struct http_resp		 resp;
	struct err			 e;
	const char			*hdrs[2] = { NULL, NULL };
	char				*url, *subj;
	json_t				*root = NULL;

	url = xasprintf("%s/auth/tokens%s%s%s", k->auth_url,
	    allow_expired || !with_catalog ? "?" : "",
	    allow_expired ? "allow_expired=1" : "",
	    !with_catalog ? (allow_expired ? "&nocatalog=1" : "nocatalog=1") : "");
	subj = xasprintf("X-Subject-Token: %s", subject);
	hdrs[0] = subj;
	http_req_init(&req);
	http_resp_init(&resp);
	req.url = url;
	req.headers = hdrs;
	req.idempotent = 1;
	err_clear(&e);
	if (keystone_request(k, &req, &resp, &e) == -1) {
		if ((resp.status == 404 || resp.status == 401) && err != NULL &&
		    err->kind == ERR_NONE) {
			err_set(err, ERR_AUTH, "keystone: the token does not validate: %s", e.msg);
			err->status = e.status;
		} else
			keystone_err_copy(err, &e);
		goto cleanup;
	}
	if ((root = json_loadb(resp.body.data, resp.body.len, 0, NULL)) == NULL) {
		err_set(err, ERR_REMOTE, "keystone: token validation answer is not JSON");
		goto cleanup;
	}
	info = keystone_token_info_parse(root, err);
cleanup:
	explicit_bzero(subj, strlen(subj));
	free(subj);
	free(url);
	json_decref(root);
	http_resp_free(&resp);
	return info;
}

struct keystone *
keystone_new_for_user(struct keystone *service, const char *user_token, struct err *err)
{
	struct keystone			*k;
	struct keystone_token_info	*info;

	if (user_token == NULL || *user_token == '\0') {
		err_set(err, ERR_AUTH, "keystone: no user token");
		return NULL;
	}
	if ((info = keystone_validate(service, user_token, 1, 1, err)) == NULL)
		return NULL;
	k = xcalloc(1, sizeof(*k));
	k->http = service->http;
	k->auth_url = xstrdup(service->auth_url);
	k->region = service->region ? xstrdup(service->region) : NULL;
	k->interface = xstrdup(service->interface);
	k->service = service;
	k->user_token = xstrdup(user_token);
	k->info = info;
	return k;
}

/*
 * Keystone trusts (OS-TRUST).
 */

/* A trust id goes into a URL path: Keystone's are hex (uuid4().hex); accept [A-Za-z0-9_-]. */
static int
keystone_trust_id_ok(const char *id)
{
	const char	*p;

	if (id == NULL || *id == '\0' || strlen(id) > 64)
		return 0;
	for (p = id; *p != '\0'; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
			return 0;
	return 1;
}

/* The POST /v3/OS-TRUST/trusts body (pure); new reference, NULL with err on bad input. */
static json_t *
keystone_trust_body(const char *trustor, const char *trustee, const char *project,
    char *const *roles, time_t expires, unsigned long usec, struct err *err)
{
	json_t		*t, *rv;
	struct tm	 tm;
	char		 when[24], stamp[48];
	size_t		 i;

	if (!keystone_set(trustor) || !keystone_set(trustee) || !keystone_set(project) ||
	    roles == NULL || roles[0] == NULL) {
		err_set(err, ERR_INVAL, "keystone: a trust needs a trustor, a trustee, a project "
		    "and at least one role");
		return NULL;
	}
	rv = json_array();
	for (i = 0; roles[i] != NULL; i++)
		json_array_append_new(rv, json_pack("{s:s}", "name", roles[i]));
	t = json_pack("{s:s,s:s,s:s,s:b,s:o}", "trustor_user_id", trustor,
	    "trustee_user_id", trustee, "project_id", project, "impersonation", 1, "roles", rv);
	if (expires > 0) {
		if (gmtime_r(&expires, &tm) == NULL ||
		    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
			json_decref(t);
			err_set(err, ERR_INVAL, "keystone: bad trust expiry");
			return NULL;
		}
		snprintf(stamp, sizeof(stamp), "%s.%06luZ", when, usec % 1000000);
		json_object_set_new(t, "expires_at", json_string(stamp));
	} else
		json_object_set_new(t, "expires_at", json_null());
	return json_pack("{s:o}", "trust", t);
}

char *
keystone_trust_create(struct keystone *k, const char *trustee, const char *project,
    char *const *roles, time_t expires, struct err *err)
{
	const struct keystone_token_info	*i;
	struct http_req				 req;
	struct http_resp			 resp;
	struct err				 e;
	char					*url = NULL, *body = NULL, *id = NULL;
	json_t					*b = NULL, *root = NULL;
	uint32_t				 r;
	int					 attempt;

	http_req_init(&req);
	http_resp_init(&resp);
	if ((i = keystone_info(k, err)) == NULL)
		goto cleanup;
	url = xasprintf("%s/OS-TRUST/trusts", k->auth_url);
	/*
	 * Keystone refuses (409) a second trust with the same trustor, trustee, project,
	 * impersonation and expires_at (its duplicate_trust_constraint): builds asked for in the
	 * same second would collide. A random microsecond of expiry tells them apart; a collision
	 * all the same is tried again with another.
	 */
	for (attempt = 0; attempt < 3; attempt++) {
		util_random(&r, sizeof(r));
		json_decref(b);
		free(body);
		body = NULL;
		if ((b = keystone_trust_body(i->user_id, trustee, project != NULL ? project :
		    i->project_id, roles, expires, r, err)) == NULL)
			goto cleanup;
		body = json_dumps(b, JSON_COMPACT);
		req.method = "POST";
		req.url = url;
		req.body = body;
		req.body_len = strlen(body);
		http_resp_free(&resp);
		http_resp_init(&resp);
		err_clear(&e);
		if (keystone_request(k, &req, &resp, &e) == 0)
			break;
		if (e.kind != ERR_CONFLICT || expires <= 0 || attempt == 2) {
			keystone_err_copy(err, &e);
			goto cleanup;
		}
	}
	if ((root = json_loadb(resp.body.data, resp.body.len, 0, NULL)) == NULL ||
	    (id = keystone_json_str(json_object_get(root, "trust"), "id", NULL)) == NULL) {
		err_set(err, ERR_REMOTE, "keystone: trust answer without trust.id");
		goto cleanup;
	}
	if (!keystone_trust_id_ok(id)) {
		err_set(err, ERR_REMOTE, "keystone: unexpected trust id");
		free(id);
		id = NULL;
	}
cleanup:
	free(url);
	free(body);
	json_decref(b);
	json_decref(root);
	http_resp_free(&resp);
	return id;
}

int
keystone_trust_delete(struct keystone *k, const char *trust_id, struct err *err)
{
	struct http_req		 req;
	struct http_resp	 resp;
	struct err		 e;
	char			*url;
	int			 rc = -1;

	if (!keystone_trust_id_ok(trust_id)) {
		err_set(err, ERR_INVAL, "keystone: not a trust id");
		return -1;
	}
	url = xasprintf("%s/OS-TRUST/trusts/%s", k->auth_url, trust_id);
	http_req_init(&req);
	http_resp_init(&resp);
	req.method = "DELETE";
	req.url = url;
	req.idempotent = 1;
	err_clear(&e);
	if (keystone_request(k, &req, &resp, &e) == 0 || resp.status == 404)
		rc = 0;
	else
		keystone_err_copy(err, &e);
	free(url);
	http_resp_free(&resp);
	return rc;
}
