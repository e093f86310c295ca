/* nova.c — Nova flavors through keystone_request. */
#include <stdlib.h>
#include <string.h>

#include "drivers/nova.h"
#include "base/log.h"


struct nova {
	struct keystone	*ks;
	char		*url;		/* compute endpoint, e.g. http://host:8774/v2.1 */
};

struct nova *
nova_new(struct keystone *ks, const char *endpoint, struct err *err)
{
	struct nova	*n;
	char		*url;
	size_t		 len;

	if (endpoint != NULL)
		url = xstrdup(endpoint);
	else if ((url = keystone_endpoint(ks, "compute", err)) == NULL)
		return NULL;
	len = strlen(url);
	while (len > 0 && url[len - 1] == '/')
		url[--len] = '\0';
	n = xcalloc(1, sizeof(*n));
	n->ks = ks;
	n->url = url;
	return n;
}

void
nova_free(struct nova **np)
{
	struct nova	*n;

	if (np == NULL || (n = *np) == NULL)
		return;
	free(n->url);
	free(n);
	*np = NULL;
}

void
nova_flavor_free(struct nova_flavor **fp)
{
	struct nova_flavor	*f;

	if (fp == NULL || (f = *fp) == NULL)
		return;
	free(f->id);
	free(f->name);
	json_decref(f->extra_specs);
	free(f);
	*fp = NULL;
}

static unsigned
nova_uint(const json_t *o, const char *key)
{
	const json_t	*v = json_object_get(o, key);

	/* "swap" is "" when there is none (older microversions). */
	if (json_is_integer(v) && json_integer_value(v) >= 0)
		return (unsigned)json_integer_value(v);
	return 0;
}

struct nova_flavor *
nova_flavor_parse(const json_t *o, struct err *err)
{
	struct nova_flavor	*f;
	const json_t		*es = json_object_get(o, "extra_specs");

	if (!json_is_string(json_object_get(o, "id")) || !json_is_integer(json_object_get(o, "ram"))) {
		err_set(err, ERR_REMOTE, "nova: flavor without id or ram");
		return NULL;
	}
	f = xcalloc(1, sizeof(*f));
	f->id = xstrdup(json_string_value(json_object_get(o, "id")));
	f->name = xstrdup(json_is_string(json_object_get(o, "name")) ?
	    json_string_value(json_object_get(o, "name")) : "");
	f->vcpus = nova_uint(o, "vcpus");
	f->ram_mib = nova_uint(o, "ram");
	f->disk_gib = nova_uint(o, "disk");
	f->ephemeral_gib = nova_uint(o, "OS-FLV-EXT-DATA:ephemeral");
	f->swap_mib = nova_uint(o, "swap");
	f->extra_specs = json_is_object(es) ? json_deep_copy(es) : json_object();
	return f;
}

/* GET url (relative to the endpoint) as JSON; new reference. */
static json_t *
nova_get(struct nova *n, const char *path, struct err *err)
{
	const char		*hdrs[] = { "OpenStack-API-Version: compute " NOVA_MICROVERSION,
				    "X-OpenStack-Nova-API-Version: " NOVA_MICROVERSION, NULL };
	struct http_req		 req;
	struct http_resp	 resp;
	char			*url = xasprintf("%s%s", n->url, path);
	json_t			*out = NULL;

	http_req_init(&req);
	http_resp_init(&resp);
	req.url = url;
	req.headers = hdrs;
	req.idempotent = 1;
	if (keystone_request(n->ks, &req, &resp, err) == 0 &&
	    (out = json_loadb(resp.body.data, resp.body.len, 0, NULL)) == NULL)
		err_set(err, ERR_REMOTE, "nova: GET %s: answer is not JSON", url);
	http_resp_free(&resp);
	free(url);
	return out;
}

struct nova_flavor *
nova_flavor_get(struct nova *n, const char *id_or_name, struct err *err)
{
	struct nova_flavor	*f = NULL;
	struct err		 e;
	const json_t		*v, *match = NULL;
	json_t			*root;
	char			*eid = http_escape(id_or_name), *path;
	size_t			 i, nmatch = 0;

	path = xasprintf("/flavors/%s", eid);
	err_clear(&e);
	root = nova_get(n, path, &e);
	free(path);
	free(eid);
	if (root != NULL) {
		f = nova_flavor_parse(json_object_get(root, "flavor"), err);
		json_decref(root);
		return f;
	}
	if (e.kind != ERR_NOTFOUND) {
		if (err != NULL && err->kind == ERR_NONE)
			*err = e;
		return NULL;
	}
	/* Not an id: look for the name among the flavors the project can use. */
	if ((root = nova_get(n, "/flavors/detail?is_public=None", err)) == NULL)
		return NULL;
	json_array_foreach(json_object_get(root, "flavors"), i, v) {
		if (json_is_string(json_object_get(v, "name")) &&
		    strcmp(json_string_value(json_object_get(v, "name")), id_or_name) == 0) {
			match = v;
			nmatch++;
		}
	}
	if (nmatch == 0)
		err_set(err, ERR_NOTFOUND, "nova: no flavor with id or name %s", id_or_name);
	else if (nmatch > 1)
		err_set(err, ERR_INVAL, "nova: %zu flavors are named %s; give the id", nmatch,
		    id_or_name);
	else
		f = nova_flavor_parse(match, err);
	json_decref(root);
	return f;
}
