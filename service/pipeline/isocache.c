/* isocache.c — the bounded ISO cache: holds, least-recently-used eviction, leftover parts. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "service/pipeline/isocache.h"

int
isocache_name_ok(const char *hash)
{
	size_t	 n = hash != NULL ? strlen(hash) : 0;

	if (n < 32 || n > 128)
		return 0;
	return strspn(hash, "0123456789abcdef") == n;
}

int
isocache_hold(const char *path, struct err *e)
{
	int	 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		err_set(e, ERR_IO, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_SH) == -1 || futimens(fd, NULL) == -1) {
		err_set(e, ERR_IO, "%s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* A cached ISO: its path, size and last use. */
struct isocache_entry {
	char		*path;
	long long	 size;
	struct timespec	 used;
};

static int
isocache_older(const void *a, const void *b)
{
	const struct isocache_entry	*x = a, *y = b;

	if (x->used.tv_sec != y->used.tv_sec)
		return x->used.tv_sec < y->used.tv_sec ? -1 : 1;
	if (x->used.tv_nsec != y->used.tv_nsec)
		return x->used.tv_nsec < y->used.tv_nsec ? -1 : 1;
	return strcmp(x->path, y->path);
}

/* Suffix test. */
static int
isocache_ends(const char *name, const char *suffix)
{
	size_t	 n = strlen(name), k = strlen(suffix);

	return n > k && strcmp(name + n - k, suffix) == 0;
}

/* Removes path unless a build holds it (an exclusive lock is refused); 1 when removed. */
static int
isocache_remove_unheld(const char *path)
{
	int	 fd, removed = 0;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return 0;
	if (flock(fd, LOCK_EX | LOCK_NB) == 0)
		removed = unlink(path) == 0;
	close(fd);
	return removed;
}

int
isocache_evict(const char *dir, long long max_bytes, struct err *e)
{
	struct isocache_entry	*v = NULL;
	struct dirent		*de;
	struct stat		 st;
	long long		 total = 0;
	size_t			 n = 0, i;
	DIR			*d;
	int			 removed = 0;

	if (max_bytes <= 0)
		return 0;
	if ((d = opendir(dir)) == NULL) {
		err_set(e, ERR_IO, "%s: %s", dir, strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		/* ISOs, and the base images of derived builds */
		if (!isocache_ends(de->d_name, ".iso") && !isocache_ends(de->d_name, ".img"))
			continue;
		v = xrealloc(v, (n + 1) * sizeof(*v));
		v[n].path = xasprintf("%s/%s", dir, de->d_name);
		if (stat(v[n].path, &st) == -1 || !S_ISREG(st.st_mode)) {
			free(v[n].path);
			continue;
		}
		v[n].size = (long long)st.st_size;
		v[n].used = st.st_mtim;
		total += v[n].size;
		n++;
	}
	closedir(d);
	qsort(v, n, sizeof(*v), isocache_older);
	for (i = 0; i < n && total > max_bytes; i++)
		if (isocache_remove_unheld(v[i].path)) {
			log_info("ISO cache: %s removed (least recently used; %lld bytes over %lld)",
			    v[i].path, total - max_bytes, max_bytes);
			total -= v[i].size;
			removed++;
		}
	if (total > max_bytes)
		log_warnx("ISO cache %s: %lld bytes, over its bound of %lld: the rest is in use",
		    dir, total, max_bytes);
	for (i = 0; i < n; i++)
		free(v[i].path);
	free(v);
	return removed;
}

int
isocache_clean_parts(const char *dir, time_t before, struct err *e)
{
	struct dirent	*de;
	struct stat	 st;
	char		*path;
	DIR		*d;
	int		 removed = 0;

	if ((d = opendir(dir)) == NULL) {
		if (errno == ENOENT)
			return 0;
		err_set(e, ERR_IO, "%s: %s", dir, strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (!isocache_ends(de->d_name, ".part"))
			continue;
		path = xasprintf("%s/%s", dir, de->d_name);
		if (stat(path, &st) == 0 && st.st_mtime < before && unlink(path) == 0) {
			log_info("ISO cache: %s removed (a download cut short)", path);
			removed++;
		}
		free(path);
	}
	closedir(d);
	return removed;
}
