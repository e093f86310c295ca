/* auth.c — who is calling: Keystone validation of X-Auth-Token with isoforge's own credentials,
 * a bounded cache of validations (never used past the token's expiry), X-Service-Token, and the
 * roles of the policy. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/sha.h>

#include "base/log.h"
#include "base/util.h"
#include "drivers/keystone.h"
#include "service/api/api.h"

/* One cached validation, found by the SHA-256 of the token (the token itself is not kept). */
struct api_auth_entry {
	unsigned char	 key[SHA256_DIGEST_LENGTH];
	int		 used;
	time_t		 until;		/* min(token expiry, now + [api] token_cache_ttl) */
	char		*user_id;
	char		*project_id;
	char		**roles;	/* NULL-terminated */
};

/* A direct-mapped table: bounded, a collision replaces the older entry. */
struct api_auth_cache {
	pthread_mutex_t		 mu;
	size_t			 size;
	struct api_auth_entry	*e;
};

static char **
api_strv_dup(char *const *v)
{
	size_t	 n = 0, i;
	char	**out;

	while (v != NULL && v[n] != NULL)
		n++;
	out = xcalloc(n + 1, sizeof(*out));
	for (i = 0; i < n; i++)
		out[i] = xstrdup(v[i]);
	return out;
}

static void
api_strv_free(char **v)
{
	size_t	 i;

	for (i = 0; v != NULL && v[i] != NULL; i++)
		free(v[i]);
	free(v);
}

static void
api_entry_clear(struct api_auth_entry *e)
{
	free(e->user_id);
	free(e->project_id);
	api_strv_free(e->roles);
	memset(e, 0, sizeof(*e));
}

struct api_auth_cache *
api_auth_cache_new(size_t size)
{
	struct api_auth_cache	*c = xcalloc(1, sizeof(*c));

	pthread_mutex_init(&c->mu, NULL);
	c->size = size;
	c->e = size > 0 ? xcalloc(size, sizeof(*c->e)) : NULL;
	return c;
}

void
api_auth_cache_free(struct api_auth_cache **cp)
{
	struct api_auth_cache	*c;
	size_t			 i;

	if (cp == NULL || (c = *cp) == NULL)
		return;
	for (i = 0; i < c->size; i++)
		api_entry_clear(&c->e[i]);
	free(c->e);
	pthread_mutex_destroy(&c->mu);
	free(c);
	*cp = NULL;
}

void
api_caller_clear(struct api_caller *c)
{
	free(c->user_id);
	free(c->project_id);
	api_strv_free(c->roles);
	if (c->token != NULL) {
		explicit_bzero(c->token, strlen(c->token));
		free(c->token);
	}
	memset(c, 0, sizeof(*c));
}

int
api_policy_allows(const char *policy, char *const *roles)
{
	const char	*p = policy;
	size_t		 n, i;

	while (p != NULL && *p != '\0') {
		while (*p == ' ' || *p == ',')
			p++;
		n = strcspn(p, ", ");
		for (i = 0; n > 0 && roles != NULL && roles[i] != NULL; i++)
			if (strlen(roles[i]) == n && strncmp(roles[i], p, n) == 0)
				return 1;
		p += n;
	}
	return 0;
}

/* Fills the caller from what Keystone said. */
static void
api_caller_fill(struct api_req *r, const char *token, const char *user, const char *project,
    char *const *roles)
{
	const struct config	*cfg = r->api->cfg;

	r->caller.user_id = xstrdup(user);
	r->caller.project_id = xstrdup(project);
	r->caller.token = xstrdup(token);
	r->caller.roles = api_strv_dup(roles);
	r->caller.can_read = api_policy_allows(cfg->api_policy_read, roles);
	r->caller.can_write = api_policy_allows(cfg->api_policy_write, roles);
	r->caller.is_admin = api_policy_allows(cfg->api_policy_admin, roles);
}

static void
api_unauthorized(struct api_req *r, const char *fmt, const char *what)
{
	free(r->www_authenticate);
	r->www_authenticate = xasprintf("Keystone uri=\"%s\"", r->api->cfg->auth_url);
	api_error(r, 401, "unauthorized", fmt, what);
}

/* Looks the token up in the cache; 1 and the caller filled on a hit. */
static int
api_cache_get(struct api_req *r, const char *token, const unsigned char key[32])
{
	struct api_auth_cache	*c = r->api->auth;
	struct api_auth_entry	*e;
	int			 hit = 0;

	if (c->size == 0)
		return 0;
	pthread_mutex_lock(&c->mu);
	e = &c->e[(key[0] | key[1] << 8 | key[2] << 16 | (size_t)key[3] << 24) % c->size];
	if (e->used && memcmp(e->key, key, 32) == 0) {
		if (time(NULL) < e->until) {
			api_caller_fill(r, token, e->user_id, e->project_id, e->roles);
			hit = 1;
		} else
			api_entry_clear(e);	/* expired: never used again */
	}
	pthread_mutex_unlock(&c->mu);
	return hit;
}

static void
api_cache_put(struct api_req *r, const unsigned char key[32],
    const struct keystone_token_info *info)
{
	struct api_auth_cache	*c = r->api->auth;
	struct api_auth_entry	*e;
	time_t			 until = time(NULL) + r->api->cfg->api_token_cache_ttl;

	if (c->size == 0)
		return;
	if (info->expires > 0 && info->expires < until)
		until = info->expires;
	pthread_mutex_lock(&c->mu);
	e = &c->e[(key[0] | key[1] << 8 | key[2] << 16 | (size_t)key[3] << 24) % c->size];
	api_entry_clear(e);
	memcpy(e->key, key, 32);
	e->used = 1;
	e->until = until;
	e->user_id = xstrdup(info->user_id);
	e->project_id = xstrdup(info->project_id);
	e->roles = api_strv_dup(info->roles);
	pthread_mutex_unlock(&c->mu);
}

/* Answers a failed validation: 401 for a token Keystone refuses, 503 when it cannot say. */
static void
api_validation_failed(struct api_req *r, const char *which, const struct err *e)
{
	if (e->kind == ERR_AUTH || e->kind == ERR_NOTFOUND)
		api_unauthorized(r, "%s: not valid", which);
	else {
		log_warnx("%s: keystone: %s", r->request_id, e->msg);
		api_error(r, 503, "keystone_unavailable", "Keystone could not validate the token; "
		    "try again later");
	}
}

int
api_authenticate(struct api_req *r, int fresh)
{
	struct keystone_token_info	*info = NULL, *svc = NULL;
	struct keystone			*ks;
	struct err			 e;
	unsigned char			 key[SHA256_DIGEST_LENGTH];
	const char			*token = api_header(r, "X-Auth-Token");
	const char			*service_token = api_header(r, "X-Service-Token");
	int				 ret = -1;

	if (token == NULL || *token == '\0') {
		api_unauthorized(r, "%s: missing", "X-Auth-Token");
		return -1;
	}
	if (strlen(token) > 8192) {
		api_unauthorized(r, "%s: not valid", "X-Auth-Token");
		return -1;
	}
	SHA256((const unsigned char *)token, strlen(token), key);
	if (api_cache_get(r, token, key))
		return 0;
	err_clear(&e);
	if ((ks = api_service_session(r->api, &e)) == NULL) {
		api_validation_failed(r, "X-Auth-Token", &e);
		return -1;
	}
	info = keystone_validate(ks, token, 0, 0, &e);
	if (info == NULL && e.kind == ERR_AUTH && !fresh && service_token != NULL &&
	    *service_token != '\0') {
		/* a service acting for a user whose token expired meanwhile (keystonemiddleware's
		 * rule): the service token must be valid and carry the service role */
		err_clear(&e);
		if ((svc = keystone_validate(ks, service_token, 0, 0, &e)) == NULL) {
			api_validation_failed(r, "X-Service-Token", &e);
			goto cleanup;
		}
		if (!keystone_token_info_has_role(svc, "service")) {
			api_unauthorized(r, "%s: lacks the service role", "X-Service-Token");
			goto cleanup;
		}
		info = keystone_validate(ks, token, 1, 0, &e);
	}
	if (info == NULL) {
		api_validation_failed(r, "X-Auth-Token", &e);
		goto cleanup;
	}
	if (info->project_id == NULL || info->user_id == NULL) {
		api_error(r, 403, "forbidden", "X-Auth-Token: not scoped to a project");
		goto cleanup;
	}
	if (info->expires > time(NULL))
		api_cache_put(r, key, info);
	api_caller_fill(r, token, info->user_id, info->project_id, info->roles);
	ret = 0;
cleanup:
	keystone_token_info_free(&info);
	keystone_token_info_free(&svc);
	return ret;
}
