/* media.c — files out of ISOs (libarchive), initrd + cpio newc, answer volumes (argv children). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "drivers/media.h"
#include "base/proc.h"
#include "base/util.h"

#define MEDIA_CHILD_TIMEOUT	120.0

/* 1 when an archive entry's name is path (ignoring "./", a leading '/', ISO 9660's ";1"
 * version and case). */
static int
media_same_path(const char *entry, const char *path)
{
	size_t	 n;

	while (entry[0] == '.' && entry[1] == '/')
		entry += 2;
	while (*entry == '/')
		entry++;
	while (*path == '/')
		path++;
	n = strlen(path);
	if (strncasecmp(entry, path, n) != 0)
		return 0;
	return entry[n] == '\0' || strcmp(entry + n, ";1") == 0 || strcmp(entry + n, ".;1") == 0;
}

/* Opens iso with libarchive and positions it at path; *ap gets the reader (caller frees with
 * archive_read_free), *size the entry's size. */
static int
media_iso_open(const char *iso, const char *path, struct archive **ap, int64_t *size,
    struct err *err)
{
	struct archive		*a;
	struct archive_entry	*ent;
	int			 r;

	a = archive_read_new();
	if (a == NULL) {
		err_set(err, ERR_INTERNAL, "libarchive: out of memory");
		return -1;
	}
	archive_read_support_format_iso9660(a);
	if (archive_read_open_filename(a, iso, 64 * 1024) != ARCHIVE_OK) {
		err_set(err, errno == ENOENT ? ERR_NOTFOUND : ERR_IO, "%s: %s", iso,
		    archive_error_string(a));
		archive_read_free(a);
		return -1;
	}
	while ((r = archive_read_next_header(a, &ent)) == ARCHIVE_OK ||
	    r == ARCHIVE_WARN) {
		if (archive_entry_filetype(ent) == AE_IFREG &&
		    media_same_path(archive_entry_pathname(ent), path)) {
			*size = archive_entry_size(ent);
			*ap = a;
			return 0;
		}
	}
	if (r == ARCHIVE_EOF)
		err_set(err, ERR_NOTFOUND, "%s: no file /%s in the ISO", iso, path);
	else
		err_set(err, ERR_IO, "%s: not a readable ISO 9660 image: %s", iso,
		    archive_error_string(a));
	archive_read_free(a);
	return -1;
}

/* Reads a file of an ISO; see media.h. */
char *
media_iso_read(const char *iso, const char *path, size_t max, size_t *len, struct err *err)
{
	struct archive	*a = NULL;
	int64_t		 size;
	char		*data;
	la_ssize_t	 n;
	size_t		 got = 0;

	if (media_iso_open(iso, path, &a, &size, err) == -1)
		return NULL;
	if (size < 0 || (uint64_t)size > max) {
		err_set(err, ERR_INVAL, "%s: /%s is larger than %zu bytes", iso, path, max);
		archive_read_free(a);
		return NULL;
	}
	data = xmalloc((size_t)size + 1);
	while (got < (size_t)size &&
	    (n = archive_read_data(a, data + got, (size_t)size - got)) > 0)
		got += (size_t)n;
	if (got != (size_t)size) {
		err_set(err, ERR_IO, "%s: reading /%s: %s", iso, path, archive_error_string(a));
		free(data);
		archive_read_free(a);
		return NULL;
	}
	data[got] = '\0';
	if (len != NULL)
		*len = got;
	archive_read_free(a);
	return data;
}

/* Writes all of buf to fd. */
static int
media_write_all(int fd, const void *buf, size_t len, const char *path, struct err *err)
{
	const char	*p = buf;
	ssize_t		 n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			err_set(err, ERR_IO, "%s: %s", path, strerror(errno));
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Opens dest's temporary file (0600); *tmp gets its name (caller frees). */
static int
media_tmp_open(const char *dest, char **tmp, struct err *err)
{
	int	 fd;

	*tmp = xasprintf("%s.tmp.%ld", dest, (long)getpid());
	fd = open(*tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd == -1)
		err_set(err, ERR_IO, "%s: %s", *tmp, strerror(errno));
	return fd;
}

/* fsync + close + rename of a temporary file; on failure it is removed. */
static int
media_tmp_commit(int fd, const char *tmp, const char *dest, int ok, struct err *err)
{
	if (ok && (fsync(fd) == -1 || close(fd) == -1)) {
		err_set(err, ERR_IO, "%s: %s", tmp, strerror(errno));
		unlink(tmp);
		return -1;
	}
	if (!ok) {
		close(fd);
		unlink(tmp);
		return -1;
	}
	if (rename(tmp, dest) == -1) {
		err_set(err, ERR_IO, "rename %s: %s", dest, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

/* Extracts a file of an ISO; see media.h. */
int
media_iso_extract(const char *iso, const char *path, const char *dest, struct err *err)
{
	struct archive	*a = NULL;
	int64_t		 size, got = 0;
	char		*buf = NULL, *tmp = NULL;
	la_ssize_t	 n;
	int		 fd = -1, ok = 0, rc = -1;

	if (media_iso_open(iso, path, &a, &size, err) == -1)
		return -1;
	if ((fd = media_tmp_open(dest, &tmp, err)) == -1)
		goto cleanup;
	buf = xmalloc(1 << 20);
	while ((n = archive_read_data(a, buf, 1 << 20)) > 0) {
		if (media_write_all(fd, buf, (size_t)n, tmp, err) == -1)
			break;
		got += n;
	}
	if (n < 0)
		err_set(err, ERR_IO, "%s: reading /%s: %s", iso, path, archive_error_string(a));
	else if (got != size)
		err_set(err, ERR_IO, "%s: /%s: %lld of %lld bytes", iso, path, (long long)got,
		    (long long)size);
	else
		ok = 1;
	rc = media_tmp_commit(fd, tmp, dest, ok, err);
cleanup:
	free(buf);
	free(tmp);
	archive_read_free(a);
	return rc;
}

/* Appends one newc header field (8 hex digits). */
static void
cpio_hex(struct buf *b, unsigned long v)
{
	buf_printf(b, "%08lX", v & 0xffffffffUL);
}

/* Appends a newc member: header, name, padding, data, padding. */
static void
cpio_member(struct buf *b, unsigned long ino, const char *name, unsigned mode,
    const void *data, size_t len)
{
	static const char	 zeros[4] = { 0, 0, 0, 0 };
	size_t			 namesize = strlen(name) + 1;

	buf_puts(b, "070701");
	cpio_hex(b, ino);
	cpio_hex(b, mode);
	cpio_hex(b, 0);			/* uid */
	cpio_hex(b, 0);			/* gid */
	cpio_hex(b, 1);			/* nlink */
	cpio_hex(b, 0);			/* mtime: reproducible */
	cpio_hex(b, len);
	cpio_hex(b, 0);			/* devmajor */
	cpio_hex(b, 0);			/* devminor */
	cpio_hex(b, 0);			/* rdevmajor */
	cpio_hex(b, 0);			/* rdevminor */
	cpio_hex(b, namesize);
	cpio_hex(b, 0);			/* check */
	buf_append(b, name, namesize);
	buf_append(b, zeros, (4 - b->len % 4) % 4);
	if (len > 0)
		buf_append(b, data, len);
	buf_append(b, zeros, (4 - b->len % 4) % 4);
}

/* The newc archive of files; see media.h. */
void *
media_cpio_newc(const struct media_cpio_file *files, size_t n, size_t *len)
{
	struct buf	 b;
	size_t		 i;

	buf_init(&b);
	for (i = 0; i < n; i++)
		cpio_member(&b, 0x150f0000UL + i, files[i].name + (files[i].name[0] == '/'),
		    0100000U | (files[i].mode & 07777), files[i].data, files[i].len);
	cpio_member(&b, 0, "TRAILER!!!", 0, NULL, 0);
	*len = b.len;
	return buf_release(&b);
}

/* Copies initrd and appends the files; see media.h. */
int
media_initrd_append(const char *initrd, const char *dest, const struct media_cpio_file *files,
    size_t n, struct err *err)
{
	static const char	 zeros[4] = { 0, 0, 0, 0 };
	char			*buf = NULL, *tmp = NULL;
	void			*cpio = NULL;
	size_t			 cpio_len;
	off_t			 total = 0;
	ssize_t			 r;
	int			 in, fd = -1, ok = 0;

	if ((in = open(initrd, O_RDONLY | O_CLOEXEC)) == -1) {
		err_set(err, errno == ENOENT ? ERR_NOTFOUND : ERR_IO, "%s: %s", initrd,
		    strerror(errno));
		return -1;
	}
	if ((fd = media_tmp_open(dest, &tmp, err)) == -1)
		goto cleanup;
	buf = xmalloc(1 << 20);
	for (;;) {
		r = read(in, buf, 1 << 20);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			err_set(err, ERR_IO, "%s: %s", initrd, strerror(errno));
			goto commit;
		}
		if (r == 0)
			break;
		if (media_write_all(fd, buf, (size_t)r, tmp, err) == -1)
			goto commit;
		total += r;
	}
	if (total == 0) {
		err_set(err, ERR_INVAL, "%s: empty initrd", initrd);
		goto commit;
	}
	/* each archive of the concatenation starts on a 4-byte boundary */
	cpio = media_cpio_newc(files, n, &cpio_len);
	if (media_write_all(fd, zeros, (size_t)((4 - total % 4) % 4), tmp, err) == -1 ||
	    media_write_all(fd, cpio, cpio_len, tmp, err) == -1)
		goto commit;
	ok = 1;
commit:
	if (media_tmp_commit(fd, tmp, dest, ok, err) == -1)
		ok = 0;
cleanup:
	close(in);
	if (cpio != NULL)
		explicit_bzero(cpio, cpio_len);	/* the answers hold password hashes */
	free(cpio);
	free(buf);
	free(tmp);
	return ok ? 0 : -1;
}

/* Runs a media-making child. */
static int
media_run(char *const argv[], struct err *err)
{
	return proc_run(argv, MEDIA_CHILD_TIMEOUT, NULL, err);
}

/* An answer ISO; see media.h. */
int
media_make_iso(const char *dir, const char *label, const char *dest, struct err *err)
{
	char	*tmp = xasprintf("%s.tmp.%ld", dest, (long)getpid());
	char	*argv[] = { "xorriso", "-as", "mkisofs", "-quiet", "-r", "-J", "-V",
		    (char *)label, "-o", tmp, (char *)dir, NULL };
	int	 rc = -1;

	(void)unlink(tmp);
	if (media_run(argv, err) == -1)
		goto cleanup;
	if (chmod(tmp, 0600) == -1 || rename(tmp, dest) == -1) {
		err_set(err, ERR_IO, "%s: %s", dest, strerror(errno));
		goto cleanup;
	}
	rc = 0;
cleanup:
	if (rc == -1)
		(void)unlink(tmp);
	free(tmp);
	return rc;
}

/* An answer floppy; see media.h. */
int
media_make_floppy(const char *dir, const char *label, const char *dest, struct err *err)
{
	char		*tmp = xasprintf("%s.tmp.%ld", dest, (long)getpid());
	char		*fmt[] = { "mformat", "-C", "-f", "1440", "-v", (char *)label, "-i", tmp,
			    "::", NULL };
	char		**copy = NULL;
	DIR		*d = NULL;
	struct dirent	*de;
	size_t		 n = 0, cap = 16, i;
	int		 rc = -1;

	(void)unlink(tmp);
	/* mcopy takes the files themselves (no shell to expand DIR/x): one argument each */
	if ((d = opendir(dir)) == NULL) {
		err_set(err, ERR_IO, "%s: %s", dir, strerror(errno));
		goto cleanup;
	}
	copy = xcalloc(cap, sizeof(*copy));
	copy[n++] = xstrdup("mcopy");
	copy[n++] = xstrdup("-s");
	copy[n++] = xstrdup("-i");
	copy[n++] = xstrdup(tmp);
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (n + 3 > cap) {
			copy = xrealloc(copy, cap * 2 * sizeof(*copy));
			memset(copy + cap, 0, cap * sizeof(*copy));
			cap *= 2;
		}
		copy[n++] = xasprintf("%s/%s", dir, de->d_name);
	}
	copy[n++] = xstrdup("::");
	copy[n] = NULL;
	if (media_run(fmt, err) == -1 || media_run(copy, err) == -1)
		goto cleanup;
	if (chmod(tmp, 0600) == -1 || rename(tmp, dest) == -1) {
		err_set(err, ERR_IO, "%s: %s", dest, strerror(errno));
		goto cleanup;
	}
	rc = 0;
cleanup:
	if (rc == -1)
		(void)unlink(tmp);
	if (d != NULL)
		closedir(d);
	for (i = 0; copy != NULL && i < n; i++)
		free(copy[i]);
	free(copy);
	free(tmp);
	return rc;
}
