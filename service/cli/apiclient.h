/* apiclient.h — the CLI's client of isoforge-api (docs/api.md): a Keystone session, the
 * endpoint from the catalog (service type image-build) and JSON calls whose errors carry the
 * API's own detail. */
#ifndef ISOFORGE_APICLIENT_H
#define ISOFORGE_APICLIENT_H

#include <jansson.h>

#include "drivers/http.h"
#include "drivers/keystone.h"
#include "service/cli/osenv.h"

#define APICLIENT_SERVICE_TYPE	"image-build"
#define APICLIENT_VERSION	"image-build 1.0"	/* the microversion the CLI speaks */

struct apiclient;

/*
 * Authenticates now with cfg's credentials (so bad ones show at once) and finds the API: cfg's
 * endpoint override, else the catalog's image-build endpoint for cfg's interface and region.
 * cfg must outlive the client. Caller frees with apiclient_free.
 */
struct apiclient *apiclient_new(const struct osenv_config *cfg, struct err *);
void		 apiclient_free(struct apiclient **);

/*
 * METHOD path (e.g. "/v1/builds", a query included) with body as JSON (NULL: none). *out
 * (may be NULL) gets the answer's JSON (a new reference; NULL for an empty body). On a non-2xx
 * answer err holds the API's "detail" (kind from the status: ERR_AUTH 401/403, ERR_NOTFOUND,
 * ERR_CONFLICT, ERR_INVAL 400/413, ERR_REMOTE else; status set); transport errors say which
 * endpoint. GETs are retried on connection errors and 5xx.
 */
int		 apiclient_call(struct apiclient *, const char *method, const char *path,
		    const json_t *body, json_t **out, struct err *);

/* The API's base URL (no trailing slash, no /v1), for messages. Owned by the client. */
const char	*apiclient_endpoint(const struct apiclient *);
/* The Keystone session (borrowed), e.g. for Glance look-ups. */
struct keystone	*apiclient_keystone(struct apiclient *);
/* Lets every transfer stop once fd is readable (see http_client_set_cancel_fd). */
void		 apiclient_set_cancel_fd(struct apiclient *, int fd);

/* The message of an API error body: the first error's detail, else its title (pure); caller
 * frees; NULL when the body is no {"errors": [...]}. */
char		*apiclient_error_detail(const char *body, size_t len);
/* The endpoint as the client uses it (pure): trailing slashes and a final "/v1" removed;
 * caller frees. */
char		*apiclient_base_url(const char *url);

#endif
