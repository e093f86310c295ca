/* util.c — allocation, buffers, errors, small file helpers. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"

void *
xmalloc(size_t n)
{
	void	*p = malloc(n ? n : 1);

	if (p == NULL)
		fatal("malloc %zu", n);
	return p;
}

void *
xcalloc(size_t n, size_t size)
{
	void	*p = calloc(n ? n : 1, size ? size : 1);

	if (p == NULL)
		fatal("calloc %zu", n * size);
	return p;
}

void *
xrealloc(void *p, size_t n)
{
	void	*q = realloc(p, n ? n : 1);

	if (q == NULL)
		fatal("realloc %zu", n);
	return q;
}

char *
xstrdup(const char *s)
{
	char	*p = strdup(s);

	if (p == NULL)
		fatal("strdup");
	return p;
}

char *
xstrndup(const char *s, size_t n)
{
	char	*p = strndup(s, n);

	if (p == NULL)
		fatal("strndup");
	return p;
}

char *
xvasprintf(const char *fmt, va_list ap)
{
	char	*p;

	if (vasprintf(&p, fmt, ap) < 0)
		fatal("vasprintf");
	return p;
}

char *
xasprintf(const char *fmt, ...)
{
	va_list	 ap;
	char	*p;

	va_start(ap, fmt);
	p = xvasprintf(fmt, ap);
	va_end(ap);
	return p;
}

void
err_clear(struct err *e)
{
	if (e == NULL)
		return;
	e->kind = ERR_NONE;
	e->status = 0;
	e->msg[0] = '\0';
}

void
err_set(struct err *e, enum err_kind kind, const char *fmt, ...)
{
	va_list	 ap;

	if (e == NULL || e->kind != ERR_NONE)
		return;
	e->kind = kind;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
}

const char *
err_kind_name(enum err_kind kind)
{
	static const char *const names[] = {
		[ERR_NONE] = "none", [ERR_INVAL] = "invalid", [ERR_NOTFOUND] = "not found",
		[ERR_IO] = "i/o", [ERR_REMOTE] = "remote", [ERR_NET] = "network",
		[ERR_AUTH] = "auth", [ERR_CONFLICT] = "conflict", [ERR_TIMEOUT] = "timeout",
		[ERR_CANCELLED] = "cancelled", [ERR_INTERNAL] = "internal",
	};

	if ((size_t)kind >= sizeof(names) / sizeof(names[0]))
		return "unknown";
	return names[kind];
}

void
buf_init(struct buf *b)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

void
buf_append(struct buf *b, const void *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t	 cap = b->cap ? b->cap : 256;

		while (cap < b->len + n + 1)
			cap *= 2;
		b->data = xrealloc(b->data, cap);
		b->cap = cap;
	}
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void
buf_puts(struct buf *b, const char *s)
{
	buf_append(b, s, strlen(s));
}

void
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list	 ap;
	char	*s;

	va_start(ap, fmt);
	s = xvasprintf(fmt, ap);
	va_end(ap);
	buf_puts(b, s);
	free(s);
}

char *
buf_release(struct buf *b)
{
	char	*p;

	if (b->data == NULL)
		buf_append(b, "", 0);
	p = b->data;
	buf_init(b);
	return p;
}

void
buf_free(struct buf *b)
{
	free(b->data);
	buf_init(b);
}

char *
util_read_file(const char *path, size_t max, size_t *lenp, struct err *e)
{
	struct buf	 b;
	char		 chunk[65536];
	ssize_t		 n;
	int		 fd;

	buf_init(&b);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		err_set(e, errno == ENOENT ? ERR_NOTFOUND : ERR_IO, "%s: %s",
		    path, strerror(errno));
		return NULL;
	}
	while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
		if (n == -1) {
			if (errno == EINTR)
				continue;
			err_set(e, ERR_IO, "%s: %s", path, strerror(errno));
			goto fail;
		}
		if (b.len + (size_t)n > max) {
			err_set(e, ERR_INVAL, "%s: larger than %zu bytes", path, max);
			goto fail;
		}
		buf_append(&b, chunk, (size_t)n);
	}
	close(fd);
	if (lenp != NULL)
		*lenp = b.len;
	return buf_release(&b);
fail:
	close(fd);
	buf_free(&b);
	return NULL;
}

int
util_write_file(const char *path, const void *data, size_t len, int mode, struct err *e)
{
	char		*tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
	const char	*p = data;
	int		 fd, rc = -1;

	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)) == -1) {
		err_set(e, ERR_IO, "%s: %s", tmp, strerror(errno));
		goto cleanup;
	}
	while (len > 0) {
		ssize_t	 n = write(fd, p, len);

		if (n == -1) {
			if (errno == EINTR)
				continue;
			err_set(e, ERR_IO, "%s: %s", tmp, strerror(errno));
			goto cleanup;
		}
		p += n;
		len -= (size_t)n;
	}
	if (fsync(fd) == -1 || close(fd) == -1) {
		fd = -1;
		err_set(e, ERR_IO, "%s: %s", tmp, strerror(errno));
		goto cleanup;
	}
	fd = -1;
	if (rename(tmp, path) == -1) {
		err_set(e, ERR_IO, "rename %s: %s", path, strerror(errno));
		goto cleanup;
	}
	rc = 0;
cleanup:
	if (fd != -1)
		close(fd);
	if (rc == -1)
		unlink(tmp);
	free(tmp);
	return rc;
}

int
util_mkdirs(const char *path, struct err *e)
{
	char	 tmp[PATH_MAX];
	size_t	 i, len = strlen(path);

	if (len == 0 || len >= sizeof(tmp)) {
		err_set(e, ERR_INVAL, "bad directory path");
		return -1;
	}
	memcpy(tmp, path, len + 1);
	for (i = 1; i <= len; i++) {
		if (tmp[i] != '/' && tmp[i] != '\0')
			continue;
		tmp[i] = '\0';
		if (mkdir(tmp, 0755) == -1 && errno != EEXIST) {
			err_set(e, ERR_IO, "mkdir %s: %s", tmp, strerror(errno));
			return -1;
		}
		tmp[i] = path[i];
	}
	return 0;
}

int
util_wait_fd(int fd, double seconds)
{
	struct pollfd	 p;
	double		 end = util_now() + seconds, left;
	int		 n;

	for (;;) {
		left = end - util_now();
		if (left <= 0 && seconds > 0)
			return 0;
		p.fd = fd;
		p.events = POLLIN;
		p.revents = 0;
		n = poll(&p, fd >= 0 ? 1 : 0, left > 0 ? (int)(left * 1000) + 1 : 0);
		if (n > 0)
			return 1;
		if (n == 0 && seconds <= 0)
			return 0;
		if (n == -1 && errno != EINTR)
			return 0;
	}
}

int
util_mkdir_private(const char *path, struct err *e)
{
	struct stat	 st;
	char		*probe;
	int		 fd;

	if (util_mkdirs(path, e) == -1)
		return -1;
	if (stat(path, &st) == -1 || !S_ISDIR(st.st_mode)) {
		err_set(e, ERR_IO, "%s: not a directory", path);
		return -1;
	}
	if ((st.st_mode & 0077) != 0 && chmod(path, st.st_mode & 0700) == -1) {
		err_set(e, ERR_IO, "chmod %s: %s", path, strerror(errno));
		return -1;
	}
	/* writable by us, also on a read-only mount (where root's mkdir of an existing dir works) */
	probe = xasprintf("%s/.isoforge-probe-%d", path, (int)getpid());
	if ((fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) == -1) {
		err_set(e, ERR_IO, "%s: not writable: %s", path, strerror(errno));
		free(probe);
		return -1;
	}
	close(fd);
	(void)unlink(probe);
	free(probe);
	return 0;
}

static int
rmtree_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		return rmdir(path) == -1 && errno != ENOENT ? -1 : 0;
	return unlink(path) == -1 && errno != ENOENT ? -1 : 0;
}

int
util_rmtree(const char *path, struct err *e)
{
	struct stat	 st;

	if (lstat(path, &st) == -1 && errno == ENOENT)
		return 0;
	if (nftw(path, rmtree_one, 16, FTW_DEPTH | FTW_PHYS) == -1) {
		err_set(e, ERR_IO, "remove %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

void
util_random(void *p, size_t n)
{
	unsigned char	*c = p;

	while (n > 0) {
		ssize_t	 got = getrandom(c, n, 0);

		if (got == -1) {
			if (errno == EINTR)
				continue;
			fatal("getrandom");
		}
		c += got;
		n -= (size_t)got;
	}
}

void
util_uuid(char out[37])
{
	unsigned char	 u[16];

	util_random(u, sizeof(u));
	u[6] = (u[6] & 0x0f) | 0x40;
	u[8] = (u[8] & 0x3f) | 0x80;
	snprintf(out, 37,
	    "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
	    u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9],
	    u[10], u[11], u[12], u[13], u[14], u[15]);
}

int
util_is_uuid(const char *s)
{
	size_t	 i;

	if (s == NULL || strlen(s) != 36)
		return 0;
	for (i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return 0;
		} else if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f') || (s[i] >= 'A' && s[i] <= 'F')))
			return 0;
	}
	return 1;
}

void
util_password(char *out, size_t len)
{
	static const char alphabet[] =
	    "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
	unsigned char	 r;
	size_t		 i;

	for (i = 0; i < len; i++) {
		/* rejection sampling keeps the distribution uniform */
		do
			util_random(&r, 1);
		while (r >= 256 - 256 % (sizeof(alphabet) - 1));
		out[i] = alphabet[r % (sizeof(alphabet) - 1)];
	}
	out[len] = '\0';
}

void
util_hex(const unsigned char *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t	 i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 0xf];
	}
	out[2 * n] = '\0';
}

double
util_now(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void
util_utc_stamp(char out[32])
{
	time_t		 t = time(NULL);
	struct tm	 tm;

	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
