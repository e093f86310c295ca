/* clients_common.h — shared by the cloud tests of the OpenStack clients (and bench/transfer):
 * sessions from the minicloud's env.sh (sourced by tests/run). Header-only: each test is one
 * program. */
#ifndef ISOFORGE_TESTS_CLIENTS_COMMON_H
#define ISOFORGE_TESTS_CLIENTS_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/glance.h"
#include "drivers/http.h"
#include "drivers/keystone.h"
#include "drivers/nova.h"
#include "service/cli/osenv.h"
#include "base/util.h"

/* Exits 77 (skip) outside the cloud group. */
static inline void
cloud_require(void)
{
	if (getenv("OS_AUTH_URL") == NULL || getenv("GLANCE_URL") == NULL) {
		printf("no minicloud (OS_AUTH_URL unset): run through tests/run\n");
		exit(77);
	}
}

static inline struct http_client *
cloud_http(void)
{
	struct http_opts	 o;

	memset(&o, 0, sizeof(o));
	osenv_http_opts(&o);
	return http_client_new(&o);
}

/* A session for prefix "" (alice/alpha), "ALT_" (bob/beta) or "ADMIN_"; aborts on failure. */
static inline struct keystone *
cloud_session(struct http_client *http, const char *prefix)
{
	struct keystone_auth	 a;
	struct keystone		*ks;
	struct err		 e;

	err_clear(&e);
	if (osenv_auth(prefix, &a, &e) == -1 || (ks = keystone_new(http, &a, &e)) == NULL ||
	    keystone_token(ks, &e) == NULL) {
		fprintf(stderr, "session %s: %s\n", prefix, e.msg);
		abort();
	}
	return ks;
}

/* isoforge's own service user (roles admin + service) from ISOFORGE_SERVICE_*. */
static inline struct keystone *
cloud_service_session(struct http_client *http)
{
	struct keystone_auth	 a;
	struct keystone		*ks;
	struct err		 e;

	memset(&a, 0, sizeof(a));
	a.auth_url = getenv("OS_AUTH_URL");
	a.username = getenv("ISOFORGE_SERVICE_USERNAME");
	a.password = getenv("ISOFORGE_SERVICE_PASSWORD");
	a.project_name = getenv("ISOFORGE_SERVICE_PROJECT_NAME");
	a.user_domain_name = "Default";
	a.project_domain_name = "Default";
	a.region = getenv("OS_REGION_NAME");
	err_clear(&e);
	if ((ks = keystone_new(http, &a, &e)) == NULL || keystone_token(ks, &e) == NULL) {
		fprintf(stderr, "service session: %s\n", e.msg);
		abort();
	}
	return ks;
}

/* A Keystone trust from user's session to isoforge's service user (the user's roles in its
 * project, impersonation, for two hours), as isoforge-api makes one; caller frees the id
 * (and deletes the trust with keystone_trust_delete when it is done). Aborts on failure. */
static inline char *
cloud_trust(struct keystone *user)
{
	struct keystone	*svc = cloud_service_session(keystone_http(user));
	struct err	 e;
	char		*id;

	err_clear(&e);
	id = keystone_trust_create(user, keystone_info(svc, &e)->user_id, NULL,
	    keystone_info(user, &e)->roles, time(NULL) + 7200, &e);
	if (id == NULL) {
		fprintf(stderr, "trust: %s\n", e.msg);
		abort();
	}
	keystone_free(&svc);
	return id;
}

/* Sends method url (body: a JSON string or NULL) with ks's token; the answer in *resp, which
 * the caller frees with http_resp_free. Returns keystone_request's result. */
static inline int
cloud_request(struct keystone *ks, const char *method, const char *url, const char *body,
    struct http_resp *resp, struct err *e)
{
	struct http_req	 req;

	http_req_init(&req);
	http_resp_init(resp);
	req.method = method;
	req.url = url;
	req.body = body;
	req.body_len = body != NULL ? strlen(body) : 0;
	return keystone_request(ks, &req, resp, e);
}

/* Peak resident set of this process in KiB (VmHWM of /proc/self/status). */
static inline long
vm_hwm_kib(void)
{
	FILE	*f = fopen("/proc/self/status", "r");
	char	 line[256];
	long	 kib = -1;

	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmHWM: %ld kB", &kib) == 1)
			break;
	if (f != NULL)
		fclose(f);
	return kib;
}

/* Writes a file path that is not really an ISO and uploads it as g's project's private ISO
 * image name; its id in *idp (caller frees) as soon as the image exists. 0, or -1 with err. */
static inline int
cloud_fake_iso(struct glance *g, const char *path, const char *name, char **idp, struct err *err)
{
	FILE	*f;
	json_t	*body, *img;

	f = fopen(path, "w");
	fputs("not really an ISO", f);
	fclose(f);
	body = json_pack("{s:s, s:s, s:s, s:s}", "name", name, "disk_format", "iso",
	    "container_format", "bare", "visibility", "private");
	img = glance_image_create(g, body, err);
	json_decref(body);
	if (img == NULL)
		return -1;
	*idp = xstrdup(json_string_value(json_object_get(img, "id")));
	json_decref(img);
	return glance_image_upload_file(g, *idp, path, NULL, err) != 0 ? -1 : 0;
}

/* The minicloud's state directory. */
static inline const char *
cloud_dir(void)
{
	const char	*d = getenv("ISOFORGE_CLOUD_DIR");

	return d != NULL ? d : getenv("MINICLOUD_DIR");
}

/* A new private raw image named name in g's project; its id (caller frees). */
static inline char *
cloud_image_new(struct glance *g, const char *name)
{
	struct err	 e;
	json_t		*body, *img;
	char		*id;

	body = json_pack("{s:s,s:s,s:s,s:s}", "name", name, "disk_format", "raw",
	    "container_format", "bare", "visibility", "private");
	err_clear(&e);
	if ((img = glance_image_create(g, body, &e)) == NULL) {
		fprintf(stderr, "image create: %s\n", e.msg);
		abort();
	}
	id = strdup(json_string_value(json_object_get(img, "id")));
	json_decref(img);
	json_decref(body);
	return id;
}

#endif
