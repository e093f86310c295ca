/*
 * amqp.h — isoforge's use of RabbitMQ (librabbitmq 0.11): transport URLs, connections,
 * the topology of DESIGN.md, non-blocking consumption driven by the event loop, publishing
 * with publisher confirms, dead-lettering with a reason.
 * Prefix mq_: amqp_ belongs to librabbitmq.
 */
#ifndef ISOFORGE_AMQP_H
#define ISOFORGE_AMQP_H

#include <stddef.h>
#include <stdint.h>

#include <amqp.h>

#include "base/util.h"

#define MQ_EXCHANGE		"isoforge"		/* topic, durable: requests, control */
#define MQ_DLX			"isoforge.dlx"		/* topic, durable: rejected requests */
#define MQ_EVENTS		"isoforge.events"	/* topic, durable: build.<id>.<state> */
#define MQ_QUEUE_BUILD		"isoforge.build"	/* durable, dead-letters to MQ_DLX */
#define MQ_QUEUE_REJECTED	"isoforge.rejected"	/* durable, bound to MQ_DLX with '#' */
#define MQ_RK_REQUEST		"build.request"
#define MQ_RK_CONTROL		"build.control"
#define MQ_ERROR_HEADER		"x-isoforge-error"
#define MQ_REQUEST_SCHEMA	"isoforge.build/2"	/* docs/api.md: a trust_id, no token */
#define MQ_CONTROL_SCHEMA	"isoforge.control/2"	/* finish|cancel|status, no token */
#define MQ_EVENT_SCHEMA		"isoforge.event/2"
/* RabbitMQ's direct reply-to: the only reply_to a worker answers (a pseudo-queue, or a name
 * the broker made from it: amq.rabbitmq.reply-to.<...>). */
#define MQ_DIRECT_REPLY_TO	"amq.rabbitmq.reply-to"

/* One broker of a transport URL. */
struct mq_host {
	char	*host;
	int	 port;
	char	*user;
	char	*pass;
};

/*
 * rabbit://user:pass@host:port[,user:pass@host:port...]/vhost[?ssl=1], percent-decoded.
 * amqps:// (default port 5671) and ?ssl=1|true|yes (as oslo.messaging writes it) mean AMQP
 * over TLS: the broker's certificate must be trusted by ca_file (the system's CAs when NULL)
 * and name the host of the URL.
 */
struct mq_url {
	struct mq_host	*hosts;
	size_t		 nhosts;
	char		*vhost;		/* "/" when the URL has none */
	int		 tls;
	char		*ca_file;	/* set by the caller ([oslo_messaging_rabbit] ssl_ca_file) */
};

/* Parses a transport URL (rabbit://, amqp:// or amqps://); caller frees with mq_url_free. */
int	mq_url_parse(const char *url, struct mq_url **, struct err *);
void	mq_url_free(struct mq_url **);

/* Deliveries larger than this are dropped unread unless the connection says otherwise. */
#define MQ_MAX_BODY		(1024 * 1024)
/* How long an RPC (declare, bind, consume ...) or the rest of a delivery may take. */
#define MQ_RPC_TIMEOUT		10.0

/* A connection with one channel (1). */
struct mq_conn {
	amqp_connection_state_t	 conn;
	char			*where;		/* host:port, for messages */
	int			 confirm;	/* channel 1 in confirm mode */
	uint64_t		 published;	/* publish sequence (confirm mode) */
	int			 broken;	/* unusable: close it and connect again */
	/*
	 * Deliveries whose body (the content header's body_size) is over max_body are given to
	 * mq_pump's callback with an empty body and dropped set to their size: their body frames
	 * are read and discarded one by one, never assembled (librabbitmq would allocate the
	 * whole body first). MQ_MAX_BODY after mq_connect; the caller may change it.
	 */
	size_t			 max_body;
	size_t			 dropped;	/* while the callback runs: 0, or the dropped size */
};

/*
 * Connects to the broker number attempt % nhosts of url (so successive attempts rotate over a
 * cluster), logs in, opens channel 1, and with confirm puts it in confirm mode. timeout_s bounds
 * the TCP connect and the AMQP handshake together (a listener that accepts and never answers
 * is ERR_TIMEOUT after it); later RPCs wait at most MQ_RPC_TIMEOUT. Caller closes with mq_close.
 */
int	mq_connect(const struct mq_url *, size_t attempt, int heartbeat_s, int confirm,
	    double timeout_s, struct mq_conn **, struct err *);
/* Closes politely when the connection still works; accepts NULL. */
void	mq_close(struct mq_conn **);
/* The socket, for the event loop (-1 when there is none). */
int	mq_fd(struct mq_conn *);

/* Declares every exchange, queue and binding isoforge uses (idempotent). */
int	mq_declare_topology(struct mq_conn *, struct err *);
/* A server-named exclusive auto-delete queue bound to exchange with routing key; caller frees. */
char	*mq_declare_private_queue(struct mq_conn *, const char *exchange, const char *key,
	    struct err *);
/* A durable queue (kept across restarts of its consumer and of the broker) bound to exchange
 * with routing key; idempotent. */
int	mq_declare_durable_queue(struct mq_conn *, const char *queue, const char *exchange,
	    const char *key, struct err *);
/* Limits unacknowledged deliveries on the channel (basic.qos). */
int	mq_qos(struct mq_conn *, int prefetch, struct err *);
/* Starts consuming queue under consumer tag (no_ack: deliveries need no ack). */
int	mq_consume(struct mq_conn *, const char *queue, const char *tag, int no_ack,
	    struct err *);
/* Stops consuming (basic.cancel). */
int	mq_cancel(struct mq_conn *, const char *tag, struct err *);

/*
 * Handles everything already readable without blocking: each delivery is given to cb (which
 * must ack or reject it through mq_ack / mq_reject unless it was consumed with no_ack; the
 * envelope is destroyed after cb returns). Also answers heartbeats. With wait_s > 0 waits that
 * long for the first frame. Returns 0, or -1 with the connection marked broken.
 */
int	mq_pump(struct mq_conn *, double wait_s,
	    void (*cb)(void *arg, struct mq_conn *, amqp_envelope_t *), void *arg, struct err *);
int	mq_ack(struct mq_conn *, uint64_t delivery_tag, struct err *);
int	mq_reject(struct mq_conn *, uint64_t delivery_tag, int requeue, struct err *);

/*
 * Publishes body on exchange with routing key; props may be NULL (persistent JSON). With
 * mandatory an unroutable message is an error. On a confirm-mode connection returns only after
 * the broker confirmed (ERR_REMOTE on a nack, ERR_TIMEOUT after timeout_s).
 */
int	mq_publish(struct mq_conn *, const char *exchange, const char *key,
	    const amqp_basic_properties_t *props, const void *body, size_t len, int mandatory,
	    double timeout_s, struct err *);

/*
 * Dead-letters a delivery the worker refuses: its body and properties are published unchanged
 * to MQ_DLX (routing key as received) with the header x-isoforge-error = reason added, and the
 * broker's confirm awaited. basic.reject(requeue=false) would dead-letter it without a reason.
 */
int	mq_dead_letter(struct mq_conn *pub, const amqp_envelope_t *, const char *reason,
	    struct err *);

/* A header of a message as a string (UTF-8 string headers only); NULL when absent. Caller frees. */
char	*mq_header_string(const amqp_basic_properties_t *, const char *name);

#endif
