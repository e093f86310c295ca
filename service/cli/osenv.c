/* osenv.c — OpenStack credentials from OS_* environment variables. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
