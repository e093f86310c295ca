/* apiclient.c — JSON calls to isoforge-api with the CLI's Keystone session. */
#include <stdlib.h>
#include <string.h>

#include "service/cli/apiclient.h"

struct apiclient {
	struct http_client	*http;
	struct keystone		*ks;
	char			*base;		/* http://host:port, no trailing slash, no /v1 */
};

char *
apiclient_base_url(const char *url)
{
	size_t	 n = strlen(url);

	while (n > 0 && url[n - 1] == '/')
		n--;
	if (n >= 3 && memcmp(url + n - 3, "/v1", 3) == 0)
		n -= 3;
	while (n > 0 && url[n - 1] == '/')
		n--;
	return xstrndup(url, n);
}

char *
apiclient_error_detail(const char *body, size_t len)
{
	json_t		*root, *e;
	const char	*d;
	char		*out = NULL;

	if (body == NULL || len == 0 || (root = json_loadb(body, len, 0, NULL)) == NULL)
		return NULL;
	e = json_array_get(json_object_get(root, "errors"), 0);
	if ((d = json_string_value(json_object_get(e, "detail"))) == NULL || *d == '\0')
		d = json_string_value(json_object_get(e, "title"));
	if (d != NULL && *d != '\0')
		out = xstrdup(d);
	json_decref(root);
	return out;
}

struct apiclient *
apiclient_new(const struct osenv_config *cfg, struct err *err)
{
	struct apiclient	*c;
	struct http_opts	 o;
	char			*url = NULL;

	c = xcalloc(1, sizeof(*c));
	o = cfg->http;
	/* the CLI waits on a person: fail a dead endpoint fast rather than after minutes */
	o.connect_timeout_s = 10;
	o.timeout_s = 60;
	if ((c->http = http_client_new(&o)) == NULL) {
		err_set(err, ERR_INTERNAL, "no HTTP client");
		goto fail;
	}
	if ((c->ks = keystone_new(c->http, &cfg->auth, err)) == NULL ||
	    keystone_token(c->ks, err) == NULL)
		goto fail;
	if (cfg->endpoint != NULL)
		url = xstrdup(cfg->endpoint);
	else if ((url = keystone_endpoint(c->ks, APICLIENT_SERVICE_TYPE, err)) == NULL) {
		struct err	 e = *err;

		/* say what to do about it, not only what is missing */
		err_clear(err);
		err_set(err, e.kind, "%s (is isoforge-api registered in the catalog? "
		    "--os-endpoint-override or ISOFORGE_API_URL name it directly)", e.msg);
		goto fail;
	}
	c->base = apiclient_base_url(url);
	free(url);
	return c;
fail:
	free(url);
	apiclient_free(&c);
	return NULL;
}

void
apiclient_free(struct apiclient **cp)
{
	struct apiclient	*c;

	if (cp == NULL || (c = *cp) == NULL)
		return;
	keystone_free(&c->ks);
	http_client_free(&c->http);
	free(c->base);
	free(c);
	*cp = NULL;
}

const char *
apiclient_endpoint(const struct apiclient *c)
{
	return c->base;
}

struct keystone *
apiclient_keystone(struct apiclient *c)
{
	return c->ks;
}

void
apiclient_set_cancel_fd(struct apiclient *c, int fd)
{
	http_client_set_cancel_fd(c->http, fd);
}

/* The error kind of an API answer's status. */
static enum err_kind
apiclient_kind(long status)
{
	switch (status) {
	case 400: case 413: case 406: case 422:
		return ERR_INVAL;
	case 401: case 403:
		return ERR_AUTH;
	case 404:
		return ERR_NOTFOUND;
	case 409:
		return ERR_CONFLICT;
	default:
		return ERR_REMOTE;
	}
}

int
apiclient_call(struct apiclient *c, const char *method, const char *path, const json_t *body,
    json_t **out, struct err *err)
{
	static const char	*const hdrs[] = {
		"Accept: application/json",
		"Content-Type: application/json",
		"OpenStack-API-Version: " APICLIENT_VERSION,
		NULL
	};
	struct http_req		 req;
	struct http_resp	 resp;
	struct err		 e;
	json_t			*root = NULL;
	char			*url, *text = NULL, *detail;
	int			 rc = -1;

	if (out != NULL)
		*out = NULL;
	url = xasprintf("%s%s", c->base, path);
	http_req_init(&req);
	http_resp_init(&resp);
	req.method = method;
	req.url = url;
	req.headers = hdrs;
	req.idempotent = strcmp(method, "GET") == 0;
	if (body != NULL) {
		text = json_dumps(body, JSON_COMPACT);
		req.body = text;
		req.body_len = strlen(text);
	}
	err_clear(&e);
	if (keystone_request(c->ks, &req, &resp, &e) != 0) {
		if (resp.status >= 300) {
			detail = apiclient_error_detail(resp.body.data, resp.body.len);
			if (detail != NULL) {
				err_set(err, apiclient_kind(resp.status), "%s", detail);
				free(detail);
			} else
				err_set(err, apiclient_kind(resp.status), "%s", e.msg);
			if (err != NULL)
				err->status = (int)resp.status;
		} else if (err != NULL && err->kind == ERR_NONE)
			*err = e;
		goto cleanup;
	}
	if (resp.body.len > 0) {
		if ((root = json_loadb(resp.body.data, resp.body.len, 0, NULL)) == NULL) {
			err_set(err, ERR_REMOTE, "%s %s: the answer is not JSON", method, url);
			goto cleanup;
		}
	}
	if (out != NULL) {
		*out = root;
		root = NULL;
	}
	rc = 0;
cleanup:
	json_decref(root);
	free(text);
	free(url);
	http_resp_free(&resp);
	return rc;
}
