/* glance.h — Glance v2 images: show, list, create, streaming upload and verified download,
 * JSON-patch updates, tags, protection, delete. */
#ifndef ISOFORGE_GLANCE_H
#define ISOFORGE_GLANCE_H

#include <jansson.h>

#include "drivers/keystone.h"
#include "base/util.h"

struct glance;

/* A client on session ks (borrowed; must outlive it). endpoint NULL = the catalog's "image". */
struct glance	*glance_new(struct keystone *ks, const char *endpoint, struct err *);
void		 glance_free(struct glance **);

/* The image (new reference). ERR_NOTFOUND "not found or not visible to your project" also
 * for another project's private image (Glance answers 404 for both). */
json_t		*glance_image_show(struct glance *, const char *id, struct err *);

struct glance_list_opts {
	json_t			*filters;	/* object: name → string, e.g. {"isoforge_chain": "x",
						 * "disk_format": "iso", "visibility": "private"} */
	const char		*status;	/* e.g. "active"; NULL = any */
	const char *const	*tags;		/* NULL-terminated; images carrying all of them */
	const char		*sort;		/* "created_at:desc,name:asc"; NULL = Glance's */
	int			 page_size;	/* limit per request; 0 = Glance's default */
	size_t			 max;		/* stop after this many; 0 = all (following "next") */
};
/*
 * One page of GET /v2/images (pure): its images are appended to all, up to max in all (0: no
 * bound); *next is its "next" link (a path, borrowed from page), NULL when the listing ends.
 */
int		 glance_list_page(const json_t *page, json_t *all, size_t max, const char **next,
		    struct err *);
/* The images matching opts (NULL opts = all visible), as an array; new reference. */
json_t		*glance_image_list(struct glance *, const struct glance_list_opts *, struct err *);

/* Creates an image from body ({"name", "disk_format", "container_format", "visibility",
 * properties...}); returns it (status "queued"), new reference. */
json_t		*glance_image_create(struct glance *, const json_t *body, struct err *);

/* Transfer options and results. */
struct glance_xfer {
	int		(*progress)(void *arg, long long done, long long total);
	void		 *arg;
	/* Upload only: */
	int		  hash;			/* also hash what is sent and compare (costs a core) */
	const char	 *expect_sha512;	/* what Glance must have computed; NULL = unknown */
	const char	 *expect_md5;
	/* Download only: */
	int		  also_md5;		/* md5 even when the image has a sha512 multihash */
	/* Out: the digests computed, "" for one that was not: */
	char		  sha512[129];	/* of the data received (download) or sent (upload, hash) */
	char		  md5[33];
	long long	  bytes;
};

/* Streams size bytes (-1 = until EOF, chunked) from fd (from its offset) into the queued image
 * id (PUT /v2/images/{id}/file) with constant memory, then checks that Glance made it active
 * with that size and, when known (x->hash, x->expect_*), the os_hash_value and checksum it
 * computed (ERR_IO "hash mismatch"). ERR_CONFLICT when the image already has data. x may be
 * NULL. */
int		 glance_image_upload(struct glance *, const char *id, int fd, long long size,
		    struct glance_xfer *, struct err *);
int		 glance_image_upload_file(struct glance *, const char *id, const char *path,
		    struct glance_xfer *, struct err *);

/* Downloads active image id to path with constant memory: into a temp file next to path,
 * hashing on the way; made durable and renamed to path only when the size and the digest
 * match, else removed (ERR_IO "hash mismatch"). The digest is the image's multihash
 * (os_hash_algo sha512, os_hash_value) when it has one, else md5 (checksum, older images);
 * x->also_md5 adds md5 to the multihash. x may be NULL. */
int		 glance_image_download(struct glance *, const char *id, const char *path,
		    struct glance_xfer *, struct err *);

/* Appends one JSON-patch operation ("add", "replace", "remove") on property or attribute name
 * to the array ops; value is stolen (NULL for "remove"). Pure. */
void		 glance_patch_op(json_t *ops, const char *op, const char *name, json_t *value);
/* Applies a JSON-patch array; returns the updated image, new reference. */
json_t		*glance_image_update(struct glance *, const char *id, const json_t *ops, struct err *);
/* Sets (add, which replaces an existing one) each name → string of props; a JSON null removes
 * the property. Returns the updated image, new reference. */
json_t		*glance_image_set_properties(struct glance *, const char *id, const json_t *props,
		    struct err *);
int		 glance_image_set_protected(struct glance *, const char *id, int protected_,
		    struct err *);
int		 glance_image_tag_add(struct glance *, const char *id, const char *tag, struct err *);
int		 glance_image_tag_remove(struct glance *, const char *id, const char *tag,
		    struct err *);
/* Deletes image id; ERR_CONFLICT when it is protected. */
int		 glance_image_delete(struct glance *, const char *id, struct err *);

#endif
