/* osenv.h — OpenStack credentials as the openstack CLI finds them: clouds.yaml (OS_CLOUD),
 * OS_* variables (as in an openrc file) and --os-* options. */
#ifndef ISOFORGE_OSENV_H
#define ISOFORGE_OSENV_H

#include <getopt.h>

#include <jansson.h>

#include "drivers/http.h"
#include "drivers/keystone.h"

/* The settings a CLI command gathers; OSK_* index osenv_keys (service/cli/osenv.c). */
enum osenv_key {
	OSK_CLOUD, OSK_AUTH_URL, OSK_AUTH_TYPE, OSK_USERNAME, OSK_USER_ID, OSK_PASSWORD,
	OSK_PROJECT_NAME, OSK_PROJECT_ID, OSK_USER_DOMAIN_NAME, OSK_USER_DOMAIN_ID,
	OSK_PROJECT_DOMAIN_NAME, OSK_PROJECT_DOMAIN_ID, OSK_DOMAIN_NAME, OSK_DOMAIN_ID,
	OSK_DEFAULT_DOMAIN, OSK_APP_CRED_ID, OSK_APP_CRED_NAME, OSK_APP_CRED_SECRET,
	OSK_REGION, OSK_INTERFACE, OSK_CACERT, OSK_INSECURE, OSK_ENDPOINT, OSK_N
};
/* getopt_long values of the --os-* options: OSENV_OPT + an osenv_key. */
#define OSENV_OPT	0x1000

/* The --os-* options, to put into a command's getopt_long table (before its terminator). */
#define OSENV_OPTIONS \
	{ "os-cloud", required_argument, NULL, OSENV_OPT + OSK_CLOUD }, \
	{ "os-auth-url", required_argument, NULL, OSENV_OPT + OSK_AUTH_URL }, \
	{ "os-auth-type", required_argument, NULL, OSENV_OPT + OSK_AUTH_TYPE }, \
	{ "os-username", required_argument, NULL, OSENV_OPT + OSK_USERNAME }, \
	{ "os-user-id", required_argument, NULL, OSENV_OPT + OSK_USER_ID }, \
	{ "os-password", required_argument, NULL, OSENV_OPT + OSK_PASSWORD }, \
	{ "os-project-name", required_argument, NULL, OSENV_OPT + OSK_PROJECT_NAME }, \
	{ "os-project-id", required_argument, NULL, OSENV_OPT + OSK_PROJECT_ID }, \
	{ "os-user-domain-name", required_argument, NULL, OSENV_OPT + OSK_USER_DOMAIN_NAME }, \
	{ "os-user-domain-id", required_argument, NULL, OSENV_OPT + OSK_USER_DOMAIN_ID }, \
	{ "os-project-domain-name", required_argument, NULL, OSENV_OPT + OSK_PROJECT_DOMAIN_NAME }, \
	{ "os-project-domain-id", required_argument, NULL, OSENV_OPT + OSK_PROJECT_DOMAIN_ID }, \
	{ "os-domain-name", required_argument, NULL, OSENV_OPT + OSK_DOMAIN_NAME }, \
	{ "os-domain-id", required_argument, NULL, OSENV_OPT + OSK_DOMAIN_ID }, \
	{ "os-default-domain", required_argument, NULL, OSENV_OPT + OSK_DEFAULT_DOMAIN }, \
	{ "os-application-credential-id", required_argument, NULL, OSENV_OPT + OSK_APP_CRED_ID }, \
	{ "os-application-credential-name", required_argument, NULL, \
	    OSENV_OPT + OSK_APP_CRED_NAME }, \
	{ "os-application-credential-secret", required_argument, NULL, \
	    OSENV_OPT + OSK_APP_CRED_SECRET }, \
	{ "os-region-name", required_argument, NULL, OSENV_OPT + OSK_REGION }, \
	{ "os-interface", required_argument, NULL, OSENV_OPT + OSK_INTERFACE }, \
	{ "os-cacert", required_argument, NULL, OSENV_OPT + OSK_CACERT }, \
	{ "insecure", no_argument, NULL, OSENV_OPT + OSK_INSECURE }, \
	{ "os-endpoint-override", required_argument, NULL, OSENV_OPT + OSK_ENDPOINT }

/* One line for a command's usage text naming the common options. */
#define OSENV_USAGE \
	"Credentials as for the openstack CLI: OS_CLOUD + clouds.yaml, OS_* variables, or\n" \
	"--os-cloud, --os-auth-url, --os-username, --os-password, --os-project-name, ...\n" \
	"(--os-* override OS_*, which override clouds.yaml); --os-endpoint-override URL.\n"

/* The --os-* options a command was given (borrowed optarg strings); NULL = not given. */
struct osenv_flags {
	const char	*v[OSK_N];
};

/*
 * What a command acts with, gathered like the openstack CLI: the cloud (--os-cloud, else
 * OS_CLOUD) of clouds.yaml with secure.yaml merged, then OS_* variables, then --os-* options,
 * each overriding the one before. The strings point into vals; free with osenv_config_free.
 */
struct osenv_config {
	struct keystone_auth	 auth;
	struct http_opts	 http;		/* ca_file, insecure; other fields zero */
	const char		*endpoint;	/* the API's URL when overridden, else NULL */
	const char		*cloud;		/* the cloud's name, NULL without one */
	json_t			*vals;		/* owns every string above */
};

/* 1 when ch (a getopt_long value) is one of OSENV_OPTIONS, recorded in f; else 0. */
int	 osenv_flag(struct osenv_flags *, int ch, const char *optarg);
/*
 * Gathers cfg (see struct osenv_config); the auth URL gains "/v3" when it names no version.
 * ERR_INVAL when the cloud, the auth URL, the credentials or the interface are missing or
 * wrong (the message says which); ERR_NOTFOUND when the named cloud is nowhere.
 */
int	 osenv_config_load(const struct osenv_flags *, struct osenv_config *, struct err *);
/* Frees what osenv_config_load gathered (also after it failed); a zeroed cfg is fine. */
void	 osenv_config_free(struct osenv_config *);

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
