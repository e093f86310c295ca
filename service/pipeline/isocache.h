/*
 * isocache.h — the worker's ISO cache: whole, verified ISOs named by their Glance hash
 * (CACHE/<hash>.iso), bounded in size. A build holds the ISOs it uses (a shared flock on an
 * open descriptor) from fetching to its end; eviction removes the least recently used ISOs
 * that nobody holds until the cache fits its bound. Downloads in progress are *.part files
 * (drivers/glance); those left by a process that died are removed at start.
 */
#ifndef ISOFORGE_ISOCACHE_H
#define ISOFORGE_ISOCACHE_H

#include <time.h>

#include "base/util.h"

/* 1 when hash can name a cache file: 32 to 128 lower-case hex digits (md5 .. sha512). */
int	 isocache_name_ok(const char *hash);
/* Holds the cached file path for a build: opens it, takes a shared lock and marks it used now
 * (its mtime). Returns the descriptor (the build closes it when it ends) or -1. */
int	 isocache_hold(const char *path, struct err *);
/*
 * Removes *.iso (and *.img: derived builds' base images) files of dir, least recently used
 * first, that no build holds, until they take at most max_bytes (0: no bound). Returns how many were removed, -1 on error.
 */
int	 isocache_evict(const char *dir, long long max_bytes, struct err *);
/* Removes the *.part files of dir last written before `before` (downloads cut by a crash);
 * returns how many. */
int	 isocache_clean_parts(const char *dir, time_t before, struct err *);

#endif
