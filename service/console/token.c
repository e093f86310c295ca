/* token.c — console tokens and VNC passwords: HMAC-SHA256 with the [console] key. */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "service/common/config.h"
#include "service/console/token.h"
#include "base/log.h"
#include "base/util.h"

static const char b64url_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

char *
console_b64url(const unsigned char *p, size_t n)
{
	char		*out, *o;
	size_t		 i;
	uint32_t	 v;

	out = o = xmalloc((n + 2) / 3 * 4 + 1);
	for (i = 0; i + 2 < n; i += 3) {
		v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		*o++ = b64url_chars[v >> 18 & 63];
		*o++ = b64url_chars[v >> 12 & 63];
		*o++ = b64url_chars[v >> 6 & 63];
		*o++ = b64url_chars[v & 63];
	}
	if (n - i == 1) {
		v = (uint32_t)p[i] << 16;
		*o++ = b64url_chars[v >> 18 & 63];
		*o++ = b64url_chars[v >> 12 & 63];
	} else if (n - i == 2) {
		v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		*o++ = b64url_chars[v >> 18 & 63];
		*o++ = b64url_chars[v >> 12 & 63];
		*o++ = b64url_chars[v >> 6 & 63];
	}
	*o = '\0';
	return out;
}

static int
b64url_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

unsigned char *
console_b64url_decode(const char *s, size_t len, size_t *outlen)
{
	unsigned char	*out;
	size_t		 i, n = 0;
	uint32_t	 acc = 0;
	int		 bits = 0, v;

	if (len % 4 == 1)
		return NULL;
	out = xmalloc(len / 4 * 3 + 3);
	for (i = 0; i < len; i++) {
		if ((v = b64url_value(s[i])) < 0) {
			free(out);
			return NULL;
		}
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[n++] = (unsigned char)(acc >> bits & 0xff);
		}
	}
	/* the unused low bits of the last character must be zero (one encoding per value) */
	if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) {
		free(out);
		return NULL;
	}
	*outlen = n;
	return out;
}

static void
hmac_sha256(const char *key, const void *data, size_t n, unsigned char out[32])
{
	unsigned int	 len = 32;

	if (HMAC(EVP_sha256(), key, (int)strlen(key), data, n, out, &len) == NULL || len != 32)
		fatalx("HMAC-SHA256 failed");
}

char *
console_key(const struct config *cfg)
{
	unsigned char	 k[32];
	const char	*secret;
	char		*hex;
	unsigned int	 n = sizeof(k);

	if (cfg->console_key != NULL)
		return xstrdup(cfg->console_key);
	/* derived like chain_key, with its own label: one secret, two unrelated keys */
	secret = cfg->password != NULL ? cfg->password : "";
	if (HMAC(EVP_sha256(), "isoforge console", 16, (const unsigned char *)secret,
	    strlen(secret), k, &n) == NULL)
		fatalx("HMAC-SHA256 failed");
	hex = xmalloc(2 * sizeof(k) + 1);
	util_hex(k, sizeof(k), hex);
	explicit_bzero(k, sizeof(k));
	return hex;
}

void
console_key_free(char **key)
{
	if (*key == NULL)
		return;
	explicit_bzero(*key, strlen(*key));
	free(*key);
	*key = NULL;
}

char *
console_vnc_password(const char *key, const char *build_id)
{
	unsigned char	 mac[32];
	char		*msg, *b64, *pw;

	msg = xasprintf("vnc:%s", build_id);
	hmac_sha256(key, msg, strlen(msg), mac);
	free(msg);
	b64 = console_b64url(mac, sizeof(mac));
	pw = xstrndup(b64, 8);
	explicit_bzero(mac, sizeof(mac));
	explicit_bzero(b64, strlen(b64));
	free(b64);
	return pw;
}

char *
console_token_mint(const char *key, const char *build_id, const char *vnc_host, int vnc_port,
    time_t expiry, struct err *err)
{
	unsigned char	 nonce[16], mac[32];
	json_t		*o;
	char		*js = NULL, *payload = NULL, *sig = NULL, *n64, *tok = NULL;

	if (key == NULL || *key == '\0' || build_id == NULL || *build_id == '\0' ||
	    vnc_host == NULL || *vnc_host == '\0' || vnc_port < 1 || vnc_port > 65535) {
		err_set(err, ERR_INVAL, "console token: a key, build id, VNC host and port are "
		    "required");
		return NULL;
	}
	util_random(nonce, sizeof(nonce));
	n64 = console_b64url(nonce, sizeof(nonce));
	o = json_pack("{s:s, s:s, s:i, s:I, s:s}", "b", build_id, "h", vnc_host, "p", vnc_port,
	    "e", (json_int_t)expiry, "n", n64);
	free(n64);
	if (o == NULL || (js = json_dumps(o, JSON_COMPACT)) == NULL) {
		err_set(err, ERR_INVAL, "console token: build id or host is not valid UTF-8");
		goto cleanup;
	}
	payload = console_b64url((const unsigned char *)js, strlen(js));
	hmac_sha256(key, payload, strlen(payload), mac);
	sig = console_b64url(mac, sizeof(mac));
	tok = xasprintf("%s.%s", payload, sig);
cleanup:
	json_decref(o);
	free(js);
	free(payload);
	free(sig);
	return tok;
}

int
console_token_check(const char *key, const char *token, time_t now,
    struct console_target *out, struct err *err)
{
	unsigned char	 mac[32], *sig = NULL, *js = NULL;
	const char	*dot, *b, *h, *n;
	size_t		 len, siglen, jslen;
	json_t		*o = NULL, *p, *e;
	json_error_t	 jerr;
	int		 rc = -1;

	memset(out, 0, sizeof(*out));
	if (token == NULL || (len = strlen(token)) == 0 || len > CONSOLE_TOKEN_MAX ||
	    (dot = strchr(token, '.')) == NULL || dot == token) {
		err_set(err, ERR_INVAL, "console token: malformed");
		goto cleanup;
	}
	if ((sig = console_b64url_decode(dot + 1, strlen(dot + 1), &siglen)) == NULL ||
	    siglen != sizeof(mac)) {
		err_set(err, ERR_INVAL, "console token: malformed signature");
		goto cleanup;
	}
	/* the signature first: nothing of an unsigned payload is looked at */
	hmac_sha256(key, token, (size_t)(dot - token), mac);
	if (CRYPTO_memcmp(mac, sig, sizeof(mac)) != 0) {
		err_set(err, ERR_AUTH, "console token: bad signature");
		goto cleanup;
	}
	if ((js = console_b64url_decode(token, (size_t)(dot - token), &jslen)) == NULL ||
	    (o = json_loadb((const char *)js, jslen, JSON_REJECT_DUPLICATES, &jerr)) == NULL ||
	    !json_is_object(o)) {
		err_set(err, ERR_INVAL, "console token: malformed payload");
		goto cleanup;
	}
	b = json_string_value(json_object_get(o, "b"));
	h = json_string_value(json_object_get(o, "h"));
	n = json_string_value(json_object_get(o, "n"));
	p = json_object_get(o, "p");
	e = json_object_get(o, "e");
	if (b == NULL || *b == '\0' || h == NULL || *h == '\0' || n == NULL || *n == '\0' ||
	    !json_is_integer(p) || json_integer_value(p) < 1 || json_integer_value(p) > 65535 ||
	    !json_is_integer(e)) {
		err_set(err, ERR_INVAL, "console token: incomplete payload");
		goto cleanup;
	}
	if ((json_int_t)now >= json_integer_value(e)) {
		err_set(err, ERR_AUTH, "console token of build %s: expired", b);
		goto cleanup;
	}
	out->build_id = xstrdup(b);
	out->vnc_host = xstrdup(h);
	out->vnc_port = (int)json_integer_value(p);
	out->expiry = (time_t)json_integer_value(e);
	out->nonce = xstrdup(n);
	rc = 0;
cleanup:
	json_decref(o);
	free(sig);
	free(js);
	return rc;
}

void
console_target_clear(struct console_target *t)
{
	free(t->build_id);
	free(t->vnc_host);
	free(t->nonce);
	memset(t, 0, sizeof(*t));
}

char *
console_url(const char *base_url, const char *token)
{
	size_t	 n = strlen(base_url);

	/* a base URL given with its trailing slash makes no "//" */
	while (n > 0 && base_url[n - 1] == '/')
		n--;
	return xasprintf("%.*s/vnc_lite.html?path=websockify%%3Ftoken%%3D%s", (int)n, base_url,
	    token);
}
