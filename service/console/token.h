/*
 * token.h — the browser console's secrets (docs/api.md "The console"): the signed, expiring
 * token the API mints and isoforge-novncproxy checks, and a build's VNC password, which the
 * worker sets and the proxy computes from the same key, so it is never sent anywhere.
 */
#ifndef ISOFORGE_CONSOLE_TOKEN_H
#define ISOFORGE_CONSOLE_TOKEN_H

#include <time.h>

#include "base/util.h"

struct config;

#define CONSOLE_TOKEN_MAX	2048	/* a longer token is refused unread */

/* What a valid token says (strings owned; free with console_target_clear). */
struct console_target {
	char	*build_id;
	char	*vnc_host;
	int	 vnc_port;
	time_t	 expiry;
	char	*nonce;		/* makes each token unique (single use is kept by nonce) */
};

/*
 * The [console] key of cfg, else one derived from [keystone_authtoken] password (as
 * [builds] chain_key is), so the API, the proxy and every worker agree without a new
 * setting. Caller frees with console_key_free.
 */
char	*console_key(const struct config *cfg);
/* Wipes and frees a key (NULL is fine) and NULLs the pointer. */
void	 console_key_free(char **key);

/*
 * A token for the console of build_id at vnc_host:vnc_port, valid until expiry (unix time):
 * base64url(JSON {"b","h","p","e","n"}) "." base64url(HMAC-SHA256(key, first part)).
 * Caller frees. NULL with err on bad arguments.
 */
char	*console_token_mint(const char *key, const char *build_id, const char *vnc_host,
	    int vnc_port, time_t expiry, struct err *);
/*
 * Checks token's signature with key and that it has not expired at now; fills out (caller
 * clears with console_target_clear). Returns 0, or -1 with err (ERR_AUTH: bad signature,
 * expired; ERR_INVAL: not a token). The messages never hold the token.
 */
int	 console_token_check(const char *key, const char *token, time_t now,
	    struct console_target *out, struct err *);
void	 console_target_clear(struct console_target *);

/*
 * The VNC password of build_id: the first 8 characters of
 * base64url(HMAC-SHA256(key, "vnc:" + build_id)). Caller frees (wipe it first:
 * console_key_free does).
 */
char	*console_vnc_password(const char *key, const char *build_id);

/* base_url "/vnc_lite.html?path=websockify%3Ftoken%3D" token; caller frees. */
char	*console_url(const char *base_url, const char *token);

/* base64url without padding of n bytes; caller frees. */
char	*console_b64url(const unsigned char *, size_t n);
/* Decodes base64url (no padding, no other characters); caller frees; NULL when not. */
unsigned char *console_b64url_decode(const char *, size_t len, size_t *outlen);

#endif
