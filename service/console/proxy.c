/*
 * proxy.c — isoforge-novncproxy: noVNC's files, and a websocket relay that authenticates to
 * the build's VNC server itself (RFB 3.8, VNC Authentication with the password both sides
 * derive from the key) and offers the browser RFB 3.8 with security type None.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "service/console/proxy.h"
#include "service/console/token.h"
#include "base/log.h"
#include "base/util.h"

#define WS_GUID		"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_MAX_FRAME	(1u << 20)	/* a browser's frame at most (noVNC's are small) */
#define RELAY_HIGH	(1u << 20)	/* pending output beyond which the other side waits */
#define READ_CHUNK	65536
#define USED_MAX	65536		/* unexpired used tokens remembered at most */
#define RFB_VERSION	"RFB 003.008\n"

enum relay_state {
	R_PENDING,		/* token accepted, 101 not yet sent */
	R_VNC_CONNECT,		/* connecting to the VNC server */
	R_VNC_VERSION,		/* reading its ProtocolVersion */
	R_VNC_SECTYPES,
	R_VNC_CHALLENGE,
	R_VNC_RESULT,
	R_WS_VERSION,		/* the browser's ProtocolVersion */
	R_WS_SECTYPE,		/* the browser's choice of security type */
	R_RELAY
};

struct used_token {
	char	*nonce;
	time_t	 expiry;
};

struct relay {
	struct console_proxy	*p;
	struct relay		*next;
	unsigned long		 id;		/* the request's context in libmicrohttpd */
	enum relay_state	 state;
	struct console_target	 t;
	char			 peer[INET6_ADDRSTRLEN + 8];
	int			 ws_fd, ws_watch;
	struct MHD_UpgradeResponseHandle *urh;
	int			 vnc_fd, vnc_watch;
	struct buf		 ws_in;		/* raw bytes from the browser (frames) */
	struct buf		 ws_out;	/* frames to the browser */
	size_t			 ws_out_off;
	struct buf		 client_in;	/* the browser's payload during the handshake */
	struct buf		 vnc_in;	/* the server's bytes during the handshake */
	struct buf		 vnc_out;	/* bytes to the server */
	size_t			 vnc_out_off;
	int			 closing;	/* a close frame is queued: flush, then close */
	double			 started, last;
	unsigned long long	 to_browser, to_vnc;
};

struct console_proxy {
	struct loop		*loop;
	struct MHD_Daemon	*mhd;
	int			 mhd_watch, mhd_timer, tick;
	int			 port;
	char			*key;
	char			*novnc_dir;
	char			*origin;
	int			 max_connections, idle_timeout_s, handshake_timeout_s;
	struct relay		*relays;
	int			 nrelays;
	unsigned long		 next_id;
	struct used_token	*used;
	size_t			 nused;
};

static void	relay_close(struct relay *, const char *why);
static void	relay_update(struct relay *);

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#include <openssl/des.h>

void
console_vnc_auth_response(const char *password, const unsigned char challenge[16],
    unsigned char out[16])
{
	DES_cblock		 key;
	DES_key_schedule	 ks;
	size_t			 i;
	unsigned char		 c;
	int			 b;

	memset(key, 0, sizeof(key));
	for (i = 0; i < 8 && password[i] != '\0'; i++) {
		/* VNC uses each password byte with its bits in reverse order as the DES key */
		c = 0;
		for (b = 0; b < 8; b++)
			if ((unsigned char)password[i] & (1u << b))
				c |= (unsigned char)(0x80u >> b);
		key[i] = c;
	}
	DES_set_key_unchecked(&key, &ks);
	DES_ecb_encrypt((const_DES_cblock *)challenge, (DES_cblock *)out, &ks, DES_ENCRYPT);
	DES_ecb_encrypt((const_DES_cblock *)(challenge + 8), (DES_cblock *)(out + 8), &ks,
	    DES_ENCRYPT);
	explicit_bzero(key, sizeof(key));
	explicit_bzero(&ks, sizeof(ks));
}
#pragma GCC diagnostic pop

/* ---- used tokens (single use per process) ---- */

static void
used_prune(struct console_proxy *p, time_t now)
{
	size_t	 i = 0;

	while (i < p->nused) {
		if (p->used[i].expiry <= now) {
			free(p->used[i].nonce);
			p->used[i] = p->used[--p->nused];
		} else
			i++;
	}
}

static int
used_seen(const struct console_proxy *p, const char *nonce)
{
	size_t	 i;

	for (i = 0; i < p->nused; i++)
		if (strcmp(p->used[i].nonce, nonce) == 0)
			return 1;
	return 0;
}

/* Remembers a token's nonce until it expires; -1 when too many are remembered. */
static int
used_add(struct console_proxy *p, const struct console_target *t)
{
	used_prune(p, time(NULL));
	if (p->nused >= USED_MAX)
		return -1;
	p->used = xrealloc(p->used, (p->nused + 1) * sizeof(*p->used));
	p->used[p->nused].nonce = xstrdup(t->nonce);
	p->used[p->nused].expiry = t->expiry;
	p->nused++;
	return 0;
}

/* ---- libmicrohttpd in our loop ---- */

static void
proxy_mhd_run(struct console_proxy *p)
{
	MHD_UNSIGNED_LONG_LONG	 ms;
	int			 iv = 1000;

	if (p->mhd == NULL)
		return;
	MHD_run(p->mhd);
	if (MHD_get_timeout(p->mhd, &ms) == MHD_YES)
		iv = ms < 1 ? 1 : ms > 1000 ? 1000 : (int)ms;
	loop_timer_update(p->loop, p->mhd_timer, iv);
}

static void
proxy_mhd_ready(int id, int fd, int events, void *arg)
{
	(void)id; (void)fd; (void)events;
	proxy_mhd_run(arg);
}

static void
proxy_mhd_timer(int id, void *arg)
{
	(void)id;
	proxy_mhd_run(arg);
}

static void
proxy_mhd_log(void *arg, const char *fmt, va_list ap)
{
	char	 msg[512];
	size_t	 n;

	(void)arg;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	/* libmicrohttpd's messages name no request target (where a token would be) */
	log_debug("http: %s", msg);
}

static void
proxy_peer(struct MHD_Connection *c, char *out, size_t n)
{
	const union MHD_ConnectionInfo	*ci;
	char				 host[INET6_ADDRSTRLEN], port[8];
	socklen_t			 len;

	snprintf(out, n, "?");
	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci == NULL || ci->client_addr == NULL)
		return;
	len = ci->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
	    sizeof(struct sockaddr_in);
	if (getnameinfo(ci->client_addr, len, host, sizeof(host), port, sizeof(port),
	    NI_NUMERICHOST | NI_NUMERICSERV) == 0)
		snprintf(out, n, "%s:%s", host, port);
}

static enum MHD_Result
proxy_reply(struct MHD_Connection *c, unsigned int status, const char *text)
{
	struct MHD_Response	*r;
	enum MHD_Result		 rc;

	r = MHD_create_response_from_buffer(strlen(text), (void *)(uintptr_t)text,
	    MHD_RESPMEM_PERSISTENT);
	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", "text/plain; charset=utf-8");
	MHD_add_response_header(r, "Cache-Control", "no-store");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, "Allow", "GET, HEAD");
	rc = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return rc;
}

static const char *
proxy_mime(const char *path)
{
	static const struct { const char *ext, *type; } types[] = {
		{ ".html", "text/html; charset=utf-8" },
		{ ".js", "text/javascript; charset=utf-8" },
		{ ".css", "text/css; charset=utf-8" },
		{ ".json", "application/json" },
		{ ".svg", "image/svg+xml" },
		{ ".png", "image/png" },
		{ ".ico", "image/x-icon" },
		{ ".ttf", "font/ttf" },
		{ ".woff", "font/woff" },
		{ ".mp3", "audio/mpeg" },
		{ ".oga", "audio/ogg" },
	};
	const char	*dot = strrchr(path, '.');
	size_t		 i;

	if (dot != NULL && strchr(dot, '/') == NULL)
		for (i = 0; i < sizeof(types) / sizeof(types[0]); i++)
			if (strcasecmp(dot, types[i].ext) == 0)
				return types[i].type;
	return "application/octet-stream";
}

/* 1 when url is a path of visible names only: no "..", no hidden file, no empty part. */
static int
proxy_path_ok(const char *url)
{
	const char	*s;

	if (url[0] != '/' || strlen(url) > 1024)
		return 0;
	for (s = url; *s != '\0'; s++) {
		if ((unsigned char)*s < 0x20 || *s == '\\')
			return 0;
		if (*s == '/' && (s[1] == '/' || s[1] == '.' || s[1] == '\0'))
			return 0;
	}
	return 1;
}

/* noVNC's files, from novnc_dir. */
static enum MHD_Result
proxy_static(struct console_proxy *p, struct MHD_Connection *c, const char *url)
{
	struct MHD_Response	*r;
	struct stat		 st;
	enum MHD_Result		 rc;
	char			*path;
	int			 fd;

	if (strcmp(url, "/") == 0)
		url = "/vnc_lite.html";
	if (!proxy_path_ok(url))
		return proxy_reply(c, MHD_HTTP_NOT_FOUND, "not found\n");
	path = xasprintf("%s%s", p->novnc_dir, url);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	free(path);
	if (fd == -1)
		return proxy_reply(c, MHD_HTTP_NOT_FOUND, "not found\n");
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		close(fd);
		return proxy_reply(c, MHD_HTTP_NOT_FOUND, "not found\n");
	}
	/* takes fd */
	if ((r = MHD_create_response_from_fd64((uint64_t)st.st_size, fd)) == NULL) {
		close(fd);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", proxy_mime(url));
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "Cache-Control", "no-cache");
	/* the page's own URL holds the token: never pass it on */
	MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
	rc = MHD_queue_response(c, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return rc;
}

/* 1 when header h holds word (comma-separated, case-insensitive). */
static int
header_has(const char *h, const char *word)
{
	size_t		 n = strlen(word), len;
	const char	*s = h, *e;

	if (h == NULL)
		return 0;
	while (*s != '\0') {
		while (*s == ' ' || *s == '\t' || *s == ',')
			s++;
		e = s;
		while (*e != '\0' && *e != ',')
			e++;
		len = (size_t)(e - s);
		while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
			len--;
		if (len == n && strncasecmp(s, word, n) == 0)
			return 1;
		s = e;
	}
	return 0;
}

static struct relay *
relay_new(struct console_proxy *p, struct console_target *t, const char *peer)
{
	struct relay	*r = xcalloc(1, sizeof(*r));

	r->p = p;
	r->id = ++p->next_id;
	r->state = R_PENDING;
	r->t = *t;
	memset(t, 0, sizeof(*t));
	snprintf(r->peer, sizeof(r->peer), "%s", peer);
	r->ws_fd = r->vnc_fd = -1;
	buf_init(&r->ws_in);
	buf_init(&r->ws_out);
	buf_init(&r->client_in);
	buf_init(&r->vnc_in);
	buf_init(&r->vnc_out);
	r->started = r->last = util_now();
	r->next = p->relays;
	p->relays = r;
	p->nrelays++;
	return r;
}

/* Frees a relay that is no longer in the list (a watch's free callback, or directly). */
static void
relay_free(void *arg)
{
	struct relay	*r = arg;

	console_target_clear(&r->t);
	buf_free(&r->ws_in);
	buf_free(&r->ws_out);
	buf_free(&r->client_in);
	buf_free(&r->vnc_in);
	buf_free(&r->vnc_out);
	free(r);
}

static void
relay_unlink(struct relay *r)
{
	struct relay	**rp;

	for (rp = &r->p->relays; *rp != NULL; rp = &(*rp)->next)
		if (*rp == r) {
			*rp = r->next;
			r->p->nrelays--;
			return;
		}
}

/* Ends a console: both sockets closed, the relay freed (later, by the loop). */
static void
relay_close(struct relay *r, const char *why)
{
	struct console_proxy	*p = r->p;
	int			 freed_later = r->ws_watch > 0;

	if (r->state != R_PENDING)
		log_info("console of build %s from %s closed: %s (%llu bytes to the browser, "
		    "%llu to VNC)", r->t.build_id, r->peer, why, r->to_browser, r->to_vnc);
	relay_unlink(r);
	if (r->vnc_watch > 0)
		loop_watch_remove(p->loop, r->vnc_watch);
	if (r->vnc_fd != -1)
		close(r->vnc_fd);
	if (r->ws_watch > 0)
		loop_watch_remove(p->loop, r->ws_watch);
	if (r->urh != NULL)
		MHD_upgrade_action(r->urh, MHD_UPGRADE_ACTION_CLOSE);
	r->vnc_fd = r->ws_fd = -1;
	r->urh = NULL;
	r->vnc_watch = r->ws_watch = 0;
	if (!freed_later)
		relay_free(r);
}

/* Appends one unmasked frame (opcode op) to the browser's output. */
static void
ws_frame(struct relay *r, int op, const void *data, size_t n)
{
	unsigned char	 h[10];
	size_t		 hl;
	int		 i;

	h[0] = (unsigned char)(0x80 | op);
	if (n < 126) {
		h[1] = (unsigned char)n;
		hl = 2;
	} else if (n <= 0xffff) {
		h[1] = 126;
		h[2] = (unsigned char)(n >> 8);
		h[3] = (unsigned char)n;
		hl = 4;
	} else {
		h[1] = 127;
		for (i = 0; i < 8; i++)
			h[2 + i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
		hl = 10;
	}
	buf_append(&r->ws_out, h, hl);
	buf_append(&r->ws_out, data, n);
	if (op == 2)
		r->to_browser += n;
}

/* Queues a close frame with code and reason; the relay closes once it is sent. */
static void
ws_close(struct relay *r, unsigned code, const char *reason)
{
	unsigned char	 b[125];
	size_t		 n = strlen(reason);

	if (r->closing)
		return;
	if (n > sizeof(b) - 2)
		n = sizeof(b) - 2;
	b[0] = (unsigned char)(code >> 8);
	b[1] = (unsigned char)code;
	memcpy(b + 2, reason, n);
	ws_frame(r, 8, b, n + 2);
	r->closing = 1;
}

/* Writes what is pending on fd from b (from *off); -1 on a dead socket. */
static int
flush_out(int fd, struct buf *b, size_t *off)
{
	ssize_t	 n;

	while (*off < b->len) {
		n = send(fd, b->data + *off, b->len - *off, MSG_NOSIGNAL);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n <= 0)
			return -1;
		*off += (size_t)n;
	}
	if (b->data != NULL) {
		b->len = 0;
		b->data[0] = '\0';
	}
	*off = 0;
	return 0;
}

/* Drops the first n bytes of b. */
static void
buf_consume(struct buf *b, size_t n)
{
	if (n == 0)
		return;
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
	b->data[b->len] = '\0';
}

/* A failed console: the browser is told why in a close frame (never a secret). */
static void
relay_fail(struct relay *r, const char *why)
{
	log_warnx("console of build %s from %s: %s", r->t.build_id, r->peer, why);
	ws_close(r, 1011, why);
}

static void
vnc_send(struct relay *r, const void *data, size_t n)
{
	buf_append(&r->vnc_out, data, n);
}

static uint32_t
be32(const char *s)
{
	const unsigned char	*u = (const unsigned char *)s;

	return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3];
}

/* A refusal's reason (u32 length + text) from the server, if all of it is there. */
static int
vnc_reason(struct relay *r, size_t at, char *out, size_t outlen)
{
	uint32_t	 n;

	if (r->vnc_in.len < at + 4)
		return 0;
	n = be32(r->vnc_in.data + at);
	if (n > 1024) {
		snprintf(out, outlen, "(a reason too long)");
		return 1;
	}
	if (r->vnc_in.len < at + 4 + n)
		return 0;
	snprintf(out, outlen, "%.*s", (int)n, r->vnc_in.data + at + 4);
	return 1;
}

/* The browser's side of the handshake: we are its server, with security type None. */
static void
browser_step(struct relay *r)
{
	static const unsigned char	 none[2] = { 1, 1 }, ok[4] = { 0, 0, 0, 0 };

	if (r->state == R_WS_VERSION && r->client_in.len >= 12) {
		if (memcmp(r->client_in.data, RFB_VERSION, 12) != 0) {
			relay_fail(r, "the browser does not speak RFB 3.8");
			return;
		}
		buf_consume(&r->client_in, 12);
		ws_frame(r, 2, none, sizeof(none));
		r->state = R_WS_SECTYPE;
	}
	if (r->state == R_WS_SECTYPE && r->client_in.len >= 1) {
		if (r->client_in.data[0] != 1) {
			relay_fail(r, "the browser chose a security type not offered");
			return;
		}
		buf_consume(&r->client_in, 1);
		ws_frame(r, 2, ok, sizeof(ok));
		r->state = R_RELAY;
		log_info("console of build %s from %s: relaying to %s:%d", r->t.build_id,
		    r->peer, r->t.vnc_host, r->t.vnc_port);
		/* what came early (ClientInit) goes on, and the server's bytes after its result */
		if (r->client_in.len > 0) {
			vnc_send(r, r->client_in.data, r->client_in.len);
			r->to_vnc += r->client_in.len;
			buf_consume(&r->client_in, r->client_in.len);
		}
		if (r->vnc_in.len > 0) {
			ws_frame(r, 2, r->vnc_in.data, r->vnc_in.len);
			buf_consume(&r->vnc_in, r->vnc_in.len);
		}
	}
}

/* The server's side of the handshake: we are its client, with VNC Authentication. */
static void
vnc_step(struct relay *r)
{
	char		 reason[1100], *pw;
	unsigned char	 resp[16], sel;
	unsigned	 n, i, has_vnc = 0, has_none = 0;
	uint32_t	 res;

	for (;;) {
		switch (r->state) {
		case R_VNC_VERSION:
			if (r->vnc_in.len < 12)
				return;
			if (memcmp(r->vnc_in.data, "RFB 003.", 8) != 0 || r->vnc_in.data[11] != '\n' ||
			    strncmp(r->vnc_in.data + 8, "008", 3) < 0) {
				relay_fail(r, "the VNC server does not speak RFB 3.8");
				return;
			}
			buf_consume(&r->vnc_in, 12);
			vnc_send(r, RFB_VERSION, 12);
			r->state = R_VNC_SECTYPES;
			break;
		case R_VNC_SECTYPES:
			if (r->vnc_in.len < 1)
				return;
			n = (unsigned char)r->vnc_in.data[0];
			if (n == 0) {
				if (!vnc_reason(r, 1, reason, sizeof(reason)))
					return;
				relay_fail(r, "the VNC server refused the connection");
				log_warnx("console of build %s: the VNC server said: %s",
				    r->t.build_id, reason);
				return;
			}
			if (r->vnc_in.len < 1 + n)
				return;
			for (i = 0; i < n; i++) {
				has_vnc |= r->vnc_in.data[1 + i] == 2;
				has_none |= r->vnc_in.data[1 + i] == 1;
			}
			buf_consume(&r->vnc_in, 1 + n);
			if (!has_vnc && !has_none) {
				relay_fail(r, "the VNC server offers no VNC Authentication");
				return;
			}
			sel = has_vnc ? 2 : 1;
			vnc_send(r, &sel, 1);
			r->state = has_vnc ? R_VNC_CHALLENGE : R_VNC_RESULT;
			break;
		case R_VNC_CHALLENGE:
			if (r->vnc_in.len < 16)
				return;
			pw = console_vnc_password(r->p->key, r->t.build_id);
			console_vnc_auth_response(pw, (const unsigned char *)r->vnc_in.data, resp);
			console_key_free(&pw);
			buf_consume(&r->vnc_in, 16);
			vnc_send(r, resp, sizeof(resp));
			explicit_bzero(resp, sizeof(resp));
			r->state = R_VNC_RESULT;
			break;
		case R_VNC_RESULT:
			if (r->vnc_in.len < 4)
				return;
			res = be32(r->vnc_in.data);
			if (res != 0) {
				if (!vnc_reason(r, 4, reason, sizeof(reason)))
					return;
				relay_fail(r, "VNC authentication failed");
				log_warnx("console of build %s: the VNC server said: %s",
				    r->t.build_id, reason);
				return;
			}
			buf_consume(&r->vnc_in, 4);
			/* authenticated: now the browser gets its handshake */
			ws_frame(r, 2, RFB_VERSION, 12);
			r->state = R_WS_VERSION;
			browser_step(r);
			return;
		default:
			return;
		}
	}
}

/* Parses the browser's frames in ws_in; their payload goes to the server (or the handshake). */
static void
ws_parse(struct relay *r)
{
	unsigned char	*d;
	size_t		 len, hl, i;
	uint64_t	 plen;
	int		 op, fin;

	while (!r->closing) {
		d = (unsigned char *)r->ws_in.data;
		len = r->ws_in.len;
		if (len < 2)
			return;
		fin = d[0] & 0x80;
		op = d[0] & 0x0f;
		if ((d[0] & 0x70) != 0 || (d[1] & 0x80) == 0) {
			ws_close(r, 1002, "protocol error");
			return;
		}
		plen = d[1] & 0x7f;
		hl = 2;
		if (plen == 126) {
			if (len < 4)
				return;
			plen = (uint64_t)d[2] << 8 | d[3];
			hl = 4;
		} else if (plen == 127) {
			if (len < 10)
				return;
			for (plen = 0, i = 0; i < 8; i++)
				plen = plen << 8 | d[2 + i];
			hl = 10;
		}
		if (plen > WS_MAX_FRAME || (op >= 8 && (plen > 125 || !fin))) {
			ws_close(r, 1009, "frame too big");
			return;
		}
		if (len < hl + 4 + plen)
			return;
		for (i = 0; i < plen; i++)
			d[hl + 4 + i] ^= d[hl + (i & 3)];
		d += hl + 4;
		switch (op) {
		case 0:
		case 2:
			if (r->state == R_RELAY) {
				vnc_send(r, d, plen);
				r->to_vnc += plen;
			} else if (r->client_in.len + plen > 64) {
				ws_close(r, 1002, "unexpected data");
				return;
			} else
				buf_append(&r->client_in, d, plen);
			break;
		case 8:
			log_debug("console of build %s from %s: the browser closed", r->t.build_id,
			    r->peer);
			ws_frame(r, 8, d, plen >= 2 ? 2 : 0);
			r->closing = 1;
			break;
		case 9:
			ws_frame(r, 10, d, plen);
			break;
		case 10:
			break;
		default:
			ws_close(r, 1003, "binary frames only");
			return;
		}
		buf_consume(&r->ws_in, hl + 4 + plen);
		if (r->state == R_WS_VERSION || r->state == R_WS_SECTYPE)
			browser_step(r);
	}
}

/* Reads what fd has (at most a chunk) into b; 0 on EOF or error, 1 read, -1 would block. */
static int
read_in(int fd, struct buf *b)
{
	char	 tmp[READ_CHUNK];
	ssize_t	 n;

	do
		n = recv(fd, tmp, sizeof(tmp), 0);
	while (n == -1 && errno == EINTR);
	if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return -1;
	if (n <= 0)
		return 0;
	buf_append(b, tmp, (size_t)n);
	return 1;
}

/* Flushes both sides, then sets each watch to what it waits for. */
static void
relay_update(struct relay *r)
{
	struct console_proxy	*p = r->p;
	size_t			 ws_pending, vnc_pending;
	int			 ev;

	if (r->ws_fd != -1 && flush_out(r->ws_fd, &r->ws_out, &r->ws_out_off) == -1) {
		relay_close(r, "the browser went away");
		return;
	}
	if (r->vnc_fd != -1 && r->state != R_VNC_CONNECT &&
	    flush_out(r->vnc_fd, &r->vnc_out, &r->vnc_out_off) == -1) {
		relay_close(r, "the VNC server went away");
		return;
	}
	ws_pending = r->ws_out.len - r->ws_out_off;
	vnc_pending = r->vnc_out.len - r->vnc_out_off;
	if (r->closing && ws_pending == 0) {
		relay_close(r, "close frame sent");
		return;
	}
	/* reads only while the other side keeps up: bounded memory, no spinning */
	ev = ws_pending > 0 ? LOOP_WRITE : 0;
	if (!r->closing && vnc_pending < RELAY_HIGH)
		ev |= LOOP_READ;
	loop_watch_update(p->loop, r->ws_watch, ev);
	if (r->vnc_watch > 0) {
		if (r->state == R_VNC_CONNECT)
			ev = LOOP_WRITE;
		else {
			ev = vnc_pending > 0 ? LOOP_WRITE : 0;
			if (!r->closing && ws_pending < RELAY_HIGH)
				ev |= LOOP_READ;
		}
		loop_watch_update(p->loop, r->vnc_watch, ev);
	}
}

static void
relay_ws_ready(int id, int fd, int events, void *arg)
{
	struct relay	*r = arg;
	int		 rc;

	(void)id; (void)fd;
	if (events & LOOP_ERROR) {
		relay_close(r, "the browser's connection failed");
		return;
	}
	if (events & (LOOP_READ | LOOP_HANGUP)) {
		if (r->closing && (events & LOOP_HANGUP)) {
			relay_close(r, "close frame sent");
			return;
		}
		rc = read_in(r->ws_fd, &r->ws_in);
		if (rc == 0) {
			relay_close(r, "the browser closed the connection");
			return;
		}
		if (rc == 1) {
			r->last = util_now();
			ws_parse(r);
		}
	}
	relay_update(r);
}

static void
relay_vnc_ready(int id, int fd, int events, void *arg)
{
	struct relay	*r = arg;
	int		 rc, soerr = 0;
	socklen_t	 len = sizeof(soerr);

	(void)id; (void)fd;
	if (r->state == R_VNC_CONNECT) {
		if (getsockopt(r->vnc_fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == -1)
			soerr = errno;
		if (soerr != 0) {
			log_warnx("console of build %s: connecting to %s:%d: %s", r->t.build_id,
			    r->t.vnc_host, r->t.vnc_port, strerror(soerr));
			ws_close(r, 1011, "the console is not reachable");
			loop_watch_remove(r->p->loop, r->vnc_watch);
			r->vnc_watch = 0;
			close(r->vnc_fd);
			r->vnc_fd = -1;
			relay_update(r);
			return;
		}
		r->state = R_VNC_VERSION;
		relay_update(r);
		return;
	}
	if (events & LOOP_ERROR) {
		relay_close(r, "the VNC connection failed");
		return;
	}
	if (events & (LOOP_READ | LOOP_HANGUP)) {
		if (r->state == R_RELAY) {
			struct buf	 tmp;

			buf_init(&tmp);
			rc = read_in(r->vnc_fd, &tmp);
			if (rc == 1) {
				ws_frame(r, 2, tmp.data, tmp.len);
				r->last = util_now();
			}
			buf_free(&tmp);
		} else {
			rc = read_in(r->vnc_fd, &r->vnc_in);
			if (rc == 1 && r->vnc_in.len > 4096) {
				relay_fail(r, "the VNC server says too much before authentication");
				rc = -1;
			} else if (rc == 1)
				vnc_step(r);
		}
		if (rc == 0) {
			/* what the browser still has to get goes first */
			if (!r->closing)
				ws_close(r, 1000, "the console ended");
			loop_watch_remove(r->p->loop, r->vnc_watch);
			r->vnc_watch = 0;
			close(r->vnc_fd);
			r->vnc_fd = -1;
		}
	}
	relay_update(r);
}

/* Starts the connection to the target's VNC server (a numeric address: no DNS in the loop). */
static int
relay_connect(struct relay *r, struct err *err)
{
	struct addrinfo	 hints, *ai = NULL;
	char		 port[8];
	int		 fd = -1, rc, one = 1;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	snprintf(port, sizeof(port), "%d", r->t.vnc_port);
	if ((rc = getaddrinfo(r->t.vnc_host, port, &hints, &ai)) != 0) {
		err_set(err, ERR_INVAL, "VNC host %s: %s", r->t.vnc_host, gai_strerror(rc));
		return -1;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		err_set(err, ERR_IO, "socket: %s", strerror(errno));
		freeaddrinfo(ai);
		return -1;
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == -1 && errno != EINPROGRESS) {
		err_set(err, ERR_NET, "connecting to %s:%d: %s", r->t.vnc_host, r->t.vnc_port,
		    strerror(errno));
		freeaddrinfo(ai);
		close(fd);
		return -1;
	}
	freeaddrinfo(ai);
	r->vnc_fd = fd;
	r->state = R_VNC_CONNECT;
	r->vnc_watch = loop_watch_add(r->p->loop, fd, LOOP_WRITE, relay_vnc_ready, r, NULL);
	return 0;
}

/* libmicrohttpd sent the 101: the socket is ours (but for closing it). */
static void
proxy_upgraded(void *cls, struct MHD_Connection *c, void *con_cls, const char *extra,
    size_t extra_len, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh)
{
	struct relay	*r = cls;
	struct err	 e;
	int		 fl, one = 1;

	(void)c; (void)con_cls;
	r->ws_fd = sock;
	r->urh = urh;
	if ((fl = fcntl(sock, F_GETFL)) != -1)
		(void)fcntl(sock, F_SETFL, fl | O_NONBLOCK);
	(void)setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	r->ws_watch = loop_watch_add(r->p->loop, sock, LOOP_READ, relay_ws_ready, r, relay_free);
	if (extra_len > 0)
		buf_append(&r->ws_in, extra, extra_len);
	log_info("console of build %s from %s: connecting to %s:%d", r->t.build_id, r->peer,
	    r->t.vnc_host, r->t.vnc_port);
	err_clear(&e);
	r->state = R_VNC_CONNECT;
	if (relay_connect(r, &e) == -1) {
		log_warnx("console of build %s: %s", r->t.build_id, e.msg);
		ws_close(r, 1011, "the console is not reachable");
	}
	ws_parse(r);
	relay_update(r);
}

/* The websocket: a valid, unused, unexpired token, else 403 before any upgrade. */
static enum MHD_Result
proxy_websocket(struct console_proxy *p, struct MHD_Connection *c, void **con_cls)
{
	struct console_target	 t;
	struct MHD_Response	*resp;
	struct relay		*r;
	struct err		 e;
	enum MHD_Result		 rc;
	unsigned char		 sha[SHA_DIGEST_LENGTH];
	char			 peer[INET6_ADDRSTRLEN + 8], accept[64], *k;
	const char		*token, *key, *ver, *proto, *origin;

	proxy_peer(c, peer, sizeof(peer));
	key = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-WebSocket-Key");
	ver = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-WebSocket-Version");
	proto = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-WebSocket-Protocol");
	if (!header_has(MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Upgrade"), "websocket") ||
	    !header_has(MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Connection"), "upgrade") ||
	    key == NULL || strlen(key) > 64 || ver == NULL || strcmp(ver, "13") != 0) {
		log_warnx("console request from %s refused: not a websocket (version 13)", peer);
		return proxy_reply(c, MHD_HTTP_BAD_REQUEST, "a websocket (version 13) expected\n");
	}
	/* a page of another site must not use a token it got hold of (browsers send Origin) */
	origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
	if (p->origin != NULL && origin != NULL && strcasecmp(origin, p->origin) != 0) {
		log_warnx("console request from %s refused: from a page of another origin", peer);
		return proxy_reply(c, MHD_HTTP_FORBIDDEN, "forbidden\n");
	}
	token = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "token");
	err_clear(&e);
	if (console_token_check(p->key, token, time(NULL), &t, &e) == -1) {
		log_warnx("console request from %s refused: %s", peer, e.msg);
		return proxy_reply(c, MHD_HTTP_FORBIDDEN, "forbidden\n");
	}
	if (used_seen(p, t.nonce)) {
		log_warnx("console request from %s refused: the token of build %s was used "
		    "already", peer, t.build_id);
		console_target_clear(&t);
		return proxy_reply(c, MHD_HTTP_FORBIDDEN, "forbidden\n");
	}
	if (p->nrelays >= p->max_connections || used_add(p, &t) == -1) {
		log_warnx("console request from %s for build %s refused: %d consoles open",
		    peer, t.build_id, p->nrelays);
		console_target_clear(&t);
		return proxy_reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, "too many consoles\n");
	}
	k = xasprintf("%s" WS_GUID, key);
	SHA1((const unsigned char *)k, strlen(k), sha);
	free(k);
	EVP_EncodeBlock((unsigned char *)accept, sha, sizeof(sha));
	r = relay_new(p, &t, peer);
	/* an id, not the relay: the request may end long after the relay was freed */
	*con_cls = (void *)(uintptr_t)r->id;
	if ((resp = MHD_create_response_for_upgrade(proxy_upgraded, r)) == NULL) {
		relay_close(r, "no response");
		return MHD_NO;
	}
	MHD_add_response_header(resp, "Upgrade", "websocket");
	MHD_add_response_header(resp, "Sec-WebSocket-Accept", accept);
	if (header_has(proto, "binary"))
		MHD_add_response_header(resp, "Sec-WebSocket-Protocol", "binary");
	rc = MHD_queue_response(c, MHD_HTTP_SWITCHING_PROTOCOLS, resp);
	MHD_destroy_response(resp);
	if (rc != MHD_YES)
		relay_close(r, "the upgrade failed");
	return rc;
}

static enum MHD_Result
proxy_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
    const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
	struct console_proxy	*p = cls;

	(void)version; (void)upload;
	if (*upload_size != 0) {
		*upload_size = 0;	/* a GET's body is not read */
		return MHD_YES;
	}
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return proxy_reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "GET only\n");
	if (strcmp(url, "/websockify") == 0)
		return proxy_websocket(p, c, con_cls);
	return proxy_static(p, c, url);
}

/* A request ended: a console whose 101 was never sent (the browser left) goes too. */
static void
proxy_completed(void *cls, struct MHD_Connection *c, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct console_proxy	*p = cls;
	struct relay		*r;
	unsigned long		 id = (unsigned long)(uintptr_t)*con_cls;

	(void)c; (void)toe;
	if (id == 0)
		return;
	for (r = p->relays; r != NULL; r = r->next)
		if (r->id == id) {
			if (r->state == R_PENDING)
				relay_close(r, "the browser left before the upgrade");
			break;
		}
	*con_cls = NULL;
}

/* Once a second: consoles idle too long or stuck in their handshake are closed. */
static void
proxy_tick(int id, void *arg)
{
	struct console_proxy	*p = arg;
	struct relay		*r, *next;
	double			 now = util_now();

	(void)id;
	for (r = p->relays; r != NULL; r = next) {
		next = r->next;
		if (r->state == R_PENDING)
			continue;	/* libmicrohttpd's until the upgrade (proxy_completed) */
		if (r->state != R_RELAY && now - r->started > p->handshake_timeout_s) {
			if (r->closing)
				relay_close(r, "handshake timed out");
			else {
				relay_fail(r, "the VNC handshake timed out");
				relay_update(r);
			}
		} else if (now - r->last > p->idle_timeout_s) {
			if (r->closing)
				relay_close(r, "idle");
			else {
				log_info("console of build %s from %s: idle for %d s, closing",
				    r->t.build_id, r->peer, p->idle_timeout_s);
				ws_close(r, 1000, "idle timeout");
				relay_update(r);
			}
		}
	}
	used_prune(p, time(NULL));
}

struct console_proxy *
console_proxy_new(struct loop *loop, const struct console_proxy_config *cfg, struct err *err)
{
	struct console_proxy		*p;
	struct sockaddr_storage		 ss;
	struct sockaddr_in		*sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6		*sin6 = (struct sockaddr_in6 *)&ss;
	const union MHD_DaemonInfo	*di;
	unsigned int			 flags = MHD_USE_EPOLL | MHD_ALLOW_UPGRADE | MHD_USE_ERROR_LOG;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, cfg->bind_host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)cfg->bind_port);
	} else if (inet_pton(AF_INET6, cfg->bind_host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)cfg->bind_port);
		flags |= MHD_USE_IPv6;
	} else {
		err_set(err, ERR_INVAL, "bind_host %s: not an IPv4 or IPv6 address", cfg->bind_host);
		return NULL;
	}
	p = xcalloc(1, sizeof(*p));
	p->loop = loop;
	p->key = xstrdup(cfg->key);
	p->novnc_dir = xstrdup(cfg->novnc_dir);
	p->origin = cfg->origin != NULL ? xstrdup(cfg->origin) : NULL;
	p->max_connections = cfg->max_connections > 0 ? cfg->max_connections : 64;
	p->idle_timeout_s = cfg->idle_timeout_s > 0 ? cfg->idle_timeout_s : 3600;
	p->handshake_timeout_s = cfg->handshake_timeout_s > 0 ? cfg->handshake_timeout_s : 30;
	p->mhd = MHD_start_daemon(flags, (uint16_t)cfg->bind_port, NULL, NULL, proxy_request, p,
	    MHD_OPTION_EXTERNAL_LOGGER, proxy_mhd_log, p,
	    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned int)(p->max_connections + 32),
	    MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int)(p->max_connections + 32),
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)30,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)65536,
	    MHD_OPTION_NOTIFY_COMPLETED, proxy_completed, p,
	    MHD_OPTION_END);
	if (p->mhd == NULL) {
		err_set(err, ERR_IO, "cannot listen on %s port %d: %s", cfg->bind_host,
		    cfg->bind_port, strerror(errno));
		console_proxy_free(&p);
		return NULL;
	}
	di = MHD_get_daemon_info(p->mhd, MHD_DAEMON_INFO_BIND_PORT);
	p->port = di != NULL ? di->port : cfg->bind_port;
	di = MHD_get_daemon_info(p->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	if (di == NULL) {
		err_set(err, ERR_INTERNAL, "libmicrohttpd has no epoll descriptor");
		console_proxy_free(&p);
		return NULL;
	}
	p->mhd_watch = loop_watch_add(loop, di->epoll_fd, LOOP_READ, proxy_mhd_ready, p, NULL);
	p->mhd_timer = loop_timer_add(loop, 1000, proxy_mhd_timer, p, NULL);
	p->tick = loop_timer_add(loop, 1000, proxy_tick, p, NULL);
	return p;
}

int
console_proxy_port(const struct console_proxy *p)
{
	return p->port;
}

void
console_proxy_free(struct console_proxy **pp)
{
	struct console_proxy	*p = *pp;
	size_t			 i;

	if (p == NULL)
		return;
	while (p->relays != NULL)
		relay_close(p->relays, "the proxy stops");
	if (p->mhd_watch > 0)
		loop_watch_remove(p->loop, p->mhd_watch);
	if (p->mhd_timer > 0)
		loop_timer_remove(p->loop, p->mhd_timer);
	if (p->tick > 0)
		loop_timer_remove(p->loop, p->tick);
	if (p->mhd != NULL) {
		MHD_run(p->mhd);
		MHD_stop_daemon(p->mhd);
	}
	for (i = 0; i < p->nused; i++)
		free(p->used[i].nonce);
	free(p->used);
	console_key_free(&p->key);
	free(p->novnc_dir);
	free(p->origin);
	free(p);
	*pp = NULL;
}
