/* http.h — the one place isoforge makes HTTP requests (libcurl): timeouts, TLS, retries,
 * streaming uploads and downloads with constant memory, errors carrying the service's message. */
#ifndef ISOFORGE_HTTP_H
#define ISOFORGE_HTTP_H

#include <stddef.h>

#include "base/util.h"

/* Client-wide settings; zero values mean the defaults noted. */
struct http_opts {
	double		 connect_timeout_s;	/* 10 */
	double		 timeout_s;		/* whole small request (no streamed body): 120 */
	double		 stall_timeout_s;	/* streamed transfers fail when < 1 byte/s this long: 120 */
	const char	*ca_file;		/* PEM bundle to verify servers against; NULL = system's */
	int		 insecure;		/* 1 = do not verify TLS certificates (tests only) */
	int		 retries;		/* extra attempts for idempotent calls: 3; -1 = none */
	double		 backoff_s;		/* first wait between attempts, doubled each time: 0.5 */
	int		 no_expect;		/* 1 = send an empty "Expect:" (servers that never answer
						 * 100-continue, e.g. uwsgi) */
	const char	*user_agent;		/* "isoforge" */
};

/* One request. A body comes from memory (body/body_len) or from upload_fd; a 2xx response body
 * goes to download_fd when it is >= 0, else into the response's body buffer. */
struct http_req {
	const char	 *method;		/* "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD" */
	const char	 *url;
	const char *const *headers;		/* NULL-terminated "Name: value" lines, or NULL */
	const char	 *body;			/* in-memory body; must live until the call returns */
	size_t		  body_len;
	int		  upload_fd;		/* -1 = none; read from its current offset */
	long long	  upload_len;		/* bytes to send from upload_fd; -1 = unknown (chunked) */
	int		  download_fd;		/* -1 = none */
	int		  idempotent;		/* 1 = may be retried after 5xx/429/connection errors */
	/* Sees every body byte sent (upload) or received into download_fd (download). */
	void		(*on_data)(void *arg, const void *p, size_t n);
	/* Called before a retry that restarts a download already partly delivered; returns 0 when
	 * the caller reset its state (and download_fd), -1 to forbid the retry. NULL = forbid. */
	int		(*on_restart)(void *arg);
	/* Progress: bytes done and total (0 when unknown); returns nonzero to cancel. */
	int		(*progress)(void *arg, long long done, long long total);
	void		 *arg;
};

/* What came back. Filled also when http_request fails with a status (non-2xx). */
struct http_resp {
	long		 status;
	struct buf	 body;		/* the body when not streamed; error bodies (bounded) */
	struct buf	 headers;	/* "name: value\n" lines of the final response */
};

struct http_client;

/* A client holds one libcurl handle (connections are kept alive between calls); use it from one
 * thread at a time. Copies opts (strings too). Caller frees with http_client_free. */
struct http_client	*http_client_new(const struct http_opts *);
void			 http_client_free(struct http_client **);
/* From now on every transfer of c stops (ERR_CANCELLED) once fd is readable, within a second,
 * and waits between retries end then too; -1: never. fd is borrowed. */
void			 http_client_set_cancel_fd(struct http_client *, int fd);

/*
 * Performs req, retrying idempotent calls with backoff. Returns 0 on a 2xx answer, -1 otherwise
 * with err filled: kind from the status (401/403 ERR_AUTH, 404 ERR_NOTFOUND, 409 ERR_CONFLICT,
 * other ERR_REMOTE; status set) and the service's own message, or from the transport error
 * (ERR_NET, ERR_TIMEOUT, ERR_CANCELLED, ERR_IO). resp (caller's, http_resp_init'ed) holds the
 * status, headers and body either way; free it with http_resp_free.
 */
int	 http_request(struct http_client *, const struct http_req *, struct http_resp *, struct err *);

void	 http_req_init(struct http_req *);
void	 http_resp_init(struct http_resp *);
void	 http_resp_free(struct http_resp *);
/* The value of header name (case-insensitive) in resp as a new string, or NULL; caller frees. */
char	*http_resp_header(const struct http_resp *, const char *name);

/* The service's message out of an error body: JSON {"message"}, {"error":{"message"}},
 * {"itemNotFound":{"message"}} ..., else the text without tags; caller frees; NULL when none. */
char	*http_error_message(const char *body, size_t len);
/* Percent-encodes s for a URL query or path segment; caller frees. */
char	*http_escape(const char *s);

#endif
