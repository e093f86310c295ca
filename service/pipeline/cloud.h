/*
 * worker_steps.h — the steps of a build that only a worker has (DESIGN.md "The build
 * pipeline"): resolving with Keystone, Glance and Nova as the requester; fetching the ISOs
 * into the content-addressed cache; registering the result in Glance as the next version
 * of its chain. Sessions act for the user: the user's token with isoforge's service token
 * (X-Service-Token), so a token that expires during a long install is still accepted.
 */
#ifndef ISOFORGE_WORKER_STEPS_H
#define ISOFORGE_WORKER_STEPS_H

#include <jansson.h>

#include "drivers/glance.h"
#include "drivers/http.h"
#include "drivers/keystone.h"
#include "drivers/nova.h"
#include "service/common/config.h"
#include "service/pipeline/request.h"
#include "base/util.h"

/* One build's sessions and what resolving found; ws_close releases everything. */
struct ws {
	const struct config	*cfg;
	struct http_client	*http;
	struct keystone		*service;	/* isoforge's own */
	struct keystone		*user;		/* the requester's token + X-Service-Token */
	struct glance		*glance;
	struct nova		*nova;
	char			*project_id;	/* from the token, never from the message */
	char			*user_id;
	json_t			*iso;		/* Glance images */
	json_t			*virtio;	/* NULL: none */
	json_t			*parent;	/* NULL: none */
	struct nova_flavor	*flavor;
	char			*iso_path;	/* in the cache, once fetched */
	char			*virtio_path;
};

/* A session for isoforge's service user from cfg (used alone for token validation). */
struct keystone	*ws_service_session(const struct config *, struct http_client **, struct err *);

/* Opens the sessions for the requester's token (validated: project and user learnt). */
int	 ws_open(struct ws *, const struct config *, const char *token, struct err *);
/*
 * resolving: the ISO (disk_format iso, active, visible to the requester's project), the
 * virtio-win ISO (auto = cfg's), the parent image, the flavor (with a root disk).
 */
int	 ws_resolve(struct ws *, const struct build_request *, struct err *);
/* fetching: each ISO into cache_dir/<os_hash_value>.iso unless there, verified by Glance's hash. */
int	 ws_fetch(struct ws *, struct err *);
/*
 * The body of the Glance image a build makes (pure): name, formats, visibility, the
 * request's properties and tags, Nova's properties (nova_props, may be NULL) and the lineage
 * (isoforge_parent, _build_id, _source_iso, _source_iso_hash, _virtio_win, _built_at).
 * Never os_glance_*, base_image_ref, instance_uuid, image_type. New reference.
 */
json_t	*ws_image_body(const struct build_request *, const char *build_id, const json_t *iso,
	    const json_t *virtio, const json_t *nova_props, const char *built_at);
/*
 * uploading: creates the image as the next version of the chain (request's chain, else its
 * name), calls created(arg, id) at once (so the job store knows what to delete), streams the
 * file, checks Glance's hash. On failure deletes the image (and any other non-active image
 * of build_id). An upload cut short (network, timeout, 5xx) is tried again, up to 3 times,
 * each time with a new image (created() called again). Returns the id (caller frees).
 */
char	*ws_register(struct ws *, const struct build_request *, const char *build_id,
	    const char *file, const json_t *nova_props, int *version,
	    int (*created)(void *, const char *), void *arg, struct err *);
/* Deletes a Glance image the build created (cleanup), as the requester; tried again for
 * ~15 s while Glance can't be reached. 0 also when it is already gone. */
int	 ws_delete_image(struct ws *, const char *id, struct err *);
void	 ws_close(struct ws *);

#endif
