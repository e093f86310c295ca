/*
 * cloud.h — the pipeline's cloud drivers (DESIGN.md "The build pipeline"): a requester's
 * sessions with Keystone, Glance and Nova; media from Glance into the content-addressed ISO
 * cache (source_glance_ops); images into Glance as the next version of their chain
 * (registry_glance_ops). Sessions act for the user through the Keystone trust the user gave
 * isoforge (docs/api.md): trust-scoped tokens obtained with isoforge's own credentials, renewed
 * whenever one nears its expiry, so builds outlast tokens; the user and project are Keystone's.
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
	char			*trust_id;	/* the requester's trust to isoforge */
	int			 stop_fd;	/* readable: stop transfers and waits; -1 none */
	struct http_client	*http;
	struct keystone		*service;	/* isoforge's own (deletes the trust) */
	struct keystone		*user;		/* trust-scoped: acts as the requester */
	struct glance		*glance;
	struct nova		*nova;
	char			*project_id;	/* the trust's, from Keystone, never the message */
	unsigned char		 chain_key[32];	/* keys the ids of chain versions (chain.h) */
	char			*user_id;
	json_t			*iso;		/* Glance images */
	json_t			*virtio;	/* NULL: none */
	json_t			*parent;	/* NULL: none */
	json_t			*base;		/* a derived build's base image, or NULL */
	struct nova_flavor	*flavor;
	int			 iso_fd;	/* the cached ISOs held while the build uses them */
	int			 virtio_fd;
};

/* Media from Glance: iso_ref, virtio_win_ref ("auto" = [builds] virtio_win_image) and
 * flavor_ref are the request's ids; resolving opens the sessions (cloud_open) first. */
extern const struct source_ops source_glance_ops;
/* Images into Glance, created as the requester (owner: the trust's project). */
extern const struct registry_ops registry_glance_ops;

/* A session for isoforge's service user from cfg (*httpp is made when NULL). */
struct keystone	*cloud_service_keystone(const struct config *, struct http_client **,
		    struct err *);
/* The same credentials scoped to the Keystone trust trust_id: it acts as the trustor. */
struct keystone	*cloud_trust_keystone(const struct config *, struct http_client **,
		    const char *trust_id, struct err *);
/* Sets up c for the requester's trust (id copied; NULL: none); nothing is asked yet. */
void	 cloud_init(struct cloud *, const struct config *, const char *trust_id);
/* While fd (the build's stop_fd; -1: none) is readable, transfers and waits stop at once. */
void	 cloud_set_stop_fd(struct cloud *, int fd);
/* Opens the sessions: a trust-scoped token obtained, its project and user learnt. Once. */
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
/* Deletes the trust trust_id (404: already gone) with isoforge's own session (admin in
 * Keystone's default policy), else, when that is refused, with the trust's own token (the
 * trustor's, by impersonation). Uses c's sessions, opening isoforge's when needed. */
int	 cloud_delete_trust(struct cloud *, const char *trust_id, struct err *);
void	 cloud_close(struct cloud *);

#endif
