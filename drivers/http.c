/* http.c — requests through one libcurl easy handle per client; CURLcode is translated only in
 * http_curl_error. */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "drivers/http.h"
#include "base/log.h"

#define HTTP_MAX_BODY		(64u << 20)	/* a JSON answer larger than this is refused */
#define HTTP_MAX_ERROR_BODY	(64u << 10)	/* what is kept of an error body */
#define HTTP_XFER_BUFSIZE	(1L << 20)	/* libcurl's upload/download buffers */

struct http_client {
	CURL		*curl;
	struct http_opts opts;
	char		*ca_file;
	char		*user_agent;
	int		 cancel_fd;	/* readable = stop every transfer; -1 none */
};

/* State of one attempt, shared by the callbacks. */
struct http_xfer {
	const struct http_req	*req;
	int			 cancel_fd;
	struct http_resp	*resp;
	long long		 sent;		/* body bytes read from upload_fd */
	long long		 delivered;	/* body bytes written to download_fd */
	int			 io_errno;	/* a local read/write failure */
	const char		*io_what;
	int			 too_big;
	int			 cancelled;
};

static pthread_once_t	 http_once = PTHREAD_ONCE_INIT;

static void
http_global_init(void)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		fatalx("curl_global_init failed");
}

struct http_client *
http_client_new(const struct http_opts *opts)
{
	struct http_client	*c;

	pthread_once(&http_once, http_global_init);
	c = xcalloc(1, sizeof(*c));
	if (opts != NULL)
		c->opts = *opts;
	if (c->opts.connect_timeout_s <= 0)
		c->opts.connect_timeout_s = 10;
	if (c->opts.timeout_s <= 0)
		c->opts.timeout_s = 120;
	if (c->opts.stall_timeout_s <= 0)
		c->opts.stall_timeout_s = 120;
	if (c->opts.retries == 0)
		c->opts.retries = 3;
	else if (c->opts.retries < 0)
		c->opts.retries = 0;
	if (c->opts.backoff_s <= 0)
		c->opts.backoff_s = 0.5;
	c->ca_file = c->opts.ca_file ? xstrdup(c->opts.ca_file) : NULL;
	c->user_agent = xstrdup(c->opts.user_agent ? c->opts.user_agent : "isoforge");
	c->opts.ca_file = c->ca_file;
	c->opts.user_agent = c->user_agent;
	c->cancel_fd = -1;
	if ((c->curl = curl_easy_init()) == NULL)
		fatalx("curl_easy_init failed");
	return c;
}

void
http_client_free(struct http_client **cp)
{
	struct http_client	*c;

	if (cp == NULL || (c = *cp) == NULL)
		return;
	curl_easy_cleanup(c->curl);
	free(c->ca_file);
	free(c->user_agent);
	free(c);
	*cp = NULL;
}

void
http_req_init(struct http_req *r)
{
	memset(r, 0, sizeof(*r));
	r->method = "GET";
	r->upload_fd = -1;
	r->upload_len = -1;
	r->download_fd = -1;
}

void
http_resp_init(struct http_resp *r)
{
	r->status = 0;
	buf_init(&r->body);
	buf_init(&r->headers);
}

void
http_resp_free(struct http_resp *r)
{
	if (r == NULL)
		return;
	buf_free(&r->body);
	buf_free(&r->headers);
	r->status = 0;
}

char *
http_resp_header(const struct http_resp *r, const char *name)
{
	const char	*p = r->headers.data, *eol, *v;
	size_t		 n = strlen(name);

	if (p == NULL)
		return NULL;
	for (; *p != '\0'; p = eol + 1) {
		if ((eol = strchr(p, '\n')) == NULL)
			break;
		if ((size_t)(eol - p) > n && p[n] == ':' && strncasecmp(p, name, n) == 0) {
			for (v = p + n + 1; v < eol && (*v == ' ' || *v == '\t'); v++)
				;
			return xstrndup(v, (size_t)(eol - v));
		}
	}
	return NULL;
}

char *
http_escape(const char *s)
{
	struct buf	 b;
	const unsigned char *p;

	buf_init(&b);
	buf_puts(&b, "");
	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if (isalnum(*p) || *p == '-' || *p == '_' || *p == '.' || *p == '~')
			buf_append(&b, p, 1);
		else
			buf_printf(&b, "%%%02X", *p);
	}
	return buf_release(&b);
}

/* Text without HTML tags, whitespace runs collapsed and trimmed; caller frees. */
static char *
http_plain_text(const char *s, size_t len)
{
	struct buf	 b;
	size_t		 i;
	int		 intag = 0, space = 0;

	buf_init(&b);
	buf_puts(&b, "");
	for (i = 0; i < len && s[i] != '\0'; i++) {
		if (s[i] == '<') {
			intag = 1;
			space = 1;
			continue;
		}
		if (intag) {
			if (s[i] == '>')
				intag = 0;
			continue;
		}
		if (isspace((unsigned char)s[i])) {
			space = 1;
			continue;
		}
		if (space && b.len > 0)
			buf_append(&b, " ", 1);
		space = 0;
		buf_append(&b, s + i, 1);
	}
	if (b.len == 0) {
		buf_free(&b);
		return NULL;
	}
	return buf_release(&b);
}

char *
http_error_message(const char *body, size_t len)
{
	json_t		*root, *v, *m;
	const char	*key;
	char		*out = NULL;

	if (body == NULL || len == 0)
		return NULL;
	if ((root = json_loadb(body, len, 0, NULL)) != NULL) {
		/* Glance: {"message"}; Keystone: {"error": {"message"}}; Nova: {"itemNotFound": {...}} */
		if ((m = json_object_get(root, "message")) != NULL && json_is_string(m))
			out = http_plain_text(json_string_value(m), json_string_length(m));
		else if (json_is_object(root)) {
			json_object_foreach(root, key, v) {
				if (json_is_object(v) && (m = json_object_get(v, "message")) != NULL &&
				    json_is_string(m)) {
					out = http_plain_text(json_string_value(m), json_string_length(m));
					break;
				}
			}
		}
		json_decref(root);
		if (out != NULL)
			return out;
	}
	out = http_plain_text(body, len > 512 ? 512 : len);
	return out;
}

static const char *
http_reason(long status)
{
	switch (status) {
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 406: return "Not Acceptable";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 413: return "Request Entity Too Large";
	case 415: return "Unsupported Media Type";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return "";
	}
}

/* Fills err from a non-2xx answer: kind by status, the service's own message. */
static void
http_status_error(const struct http_req *req, const struct http_resp *resp, struct err *err)
{
	enum err_kind	 kind;
	char		*msg;

	switch (resp->status) {
	case 401:
	case 403:
		kind = ERR_AUTH;
		break;
	case 404:
		kind = ERR_NOTFOUND;
		break;
	case 409:
		kind = ERR_CONFLICT;
		break;
	default:
		kind = ERR_REMOTE;
		break;
	}
	msg = http_error_message(resp->body.data, resp->body.len);
	err_set(err, kind, "%s %s: %ld %s%s%s", req->method, req->url, resp->status,
	    http_reason(resp->status), msg ? ": " : "", msg ? msg : "");
	if (err != NULL && err->status == 0)
		err->status = (int)resp->status;
	free(msg);
}

/* The one translation of CURLcode into an error. */
static void
http_curl_error(const struct http_req *req, CURLcode rc, const char *errbuf,
    const struct http_xfer *x, struct err *err)
{
	const char	*detail = errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc);
	enum err_kind	 kind;

	if (x->io_errno != 0) {
		err_set(err, ERR_IO, "%s %s: %s: %s", req->method, req->url, x->io_what,
		    strerror(x->io_errno));
		return;
	}
	if (x->too_big) {
		err_set(err, ERR_REMOTE, "%s %s: answer larger than %u bytes", req->method,
		    req->url, HTTP_MAX_BODY);
		return;
	}
	switch (rc) {
	case CURLE_ABORTED_BY_CALLBACK:
		kind = ERR_CANCELLED;
		detail = "cancelled";
		break;
	case CURLE_OPERATION_TIMEDOUT:
		kind = ERR_TIMEOUT;
		break;
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
		kind = ERR_INVAL;
		break;
	case CURLE_READ_ERROR:
	case CURLE_WRITE_ERROR:
		kind = ERR_IO;
		break;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CACERT_BADFILE:
		kind = ERR_NET;
		err_set(err, kind, "%s %s: TLS: %s", req->method, req->url, detail);
		return;
	default:
		kind = ERR_NET;
		break;
	}
	err_set(err, kind, "%s %s: %s", req->method, req->url, detail);
}

static size_t
http_header_cb(char *p, size_t size, size_t n, void *arg)
{
	struct http_xfer	*x = arg;
	size_t			 len = size * n, l = len;
	long			 status;

	while (l > 0 && (p[l - 1] == '\r' || p[l - 1] == '\n'))
		l--;
	if (l >= 5 && strncmp(p, "HTTP/", 5) == 0) {
		/* A new response (after 100 Continue, or a retry): start over. */
		x->resp->headers.len = 0;
		if (x->resp->headers.data != NULL)
			x->resp->headers.data[0] = '\0';
		if (sscanf(p, "HTTP/%*s %ld", &status) == 1)
			x->resp->status = status;
	} else if (l > 0) {
		buf_append(&x->resp->headers, p, l);
		buf_append(&x->resp->headers, "\n", 1);
	}
	return len;
}

static size_t
http_write_cb(char *p, size_t size, size_t n, void *arg)
{
	struct http_xfer	*x = arg;
	const struct http_req	*req = x->req;
	size_t			 len = size * n, off = 0;
	ssize_t			 w;
	int			 ok = x->resp->status >= 200 && x->resp->status < 300;

	if (ok && req->download_fd >= 0) {
		while (off < len) {
			w = write(req->download_fd, p + off, len - off);
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				x->io_errno = errno;
				x->io_what = "write";
				return 0;
			}
			off += (size_t)w;
		}
		x->delivered += (long long)len;
		if (req->on_data != NULL)
			req->on_data(req->arg, p, len);
		return len;
	}
	if (!ok) {
		if (x->resp->body.len < HTTP_MAX_ERROR_BODY)
			buf_append(&x->resp->body, p, len);
		return len;
	}
	if (x->resp->body.len + len > HTTP_MAX_BODY) {
		x->too_big = 1;
		return 0;
	}
	buf_append(&x->resp->body, p, len);
	return len;
}

static size_t
http_read_cb(char *p, size_t size, size_t n, void *arg)
{
	struct http_xfer	*x = arg;
	const struct http_req	*req = x->req;
	size_t			 want = size * n;
	ssize_t			 r;

	if (req->upload_len >= 0 && (long long)want > req->upload_len - x->sent)
		want = (size_t)(req->upload_len - x->sent);
	if (want == 0)
		return 0;
	do
		r = read(req->upload_fd, p, want);
	while (r < 0 && errno == EINTR);
	if (r < 0) {
		x->io_errno = errno;
		x->io_what = "read";
		return CURL_READFUNC_ABORT;
	}
	if (r == 0 && req->upload_len >= 0) {
		x->io_errno = EIO;
		x->io_what = "upload source ended early";
		return CURL_READFUNC_ABORT;
	}
	x->sent += r;
	if (req->on_data != NULL && r > 0)
		req->on_data(req->arg, p, (size_t)r);
	return (size_t)r;
}

static int
http_progress_cb(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
    curl_off_t ulnow)
{
	struct http_xfer	*x = arg;
	const struct http_req	*req = x->req;
	int			 up = req->upload_fd >= 0;

	/* libcurl calls this at least once a second, also while connecting or stalled */
	if (x->cancel_fd >= 0 && util_wait_fd(x->cancel_fd, 0)) {
		x->cancelled = 1;
		return 1;
	}
	if (req->progress == NULL)
		return 0;
	if (req->progress(req->arg, up ? (long long)ulnow : (long long)dlnow,
	    up ? (long long)ultotal : (long long)dltotal) != 0) {
		x->cancelled = 1;
		return 1;
	}
	return 0;
}

static int
http_has_header(const char *const *h, const char *name)
{
	size_t	 n = strlen(name);

	for (; h != NULL && *h != NULL; h++)
		if (strncasecmp(*h, name, n) == 0 && (*h)[n] == ':')
			return 1;
	return 0;
}

/* Sets up the handle for one attempt of req; returns the header list the caller frees. */
static struct curl_slist *
http_setup(struct http_client *c, const struct http_req *req, struct http_xfer *x, char *errbuf)
{
	CURL			*h = c->curl;
	struct curl_slist	*hl = NULL;
	const char *const	*hp;
	int			 streamed = req->upload_fd >= 0 || req->download_fd >= 0;

	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, req->url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_USERAGENT, c->opts.user_agent);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)(c->opts.connect_timeout_s * 1000));
	if (streamed) {
		curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
		curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)c->opts.stall_timeout_s);
	} else
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(c->opts.timeout_s * 1000));
	if (c->opts.ca_file != NULL)
		curl_easy_setopt(h, CURLOPT_CAINFO, c->opts.ca_file);
	if (c->opts.insecure) {
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, http_header_cb);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, http_write_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(h, CURLOPT_BUFFERSIZE, HTTP_XFER_BUFSIZE);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, http_progress_cb);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, x);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, req->progress != NULL || x->cancel_fd >= 0 ?
	    0L : 1L);

	if (req->upload_fd >= 0) {
		curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(h, CURLOPT_READFUNCTION, http_read_cb);
		curl_easy_setopt(h, CURLOPT_READDATA, x);
		curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE, HTTP_XFER_BUFSIZE);
		curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)req->upload_len);
		if (strcmp(req->method, "PUT") != 0)
			curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
		if (req->upload_len < 0)
			hl = curl_slist_append(hl, "Transfer-Encoding: chunked");
		if (c->opts.no_expect)
			hl = curl_slist_append(hl, "Expect:");
		if (!http_has_header(req->headers, "Content-Type"))
			hl = curl_slist_append(hl, "Content-Type: application/octet-stream");
	} else if (req->body != NULL || strcmp(req->method, "POST") == 0 ||
	    strcmp(req->method, "PUT") == 0 || strcmp(req->method, "PATCH") == 0) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body != NULL ? req->body : "");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)(req->body != NULL ? req->body_len : 0));
		if (strcmp(req->method, "POST") != 0)
			curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
		hl = curl_slist_append(hl, "Expect:");
		if (!http_has_header(req->headers, "Content-Type"))
			hl = curl_slist_append(hl, "Content-Type: application/json");
	} else if (strcmp(req->method, "HEAD") == 0)
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	else if (strcmp(req->method, "GET") != 0)
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);

	if (!http_has_header(req->headers, "Accept"))
		hl = curl_slist_append(hl, "Accept: application/json");
	for (hp = req->headers; hp != NULL && *hp != NULL; hp++)
		hl = curl_slist_append(hl, *hp);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
	return hl;
}

/* 1 when the outcome of an attempt is worth another one (for idempotent calls). */
static int
http_transient(CURLcode rc, long status)
{
	switch (rc) {
	case CURLE_OK:
		return status >= 500 || status == 429;
	case CURLE_COULDNT_CONNECT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return 1;
	default:
		return 0;
	}
}

/* Seconds to wait before attempt n (1-based retry), honouring Retry-After (capped at 30 s). */
static double
http_backoff(const struct http_client *c, const struct http_resp *resp, int n)
{
	double	 d = c->opts.backoff_s * (double)(1 << (n - 1 < 10 ? n - 1 : 10));
	char	*ra = http_resp_header(resp, "Retry-After");
	char	*end;
	long	 s;

	if (ra != NULL) {
		s = strtol(ra, &end, 10);
		if (end != ra && *end == '\0' && s >= 0)
			d = s > 30 ? 30 : (double)s;
		free(ra);
	}
	return d;
}

void
http_client_set_cancel_fd(struct http_client *c, int fd)
{
	c->cancel_fd = fd;
}

int
http_request(struct http_client *c, const struct http_req *req, struct http_resp *resp,
    struct err *err)
{
	struct http_xfer	 x;
	struct curl_slist	*hl;
	char			 errbuf[CURL_ERROR_SIZE];
	off_t			 start = -1;
	CURLcode		 rc;
	int			 attempt, again;

	if (req->upload_fd >= 0)
		start = lseek(req->upload_fd, 0, SEEK_CUR);
	for (attempt = 0;; attempt++) {
		memset(&x, 0, sizeof(x));
		x.req = req;
		x.cancel_fd = c->cancel_fd;
		x.resp = resp;
		resp->status = 0;
		resp->body.len = 0;
		resp->headers.len = 0;
		if (resp->headers.data != NULL)
			resp->headers.data[0] = '\0';
		errbuf[0] = '\0';
		hl = http_setup(c, req, &x, errbuf);
		rc = curl_easy_perform(c->curl);
		curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, NULL);
		curl_slist_free_all(hl);
		if (resp->body.data != NULL)
			resp->body.data[resp->body.len] = '\0';
		if (rc == CURLE_OK && resp->status >= 200 && resp->status < 300)
			return 0;

		/* Another attempt? Connection refused means nothing was sent: always safe. */
		again = attempt < c->opts.retries && x.io_errno == 0 && !x.cancelled &&
		    http_transient(rc, rc == CURLE_OK ? resp->status : 0) &&
		    (req->idempotent || rc == CURLE_COULDNT_CONNECT);
		if (again && req->upload_fd >= 0 && (start < 0 ||
		    lseek(req->upload_fd, start, SEEK_SET) != start))
			again = 0;
		if (again && (x.delivered > 0 || (req->upload_fd >= 0 && req->on_data != NULL &&
		    x.sent > 0)) && (req->on_restart == NULL || req->on_restart(req->arg) != 0))
			again = 0;
		if (!again)
			break;
		log_debug("%s %s: %s, retrying", req->method, req->url,
		    rc != CURLE_OK ? curl_easy_strerror(rc) : http_reason(resp->status));
		if (util_wait_fd(c->cancel_fd, http_backoff(c, resp, attempt + 1))) {
			err_set(err, ERR_CANCELLED, "%s %s: cancelled", req->method, req->url);
			return -1;
		}
	}
	if (rc != CURLE_OK)
		http_curl_error(req, rc, errbuf, &x, err);
	else
		http_status_error(req, resp, err);
	return -1;
}
