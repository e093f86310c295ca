/*
 * cloud.h — the pipeline's cloud drivers (DESIGN.md "The build pipeline"): a requester's
 * sessions with Keystone, Glance and Nova; media from Glance into the content-addressed ISO
 * cache (source_glance_ops); images into Glance as the next version of their chain
 * (registry_glance_ops). Sessions act for the user: the user's token with isoforge's service
 * token (X-Service-Token), so a token that expires during a long install is still accepted.
 */
#ifndef ISOFORGE_CLOUD_H
#define ISOFORGE_CLOUD_H

#include <jansson.h>

#include "base/util.h"
#include "drivers/glance.h"
#include "drivers/http.h"
#include "drivers/keystone.h"
#include "drivers/nova.h"
#include "service/common/config.h"
#include "service/pipeline/build.h"

/* One build's sessions and what resolving found (the ctx of both tables); cloud_close
 * releases everything. */
struct cloud {
	const struct config	*cfg;
	char			*token;		/* the requester's; never log it */
	int			 stop_fd;	/* readable: stop transfers and waits; -1 none */
	struct http_client	*http;
	struct keystone		*service;	/* isoforge's own */
	struct keystone		*user;		/* the requester's token + X-Service-Token */
	struct glance		*glance;
	struct nova		*nova;
	char			*project_id;	/* from the token, never from the message */
	unsigned char		 chain_key[32];	/* keys the ids of chain versions (chain.h) */
	char			*user_id;
	json_t			*iso;		/* Glance images */
	json_t			*virtio;	/* NULL: none */
	json_t			*parent;	/* NULL: none */
	json_t			*base;		/* a derived build's base image, or NULL */
	struct nova_flavor	*flavor;
	json_t			*built;		/* images of this build id, asked while
						 * resolving (find_built takes it), or NULL */
	int			 iso_fd;	/* the cached ISOs held while the build uses them */
	int			 virtio_fd;
};

/* Media from Glance: iso_ref, virtio_win_ref ("auto" = [builds] virtio_win_image) and
 * flavor_ref are the request's ids; resolving opens the sessions (cloud_open) first. */
extern const struct source_ops source_glance_ops;
/* Images into Glance, created as the requester (owner: the token's project). */
extern const struct registry_ops registry_glance_ops;

/* A session for isoforge's service user from cfg (used alone for token validation). */
struct keystone	*cloud_service_keystone(const struct config *, struct http_client **,
		    struct err *);
/* Sets up c for the requester's token (copied); nothing is asked yet. */
void	 cloud_init(struct cloud *, const struct config *, const char *token);
/* While fd (the build's stop_fd; -1: none) is readable, transfers and waits stop at once. */
void	 cloud_set_stop_fd(struct cloud *, int fd);
/* Opens the sessions: the token validated, its project and user learnt. Once. */
int	 cloud_open(struct cloud *, struct err *);
/*
 * The body of the Glance image a build makes (pure): name, formats, visibility, tags, and
 * props (strings; min_disk/min_ram as Glance's integer fields). isoforge_chain and
 * isoforge_version are set by the chain. New reference.
 */
json_t	*cloud_image_body(const struct build *, const json_t *props);
/* Deletes a Glance image the build created, as the requester; tried again for ~15 s while
 * Glance can't be reached. 0 also when it is already gone. */
int	 cloud_delete_image(struct cloud *, const char *id, struct err *);
void	 cloud_close(struct cloud *);

#endif
