/*
 * proxy.h — isoforge-novncproxy's server (docs/console.md): noVNC's static files and the
 * websocket at /websockify?token=…, which relays a browser to a build's VNC server after
 * doing the VNC authentication itself (the browser is offered security type None only).
 * One thread: libmicrohttpd driven from the caller's loop (base/loop.h).
 */
#ifndef ISOFORGE_CONSOLE_PROXY_H
#define ISOFORGE_CONSOLE_PROXY_H

#include "base/loop.h"
#include "base/util.h"

struct console_proxy_config {
	const char	*key;			/* [console] key (console_key()) */
	const char	*bind_host;		/* a numeric IPv4 or IPv6 address */
	int		 bind_port;		/* 0: any free port (console_proxy_port) */
	const char	*novnc_dir;
	const char	*origin;		/* a websocket's Origin must be this (scheme://host
						 * [:port] of base_url); NULL: any */
	int		 max_connections;	/* consoles at once */
	int		 idle_timeout_s;	/* a console with no traffic either way is closed */
	int		 handshake_timeout_s;	/* upgrade to relaying, at most */
};

struct console_proxy;

/* Listens and serves from loop (borrowed; cfg is copied). Caller frees with
 * console_proxy_free. */
struct console_proxy *console_proxy_new(struct loop *, const struct console_proxy_config *,
	    struct err *);
/* The port it listens on. */
int	 console_proxy_port(const struct console_proxy *);
/* Closes every console and the listener. */
void	 console_proxy_free(struct console_proxy **);

/* VNC Authentication: the DES response to challenge with password (at most 8 characters,
 * each key byte bit-reversed, as VNC does). */
void	 console_vnc_auth_response(const char *password, const unsigned char challenge[16],
	    unsigned char out[16]);

#endif
