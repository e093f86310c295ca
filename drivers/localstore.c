/* localstore.c — a directory of qcow2 images with Glance-like JSON records and per-chain versions. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "drivers/hash.h"
#include "drivers/localstore.h"
#include "drivers/qemuimg.h"
#include "base/log.h"

#define LOCALSTORE_CHAIN_MAX	80
#define LOCALSTORE_RECORD_MAX	(1 << 20)

struct localstore {
	char	*dir;
	char	*chains;	/* <dir>/.chains */
	char	*lock;		/* <dir>/.lock */
};

const char *
localstore_dir(const struct localstore *ls)
{
	return ls->dir;
}

int
localstore_open(const char *dir, struct localstore **lsp, struct err *e)
{
	struct localstore	*ls;

	*lsp = NULL;
	if (dir == NULL || *dir == '\0') {
		err_set(e, ERR_INVAL, "local store: no directory");
		return -1;
	}
	ls = xcalloc(1, sizeof(*ls));
	ls->dir = xstrdup(dir);
	ls->chains = xasprintf("%s/.chains", dir);
	ls->lock = xasprintf("%s/.lock", dir);
	if (util_mkdirs(ls->chains, e) == -1) {
		localstore_free(&ls);
		return -1;
	}
	*lsp = ls;
	return 0;
}

void
localstore_free(struct localstore **lsp)
{
	if (lsp == NULL || *lsp == NULL)
		return;
	free((*lsp)->dir);
	free((*lsp)->chains);
	free((*lsp)->lock);
	free(*lsp);
	*lsp = NULL;
}

char *
localstore_escape_chain(const char *chain)
{
	static const char	 hex[] = "0123456789ABCDEF";
	struct buf		 b;
	const unsigned char	*p;

	if (chain == NULL || *chain == '\0' || strlen(chain) > LOCALSTORE_CHAIN_MAX)
		return NULL;
	buf_init(&b);
	for (p = (const unsigned char *)chain; *p != '\0'; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '_' || *p == '-')
			buf_append(&b, p, 1);
		else {
			char	 esc[3] = { '%', hex[*p >> 4], hex[*p & 0xf] };

			buf_append(&b, esc, 3);
		}
	}
	return buf_release(&b);
}

char *
localstore_image_path(const struct localstore *ls, const char *id)
{
	if (!util_is_uuid(id))
		return NULL;
	return xasprintf("%s/%s.qcow2", ls->dir, id);
}

/* Path of an image's record; NULL when id is not a UUID. */
static char *
localstore_record_path(const struct localstore *ls, const char *id)
{
	if (!util_is_uuid(id))
		return NULL;
	return xasprintf("%s/%s.json", ls->dir, id);
}

/* isoforge_version of a record (a string as Glance keeps it, or a number), 0 when none. */
static long
localstore_record_version(json_t *rec)
{
	json_t	*v = json_object_get(json_object_get(rec, "properties"), "isoforge_version");

	if (json_is_integer(v))
		return (long)json_integer_value(v);
	if (json_is_string(v))
		return strtol(json_string_value(v), NULL, 10);
	return 0;
}

static int
localstore_record_in_chain(json_t *rec, const char *chain)
{
	const char	*c;

	if (chain == NULL)
		return 1;
	c = json_string_value(json_object_get(json_object_get(rec, "properties"),
	    "isoforge_chain"));
	return c != NULL && strcmp(c, chain) == 0;
}

static json_t *
localstore_read_record(const char *path, struct err *e)
{
	json_error_t	 je;
	json_t		*rec;
	char		*text;
	size_t		 len;

	if ((text = util_read_file(path, LOCALSTORE_RECORD_MAX, &len, e)) == NULL)
		return NULL;
	rec = json_loadb(text, len, 0, &je);
	free(text);
	if (rec == NULL || !json_is_object(rec)) {
		err_set(e, ERR_IO, "%s: bad record: %s", path, rec ? "not an object" : je.text);
		json_decref(rec);
		return NULL;
	}
	return rec;
}

json_t *
localstore_get(struct localstore *ls, const char *id, struct err *e)
{
	char	*path = localstore_record_path(ls, id);
	json_t	*rec;

	if (path == NULL) {
		err_set(e, ERR_NOTFOUND, "image %s: not found (not an image id)", id ? id : "");
		return NULL;
	}
	if (access(path, F_OK) == -1 && errno == ENOENT) {
		err_set(e, ERR_NOTFOUND, "image %s: not found in %s", id, ls->dir);
		free(path);
		return NULL;
	}
	rec = localstore_read_record(path, e);
	free(path);
	return rec;
}

static int
localstore_cmp(const void *a, const void *b)
{
	json_t		*ra = *(json_t *const *)a, *rb = *(json_t *const *)b;
	long		 va = localstore_record_version(ra), vb = localstore_record_version(rb);
	const char	*ca, *cb;
	int		 c;

	if (va != vb)
		return va < vb ? -1 : 1;
	ca = json_string_value(json_object_get(ra, "created_at"));
	cb = json_string_value(json_object_get(rb, "created_at"));
	if ((c = strcmp(ca ? ca : "", cb ? cb : "")) != 0)
		return c;
	ca = json_string_value(json_object_get(ra, "id"));
	cb = json_string_value(json_object_get(rb, "id"));
	return strcmp(ca ? ca : "", cb ? cb : "");
}

json_t *
localstore_list(struct localstore *ls, const char *chain, struct err *e)
{
	DIR		*dp;
	struct dirent	*de;
	json_t		**recs = NULL, *out = NULL;
	size_t		 n = 0, cap = 0, i;

	if ((dp = opendir(ls->dir)) == NULL) {
		err_set(e, ERR_IO, "%s: %s", ls->dir, strerror(errno));
		return NULL;
	}
	while ((de = readdir(dp)) != NULL) {
		char		 id[37], *path;
		json_t		*rec;
		struct err	 re;
		size_t		 len = strlen(de->d_name);

		if (len != 36 + 5 || strcmp(de->d_name + 36, ".json") != 0)
			continue;
		memcpy(id, de->d_name, 36);
		id[36] = '\0';
		if ((path = localstore_record_path(ls, id)) == NULL)
			continue;
		err_clear(&re);
		rec = localstore_read_record(path, &re);
		free(path);
		/* a record deleted meanwhile, or unreadable: not a registered image */
		if (rec == NULL) {
			if (re.kind != ERR_NOTFOUND)
				log_warnx("local store: %s", re.msg);
			continue;
		}
		if (!localstore_record_in_chain(rec, chain)) {
			json_decref(rec);
			continue;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			recs = xrealloc(recs, cap * sizeof(*recs));
		}
		recs[n++] = rec;
	}
	closedir(dp);
	if (n > 0)
		qsort(recs, n, sizeof(*recs), localstore_cmp);
	out = json_array();
	for (i = 0; i < n; i++)
		json_array_append_new(out, recs[i]);
	free(recs);
	return out;
}

/* The highest version registered in chain (0 when none). */
static long
localstore_max_version(struct localstore *ls, const char *chain, struct err *e)
{
	json_t	*all = localstore_list(ls, chain, e);
	long	 max = 0;
	size_t	 i;

	if (all == NULL)
		return -1;
	for (i = 0; i < json_array_size(all); i++) {
		long	 v = localstore_record_version(json_array_get(all, i));

		if (v > max)
			max = v;
	}
	json_decref(all);
	return max;
}

/* Takes the store's lock (flock on .lock); *fdp is closed to release it. */
static int
localstore_lock(struct localstore *ls, int *fdp, struct err *e)
{
	int	 fd;

	if ((fd = open(ls->lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) == -1) {
		err_set(e, ERR_IO, "%s: %s", ls->lock, strerror(errno));
		return -1;
	}
	while (flock(fd, LOCK_EX) == -1) {
		if (errno != EINTR) {
			err_set(e, ERR_IO, "lock %s: %s", ls->lock, strerror(errno));
			close(fd);
			return -1;
		}
	}
	*fdp = fd;
	return 0;
}

int
localstore_next_version(struct localstore *ls, const char *chain, int *version, struct err *e)
{
	char	*esc = localstore_escape_chain(chain), *path = NULL, *text = NULL, buf[32];
	long	 last = 0, max;
	int	 fd = -1, rc = -1, n;
	struct err e2;

	*version = 0;
	if (esc == NULL) {
		err_set(e, ERR_INVAL, "chain: must be 1 to %d bytes", LOCALSTORE_CHAIN_MAX);
		goto cleanup;
	}
	path = xasprintf("%s/%s", ls->chains, esc);
	if (localstore_lock(ls, &fd, e) == -1)
		goto cleanup;
	err_clear(&e2);
	if ((text = util_read_file(path, 64, NULL, &e2)) != NULL) {
		char	*end;

		last = strtol(text, &end, 10);
		if (end == text || last < 0) {
			err_set(e, ERR_IO, "%s: not a version counter", path);
			goto cleanup;
		}
	} else if (e2.kind != ERR_NOTFOUND) {
		err_set(e, e2.kind, "%s", e2.msg);
		goto cleanup;
	}
	/* a lost counter file must not hand out a version that is already registered */
	if ((max = localstore_max_version(ls, chain, e)) == -1)
		goto cleanup;
	if (max > last)
		last = max;
	if (last >= 1000000000) {
		err_set(e, ERR_INTERNAL, "chain %s: versions exhausted", chain);
		goto cleanup;
	}
	n = snprintf(buf, sizeof(buf), "%ld\n", last + 1);
	if (util_write_file(path, buf, (size_t)n, 0644, e) == -1)
		goto cleanup;
	*version = (int)(last + 1);
	rc = 0;
cleanup:
	if (fd != -1)
		close(fd);	/* releases the lock */
	free(text);
	free(path);
	free(esc);
	return rc;
}

/* Copies src to dst (created, must not exist) and fsyncs it. */
static int
localstore_copy(const char *src, const char *dst, struct err *e)
{
	char	*chunk = xmalloc(1 << 20);
	ssize_t	 n, w;
	int	 in = -1, out = -1, rc = -1;

	if ((in = open(src, O_RDONLY | O_CLOEXEC)) == -1) {
		err_set(e, ERR_IO, "%s: %s", src, strerror(errno));
		goto cleanup;
	}
	if ((out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) == -1) {
		err_set(e, ERR_IO, "%s: %s", dst, strerror(errno));
		goto cleanup;
	}
	while ((n = read(in, chunk, 1 << 20)) != 0) {
		char	*p = chunk;

		if (n == -1) {
			if (errno == EINTR)
				continue;
			err_set(e, ERR_IO, "%s: %s", src, strerror(errno));
			goto cleanup;
		}
		while (n > 0) {
			if ((w = write(out, p, (size_t)n)) == -1) {
				if (errno == EINTR)
					continue;
				err_set(e, ERR_IO, "%s: %s", dst, strerror(errno));
				goto cleanup;
			}
			p += w;
			n -= w;
		}
	}
	if (fsync(out) == -1) {
		err_set(e, ERR_IO, "fsync %s: %s", dst, strerror(errno));
		goto cleanup;
	}
	rc = 0;
cleanup:
	if (in != -1)
		close(in);
	if (out != -1 && close(out) == -1 && rc == 0) {
		err_set(e, ERR_IO, "%s: %s", dst, strerror(errno));
		rc = -1;
	}
	if (rc == -1 && out != -1)
		unlink(dst);
	free(chunk);
	return rc;
}

static void
localstore_sync_dir(const char *dir)
{
	int	 fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd != -1) {
		(void)fsync(fd);
		close(fd);
	}
}

struct localstore_sync {
	int	 fd;
	int	 err;	/* errno of fdatasync, 0 */
};

static void *
localstore_sync_thread(void *arg)
{
	struct localstore_sync	*s = arg;

	s->err = fdatasync(s->fd) == -1 ? errno : 0;
	return NULL;
}

/* hash_file(path), and when sync is 1 its fdatasync on a second thread at the same time. */
static int
localstore_hash_synced(const char *path, int sync, char sha512[129], char md5[33],
    struct err *e)
{
	struct localstore_sync	 s = { -1, 0 };
	pthread_t		 t;
	int			 started = 0, rc;

	if (sync && (s.fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		err_set(e, ERR_IO, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (sync && pthread_create(&t, NULL, localstore_sync_thread, &s) == 0)
		started = 1;
	else if (sync)
		localstore_sync_thread(&s);
	rc = hash_file(path, sha512, md5, e);
	if (started)
		pthread_join(t, NULL);
	if (s.fd != -1)
		close(s.fd);
	if (rc == 0 && s.err != 0) {
		err_set(e, ERR_IO, "fdatasync %s: %s", path, strerror(s.err));
		rc = -1;
	}
	return rc;
}

/* The record of a new image: meta's fields, then what the store knows. New reference. */
static json_t *
localstore_record(json_t *meta, const char *id, long long size, long long vsize,
    const char *sha512, const char *md5)
{
	json_t		*rec = json_deep_copy(meta), *props, *v;
	char		 now[32];
	const char	*lift[] = { "min_disk", "min_ram" };
	size_t		 i;

	util_utc_stamp(now);
	props = json_object_get(rec, "properties");
	if (!json_is_object(props)) {
		props = json_object();
		json_object_set_new(rec, "properties", props);
	}
	for (i = 0; i < sizeof(lift) / sizeof(lift[0]); i++) {
		if ((v = json_object_get(props, lift[i])) != NULL) {
			if (json_is_string(v))
				json_object_set_new(rec, lift[i],
				    json_integer(strtoll(json_string_value(v), NULL, 10)));
			else
				json_object_set(rec, lift[i], v);
			json_object_del(props, lift[i]);
		}
		if (!json_is_integer(json_object_get(rec, lift[i])))
			json_object_set_new(rec, lift[i], json_integer(0));
	}
	if (!json_is_string(json_object_get(rec, "visibility")))
		json_object_set_new(rec, "visibility", json_string("private"));
	if (!json_is_array(json_object_get(rec, "tags")))
		json_object_set_new(rec, "tags", json_array());
	json_object_set_new(rec, "id", json_string(id));
	json_object_set_new(rec, "status", json_string("active"));
	json_object_set_new(rec, "disk_format", json_string("qcow2"));
	json_object_set_new(rec, "container_format", json_string("bare"));
	json_object_set_new(rec, "size", json_integer(size));
	json_object_set_new(rec, "virtual_size", json_integer(vsize));
	json_object_set_new(rec, "checksum", json_string(md5));
	json_object_set_new(rec, "os_hash_algo", json_string("sha512"));
	json_object_set_new(rec, "os_hash_value", json_string(sha512));
	json_object_set_new(rec, "created_at", json_string(now));
	json_object_set_new(rec, "updated_at", json_string(now));
	json_object_set_new(rec, "protected", json_false());
	json_object_set_new(rec, "file", json_sprintf("%s.qcow2", id));
	return rec;
}

int
localstore_add(struct localstore *ls, const char *image_file, json_t *meta, char **idp,
    struct err *e)
{
	json_t		*info = NULL, *rec = NULL, *mid;
	char		 id[37], sha512[129], md5[33], *img = NULL, *recpath = NULL;
	char		*tmp = NULL, *text = NULL;
	struct stat	 st;
	const char	*fmt, *chain;
	long		 version;
	int		 rc = -1, placed = 0, copied = 0, lockfd = -1;

	if (idp != NULL)
		*idp = NULL;
	if (!json_is_object(meta) || !json_is_string(json_object_get(meta, "name")) ||
	    json_string_length(json_object_get(meta, "name")) == 0) {
		err_set(e, ERR_INVAL, "image record: name: missing");
		goto cleanup;
	}
	if ((mid = json_object_get(meta, "id")) != NULL) {
		if (!util_is_uuid(json_string_value(mid))) {
			err_set(e, ERR_INVAL, "image record: id: not a UUID");
			goto cleanup;
		}
		snprintf(id, sizeof(id), "%s", json_string_value(mid));
	} else
		util_uuid(id);
	img = localstore_image_path(ls, id);
	recpath = localstore_record_path(ls, id);
	if (lstat(img, &st) == 0 || lstat(recpath, &st) == 0) {
		err_set(e, ERR_CONFLICT, "image %s: already in %s", id, ls->dir);
		goto cleanup;
	}

	if (lstat(image_file, &st) == -1) {
		err_set(e, errno == ENOENT ? ERR_NOTFOUND : ERR_IO, "%s: %s", image_file,
		    strerror(errno));
		goto cleanup;
	}
	if (!S_ISREG(st.st_mode)) {
		err_set(e, ERR_INVAL, "%s: not a regular file", image_file);
		goto cleanup;
	}
	/* only what Glance would take as disk_format=qcow2: a standalone qcow2 */
	if (qemuimg_info(image_file, &info, e) == -1)
		goto cleanup;
	fmt = json_string_value(json_object_get(info, "format"));
	if (fmt == NULL || strcmp(fmt, "qcow2") != 0) {
		err_set(e, ERR_INVAL, "%s: a %s image, not qcow2", image_file, fmt ? fmt : "unknown");
		goto cleanup;
	}
	if (json_object_get(info, "backing-filename") != NULL) {
		err_set(e, ERR_INVAL, "%s: has a backing file; a standalone image is needed",
		    image_file);
		goto cleanup;
	}

	/* never over an image of the same id that appeared meanwhile */
	if (renameat2(AT_FDCWD, image_file, AT_FDCWD, img, RENAME_NOREPLACE) == 0 ||
	    (errno == EINVAL && rename(image_file, img) == 0))
		placed = 1;
	else if (errno == EEXIST) {
		err_set(e, ERR_CONFLICT, "image %s: already in %s", id, ls->dir);
		goto cleanup;
	} else if (errno == EXDEV) {
		tmp = xasprintf("%s/.%s.qcow2.part", ls->dir, id);
		if (localstore_copy(image_file, tmp, e) == -1)
			goto cleanup;
		if (rename(tmp, img) == -1) {
			err_set(e, ERR_IO, "rename %s: %s", img, strerror(errno));
			unlink(tmp);
			goto cleanup;
		}
		placed = copied = 1;
	} else {
		err_set(e, errno == ENOENT ? ERR_NOTFOUND : ERR_IO, "move %s to %s: %s",
		    image_file, ls->dir, strerror(errno));
		goto cleanup;
	}
	/* a built image holds a system: its owner's alone */
	if (chmod(img, 0600) == -1) {
		err_set(e, ERR_IO, "chmod %s: %s", img, strerror(errno));
		goto cleanup;
	}
	/* the digests of what is stored, read back from the store, while its data is written
	 * back (a moved work file was not synced: the store is where it must survive a crash) */
	if (localstore_hash_synced(img, !copied, sha512, md5, e) == -1)
		goto cleanup;
	localstore_sync_dir(ls->dir);
	if (stat(img, &st) == -1) {
		err_set(e, ERR_IO, "%s: %s", img, strerror(errno));
		goto cleanup;
	}
	rec = localstore_record(meta, id, (long long)st.st_size,
	    (long long)json_integer_value(json_object_get(info, "virtual-size")), sha512, md5);
	text = json_dumps(rec, JSON_INDENT(2) | JSON_SORT_KEYS);
	if (text == NULL)
		fatalx("json_dumps");
	/* a chain's version is registered once: check and write under the lock */
	if (localstore_lock(ls, &lockfd, e) == -1)
		goto cleanup;
	if ((chain = json_string_value(json_object_get(json_object_get(rec, "properties"),
	    "isoforge_chain"))) != NULL && (version = localstore_record_version(rec)) > 0) {
		json_t	*same = localstore_list(ls, chain, e);
		size_t	 i;
		int	 taken = 0;

		if (same == NULL)
			goto cleanup;
		for (i = 0; i < json_array_size(same); i++)
			if (localstore_record_version(json_array_get(same, i)) == version)
				taken = 1;
		json_decref(same);
		if (taken) {
			err_set(e, ERR_CONFLICT, "chain %s: version %ld is already registered",
			    chain, version);
			goto cleanup;
		}
	}
	if (util_write_file(recpath, text, strlen(text), 0600, e) == -1)
		goto cleanup;
	localstore_sync_dir(ls->dir);
	if (copied)
		(void)unlink(image_file);
	if (idp != NULL)
		*idp = xstrdup(id);
	rc = 0;
cleanup:
	if (lockfd != -1)
		close(lockfd);
	if (rc == -1 && placed) {
		/* give the caller its file back; a copy just goes */
		if (copied || rename(img, image_file) == -1)
			(void)unlink(img);
	}
	json_decref(info);
	json_decref(rec);
	free(text);
	free(tmp);
	free(img);
	free(recpath);
	return rc;
}

int
localstore_delete(struct localstore *ls, const char *id, struct err *e)
{
	char	*recpath = localstore_record_path(ls, id), *img = localstore_image_path(ls, id);
	int	 rc = -1;

	if (recpath == NULL) {
		err_set(e, ERR_NOTFOUND, "image %s: not found (not an image id)", id ? id : "");
		goto cleanup;
	}
	/* the record first: from then on the image is not registered */
	if (unlink(recpath) == -1) {
		err_set(e, errno == ENOENT ? ERR_NOTFOUND : ERR_IO, "image %s: %s", id,
		    errno == ENOENT ? "not found" : strerror(errno));
		goto cleanup;
	}
	if (unlink(img) == -1 && errno != ENOENT) {
		err_set(e, ERR_IO, "%s: %s", img, strerror(errno));
		goto cleanup;
	}
	localstore_sync_dir(ls->dir);
	rc = 0;
cleanup:
	free(recpath);
	free(img);
	return rc;
}
