/* osenv.h — OpenStack credentials from the environment (OS_* as in an openrc file). */
#ifndef ISOFORGE_OSENV_H
#define ISOFORGE_OSENV_H

#include "drivers/http.h"
#include "drivers/keystone.h"

/*
 * Fills auth from prefix + OS_AUTH_URL, OS_USERNAME, OS_USER_ID, OS_PASSWORD, OS_PROJECT_NAME
 * (or OS_TENANT_NAME), OS_PROJECT_ID, OS_USER_DOMAIN_NAME/_ID, OS_PROJECT_DOMAIN_NAME/_ID
 * (OS_DOMAIN_NAME/_ID fill both when unset), OS_APPLICATION_CREDENTIAL_ID/_NAME/_SECRET,
 * OS_REGION_NAME, OS_INTERFACE (prefix is "" or e.g. "ALT_"; region and interface fall back
 * to the unprefixed ones). The strings point into the environment. ERR_INVAL when
 * OS_AUTH_URL or the credentials are missing.
 */
int	 osenv_auth(const char *prefix, struct keystone_auth *, struct err *);
/* Fills opts from OS_CACERT and OS_INSECURE (pointing into the environment). */
void	 osenv_http_opts(struct http_opts *);

#endif
