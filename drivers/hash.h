/* hash.h — sha512 and md5 of a stream at once (Glance's os_hash_value and checksum). */
#ifndef ISOFORGE_HASH_H
#define ISOFORGE_HASH_H

#include <stddef.h>

#include "base/util.h"

struct hash_ctx;

struct hash_ctx	*hash_new(void);
void		 hash_update(struct hash_ctx *, const void *, size_t);
/* Finishes both digests as lower-case hex; the context can't be updated afterwards. */
void		 hash_final(struct hash_ctx *, char sha512_hex[129], char md5_hex[33]);
void		 hash_free(struct hash_ctx **);
/* Hashes a whole file with constant memory. */
int		 hash_file(const char *path, char sha512_hex[129], char md5_hex[33], struct err *);

/* hash_file on a thread of its own: started now, its result taken by hash_job_wait (which
 * frees the job; NULL jobs are fine). For a digest needed only later, e.g. of an ISO that
 * installs meanwhile. */
struct hash_job;
struct hash_job	*hash_file_start(const char *path);
int		 hash_job_wait(struct hash_job **, char sha512_hex[129], char md5_hex[33],
		    struct err *);

#endif
