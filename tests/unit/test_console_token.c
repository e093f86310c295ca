/* test_console_token.c — console tokens: round trip, tampering, expiry, keys; VNC passwords. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "service/common/config.h"
#include "service/console/token.h"

#define KEY	"0123456789abcdef-test-key"
#define BID	"2b0c6a8e-1f3e-4d55-9a43-0d7b6c2e9f10"

static void
test_round_trip(void **state)
{
	struct console_target	 t;
	struct err		 e;
	time_t			 now = time(NULL);
	char			*tok, *tok2;

	(void)state;
	err_clear(&e);
	tok = console_token_mint(KEY, BID, "192.0.2.5", 5901, now + 600, &e);
	assert_non_null(tok);
	assert_non_null(strchr(tok, '.'));
	assert_int_equal(strspn(tok, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789-_."), strlen(tok));
	assert_int_equal(console_token_check(KEY, tok, now, &t, &e), 0);
	assert_string_equal(t.build_id, BID);
	assert_string_equal(t.vnc_host, "192.0.2.5");
	assert_int_equal(t.vnc_port, 5901);
	assert_int_equal((long)t.expiry, (long)(now + 600));
	assert_true(strlen(t.nonce) >= 16);
	console_target_clear(&t);
	/* two tokens for the same console differ (the nonce) */
	tok2 = console_token_mint(KEY, BID, "192.0.2.5", 5901, now + 600, &e);
	assert_string_not_equal(tok, tok2);
	free(tok);
	free(tok2);
}

/* Flips one character of the payload or the signature: refused, the token not in the error. */
static void
test_tampered(void **state)
{
	struct console_target	 t;
	struct err		 e;
	time_t			 now = time(NULL);
	const char		*js;
	char			*tok, *dot, *forged, *payload;
	size_t			 i;

	(void)state;
	err_clear(&e);
	tok = console_token_mint(KEY, BID, "127.0.0.1", 5900, now + 60, &e);
	dot = strchr(tok, '.');
	for (i = 0; i < strlen(tok); i++) {
		if (tok + i == dot)
			continue;
		forged = strdup(tok);
		forged[i] = forged[i] == 'A' ? 'B' : 'A';
		err_clear(&e);
		assert_int_equal(console_token_check(KEY, forged, now, &t, &e), -1);
		assert_null(t.build_id);
		assert_null(strstr(e.msg, forged));
		free(forged);
	}
	/* a payload of one's own (another build) with the old signature */
	js = "{\"b\":\"other\",\"h\":\"127.0.0.1\",\"p\":5900,\"e\":99999999999,\"n\":\"x\"}";
	payload = console_b64url((const unsigned char *)js, strlen(js));
	forged = malloc(strlen(payload) + strlen(dot) + 1);
	memcpy(forged, payload, strlen(payload));
	memcpy(forged + strlen(payload), dot, strlen(dot) + 1);
	err_clear(&e);
	assert_int_equal(console_token_check(KEY, forged, now, &t, &e), -1);
	assert_int_equal(e.kind, ERR_AUTH);
	free(forged);
	free(payload);
	/* garbage and extremes */
	err_clear(&e);
	assert_int_equal(console_token_check(KEY, "", now, &t, &e), -1);
	err_clear(&e);
	assert_int_equal(console_token_check(KEY, "abc", now, &t, &e), -1);
	err_clear(&e);
	assert_int_equal(console_token_check(KEY, ".", now, &t, &e), -1);
	err_clear(&e);
	assert_int_equal(console_token_check(KEY, tok + (dot - tok), now, &t, &e), -1);
	free(tok);
}

/* A correctly signed payload that is not a token's is refused too. */
static void
test_signed_garbage(void **state)
{
	struct console_target	 t;
	struct err		 e;
	unsigned char		 mac[32];
	unsigned int		 n = 32;
	char			*p, *s, *tok;

	(void)state;
	p = console_b64url((const unsigned char *)"[1,2]", 5);
	HMAC(EVP_sha256(), KEY, (int)strlen(KEY), (const unsigned char *)p, strlen(p), mac, &n);
	s = console_b64url(mac, 32);
	tok = malloc(strlen(p) + strlen(s) + 2);
	snprintf(tok, strlen(p) + strlen(s) + 2, "%s.%s", p, s);
	err_clear(&e);
	assert_int_equal(console_token_check(KEY, tok, time(NULL), &t, &e), -1);
	assert_int_equal(e.kind, ERR_INVAL);
	free(p);
	free(s);
	free(tok);
}

static void
test_expired(void **state)
{
	struct console_target	 t;
	struct err		 e;
	time_t			 now = time(NULL);
	char			*tok;

	(void)state;
	err_clear(&e);
	tok = console_token_mint(KEY, BID, "127.0.0.1", 5900, now + 10, &e);
	assert_int_equal(console_token_check(KEY, tok, now + 9, &t, &e), 0);
	console_target_clear(&t);
	assert_int_equal(console_token_check(KEY, tok, now + 10, &t, &e), -1);
	assert_int_equal(e.kind, ERR_AUTH);
	assert_non_null(strstr(e.msg, "expired"));
	assert_null(strstr(e.msg, tok));
	free(tok);
}

static void
test_wrong_key(void **state)
{
	struct console_target	 t;
	struct err		 e;
	char			*tok;

	(void)state;
	err_clear(&e);
	tok = console_token_mint(KEY, BID, "127.0.0.1", 5900, time(NULL) + 60, &e);
	assert_int_equal(console_token_check("another key", tok, time(NULL), &t, &e), -1);
	assert_int_equal(e.kind, ERR_AUTH);
	free(tok);
	err_clear(&e);
	assert_null(console_token_mint(KEY, BID, "127.0.0.1", 0, time(NULL) + 60, &e));
	assert_int_equal(e.kind, ERR_INVAL);
}

/* The contract's password: 8 characters of base64url(HMAC-SHA256(key, "vnc:" id)). */
static void
test_vnc_password(void **state)
{
	unsigned char	 mac[32];
	unsigned int	 n = 32;
	char		*pw, *pw2, *b64;

	(void)state;
	HMAC(EVP_sha256(), KEY, (int)strlen(KEY), (const unsigned char *)"vnc:" BID,
	    strlen("vnc:" BID), mac, &n);
	b64 = console_b64url(mac, 32);
	assert_int_equal(strlen(b64), 43);
	pw = console_vnc_password(KEY, BID);
	assert_int_equal(strlen(pw), 8);
	assert_memory_equal(pw, b64, 8);
	pw2 = console_vnc_password(KEY, "another-build");
	assert_string_not_equal(pw, pw2);
	free(pw);
	free(pw2);
	free(b64);
	/* a known value (python3: base64.urlsafe_b64encode(hmac.new(b"k", b"vnc:b", "sha256")
	 * .digest())[:8]) */
	pw = console_vnc_password("k", "b");
	assert_string_equal(pw, "_dX8IDN-");
	free(pw);
}

static void
test_b64url(void **state)
{
	const char	*v[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
	const char	*w[] = { "", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy" };
	unsigned char	*d;
	size_t		 i, n;
	char		*s;

	(void)state;
	for (i = 0; i < 7; i++) {
		s = console_b64url((const unsigned char *)v[i], strlen(v[i]));
		assert_string_equal(s, w[i]);
		d = console_b64url_decode(s, strlen(s), &n);
		assert_non_null(d);
		assert_int_equal(n, strlen(v[i]));
		assert_memory_equal(d, v[i], n);
		free(d);
		free(s);
	}
	assert_null(console_b64url_decode("Zm9v=", 5, &n));
	assert_null(console_b64url_decode("Z", 1, &n));
	assert_null(console_b64url_decode("Zh", 2, &n));	/* non-zero spare bits */
	s = console_b64url((const unsigned char *)"\xfb\xff", 2);
	assert_string_equal(s, "-_8");
	free(s);
}

static void
test_url_and_key(void **state)
{
	struct config	*c;
	char		*u, *k, *k2;

	(void)state;
	u = console_url("http://proxy:6080/", "abc.def");
	assert_string_equal(u, "http://proxy:6080/vnc_lite.html?path=websockify%3Ftoken%3Dabc.def");
	free(u);
	c = config_defaults();
	assert_int_equal(c->console_token_ttl, 600);
	assert_int_equal(c->console_bind_port, 6080);
	assert_string_equal(c->console_novnc_dir, "/usr/share/novnc");
	c->password = strdup("service-secret");
	k = console_key(c);
	assert_int_equal(strlen(k), 64);
	free(c->password);
	c->password = strdup("another secret");
	k2 = console_key(c);
	assert_string_not_equal(k, k2);
	console_key_free(&k2);
	c->console_key = strdup("operator key");
	k2 = console_key(c);
	assert_string_equal(k2, "operator key");
	console_key_free(&k2);
	assert_null(k2);
	console_key_free(&k);
	config_free(&c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_tampered),
		cmocka_unit_test(test_signed_garbage),
		cmocka_unit_test(test_expired),
		cmocka_unit_test(test_wrong_key),
		cmocka_unit_test(test_vnc_password),
		cmocka_unit_test(test_b64url),
		cmocka_unit_test(test_url_and_key),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
