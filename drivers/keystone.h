/* keystone.h — Keystone v3: tokens (password or application credential), the catalog,
 * validating other users' tokens, and authenticated requests for the other service clients. */
#ifndef ISOFORGE_KEYSTONE_H
#define ISOFORGE_KEYSTONE_H

#include <time.h>

#include <jansson.h>

#include "drivers/http.h"
#include "base/util.h"

/* How to authenticate; NULL fields are unset. Either a password (user by name + domain or by
 * id; project by name + domain or by id) or an application credential (id, or name + user). */
struct keystone_auth {
	const char	*auth_url;		/* e.g. http://host:5000/v3 */
	const char	*username;
	const char	*user_id;
	const char	*user_domain_name;
	const char	*user_domain_id;
	const char	*password;
	const char	*project_name;
	const char	*project_id;
	const char	*project_domain_name;
	const char	*project_domain_id;
	const char	*app_cred_id;
	const char	*app_cred_name;
	const char	*app_cred_secret;
	const char	*region;		/* catalog region; NULL = any */
	const char	*interface;		/* catalog interface; NULL = "public" */
	/* A Keystone trust: the token is scoped to it ({"OS-TRUST:trust": {"id": ..}}) instead of
	 * a project (project_* are ignored). Needs a password identity of the trustee (Keystone
	 * refuses any scope in an application-credential login: "Application credentials cannot
	 * request a scope."). With impersonation the token's user is the trustor. */
	const char	*trust_id;
};

/* What a token says about its holder. */
struct keystone_token_info {
	char		*user_id;
	char		*user_name;
	char		*user_domain_id;
	char		*project_id;		/* NULL for an unscoped token */
	char		*project_name;
	char		*project_domain_id;
	char		**roles;		/* role names, NULL-terminated */
	size_t		 nroles;
	char		*expires_at;		/* as Keystone wrote it */
	time_t		 expires;		/* the same, as time_t */
	json_t		*catalog;		/* array; NULL when asked without */
};

struct keystone;

/* A session with its own credentials (copied; the password is kept in memory to renew the
 * token). Does not authenticate yet. http is borrowed and must outlive the session. A session
 * (like its http client) is used from one thread at a time. */
struct keystone	*keystone_new(struct http_client *, const struct keystone_auth *, struct err *);
/*
 * A session acting for a user: requests carry the user's token (X-Auth-Token) together with
 * service's own token (X-Service-Token), so services accept the user's token past its expiry.
 * Validates the user token through service (allow_expired) to learn its project and catalog.
 * service is borrowed and must outlive the result. Region/interface are taken from service.
 */
struct keystone	*keystone_new_for_user(struct keystone *service, const char *user_token,
		    struct err *);
void		 keystone_free(struct keystone **);

/* The session's token, authenticating first or again when it expires within two minutes. For a
 * user session: the user's token. Owned by the session, valid until the next call on it. */
const char	*keystone_token(struct keystone *, struct err *);
/* Forgets the cached token and authenticates again (a user session renews its service token). */
int		 keystone_renew(struct keystone *, struct err *);
/* What the session's token says (authenticating first when needed); owned by the session. */
const struct keystone_token_info *keystone_info(struct keystone *, struct err *);

/* The URL of service type (e.g. "image", "compute") in the session's catalog, for its interface
 * and region; caller frees. ERR_NOTFOUND when the catalog has none. */
char		*keystone_endpoint(struct keystone *, const char *type, struct err *);
/* The same on a catalog array (pure); interface NULL = "public", region NULL = any. */
char		*keystone_catalog_find(const json_t *catalog, const char *type,
		    const char *interface, const char *region, struct err *);

/* Validates another token (GET /v3/auth/tokens, X-Subject-Token) with the session's token:
 * its user, project and roles. allow_expired asks Keystone to accept a recently expired one
 * (needs the service role). ERR_AUTH (404 from Keystone) when it is not valid. Caller frees. */
struct keystone_token_info *keystone_validate(struct keystone *, const char *subject_token,
		    int allow_expired, int with_catalog, struct err *);
int		 keystone_token_info_has_role(const struct keystone_token_info *, const char *role);
void		 keystone_token_info_free(struct keystone_token_info **);
/* Parses a token body ({"token": {...}}) into info (pure); caller frees. */
struct keystone_token_info *keystone_token_info_parse(const json_t *body, struct err *);

/* Performs req (see http_request) with the session's token headers added; on a 401 renews the
 * token once and tries again (rewinding req's upload_fd; calling on_restart when set). */
int		 keystone_request(struct keystone *, const struct http_req *, struct http_resp *,
		    struct err *);
/* The http client the session uses (borrowed). */
struct http_client *keystone_http(struct keystone *);

/* Builds the POST /v3/auth/tokens body for auth (pure); new reference. */
json_t		*keystone_auth_body(const struct keystone_auth *, struct err *);

/*
 * Keystone trusts (OS-TRUST).
 *
 * A trust lets the trustee (isoforge's service user) obtain tokens that act for the trustor:
 * make a session with keystone_new on the trustee's own credentials plus auth.trust_id; its
 * tokens are trust-scoped, and with impersonation their user is the trustor and their project
 * the trust's.
 */

/* Creates a trust from the user of user_session (a session whose token is the user's own:
 * keystone_new on the user's credentials, or keystone_new_for_user) to trustee_user_id, on
 * project_id (NULL = the session's project), delegating the role names roles (NULL-terminated,
 * at least one), with impersonation, expiring at expires (0 = never). POST /v3/OS-TRUST/trusts
 * with the user's token: Keystone's default policy (identity:create_trust = trustor) lets only
 * the trustor create it, with a project-scoped, non-delegated token (not an application
 * credential's nor a trust's). Keystone allows one trust per trustor, trustee, project,
 * impersonation and expires_at: the expiry gets a random microsecond (and a collision is tried
 * again), so trusts made in the same second don't clash. Returns the trust id; caller frees. */
char		*keystone_trust_create(struct keystone *user_session, const char *trustee_user_id,
		    const char *project_id, char *const *roles, time_t expires, struct err *);
/* Deletes trust_id (DELETE /v3/OS-TRUST/trusts/{id}); a trust that is not there (404) counts
 * as deleted. Keystone 22's default policy, identity:delete_trust = "rule:admin_required or
 * user_id:%(target.trust.trustor_user_id)s" (the deprecated "trustor only" OR'ed in while
 * enforce_new_defaults is off): a session of a user with the admin role (isoforge's service
 * user in the minicloud and devstack), or the trustor's own session — which a token scoped to
 * the trust itself is, with impersonation (Keystone blocks only application-credential, OAuth1
 * and EC2 tokens from managing trusts). The trustee's plain session is refused (403) when it is
 * not admin. */
int		 keystone_trust_delete(struct keystone *session, const char *trust_id, struct err *);

#endif
