/*
 * chain.h — versions within a chain of images in Glance (isoforge_chain, isoforge_version),
 * unique also when several workers register versions of one chain at the same moment, with
 * nothing but Glance to coordinate:
 *
 *   1. list the chain; candidate = highest isoforge_version + 1
 *   2. claim it: create the image (queued) with isoforge_version = candidate; its created_at
 *      is the time of the claim (a claim is never moved to another number: a new image is)
 *   3. wait until Glance's clock has left the second of created_at, list the chain again;
 *      if another image claimed the same number first (earlier created_at, then lower id:
 *      an order every worker computes alike) delete ours, candidate = highest seen + 1,
 *      go to 2; else the number is ours.
 * A claim made after our look is stamped in a later second than ours, and its maker sees
 * ours; claims made before it we see. So the first claim of a number keeps it and every later
 * one moves on: each number ends with exactly one image. Numbers increase; under races one
 * may be skipped. Limit: Glance forgets deleted images, so the number of a deleted newest
 * image can be given again (isoforge deletes only images that never became active). Several
 * glance-api hosts must keep their clocks within that second (NTP).
 */
#ifndef ISOFORGE_CHAIN_H
#define ISOFORGE_CHAIN_H

#include <jansson.h>

#include "drivers/glance.h"
#include "base/util.h"

/* Highest isoforge_version among images (an array of Glance images); 0 when none. Pure. */
int	 chain_max_version(const json_t *images);
/*
 * 1 when image id (created at created_at) may keep version v among images: no other image of
 * the array holds v and was created before it (ties broken by the lower id). Pure.
 */
int	 chain_holds_version(const json_t *images, const char *id, const char *created_at, int v);

/*
 * Creates an image from body (name, formats, visibility, properties; isoforge_chain and
 * isoforge_version are set here) as the next version of chain. Returns the image (status
 * queued; new reference) and its version; on failure deletes what it created.
 */
json_t	*chain_create_image(struct glance *, const char *chain, const json_t *body, int *version,
	    struct err *);
/* The images of chain visible to the session, by version (lowest first); new reference. */
json_t	*chain_list(struct glance *, const char *chain, struct err *);

#endif
