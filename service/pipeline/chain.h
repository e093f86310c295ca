/*
 * chain.h — versions within a chain of images in Glance (isoforge_chain, isoforge_version):
 * claimed atomically, never given twice, with nothing but Glance to coordinate and no clock.
 *
 * Version N of chain C in project P lives in the image whose id is
 *   uuid(HMAC-SHA256(key, P \0 C \0 N))
 * with a key only isoforge's services know. Claiming N is creating the image with that id:
 * Glance creates it for exactly one caller and answers 409 to every other — also when that
 * image was deleted since (Glance keeps the ids of deleted images), so a number is never given
 * again, and another project, without the key, can't take a number of ours. A claim starts
 * at the project's own highest version + 1 and moves up on each 409.
 */
#ifndef ISOFORGE_CHAIN_H
#define ISOFORGE_CHAIN_H

#include <jansson.h>

#include "drivers/glance.h"
#include "base/util.h"

/* Highest isoforge_version among images (an array of Glance images); 0 when none. Pure. */
int	 chain_max_version(const json_t *images);

/* The secret that makes version ids unguessable ([builds] chain_key); key bytes, len. */
struct chain_key {
	const unsigned char	*key;
	size_t			 len;
};

/* The id of version v of chain in project (pure): a UUID (RFC 9562 version 8) of the
 * HMAC-SHA256 of "project\0chain\0v" under key, into out[37]. */
void	 chain_version_id(const struct chain_key *, const char *project, const char *chain,
	    int v, char out[37]);

/*
 * Creates an image from body (name, formats, visibility, properties; its id, isoforge_chain
 * and isoforge_version are set here) as the next version of chain in project (the session's
 * project, which owns it). Returns the image (status queued; new reference) and its version.
 * The claim is the creation: nothing to withdraw on failure.
 */
json_t	*chain_create_image(struct glance *, const struct chain_key *, const char *project,
	    const char *chain, const json_t *body, int *version, struct err *);
/* The images of chain visible to the session, by version (lowest first), only those owned by
 * owner when it is not NULL; new reference. */
json_t	*chain_list(struct glance *, const char *owner, const char *chain, struct err *);

#endif
