/* amqp.c — RabbitMQ through librabbitmq: connect, declare, consume from the loop, publish. */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#include <openssl/ssl.h>

#include "service/common/amqp.h"
#include "base/log.h"
#include "base/util.h"

#define MQ_CHANNEL	1
#define MQ_FRAME_MAX	131072

/* Decodes %XX escapes of s[0..n) into a new string; NULL on a bad escape. */
static char *
mq_unescape(const char *s, size_t n)
{
	char	*out, *w, hex[3] = { 0 };
	size_t	 i;

	out = w = xmalloc(n + 1);
	for (i = 0; i < n; i++) {
		if (s[i] != '%') {
			*w++ = s[i];
			continue;
		}
		if (i + 2 >= n || !isxdigit((unsigned char)s[i + 1]) ||
		    !isxdigit((unsigned char)s[i + 2])) {
			free(out);
			return NULL;
		}
		hex[0] = s[i + 1];
		hex[1] = s[i + 2];
		*w++ = (char)strtol(hex, NULL, 16);
		i += 2;
	}
	*w = '\0';
	return out;
}

/* The query of a transport URL: ssl=1|true|yes|0|false|no; nothing else is known. */
static int
mq_query_parse(const char *q, int *tls, struct err *err)
{
	const char	*p, *amp, *eq;
	size_t		 n;

	for (p = q; *p != '\0'; p = *amp != '\0' ? amp + 1 : amp) {
		amp = strchrnul(p, '&');
		n = (size_t)(amp - p);
		if (n > 4 && strncmp(p, "ssl=", 4) == 0) {
			if ((n == 5 && p[4] == '1') || (n == 8 && strncasecmp(p + 4, "true", 4) == 0) ||
			    (n == 7 && strncasecmp(p + 4, "yes", 3) == 0))
				*tls = 1;
			else if ((n == 5 && p[4] == '0') ||
			    (n == 9 && strncasecmp(p + 4, "false", 5) == 0) ||
			    (n == 6 && strncasecmp(p + 4, "no", 2) == 0))
				*tls = 0;
			else {
				err_set(err, ERR_INVAL, "transport_url: ssl= takes 1 or 0");
				return -1;
			}
		} else if (n > 0) {
			/* the option's name only: a value could be a secret */
			eq = memchr(p, '=', n);
			if (eq != NULL)
				n = (size_t)(eq - p);
			err_set(err, ERR_INVAL, "transport_url: unknown query option '%.*s' (only "
			    "ssl=1 is known)", (int)(n > 64 ? 64 : n), p);
			return -1;
		}
	}
	return 0;
}

/* Parses one "[user[:pass]@]host[:port]" of length n into h (port default_port if none). */
static int
mq_host_parse(const char *s, size_t n, int default_port, struct mq_host *h, struct err *err)
{
	const char	*at, *hp, *colon, *end = s + n;
	char		*port, *pend;
	long		 p;

	at = memrchr(s, '@', n);
	if (at != NULL) {
		colon = memchr(s, ':', (size_t)(at - s));
		h->user = mq_unescape(s, (size_t)((colon != NULL ? colon : at) - s));
		h->pass = colon != NULL ? mq_unescape(colon + 1, (size_t)(at - colon - 1)) :
		    xstrdup("");
		if (h->user == NULL || h->pass == NULL) {
			err_set(err, ERR_INVAL, "transport_url: bad %% escape in the credentials");
			return -1;
		}
		hp = at + 1;
	} else {
		/* RabbitMQ's default account, as oslo.messaging does */
		h->user = xstrdup("guest");
		h->pass = xstrdup("guest");
		hp = s;
	}
	if (hp < end && *hp == '[') {
		/* [IPv6]:port */
		colon = memchr(hp, ']', (size_t)(end - hp));
		if (colon == NULL) {
			err_set(err, ERR_INVAL, "transport_url: unterminated [IPv6 address]");
			return -1;
		}
		h->host = xstrndup(hp + 1, (size_t)(colon - hp - 1));
		colon = colon + 1 < end && colon[1] == ':' ? colon + 1 : NULL;
	} else {
		colon = memchr(hp, ':', (size_t)(end - hp));
		h->host = xstrndup(hp, (size_t)((colon != NULL ? colon : end) - hp));
	}
	if (*h->host == '\0') {
		err_set(err, ERR_INVAL, "transport_url: a host is missing");
		return -1;
	}
	h->port = default_port;
	if (colon != NULL) {
		port = xstrndup(colon + 1, (size_t)(end - colon - 1));
		errno = 0;
		p = strtol(port, &pend, 10);
		if (*port == '\0' || *pend != '\0' || errno != 0 || p < 1 || p > 65535) {
			err_set(err, ERR_INVAL, "transport_url: bad port '%s'", port);
			free(port);
			return -1;
		}
		free(port);
		h->port = (int)p;
	}
	return 0;
}

int
mq_url_parse(const char *url, struct mq_url **out, struct err *err)
{
	struct mq_url	*u;
	const char	*p, *slash, *part, *comma, *end, *query;
	char		*path = NULL;
	int		 tls = 0;

	*out = NULL;
	if (strncmp(url, "rabbit://", 9) == 0)
		p = url + 9;
	else if (strncmp(url, "amqp://", 7) == 0)
		p = url + 7;
	else if (strncmp(url, "amqps://", 8) == 0) {
		p = url + 8;
		tls = 1;
	} else {
		err_set(err, ERR_INVAL, "transport_url: must start with rabbit://, amqp:// or "
		    "amqps://");
		return -1;
	}
	u = xcalloc(1, sizeof(*u));
	/* the query first: the rest of the URL ends where it starts */
	if ((query = strchr(p, '?')) != NULL) {
		if (mq_query_parse(query + 1, &tls, err) != 0)
			goto fail;
		p = path = xstrndup(p, (size_t)(query - p));
	}
	u->tls = tls;
	slash = strchr(p, '/');
	end = slash != NULL ? slash : p + strlen(p);
	for (part = p; part <= end; part = comma + 1) {
		comma = memchr(part, ',', (size_t)(end - part));
		if (comma == NULL)
			comma = end;
		u->hosts = xrealloc(u->hosts, (u->nhosts + 1) * sizeof(*u->hosts));
		memset(&u->hosts[u->nhosts], 0, sizeof(*u->hosts));
		u->nhosts++;
		if (mq_host_parse(part, (size_t)(comma - part), tls ? 5671 : 5672,
		    &u->hosts[u->nhosts - 1], err) != 0)
			goto fail;
		if (comma == end)
			break;
	}
	if (slash == NULL || slash[1] == '\0')
		u->vhost = xstrdup("/");
	else if ((u->vhost = mq_unescape(slash + 1, strlen(slash + 1))) == NULL) {
		err_set(err, ERR_INVAL, "transport_url: bad %% escape in the vhost");
		goto fail;
	}
	free(path);
	*out = u;
	return 0;
fail:
	free(path);
	mq_url_free(&u);
	return -1;
}

void
mq_url_free(struct mq_url **up)
{
	struct mq_url	*u;
	size_t		 i;

	if (up == NULL || (u = *up) == NULL)
		return;
	for (i = 0; i < u->nhosts; i++) {
		free(u->hosts[i].host);
		free(u->hosts[i].user);
		if (u->hosts[i].pass != NULL) {
			explicit_bzero(u->hosts[i].pass, strlen(u->hosts[i].pass));
			free(u->hosts[i].pass);
		}
	}
	free(u->hosts);
	free(u->vhost);
	free(u->ca_file);
	free(u);
	*up = NULL;
}

/* The broker's close reason as text; out holds at least 256 bytes. */
static void
mq_close_text(const amqp_method_t *m, int *code, char *out, size_t outlen)
{
	amqp_bytes_t	 text = { 0, NULL };

	*code = 0;
	if (m->id == AMQP_CONNECTION_CLOSE_METHOD) {
		const amqp_connection_close_t	*c = m->decoded;

		*code = c->reply_code;
		text = c->reply_text;
	} else if (m->id == AMQP_CHANNEL_CLOSE_METHOD) {
		const amqp_channel_close_t	*c = m->decoded;

		*code = c->reply_code;
		text = c->reply_text;
	}
	snprintf(out, outlen, "%.*s", (int)text.len, text.bytes != NULL ?
	    (const char *)text.bytes : "");
}

/*
 * Answers a close the broker sent (so it can tidy up), marks the connection broken and
 * fills err. The one place broker closes are translated.
 */
static void
mq_closed_by_broker(struct mq_conn *c, const amqp_method_t *m, const char *what,
    struct err *err)
{
	amqp_channel_close_ok_t		 chok = { 0 };
	amqp_connection_close_ok_t	 cok = { 0 };
	char				 text[512];
	int				 code;
	enum err_kind			 kind;

	mq_close_text(m, &code, text, sizeof(text));
	if (m->id == AMQP_CHANNEL_CLOSE_METHOD)
		amqp_send_method(c->conn, MQ_CHANNEL, AMQP_CHANNEL_CLOSE_OK_METHOD, &chok);
	else if (m->id == AMQP_CONNECTION_CLOSE_METHOD)
		amqp_send_method(c->conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &cok);
	switch (code) {
	case AMQP_ACCESS_REFUSED:
		kind = ERR_AUTH;
		break;
	case AMQP_PRECONDITION_FAILED:
	case AMQP_RESOURCE_LOCKED:
		kind = ERR_CONFLICT;
		break;
	case AMQP_NOT_FOUND:
		kind = ERR_NOTFOUND;
		break;
	default:
		kind = ERR_REMOTE;
		break;
	}
	c->broken = 1;
	err_set(err, kind, "RabbitMQ %s: %s: %d %s", c->where, what, code, text);
}

/* Translates an RPC reply (the one place for amqp_rpc_reply_t); -1 marks c broken. */
static int
mq_reply(struct mq_conn *c, amqp_rpc_reply_t r, const char *what, struct err *err)
{
	switch (r.reply_type) {
	case AMQP_RESPONSE_NORMAL:
		return 0;
	case AMQP_RESPONSE_SERVER_EXCEPTION:
		mq_closed_by_broker(c, &r.reply, what, err);
		return -1;
	case AMQP_RESPONSE_LIBRARY_EXCEPTION:
		c->broken = 1;
		err_set(err, r.library_error == AMQP_STATUS_TIMEOUT ? ERR_TIMEOUT : ERR_NET,
		    "RabbitMQ %s: %s: %s", c->where, what, amqp_error_string2(r.library_error));
		return -1;
	case AMQP_RESPONSE_NONE:
	default:
		c->broken = 1;
		err_set(err, ERR_NET, "RabbitMQ %s: %s: no reply", c->where, what);
		return -1;
	}
}

/* Translates a librabbitmq status code. */
static int
mq_status(struct mq_conn *c, int status, const char *what, struct err *err)
{
	if (status == AMQP_STATUS_OK)
		return 0;
	c->broken = 1;
	err_set(err, status == AMQP_STATUS_TIMEOUT ? ERR_TIMEOUT : ERR_NET,
	    "RabbitMQ %s: %s: %s", c->where, what, amqp_error_string2(status));
	return -1;
}

static struct timeval
mq_tv(double s)
{
	struct timeval	 tv;

	if (s < 0)
		s = 0;
	tv.tv_sec = (time_t)s;
	tv.tv_usec = (suseconds_t)((s - (double)tv.tv_sec) * 1e6);
	return tv;
}

/*
 * A TLS socket on c's connection: TLS 1.2 at least, the peer's certificate verified against
 * u->ca_file (else the system's CAs) and its name against the host.
 */
static amqp_socket_t *
mq_tls_socket(struct mq_conn *c, const struct mq_url *u, struct err *err)
{
	amqp_socket_t	*sock;
	SSL_CTX		*ctx;

	if ((sock = amqp_ssl_socket_new(c->conn)) == NULL) {
		err_set(err, ERR_INTERNAL, "RabbitMQ: cannot create a TLS socket");
		return NULL;
	}
	amqp_ssl_socket_set_verify_peer(sock, 1);
	amqp_ssl_socket_set_verify_hostname(sock, 1);
	if (amqp_ssl_socket_set_ssl_versions(sock, AMQP_TLSv1_2, AMQP_TLSvLATEST) !=
	    AMQP_STATUS_OK) {
		err_set(err, ERR_INTERNAL, "RabbitMQ: TLS 1.2 is not available");
		return NULL;
	}
	if (u->ca_file != NULL) {
		if (amqp_ssl_socket_set_cacert(sock, u->ca_file) != AMQP_STATUS_OK) {
			err_set(err, ERR_INVAL, "RabbitMQ: cannot read the CA file %s (ssl_ca_file)",
			    u->ca_file);
			return NULL;
		}
	} else if ((ctx = amqp_ssl_socket_get_context(sock)) == NULL ||
	    SSL_CTX_set_default_verify_paths(ctx) != 1) {
		err_set(err, ERR_INTERNAL, "RabbitMQ: cannot load the system's CAs");
		return NULL;
	}
	return sock;
}

int
mq_connect(const struct mq_url *u, size_t attempt, int heartbeat_s, int confirm,
    double timeout_s, struct mq_conn **out, struct err *err)
{
	const struct mq_host	*h = &u->hosts[attempt % u->nhosts];
	struct mq_conn		*c;
	amqp_socket_t		*sock;
	struct timeval		 tv = mq_tv(timeout_s);
	amqp_table_entry_t	 cap_entry, prop_entry;
	amqp_table_t		 caps, props;
	double			 deadline = util_now() + timeout_s, left;
	int			 status;

	*out = NULL;
	c = xcalloc(1, sizeof(*c));
	c->where = xasprintf("%s:%d", h->host, h->port);
	c->conn = amqp_new_connection();
	if (u->tls)
		sock = mq_tls_socket(c, u, err);
	else if ((sock = amqp_tcp_socket_new(c->conn)) == NULL)
		err_set(err, ERR_INTERNAL, "RabbitMQ: cannot create a socket");
	if (sock == NULL)
		goto fail;
	status = amqp_socket_open_noblock(sock, h->host, h->port, &tv);
	if (u->tls && (status == AMQP_STATUS_SSL_PEER_VERIFY_FAILED ||
	    status == AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED)) {
		c->broken = 1;
		err_set(err, ERR_AUTH, "RabbitMQ %s: TLS: %s: %s", c->where,
		    status == AMQP_STATUS_SSL_PEER_VERIFY_FAILED ?
		    "the broker's certificate is not signed by a trusted CA" :
		    "the broker's certificate does not name this host",
		    u->ca_file != NULL ? u->ca_file : "the system's CAs");
		goto fail;
	}
	if (mq_status(c, status, u->tls ? "TLS connect" : "connect", err) != 0)
		goto fail;
	/* what is left of timeout_s for the handshake (a second at least), then MQ_RPC_TIMEOUT */
	left = deadline - util_now();
	tv = mq_tv(left > 1.0 ? left : 1.0);
	amqp_set_handshake_timeout(c->conn, &tv);
	amqp_set_rpc_timeout(c->conn, &tv);
	/* consumer_cancel_notify: without it RabbitMQ drops a consumer whose queue is deleted
	 * silently, and the consumer would wait for ever; with it, basic.cancel arrives and
	 * mq_pump reports the connection broken (librabbitmq merges this with its defaults) */
	cap_entry.key = amqp_cstring_bytes("consumer_cancel_notify");
	cap_entry.value.kind = AMQP_FIELD_KIND_BOOLEAN;
	cap_entry.value.value.boolean = 1;
	caps.num_entries = 1;
	caps.entries = &cap_entry;
	prop_entry.key = amqp_cstring_bytes("capabilities");
	prop_entry.value.kind = AMQP_FIELD_KIND_TABLE;
	prop_entry.value.value.table = caps;
	props.num_entries = 1;
	props.entries = &prop_entry;
	if (mq_reply(c, amqp_login_with_properties(c->conn, u->vhost, 0, MQ_FRAME_MAX,
	    heartbeat_s, &props, AMQP_SASL_METHOD_PLAIN, h->user, h->pass), "login", err) != 0)
		goto fail;
	amqp_channel_open(c->conn, MQ_CHANNEL);
	if (mq_reply(c, amqp_get_rpc_reply(c->conn), "channel.open", err) != 0)
		goto fail;
	if (confirm) {
		amqp_confirm_select(c->conn, MQ_CHANNEL);
		if (mq_reply(c, amqp_get_rpc_reply(c->conn), "confirm.select", err) != 0)
			goto fail;
		c->confirm = 1;
	}
	tv = mq_tv(MQ_RPC_TIMEOUT);
	amqp_set_rpc_timeout(c->conn, &tv);
	c->max_body = MQ_MAX_BODY;
	*out = c;
	return 0;
fail:
	mq_close(&c);
	return -1;
}

void
mq_close(struct mq_conn **cp)
{
	struct mq_conn	*c;

	if (cp == NULL || (c = *cp) == NULL)
		return;
	if (c->conn != NULL) {
		if (!c->broken) {
			amqp_channel_close(c->conn, MQ_CHANNEL, AMQP_REPLY_SUCCESS);
			amqp_connection_close(c->conn, AMQP_REPLY_SUCCESS);
		}
		amqp_destroy_connection(c->conn);
	}
	free(c->where);
	free(c);
	*cp = NULL;
}

int
mq_fd(struct mq_conn *c)
{
	return c == NULL || c->conn == NULL ? -1 : amqp_get_sockfd(c->conn);
}

static int
mq_exchange(struct mq_conn *c, const char *name, struct err *err)
{
	amqp_exchange_declare(c->conn, MQ_CHANNEL, amqp_cstring_bytes(name),
	    amqp_cstring_bytes("topic"), 0, 1, 0, 0, amqp_empty_table);
	return mq_reply(c, amqp_get_rpc_reply(c->conn), "exchange.declare", err);
}

static int
mq_bind(struct mq_conn *c, const char *queue, const char *exchange, const char *key,
    struct err *err)
{
	amqp_queue_bind(c->conn, MQ_CHANNEL, amqp_cstring_bytes(queue),
	    amqp_cstring_bytes(exchange), amqp_cstring_bytes(key), amqp_empty_table);
	return mq_reply(c, amqp_get_rpc_reply(c->conn), "queue.bind", err);
}

int
mq_declare_topology(struct mq_conn *c, struct err *err)
{
	amqp_table_entry_t	 dlx[1];
	amqp_table_t		 args;

	if (mq_exchange(c, MQ_EXCHANGE, err) != 0 || mq_exchange(c, MQ_DLX, err) != 0 ||
	    mq_exchange(c, MQ_EVENTS, err) != 0)
		return -1;
	dlx[0].key = amqp_cstring_bytes("x-dead-letter-exchange");
	dlx[0].value.kind = AMQP_FIELD_KIND_UTF8;
	dlx[0].value.value.bytes = amqp_cstring_bytes(MQ_DLX);
	args.num_entries = 1;
	args.entries = dlx;
	amqp_queue_declare(c->conn, MQ_CHANNEL, amqp_cstring_bytes(MQ_QUEUE_BUILD), 0, 1, 0, 0,
	    args);
	if (mq_reply(c, amqp_get_rpc_reply(c->conn), "queue.declare " MQ_QUEUE_BUILD, err) != 0)
		return -1;
	amqp_queue_declare(c->conn, MQ_CHANNEL, amqp_cstring_bytes(MQ_QUEUE_REJECTED), 0, 1, 0, 0,
	    amqp_empty_table);
	if (mq_reply(c, amqp_get_rpc_reply(c->conn), "queue.declare " MQ_QUEUE_REJECTED,
	    err) != 0)
		return -1;
	if (mq_bind(c, MQ_QUEUE_BUILD, MQ_EXCHANGE, MQ_RK_REQUEST, err) != 0 ||
	    mq_bind(c, MQ_QUEUE_REJECTED, MQ_DLX, "#", err) != 0)
		return -1;
	return 0;
}

char *
mq_declare_private_queue(struct mq_conn *c, const char *exchange, const char *key,
    struct err *err)
{
	amqp_queue_declare_ok_t	*ok;
	char			*name;

	ok = amqp_queue_declare(c->conn, MQ_CHANNEL, amqp_empty_bytes, 0, 0, 1, 1,
	    amqp_empty_table);
	if (mq_reply(c, amqp_get_rpc_reply(c->conn), "queue.declare", err) != 0 || ok == NULL)
		return NULL;
	name = xstrndup(ok->queue.bytes, ok->queue.len);
	if (key != NULL && mq_bind(c, name, exchange, key, err) != 0) {
		free(name);
		return NULL;
	}
	return name;
}

int
mq_declare_durable_queue(struct mq_conn *c, const char *queue, const char *exchange,
    const char *key, struct err *err)
{
	amqp_queue_declare(c->conn, MQ_CHANNEL, amqp_cstring_bytes(queue), 0, 1, 0, 0,
	    amqp_empty_table);
	if (mq_reply(c, amqp_get_rpc_reply(c->conn), "queue.declare", err) != 0)
		return -1;
	return mq_bind(c, queue, exchange, key, err);
}

int
mq_qos(struct mq_conn *c, int prefetch, struct err *err)
{
	amqp_basic_qos(c->conn, MQ_CHANNEL, 0, (uint16_t)prefetch, 0);
	return mq_reply(c, amqp_get_rpc_reply(c->conn), "basic.qos", err);
}

int
mq_consume(struct mq_conn *c, const char *queue, const char *tag, int no_ack, struct err *err)
{
	amqp_basic_consume(c->conn, MQ_CHANNEL, amqp_cstring_bytes(queue), amqp_cstring_bytes(tag),
	    0, no_ack ? 1 : 0, 0, amqp_empty_table);
	return mq_reply(c, amqp_get_rpc_reply(c->conn), "basic.consume", err);
}

int
mq_cancel(struct mq_conn *c, const char *tag, struct err *err)
{
	amqp_basic_cancel(c->conn, MQ_CHANNEL, amqp_cstring_bytes(tag));
	return mq_reply(c, amqp_get_rpc_reply(c->conn), "basic.cancel", err);
}

int
mq_ack(struct mq_conn *c, uint64_t tag, struct err *err)
{
	return mq_status(c, amqp_basic_ack(c->conn, MQ_CHANNEL, tag, 0), "basic.ack", err);
}

int
mq_reject(struct mq_conn *c, uint64_t tag, int requeue, struct err *err)
{
	return mq_status(c, amqp_basic_reject(c->conn, MQ_CHANNEL, tag, requeue ? 1 : 0),
	    "basic.reject", err);
}

/* Handles a frame that is not a delivery (amqp_consume_message said "unexpected state"). */
static int
mq_other_frame(struct mq_conn *c, const amqp_frame_t *f, struct err *err)
{
	amqp_message_t	 msg;

	if (f->frame_type != AMQP_FRAME_METHOD)
		return 0;
	switch (f->payload.method.id) {
	case AMQP_CHANNEL_CLOSE_METHOD:
	case AMQP_CONNECTION_CLOSE_METHOD:
		mq_closed_by_broker(c, &f->payload.method, "closed", err);
		return -1;
	case AMQP_BASIC_CANCEL_METHOD:
		/* the broker cancelled our consumer (its queue was deleted): start afresh */
		c->broken = 1;
		err_set(err, ERR_REMOTE, "RabbitMQ %s: the broker cancelled a consumer",
		    c->where);
		return -1;
	case AMQP_BASIC_RETURN_METHOD:
		/* a returned message: read and drop it */
		if (mq_reply(c, amqp_read_message(c->conn, f->channel, &msg, 0), "basic.return",
		    err) != 0)
			return -1;
		amqp_destroy_message(&msg);
		return 0;
	default:
		return 0;
	}
}

/* Copies b into pool (librabbitmq's decoded frames live only until its buffers are released). */
static amqp_bytes_t
mq_pool_dup(amqp_pool_t *pool, amqp_bytes_t b)
{
	amqp_bytes_t	 out = { 0, NULL };

	if (b.len == 0)
		return out;
	amqp_pool_alloc_bytes(pool, b.len, &out);
	if (out.bytes == NULL)
		fatal("out of memory");
	memcpy(out.bytes, b.bytes, b.len);
	return out;
}

/* A field of the properties, copied when its flag says it is there (else it is garbage). */
#define MQ_PROP_DUP(f, flag)						\
	out->f = (in->_flags & (flag)) ? mq_pool_dup(pool, in->f) : amqp_empty_bytes

/* The properties of a content header, copied into pool. */
static int
mq_props_clone(const amqp_basic_properties_t *in, amqp_basic_properties_t *out,
    amqp_pool_t *pool)
{
	memset(out, 0, sizeof(*out));
	out->_flags = in->_flags;
	out->delivery_mode = in->delivery_mode;
	out->priority = in->priority;
	out->timestamp = in->timestamp;
	MQ_PROP_DUP(content_type, AMQP_BASIC_CONTENT_TYPE_FLAG);
	MQ_PROP_DUP(content_encoding, AMQP_BASIC_CONTENT_ENCODING_FLAG);
	MQ_PROP_DUP(correlation_id, AMQP_BASIC_CORRELATION_ID_FLAG);
	MQ_PROP_DUP(reply_to, AMQP_BASIC_REPLY_TO_FLAG);
	MQ_PROP_DUP(expiration, AMQP_BASIC_EXPIRATION_FLAG);
	MQ_PROP_DUP(message_id, AMQP_BASIC_MESSAGE_ID_FLAG);
	MQ_PROP_DUP(type, AMQP_BASIC_TYPE_FLAG);
	MQ_PROP_DUP(user_id, AMQP_BASIC_USER_ID_FLAG);
	MQ_PROP_DUP(app_id, AMQP_BASIC_APP_ID_FLAG);
	MQ_PROP_DUP(cluster_id, AMQP_BASIC_CLUSTER_ID_FLAG);
	if ((in->_flags & AMQP_BASIC_HEADERS_FLAG) &&
	    amqp_table_clone(&in->headers, &out->headers, pool) != AMQP_STATUS_OK)
		return -1;
	return 0;
}

/* Waits up to MQ_RPC_TIMEOUT for the next frame of a delivery's content on channel. */
static int
mq_content_frame(struct mq_conn *c, amqp_channel_t channel, uint8_t type, amqp_frame_t *f,
    struct err *err)
{
	struct timeval	 tv = mq_tv(MQ_RPC_TIMEOUT);

	if (mq_status(c, amqp_simple_wait_frame_noblock(c->conn, f, &tv),
	    "reading a delivery", err) != 0)
		return -1;
	if (f->frame_type != type || f->channel != channel) {
		c->broken = 1;
		err_set(err, ERR_REMOTE, "RabbitMQ %s: a delivery's content is out of order "
		    "(frame type %d on channel %d)", c->where, f->frame_type, f->channel);
		return -1;
	}
	return 0;
}

/*
 * Reads the content of the delivery whose basic.deliver is f into env (which the caller
 * destroys with amqp_destroy_envelope, also on failure). A body over c->max_body is read frame
 * by frame and dropped (c->dropped = its size): the worker's memory never holds it.
 */
static int
mq_read_delivery(struct mq_conn *c, const amqp_frame_t *f, amqp_envelope_t *env,
    struct err *err)
{
	const amqp_basic_deliver_t	*d = f->payload.method.decoded;
	amqp_frame_t			 h;
	uint64_t			 size, got = 0;
	size_t				 n;

	memset(env, 0, sizeof(*env));
	init_amqp_pool(&env->message.pool, 4096);
	env->channel = f->channel;
	env->consumer_tag = amqp_bytes_malloc_dup(d->consumer_tag);
	env->delivery_tag = d->delivery_tag;
	env->redelivered = d->redelivered;
	env->exchange = amqp_bytes_malloc_dup(d->exchange);
	env->routing_key = amqp_bytes_malloc_dup(d->routing_key);
	c->dropped = 0;
	if (mq_content_frame(c, f->channel, AMQP_FRAME_HEADER, &h, err) != 0)
		return -1;
	size = h.payload.properties.body_size;
	if (mq_props_clone(h.payload.properties.decoded, &env->message.properties,
	    &env->message.pool) != 0) {
		c->broken = 1;
		err_set(err, ERR_INTERNAL, "RabbitMQ %s: cannot copy a delivery's headers",
		    c->where);
		return -1;
	}
	if (size > c->max_body)
		c->dropped = size > SIZE_MAX ? SIZE_MAX : (size_t)size;
	else if (size > 0)
		env->message.body = amqp_bytes_malloc((size_t)size);
	while (got < size) {
		if (mq_content_frame(c, f->channel, AMQP_FRAME_BODY, &h, err) != 0)
			return -1;
		n = h.payload.body_fragment.len;
		if (n > size - got) {
			c->broken = 1;
			err_set(err, ERR_REMOTE, "RabbitMQ %s: a delivery's body is longer than its "
			    "header says", c->where);
			return -1;
		}
		if (c->dropped == 0)
			memcpy((char *)env->message.body.bytes + got, h.payload.body_fragment.bytes,
			    n);
		got += n;
		/*
		 * each frame is read into the channel's pool, kept until released: give it back
		 * at once, or a dropped body would pile up there frame by frame (what we use of
		 * the deliver and header frames was copied before)
		 */
		amqp_maybe_release_buffers_on_channel(c->conn, f->channel);
	}
	return 0;
}

int
mq_pump(struct mq_conn *c, double wait_s,
    void (*cb)(void *, struct mq_conn *, amqp_envelope_t *), void *arg, struct err *err)
{
	amqp_envelope_t		 env;
	amqp_frame_t		 frame;
	struct timeval		 tv;
	int			 status, first = 1;

	if (c->broken) {
		err_set(err, ERR_NET, "RabbitMQ %s: connection lost", c->where);
		return -1;
	}
	for (;;) {
		tv = mq_tv(first ? wait_s : 0);
		first = 0;
		amqp_maybe_release_buffers(c->conn);
		/* frames one by one (not amqp_consume_message): a body's size is known before it */
		status = amqp_simple_wait_frame_noblock(c->conn, &frame, &tv);
		if (status == AMQP_STATUS_TIMEOUT)
			return 0;
		if (mq_status(c, status, "read", err) != 0)
			return -1;
		if (frame.frame_type != AMQP_FRAME_METHOD ||
		    frame.payload.method.id != AMQP_BASIC_DELIVER_METHOD) {
			if (mq_other_frame(c, &frame, err) != 0)
				return -1;
			continue;
		}
		if (mq_read_delivery(c, &frame, &env, err) != 0) {
			c->dropped = 0;
			amqp_destroy_envelope(&env);
			return -1;
		}
		if (cb != NULL)
			cb(arg, c, &env);
		c->dropped = 0;
		amqp_destroy_envelope(&env);
		if (c->broken) {
			err_set(err, ERR_NET, "RabbitMQ %s: connection lost", c->where);
			return -1;
		}
	}
}

/* Waits for the broker's confirm of publish number seq; a basic.return before it is an error. */
static int
mq_wait_confirm(struct mq_conn *c, uint64_t seq, double timeout_s, struct err *err)
{
	amqp_frame_t	 f;
	amqp_message_t	 msg;
	struct timeval	 tv;
	double		 deadline = util_now() + timeout_s;
	int		 returned = 0, status;

	for (;;) {
		tv = mq_tv(deadline - util_now());
		status = amqp_simple_wait_frame_noblock(c->conn, &f, &tv);
		if (mq_status(c, status, "waiting for the publisher confirm", err) != 0)
			return -1;
		if (f.frame_type != AMQP_FRAME_METHOD)
			continue;
		switch (f.payload.method.id) {
		case AMQP_BASIC_ACK_METHOD: {
			const amqp_basic_ack_t	*a = f.payload.method.decoded;

			/* an ack of an earlier publish (multiple or not) is not ours */
			if (a->delivery_tag < seq)
				continue;
			if (returned) {
				err_set(err, ERR_NOTFOUND, "RabbitMQ %s: the message could not be "
				    "routed to any queue", c->where);
				return -1;
			}
			return 0;
		}
		case AMQP_BASIC_NACK_METHOD:
			err_set(err, ERR_REMOTE, "RabbitMQ %s: the broker refused the message",
			    c->where);
			return -1;
		case AMQP_BASIC_RETURN_METHOD:
			returned = 1;
			if (mq_reply(c, amqp_read_message(c->conn, f.channel, &msg, 0),
			    "basic.return", err) != 0)
				return -1;
			amqp_destroy_message(&msg);
			continue;
		case AMQP_CHANNEL_CLOSE_METHOD:
		case AMQP_CONNECTION_CLOSE_METHOD:
			mq_closed_by_broker(c, &f.payload.method, "publish", err);
			return -1;
		default:
			continue;
		}
	}
}

int
mq_publish(struct mq_conn *c, const char *exchange, const char *key,
    const amqp_basic_properties_t *props, const void *body, size_t len, int mandatory,
    double timeout_s, struct err *err)
{
	amqp_basic_properties_t	 def;
	amqp_bytes_t		 b;

	if (c->broken) {
		err_set(err, ERR_NET, "RabbitMQ %s: connection lost", c->where);
		return -1;
	}
	if (props == NULL) {
		memset(&def, 0, sizeof(def));
		def._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
		def.content_type = amqp_cstring_bytes("application/json");
		def.delivery_mode = AMQP_DELIVERY_PERSISTENT;
		props = &def;
	}
	b.len = len;
	b.bytes = (void *)body;
	if (mq_status(c, amqp_basic_publish(c->conn, MQ_CHANNEL, amqp_cstring_bytes(exchange),
	    amqp_cstring_bytes(key), mandatory ? 1 : 0, 0, props, b), "basic.publish", err) != 0)
		return -1;
	if (!c->confirm)
		return 0;
	return mq_wait_confirm(c, ++c->published, timeout_s, err);
}

int
mq_dead_letter(struct mq_conn *pub, const amqp_envelope_t *env, const char *reason,
    struct err *err)
{
	amqp_basic_properties_t	 props = env->message.properties;
	amqp_table_entry_t	*entries;
	const amqp_table_t	*old = NULL;
	char			 rk[256];
	size_t			 n = 0, i;
	int			 ret;

	if (props._flags & AMQP_BASIC_HEADERS_FLAG)
		old = &props.headers;
	entries = xcalloc((old != NULL ? (size_t)old->num_entries : 0) + 1, sizeof(*entries));
	if (old != NULL)
		for (i = 0; i < (size_t)old->num_entries; i++) {
			/* a resubmitted message gets the new reason, not two */
			if (old->entries[i].key.len == strlen(MQ_ERROR_HEADER) &&
			    memcmp(old->entries[i].key.bytes, MQ_ERROR_HEADER,
			    old->entries[i].key.len) == 0)
				continue;
			entries[n++] = old->entries[i];
		}
	entries[n].key = amqp_cstring_bytes(MQ_ERROR_HEADER);
	entries[n].value.kind = AMQP_FIELD_KIND_UTF8;
	entries[n].value.value.bytes = amqp_cstring_bytes(reason);
	n++;
	props.headers.num_entries = (int)n;
	props.headers.entries = entries;
	props._flags |= AMQP_BASIC_HEADERS_FLAG;
	snprintf(rk, sizeof(rk), "%.*s", (int)env->routing_key.len,
	    (const char *)env->routing_key.bytes);
	ret = mq_publish(pub, MQ_DLX, rk, &props, env->message.body.bytes,
	    env->message.body.len, 1, 10, err);
	free(entries);
	return ret;
}

char *
mq_header_string(const amqp_basic_properties_t *props, const char *name)
{
	const amqp_table_entry_t	*e;
	int				 i;

	if (!(props->_flags & AMQP_BASIC_HEADERS_FLAG))
		return NULL;
	for (i = 0; i < props->headers.num_entries; i++) {
		e = &props->headers.entries[i];
		if (e->key.len == strlen(name) && memcmp(e->key.bytes, name, e->key.len) == 0 &&
		    (e->value.kind == AMQP_FIELD_KIND_UTF8 ||
		    e->value.kind == AMQP_FIELD_KIND_BYTES))
			return xstrndup(e->value.value.bytes.bytes, e->value.value.bytes.len);
	}
	return NULL;
}
