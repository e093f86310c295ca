/*
 * api.h — isoforge-api, the REST API (docs/api.md): one file per role.
 *   server.c     libmicrohttpd, conventions (request id, microversions, errors, bounded bodies),
 *                routing
 *   auth.c       Keystone validation of X-Auth-Token (a bounded cache), policy (roles)
 *   view.c       the builds view (SQLite) fed by isoforge.events, the publisher
 *   resources.c  the resources: builds, events, actions, chains, profiles, consoles
 */
#ifndef ISOFORGE_API_H
#define ISOFORGE_API_H

#include <pthread.h>
#include <stddef.h>

#include <jansson.h>

#include "base/loop.h"
#include "base/util.h"
#include "service/common/config.h"

#define API_VERSION_MIN		0	/* 1.0 */
#define API_VERSION_MAX		0	/* 1.0: the minor number of the newest microversion */
#define API_SERVICE_TYPE	"image-build"

struct api;
struct api_view;
struct api_auth_cache;
struct keystone;

/* Who sent a request (what Keystone said of the token). */
struct api_caller {
	char	*user_id;
	char	*project_id;
	char	*token;			/* the user's token, for calls as the user; never logged */
	char	**roles;		/* the token's role names, NULL-terminated */
	int	 can_read, can_write, is_admin;
};

/* One HTTP request being answered. */
struct api_req {
	struct api		*api;
	const char		*method;
	const char		*path;		/* without the query */
	void			*conn;		/* struct MHD_Connection */
	char			 request_id[48];
	int			 minor;		/* the microversion's minor number */
	struct buf		 body;
	int			 body_too_big;
	struct api_caller	 caller;
	/* the answer */
	int			 status;
	json_t			*answer;	/* NULL: no body */
	char			*location;
	char			*www_authenticate;
};

/* The process: configuration, HTTP daemon, view, caches. */
struct api {
	struct config		*cfg;
	struct loop		*loop;
	char			*host;		/* [api] host, else [DEFAULT] host */
	char			*base_url;	/* links: [api] public_url or http://bind:port */
	void			*mhd;		/* struct MHD_Daemon */
	struct api_view		*view;
	struct api_auth_cache	*auth;
	pthread_mutex_t		 tls_mu;	/* the per-thread Keystone sessions */
	struct api_tls		*tls;
};

/* server.c */
struct api	*api_new(struct config *, struct loop *, struct err *);
int		 api_start(struct api *, struct err *);
void		 api_stop(struct api *);
void		 api_free(struct api **);
/* Fills the answer with the errors body of status; code is the part after "image-build.". */
void		 api_error(struct api_req *, int status, const char *code, const char *fmt, ...)
		    __attribute__((format(printf, 4, 5)));
/* The value of a query argument or NULL (borrowed from the connection). */
const char	*api_query(struct api_req *, const char *name);
/* The value of a request header or NULL (borrowed). */
const char	*api_header(struct api_req *, const char *name);
/* Parses the body as a JSON object within [api] max_body and max_depth; on failure answers
 * 413 or 400 and returns NULL. Caller json_decref()s. */
json_t		*api_body_json(struct api_req *);

/* The calling thread's service session (isoforge's own credentials); owned by the thread. */
struct keystone	*api_service_session(struct api *, struct err *);
void		 api_tls_free_all(struct api *);

/* auth.c */
struct api_auth_cache *api_auth_cache_new(size_t size);
void		 api_auth_cache_free(struct api_auth_cache **);
/*
 * Authenticates the request (X-Auth-Token, X-Service-Token) and fills req->caller; fresh: the
 * user's token must not be expired even with a service token (new builds). On failure answers
 * 401 (or 503 when Keystone cannot be reached) and returns -1.
 */
int		 api_authenticate(struct api_req *, int fresh);
void		 api_caller_clear(struct api_caller *);
/* 1 when the comma-separated role list holds one of the token's roles. */
int		 api_policy_allows(const char *policy, char *const *roles);

/* view.c */
struct api_view	*api_view_open(struct api *, struct err *);
void		 api_view_close(struct api_view **);
/* Starts consuming isoforge.events (reconnecting with backoff) on the API's loop. */
int		 api_view_start(struct api_view *, struct err *);
/* Applies one event (a parsed isoforge.event/2 body) to the view. */
int		 api_view_apply(struct api_view *, const json_t *event, struct err *);
/* The build (BUILD of docs/api.md) or NULL (ERR_NOTFOUND); project NULL = any. New ref. */
json_t		*api_view_build(struct api_view *, const char *id, const char *project,
		    struct err *);
struct api_list {
	const char	*project;	/* NULL = every project */
	const char	*state, *chain, *name;
	const char	*sort_key;	/* created_at | updated_at | name | state */
	int		 desc;
	const char	*marker;	/* a build id, or NULL */
	int		 limit;
};
/* A page of builds (array, new ref); *more set when a next page exists. ERR_NOTFOUND for an
 * unknown marker. */
json_t		*api_view_list(struct api_view *, const struct api_list *, int *more,
		    struct err *);
/* The events of a build, in order (array, new ref). */
json_t		*api_view_events(struct api_view *, const char *id, struct err *);
/* Forgets a terminal build (ERR_CONFLICT while it runs, ERR_NOTFOUND when unknown). */
int		 api_view_forget(struct api_view *, const char *id, const char *project,
		    struct err *);
/* A build's state and its console (host NULL when it has none); caller frees both strings. */
int		 api_view_console(struct api_view *, const char *id, const char *project,
		    char **state, char **host, int *port, struct err *);
/* Publishes body on exchange/key with the broker's confirm (any thread). */
int		 api_view_publish(struct api_view *, const char *exchange, const char *key,
		    const char *body, struct err *);
/* 1 when state is terminal. */
int		 api_state_terminal(const char *state);

/* resources.c */
/* Answers an authenticated-or-not request by route. */
void		 api_route(struct api_req *);

#endif
