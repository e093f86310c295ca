/* osenv.c — OpenStack credentials from OS_* environment variables. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "service/cli/clouds.h"
#include "service/cli/osenv.h"

/* getenv(prefix + name), NULL when unset or empty. */
static const char *
osenv_get(const char *prefix, const char *name)
{
	char		 key[128];
	const char	*v;
	int		 n;

	n = snprintf(key, sizeof(key), "%s%s", prefix, name);
	if (n < 0 || (size_t)n >= sizeof(key))
		return NULL;
	v = getenv(key);
	return v != NULL && *v != '\0' ? v : NULL;
}

int
osenv_auth(const char *prefix, struct keystone_auth *a, struct err *err)
{
	const char	*p = prefix != NULL ? prefix : "";

	memset(a, 0, sizeof(*a));
	a->auth_url = osenv_get(p, "OS_AUTH_URL");
	if (a->auth_url == NULL)
		a->auth_url = osenv_get("", "OS_AUTH_URL");
	a->username = osenv_get(p, "OS_USERNAME");
	a->user_id = osenv_get(p, "OS_USER_ID");
	a->password = osenv_get(p, "OS_PASSWORD");
	a->project_name = osenv_get(p, "OS_PROJECT_NAME");
	if (a->project_name == NULL)
		a->project_name = osenv_get(p, "OS_TENANT_NAME");
	a->project_id = osenv_get(p, "OS_PROJECT_ID");
	a->user_domain_name = osenv_get(p, "OS_USER_DOMAIN_NAME");
	a->user_domain_id = osenv_get(p, "OS_USER_DOMAIN_ID");
	a->project_domain_name = osenv_get(p, "OS_PROJECT_DOMAIN_NAME");
	a->project_domain_id = osenv_get(p, "OS_PROJECT_DOMAIN_ID");
	if (*p != '\0') {
		/* Another user of the same cloud: domains default to the main user's. */
		if (a->user_domain_name == NULL && a->user_domain_id == NULL) {
			a->user_domain_name = osenv_get("", "OS_USER_DOMAIN_NAME");
			a->user_domain_id = osenv_get("", "OS_USER_DOMAIN_ID");
		}
		if (a->project_domain_name == NULL && a->project_domain_id == NULL) {
			a->project_domain_name = osenv_get("", "OS_PROJECT_DOMAIN_NAME");
			a->project_domain_id = osenv_get("", "OS_PROJECT_DOMAIN_ID");
		}
	}
	if (a->user_domain_name == NULL && a->user_domain_id == NULL) {
		a->user_domain_name = osenv_get(p, "OS_DOMAIN_NAME");
		a->user_domain_id = osenv_get(p, "OS_DOMAIN_ID");
	}
	if (a->project_domain_name == NULL && a->project_domain_id == NULL) {
		a->project_domain_name = osenv_get(p, "OS_DOMAIN_NAME");
		a->project_domain_id = osenv_get(p, "OS_DOMAIN_ID");
	}
	a->app_cred_id = osenv_get(p, "OS_APPLICATION_CREDENTIAL_ID");
	a->app_cred_name = osenv_get(p, "OS_APPLICATION_CREDENTIAL_NAME");
	a->app_cred_secret = osenv_get(p, "OS_APPLICATION_CREDENTIAL_SECRET");
	a->region = osenv_get(p, "OS_REGION_NAME");
	if (a->region == NULL)
		a->region = osenv_get("", "OS_REGION_NAME");
	a->interface = osenv_get(p, "OS_INTERFACE");
	if (a->interface == NULL)
		a->interface = osenv_get("", "OS_INTERFACE");
	if (a->interface != NULL && strncmp(a->interface, "public", 6) != 0 &&
	    strncmp(a->interface, "internal", 8) != 0 && strncmp(a->interface, "admin", 5) != 0) {
		err_set(err, ERR_INVAL, "%sOS_INTERFACE: must be public, internal or admin", p);
		return -1;
	}
	if (a->auth_url == NULL) {
		err_set(err, ERR_INVAL, "%sOS_AUTH_URL is not set", p);
		return -1;
	}
	if (a->app_cred_secret == NULL && (a->password == NULL ||
	    (a->username == NULL && a->user_id == NULL))) {
		err_set(err, ERR_INVAL, "%sOS_USERNAME and %sOS_PASSWORD (or an application "
		    "credential) are not set", p, p);
		return -1;
	}
	return 0;
}

void
osenv_http_opts(struct http_opts *o)
{
	const char	*v;

	o->ca_file = osenv_get("", "OS_CACERT");
	v = osenv_get("", "OS_INSECURE");
	o->insecure = v != NULL && (strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0 ||
	    strcasecmp(v, "yes") == 0);
}

/* Where each setting comes from: the cloud's auth: or top-level key (and an older alias),
 * the OS_ variable (and its alias). */
static const struct {
	const char	*yaml, *yaml_alias;
	const char	*env, *env_alias;
} osenv_keys[OSK_N] = {
	[OSK_CLOUD]		= { NULL, NULL, "OS_CLOUD", NULL },
	[OSK_AUTH_URL]		= { "auth_url", NULL, "OS_AUTH_URL", NULL },
	[OSK_AUTH_TYPE]		= { "auth_type", NULL, "OS_AUTH_TYPE", NULL },
	[OSK_USERNAME]		= { "username", NULL, "OS_USERNAME", NULL },
	[OSK_USER_ID]		= { "user_id", NULL, "OS_USER_ID", NULL },
	[OSK_PASSWORD]		= { "password", NULL, "OS_PASSWORD", NULL },
	[OSK_PROJECT_NAME]	= { "project_name", "tenant_name", "OS_PROJECT_NAME",
				    "OS_TENANT_NAME" },
	[OSK_PROJECT_ID]	= { "project_id", "tenant_id", "OS_PROJECT_ID", "OS_TENANT_ID" },
	[OSK_USER_DOMAIN_NAME]	= { "user_domain_name", NULL, "OS_USER_DOMAIN_NAME", NULL },
	[OSK_USER_DOMAIN_ID]	= { "user_domain_id", NULL, "OS_USER_DOMAIN_ID", NULL },
	[OSK_PROJECT_DOMAIN_NAME] = { "project_domain_name", NULL, "OS_PROJECT_DOMAIN_NAME",
				    NULL },
	[OSK_PROJECT_DOMAIN_ID]	= { "project_domain_id", NULL, "OS_PROJECT_DOMAIN_ID", NULL },
	[OSK_DOMAIN_NAME]	= { "domain_name", NULL, "OS_DOMAIN_NAME", NULL },
	[OSK_DOMAIN_ID]		= { "domain_id", NULL, "OS_DOMAIN_ID", NULL },
	[OSK_DEFAULT_DOMAIN]	= { "default_domain", NULL, "OS_DEFAULT_DOMAIN", NULL },
	[OSK_APP_CRED_ID]	= { "application_credential_id", NULL,
				    "OS_APPLICATION_CREDENTIAL_ID", NULL },
	[OSK_APP_CRED_NAME]	= { "application_credential_name", NULL,
				    "OS_APPLICATION_CREDENTIAL_NAME", NULL },
	[OSK_APP_CRED_SECRET]	= { "application_credential_secret", NULL,
				    "OS_APPLICATION_CREDENTIAL_SECRET", NULL },
	[OSK_REGION]		= { "region_name", NULL, "OS_REGION_NAME", NULL },
	[OSK_INTERFACE]		= { "interface", "endpoint_type", "OS_INTERFACE",
				    "OS_ENDPOINT_TYPE" },
	[OSK_CACERT]		= { "cacert", NULL, "OS_CACERT", NULL },
	[OSK_INSECURE]		= { "insecure", NULL, "OS_INSECURE", NULL },
	/* openstacksdk's <service type>_endpoint_override, for the image-build service */
	[OSK_ENDPOINT]		= { "image_build_endpoint_override", NULL, "ISOFORGE_API_URL",
				    NULL },
};

int
osenv_flag(struct osenv_flags *f, int ch, const char *arg)
{
	if (ch < OSENV_OPT || ch >= OSENV_OPT + OSK_N)
		return 0;
	f->v[ch - OSENV_OPT] = ch == OSENV_OPT + OSK_INSECURE ? "true" : arg;
	return 1;
}

/* A string (or scalar) setting of the cloud: under auth: first, then at the top. */
static const char *
osenv_cloud_get(const json_t *cloud, const char *key)
{
	const json_t	*v;

	if (key == NULL)
		return NULL;
	v = json_object_get(json_object_get(cloud, "auth"), key);
	if (!json_is_string(v))
		v = json_object_get(cloud, key);
	return json_is_string(v) && *json_string_value(v) != '\0' ? json_string_value(v) : NULL;
}

static int
osenv_truthy(const char *v)
{
	return v != NULL && (strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0 ||
	    strcasecmp(v, "yes") == 0 || strcasecmp(v, "on") == 0);
}

static const char *
osenv_val(const struct osenv_config *c, enum osenv_key k)
{
	return json_string_value(json_array_get(c->vals, k));
}

static void
osenv_put(struct osenv_config *c, enum osenv_key k, const char *v)
{
	json_array_set_new(c->vals, k, v != NULL ? json_string(v) : json_null());
}

/* The settings of the named cloud into c->vals. */
static int
osenv_from_cloud(struct osenv_config *c, const char *name, struct err *err)
{
	json_t		*cloud, *r;
	const char	*v, *verify;
	size_t		 k;

	if ((cloud = clouds_cloud(name, NULL, err)) == NULL)
		return -1;
	for (k = 0; k < OSK_N; k++) {
		if ((v = osenv_cloud_get(cloud, osenv_keys[k].yaml)) == NULL)
			v = osenv_cloud_get(cloud, osenv_keys[k].yaml_alias);
		if (v != NULL)
			osenv_put(c, k, v);
	}
	/* verify: false is the clouds.yaml way to say insecure */
	verify = osenv_cloud_get(cloud, "verify");
	if (verify != NULL && (strcasecmp(verify, "false") == 0 || strcmp(verify, "0") == 0 ||
	    strcasecmp(verify, "no") == 0))
		osenv_put(c, OSK_INSECURE, "true");
	/* regions: [a, b] or [{name: a}] without region_name: the first */
	if (osenv_val(c, OSK_REGION) == NULL &&
	    (r = json_array_get(json_object_get(cloud, "regions"), 0)) != NULL) {
		if (json_is_object(r))
			r = json_object_get(r, "name");
		if (json_is_string(r))
			osenv_put(c, OSK_REGION, json_string_value(r));
	}
	json_decref(cloud);
	return 0;
}

/* "…/v3" or "…/v3/" keep their version; anything else gains /v3 (Keystone's only API). */
static char *
osenv_auth_url(const char *url)
{
	const char	*seg;
	size_t		 n = strlen(url);

	while (n > 0 && url[n - 1] == '/')
		n--;
	seg = url + n;
	while (seg > url && seg[-1] != '/')
		seg--;
	if (url + n - seg >= 2 && seg[0] == 'v' && seg[1] >= '0' && seg[1] <= '9')
		return xstrndup(url, n);
	return xasprintf("%.*s/v3", (int)n, url);
}

int
osenv_config_load(const struct osenv_flags *f, struct osenv_config *c, struct err *err)
{
	struct keystone_auth	*a = &c->auth;
	const char		*cloud, *v, *type;
	char			*url;
	size_t			 k;

	memset(c, 0, sizeof(*c));
	c->vals = json_array();
	for (k = 0; k < OSK_N; k++)
		json_array_append_new(c->vals, json_null());
	cloud = f != NULL && f->v[OSK_CLOUD] != NULL ? f->v[OSK_CLOUD] : osenv_get("", "OS_CLOUD");
	if (cloud != NULL) {
		if (osenv_from_cloud(c, cloud, err) != 0)
			return -1;
		osenv_put(c, OSK_CLOUD, cloud);
	}
	for (k = 0; k < OSK_N; k++) {
		if (k == OSK_CLOUD)
			continue;
		if ((v = osenv_get("", osenv_keys[k].env)) == NULL && osenv_keys[k].env_alias)
			v = osenv_get("", osenv_keys[k].env_alias);
		if (f != NULL && f->v[k] != NULL)
			v = f->v[k];
		if (v != NULL)
			osenv_put(c, k, v);
	}
	if ((v = osenv_val(c, OSK_AUTH_URL)) == NULL) {
		err_set(err, ERR_INVAL, "no auth URL: set OS_CLOUD (clouds.yaml), OS_AUTH_URL or "
		    "--os-auth-url");
		return -1;
	}
	url = osenv_auth_url(v);
	osenv_put(c, OSK_AUTH_URL, url);
	free(url);
	/* an interface may be given as publicURL (the old endpoint_type) */
	if ((v = osenv_val(c, OSK_INTERFACE)) != NULL) {
		size_t	 n = strlen(v);

		url = n > 3 && strcmp(v + n - 3, "URL") == 0 ? xstrndup(v, n - 3) : xstrdup(v);
		if (strcmp(url, "public") != 0 && strcmp(url, "internal") != 0 &&
		    strcmp(url, "admin") != 0) {
			free(url);
			err_set(err, ERR_INVAL, "interface %s: must be public, internal or admin", v);
			return -1;
		}
		osenv_put(c, OSK_INTERFACE, url);
		free(url);
	}
	type = osenv_val(c, OSK_AUTH_TYPE);
	if (type != NULL) {
		if (strcmp(type, "password") == 0 || strcmp(type, "v3password") == 0) {
			osenv_put(c, OSK_APP_CRED_ID, NULL);
			osenv_put(c, OSK_APP_CRED_NAME, NULL);
			osenv_put(c, OSK_APP_CRED_SECRET, NULL);
		} else if (strcmp(type, "v3applicationcredential") == 0 ||
		    strcmp(type, "applicationcredential") == 0) {
			osenv_put(c, OSK_PASSWORD, NULL);
		} else {
			err_set(err, ERR_INVAL, "auth_type %s: not supported (password, "
			    "v3applicationcredential)", type);
			return -1;
		}
	}
	a->auth_url = osenv_val(c, OSK_AUTH_URL);
	a->username = osenv_val(c, OSK_USERNAME);
	a->user_id = osenv_val(c, OSK_USER_ID);
	a->password = osenv_val(c, OSK_PASSWORD);
	a->project_name = osenv_val(c, OSK_PROJECT_NAME);
	a->project_id = osenv_val(c, OSK_PROJECT_ID);
	a->user_domain_name = osenv_val(c, OSK_USER_DOMAIN_NAME);
	a->user_domain_id = osenv_val(c, OSK_USER_DOMAIN_ID);
	a->project_domain_name = osenv_val(c, OSK_PROJECT_DOMAIN_NAME);
	a->project_domain_id = osenv_val(c, OSK_PROJECT_DOMAIN_ID);
	/* domain_name/_id, then default_domain, stand in for whichever domain is not given */
	if (a->user_domain_name == NULL && a->user_domain_id == NULL) {
		a->user_domain_name = osenv_val(c, OSK_DOMAIN_NAME);
		a->user_domain_id = osenv_val(c, OSK_DOMAIN_ID);
		if (a->user_domain_name == NULL && a->user_domain_id == NULL)
			a->user_domain_id = osenv_val(c, OSK_DEFAULT_DOMAIN);
	}
	if (a->project_domain_name == NULL && a->project_domain_id == NULL) {
		a->project_domain_name = osenv_val(c, OSK_DOMAIN_NAME);
		a->project_domain_id = osenv_val(c, OSK_DOMAIN_ID);
		if (a->project_domain_name == NULL && a->project_domain_id == NULL)
			a->project_domain_id = osenv_val(c, OSK_DEFAULT_DOMAIN);
	}
	a->app_cred_id = osenv_val(c, OSK_APP_CRED_ID);
	a->app_cred_name = osenv_val(c, OSK_APP_CRED_NAME);
	a->app_cred_secret = osenv_val(c, OSK_APP_CRED_SECRET);
	a->region = osenv_val(c, OSK_REGION);
	a->interface = osenv_val(c, OSK_INTERFACE);
	c->http.ca_file = osenv_val(c, OSK_CACERT);
	c->http.insecure = osenv_truthy(osenv_val(c, OSK_INSECURE));
	c->endpoint = osenv_val(c, OSK_ENDPOINT);
	c->cloud = osenv_val(c, OSK_CLOUD);
	if (a->app_cred_secret == NULL && (a->password == NULL ||
	    (a->username == NULL && a->user_id == NULL))) {
		err_set(err, ERR_INVAL, "no credentials: a username (or user id) and password, or "
		    "an application credential (OS_* variables, --os-* options or %s)",
		    cloud != NULL ? "the cloud's auth: in clouds.yaml" : "OS_CLOUD + clouds.yaml");
		return -1;
	}
	return 0;
}

void
osenv_config_free(struct osenv_config *c)
{
	if (c == NULL)
		return;
	json_decref(c->vals);
	memset(c, 0, sizeof(*c));
}
