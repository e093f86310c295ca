/* util.h — allocation that aborts on failure, growable buffers, errors filled once. */
#ifndef ISOFORGE_UTIL_H
#define ISOFORGE_UTIL_H

#include <stdarg.h>
#include <stddef.h>

/* Allocation failure is not an error the program handles: these abort. */
void	*xmalloc(size_t);
void	*xcalloc(size_t, size_t);
void	*xrealloc(void *, size_t);
char	*xstrdup(const char *);
char	*xstrndup(const char *, size_t);
/* Returns a newly allocated formatted string; caller frees. */
char	*xasprintf(const char *, ...) __attribute__((format(printf, 1, 2)));
char	*xvasprintf(const char *, va_list);

/* Error kinds: what a caller may want to act on. */
enum err_kind {
	ERR_NONE = 0,
	ERR_INVAL,		/* bad input: request, config, profile, argument */
	ERR_NOTFOUND,		/* a file, image, flavor, domain that is not there */
	ERR_IO,			/* local I/O, child process */
	ERR_REMOTE,		/* a service answered with an error (see status) */
	ERR_NET,		/* could not talk to a service */
	ERR_AUTH,		/* 401/403 or a token that does not validate */
	ERR_CONFLICT,		/* 409, or a state that forbids the call */
	ERR_TIMEOUT,
	ERR_CANCELLED,
	ERR_INTERNAL
};

/*
 * An error, filled once where the failure happens (err_set); callers add context
 * when they log it, they never overwrite it.
 */
struct err {
	enum err_kind	 kind;
	int		 status;	/* HTTP status when kind is ERR_REMOTE/ERR_AUTH, else 0 */
	char		 msg[1024];
};

void	err_clear(struct err *);
/* Fills e (which may be NULL) unless it already holds an error. */
void	err_set(struct err *, enum err_kind, const char *, ...)
	    __attribute__((format(printf, 3, 4)));
const char *err_kind_name(enum err_kind);

/* A growable byte buffer, always NUL-terminated. */
struct buf {
	char	*data;
	size_t	 len;
	size_t	 cap;
};

void	buf_init(struct buf *);
void	buf_append(struct buf *, const void *, size_t);
void	buf_puts(struct buf *, const char *);
void	buf_printf(struct buf *, const char *, ...) __attribute__((format(printf, 2, 3)));
/* Hands the data to the caller (who frees it) and leaves the buffer empty. */
char	*buf_release(struct buf *);
void	buf_free(struct buf *);

/* Reads a whole file (at most max bytes) into a NUL-terminated string; caller frees. */
char	*util_read_file(const char *path, size_t max, size_t *lenp, struct err *);
/* Writes data to path atomically (temp file, fsync, rename). */
int	 util_write_file(const char *path, const void *, size_t, int mode, struct err *);
/* Creates dir and its parents (mode 0755 where new). */
int	 util_mkdirs(const char *path, struct err *);
/* Creates dir (parents 0755) as the process's own (0700, group and others' bits taken away
 * when it exists) and checks it is writable. */
int	 util_mkdir_private(const char *path, struct err *);
/* Removes path and everything below it; a missing path is not an error. */
int	 util_rmtree(const char *path, struct err *);

/* Fills buf with n cryptographically random bytes. */
void	 util_random(void *, size_t);
/* A new random (v4) UUID, 36 characters + NUL. */
void	 util_uuid(char out[37]);
/* 1 when s is a UUID in its canonical textual form. */
int	 util_is_uuid(const char *);
/* A random password of len characters from [A-Za-z0-9]; out holds len + 1. */
void	 util_password(char *out, size_t len);
/* Lower-case hex of n bytes into out (2n + 1). */
void	 util_hex(const unsigned char *, size_t, char *out);
/*
 * Waits up to seconds for fd (an eventfd or pipe that says "stop") to be readable: 1 when it
 * is (at once when it already is), 0 when the time ran out. fd -1 just sleeps. seconds 0:
 * only looks.
 */
int	 util_wait_fd(int fd, double seconds);
/* Monotonic clock in seconds. */
double	 util_now(void);
/* UTC time as ISO 8601 ("2026-11-22T02:51:18Z") into out[32]. */
void	 util_utc_stamp(char out[32]);

#endif
