/* localstore.h — the embedded default image registry: a directory standing in for Glance. */
#ifndef ISOFORGE_LOCALSTORE_H
#define ISOFORGE_LOCALSTORE_H

#include <jansson.h>

#include "base/util.h"

/*
 * Layout of a store directory:
 *   <id>.qcow2            an image (standalone qcow2)
 *   <id>.json             its record, what Glance would show: id, name, status, disk_format,
 *                         container_format, size, virtual_size, checksum (md5), os_hash_algo
 *                         (sha512), os_hash_value, created_at, updated_at, visibility, min_disk,
 *                         min_ram, tags, properties{...} (isoforge_chain, isoforge_version, ...)
 *   .lock                 flock()ed while a version is reserved
 *   .chains/<chain>       the last version handed out in a chain (name %XX-escaped)
 * An image is registered once its record exists; the record is written last, atomically.
 */
struct localstore;

/* Opens (creating it when missing) the store at dir; free with localstore_free. */
int	 localstore_open(const char *dir, struct localstore **, struct err *);
void	 localstore_free(struct localstore **);
/* The store's directory (owned by the store). */
const char *localstore_dir(const struct localstore *);

/*
 * Reserves the next version of chain (1, 2, ...): never handed out twice, also to other
 * processes and threads at the same time, and never below a version already registered.
 * A reserved version that is never used stays burnt (as with Glance).
 */
int	 localstore_next_version(struct localstore *, const char *chain, int *version,
	    struct err *);

/*
 * Registers image_file (a standalone qcow2), moving it into the store (rename; a copy, fsync
 * and rename when it lives on another file system; the source is removed on success only).
 * meta (borrowed) is a JSON object: "name" (required), optionally "id" (a UUID not in use),
 * "visibility", "min_disk", "min_ram", "tags", "properties" (copied; "min_disk"/"min_ram" found
 * there become top-level fields as in Glance); everything the store computes (status, sizes,
 * hashes, dates, formats) is its own. *id (may be NULL) gets the new id; caller frees.
 * On failure the file is back where it was and nothing is registered.
 */
int	 localstore_add(struct localstore *, const char *image_file, json_t *meta, char **id,
	    struct err *);
/* An image's record (new reference, caller json_decref()s), or NULL with ERR_NOTFOUND. */
json_t	*localstore_get(struct localstore *, const char *id, struct err *);
/* Records of all images, or of one chain (chain non-NULL), sorted by isoforge_version, then
 * created_at. New reference (an array); caller json_decref()s. */
json_t	*localstore_list(struct localstore *, const char *chain, struct err *);
/* Unregisters an image (its record first) and removes its data file. */
int	 localstore_delete(struct localstore *, const char *id, struct err *);
/* Path of an image's data file; caller frees. NULL when id is not a UUID. */
char	*localstore_image_path(const struct localstore *, const char *id);

/* A chain name as a file name: [A-Za-z0-9_-] kept, every other byte %XX; caller frees.
 * NULL when chain is empty or longer than 80 bytes. */
char	*localstore_escape_chain(const char *chain);

#endif
