/* test_request.c — contract v1 build requests: every kind of bad field is named. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "service/pipeline/request.h"
#include "base/util.h"

#define ID1	"2f1d6a53-3f5c-4a7e-9c1e-0d3c2b1a0f99"
#define ID2	"0b6a2f43-9e1c-4d7a-8f3b-5c2d1e0a9b88"

static const char *full_ok =
    "{\"schema\": \"isoforge.build/2\", \"build_id\": \"" ID1 "\", \"trust_id\": \"0f3a9c\","
    " \"name\": \"win2019-de\", \"iso_image\": \"" ID2 "\", \"virtio_win_image\": \"auto\","
    " \"flavor\": \"m1.large\", \"os\": {\"type\": \"windows\", \"distro\": \"win2k19\","
    " \"version\": \"2019\"}, \"firmware\": \"uefi\","
    " \"install\": {\"mode\": \"unattended\", \"timeout_s\": 3600}, \"chain\": \"win2019-de\","
    " \"parent_image\": null, \"image\": {\"visibility\": \"shared\", \"compress\": true,"
    " \"properties\": {\"hw_qemu_guest_agent\": \"yes\"}, \"tags\": [\"nightly\"]}}";

/* Parses s; returns the request or NULL with *msg (static copy) holding the error. */
static struct build_request *
parse(const char *s, int mode, struct err *e)
{
	err_clear(e);
	return request_parse(s, strlen(s), mode, e);
}

static void
test_request_full_ok(void **state)
{
	struct build_request	*r;
	struct err		 e;
	json_t			*j, *again_j;
	char			*dump;
	struct build_request	*again;

	(void)state;
	r = parse(full_ok, REQUEST_FULL, &e);
	assert_non_null(r);
	assert_string_equal(r->name, "win2019-de");
	assert_string_equal(r->trust_id, "0f3a9c");
	assert_string_equal(r->iso_image, ID2);
	assert_string_equal(r->virtio_win_image, "auto");
	assert_string_equal(r->os_type, "windows");
	assert_string_equal(r->os_distro, "win2k19");
	assert_string_equal(r->os_version, "2019");
	assert_string_equal(r->firmware, "uefi");
	assert_string_equal(r->install_mode, "unattended");
	assert_int_equal(r->timeout_s, 3600);
	assert_null(r->parent_image);
	assert_string_equal(r->visibility, "shared");
	assert_int_equal(r->compress, 1);
	assert_string_equal(json_string_value(json_object_get(r->properties,
	    "hw_qemu_guest_agent")), "yes");
	assert_int_equal(json_array_size(r->tags), 1);

	/* the canonical form parses back to the same thing */
	j = request_to_json(r);
	dump = json_dumps(j, JSON_SORT_KEYS);
	again = parse(dump, REQUEST_FULL, &e);
	assert_non_null(again);
	again_j = request_to_json(again);
	assert_true(json_equal(j, again_j));
	json_decref(again_j);
	json_decref(j);
	free(dump);
	request_free(&again);
	request_free(&r);
	assert_null(r);
	request_free(&r);
	request_free(NULL);
}

/* Defaults are filled in; partial mode accepts a near-empty request. */
static void
test_request_defaults(void **state)
{
	struct build_request	*r;
	struct err		 e;
	json_t			*j;

	(void)state;
	r = parse("{\"name\": \"x\"}", REQUEST_PARTIAL, &e);
	assert_non_null(r);
	assert_null(r->schema);
	assert_null(r->build_id);
	assert_null(r->virtio_win_image);
	assert_string_equal(r->install_mode, "interactive");
	assert_int_equal(r->timeout_s, REQUEST_TIMEOUT_DEFAULT);
	assert_string_equal(r->visibility, "private");
	assert_int_equal(r->compress, 0);
	j = request_to_json(r);
	assert_string_equal(json_string_value(json_object_get(j, "schema")), REQUEST_SCHEMA);
	assert_true(json_is_null(json_object_get(j, "virtio_win_image")));
	json_decref(j);
	request_free(&r);

	r = parse("{}", REQUEST_PARTIAL, &e);
	assert_non_null(r);
	request_free(&r);
}

/* Full mode names every missing field at once. */
static void
test_request_full_missing(void **state)
{
	struct err	 e;

	(void)state;
	assert_null(parse("{}", REQUEST_FULL, &e));
	assert_int_equal(e.kind, ERR_INVAL);
	assert_string_equal(e.msg, "schema: missing; trust_id: missing; name: missing; "
	    "iso_image: missing; flavor: missing");
}

/* One bad field at a time: the message names it and says what is wrong. */
static void
test_request_bad_fields(void **state)
{
	static const struct {
		const char	*json;
		const char	*msg;
	} cases[] = {
		{ "{\"name\": 5}", "name: must be a string" },
		{ "{\"name\": \"\"}", "name: empty" },
		{ "{\"name\": \"a\\nb\"}", "name: contains a control character" },
		{ "{\"name\": \"a\\u0000b\"}", NULL },	/* jansson refuses NUL: not JSON */
		{ "{\"build_id\": \"123\"}", "build_id: must be a UUID" },
		{ "{\"iso_image\": \"cirros\"}", "iso_image: must be a UUID" },
		{ "{\"virtio_win_image\": \"latest\"}", "virtio_win_image: must be a UUID" },
		{ "{\"virtio_win_image\": 7}", "virtio_win_image: must be a string" },
		{ "{\"parent_image\": \"x\"}", "parent_image: must be a UUID" },
		{ "{\"flavor\": [\"m1\"]}", "flavor: must be a string" },
		{ "{\"os\": \"windows\"}", "os: must be an object" },
		{ "{\"os\": {\"type\": \"beos\"}}", "os.type: must be one of windows|linux|other" },
		{ "{\"os\": {\"version\": 2019}}", "os.version: must be a string" },
		{ "{\"os\": {\"arch\": \"x86_64\"}}", "os.arch: unknown field" },
		{ "{\"firmware\": \"coreboot\"}", "firmware: must be one of bios|uefi" },
		{ "{\"install\": {\"mode\": \"auto\"}}",
		    "install.mode: must be one of interactive|unattended" },
		{ "{\"install\": {\"timeout_s\": \"1h\"}}", "install.timeout_s: must be an integer" },
		{ "{\"install\": {\"timeout_s\": 5}}",
		    "install.timeout_s: must be within 60..604800 seconds" },
		{ "{\"install\": {\"timeout_s\": 99999999999}}",
		    "install.timeout_s: must be within 60..604800 seconds" },
		{ "{\"chain\": \"a/b\"}",
		    "chain: may only hold letters, digits, '.', '_' and '-' (at most 128)" },
		{ "{\"chain\": \"../etc\"}",
		    "chain: may only hold letters, digits, '.', '_' and '-' (at most 128)" },
		{ "{\"image\": []}", "image: must be an object" },
		{ "{\"image\": {\"visibility\": \"everyone\"}}",
		    "image.visibility: must be one of private|shared|community|public" },
		{ "{\"image\": {\"compress\": \"yes\"}}", "image.compress: must be true or false" },
		{ "{\"image\": {\"properties\": []}}", "image.properties: must be an object" },
		{ "{\"image\": {\"properties\": {\"os_glance_x\": \"1\"}}}",
		    "image.properties.os_glance_x: reserved (set by Glance or isoforge)" },
		{ "{\"image\": {\"properties\": {\"isoforge_chain\": \"1\"}}}",
		    "image.properties.isoforge_chain: reserved (set by Glance or isoforge)" },
		{ "{\"image\": {\"properties\": {\"base_image_ref\": \"1\"}}}",
		    "image.properties.base_image_ref: reserved (set by Glance or isoforge)" },
		{ "{\"image\": {\"properties\": {\"k\": 1}}}",
		    "image.properties.k: must be a string" },
		{ "{\"image\": {\"tags\": \"a\"}}", "image.tags: must be an array of strings" },
		{ "{\"image\": {\"tags\": [\"a\", 2]}}",
		    "image.tags: tag 1 must be a string of 1..255 bytes without control characters" },
		{ "{\"image\": {\"size\": 1}}", "image.size: unknown field" },
		{ "{\"colour\": \"blue\"}", "colour: unknown field" },
		{ "{\"trust_id\": 1}", "trust_id: must be a string" },
		{ "{\"trust_id\": \"a/b\"}", "trust_id: must be a Keystone trust id (letters, digits, "
		    "'_' and '-')" },
	};
	struct build_request	*r;
	struct err		 e;
	size_t			 i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		r = parse(cases[i].json, REQUEST_PARTIAL, &e);
		if (r != NULL)
			fail_msg("accepted: %s", cases[i].json);
		assert_int_equal(e.kind, ERR_INVAL);
		if (cases[i].msg != NULL && strcmp(e.msg, cases[i].msg) != 0)
			fail_msg("%s: got '%s', want '%s'", cases[i].json, e.msg, cases[i].msg);
	}
}

/* Several bad fields: all of them in one message. */
static void
test_request_many_bad(void **state)
{
	struct err	 e;

	(void)state;
	assert_null(parse("{\"schema\": \"isoforge.build/2\", \"trust_id\": \"t\", \"name\": \"n\","
	    " \"iso_image\": \"" ID2 "\", \"os\": {\"type\": \"dos\"}, \"firmware\": 1}",
	    REQUEST_FULL, &e));
	assert_string_equal(e.msg, "flavor: missing; os.type: must be one of "
	    "windows|linux|other; firmware: must be a string");
}

static void
test_request_not_json(void **state)
{
	struct err	 e;

	(void)state;
	assert_null(parse("{\"name\": ", REQUEST_PARTIAL, &e));
	assert_int_equal(e.kind, ERR_INVAL);
	assert_true(strncmp(e.msg, "request: not valid JSON: line 1: ", 33) == 0);
	assert_null(parse("[1, 2]", REQUEST_PARTIAL, &e));
	assert_string_equal(e.msg, "request: must be a JSON object");
	assert_null(parse("{\"name\": \"a\", \"name\": \"b\"}", REQUEST_PARTIAL, &e));
	assert_true(strstr(e.msg, "duplicate") != NULL);
}

static void
test_request_unknown_schema(void **state)
{
	struct err	 e;

	(void)state;
	assert_null(parse("{\"schema\": \"isoforge.build/3\", \"whatever\": 1}", REQUEST_FULL,
	    &e));
	assert_string_equal(e.msg, "schema: not isoforge.build/2 (unknown schema)");
	assert_null(parse("{\"schema\": \"gAAAA-looks-like-a-token\"}", REQUEST_PARTIAL, &e));
	assert_int_equal(e.kind, ERR_INVAL);
	assert_null(strstr(e.msg, "gAAAA"));	/* the value is never repeated */
	assert_null(parse("{\"schema\": 1}", REQUEST_PARTIAL, &e));
	assert_string_equal(e.msg, "schema: must be a string");
}

/* Contract v1 and any token field are refused, the token never repeated; a refused v2
 * request's trust id is found for deleting the trust. */
/* request_trust_id of a string. */
static char *
trust_of(const char *s)
{
	return request_trust_id(s, strlen(s));
}

static void
test_request_v1_and_tokens_refused(void **state)
{
	struct err	 e;
	char		*t;

	(void)state;
	assert_null(parse("{\"schema\": \"isoforge.build/1\", \"token\": \"gAAAAB-secret\", "
	    "\"name\": \"n\", \"iso_image\": \"" ID2 "\", \"flavor\": \"f\"}", REQUEST_FULL, &e));
	assert_string_equal(e.msg, "schema: isoforge.build/1 is refused: contract v1 carried the "
	    "user's token; send isoforge.build/2 with a trust_id");
	assert_null(parse("{\"schema\": \"isoforge.build/2\", \"trust_id\": \"t\", "
	    "\"token\": \"gAAAAB-secret\", \"name\": \"n\", \"iso_image\": \"" ID2 "\", "
	    "\"flavor\": \"f\"}", REQUEST_FULL, &e));
	assert_string_equal(e.msg, "token: refused: isoforge.build/2 carries no token (the API "
	    "makes a Keystone trust and sends its trust_id)");
	/* also in partial mode (isoforge plan, the API's bodies), whatever its type */
	assert_null(parse("{\"token\": 1}", REQUEST_PARTIAL, &e));
	assert_non_null(strstr(e.msg, "token: refused"));

	t = trust_of("{\"schema\": \"isoforge.build/2\", \"trust_id\": \"abc123\", "
	    "\"name\": 5}");
	assert_non_null(t);
	assert_string_equal(t, "abc123");
	free(t);
	/* not for v1, a token field, a bad id, or what is not JSON */
	assert_null(trust_of("{\"schema\": \"isoforge.build/1\", \"trust_id\": \"a\"}"));
	assert_null(trust_of("{\"schema\": \"isoforge.build/2\", \"trust_id\": \"a\", "
	    "\"token\": \"x\"}"));
	assert_null(trust_of("{\"schema\": \"isoforge.build/2\", \"trust_id\": \"../a\"}"));
	assert_null(trust_of("{\"schema\": \"isoforge.build/2\", \"trust_id\": \"a"));
}

/* Bodies over 64 KiB are refused before parsing. */
static void
test_request_oversized(void **state)
{
	struct buf		 b;
	struct err		 e;
	struct build_request	*r;

	(void)state;
	buf_init(&b);
	buf_puts(&b, "{\"name\": \"x\", \"image\": {\"tags\": [");
	while (b.len < REQUEST_MAX_BODY)
		buf_puts(&b, "\"abcdefghijklmnop\",");
	buf_puts(&b, "\"end\"]}}");
	err_clear(&e);
	assert_null(request_parse(b.data, b.len, REQUEST_PARTIAL, &e));
	assert_string_equal(e.msg, "request: larger than 65536 bytes");
	buf_free(&b);

	/* a long trust id within the body limit is still refused by the field limit */
	buf_init(&b);
	buf_puts(&b, "{\"trust_id\": \"");
	while (b.len < 9000)
		buf_puts(&b, "t");
	buf_puts(&b, "\"}");
	err_clear(&e);
	r = request_parse(b.data, b.len, REQUEST_PARTIAL, &e);
	assert_null(r);
	assert_string_equal(e.msg, "trust_id: longer than 64 bytes");
	buf_free(&b);
}

/* REQUEST_API: what a user posts to isoforge-api; the API's own fields are unknown fields. */
static void
test_request_api_mode(void **state)
{
	struct build_request	*r;
	struct err		 e;

	(void)state;
	r = parse("{\"name\": \"n\", \"iso_image\": \"" ID2 "\", \"flavor\": \"m1\"}",
	    REQUEST_API, &e);
	assert_non_null(r);
	assert_null(r->trust_id);
	assert_null(r->schema);
	assert_string_equal(r->install_mode, "interactive");
	request_free(&r);
	assert_null(parse("{\"iso_image\": \"" ID2 "\"}", REQUEST_API, &e));
	assert_string_equal(e.msg, "name: missing; flavor: missing");
	assert_null(parse(full_ok, REQUEST_API, &e));
	assert_string_equal(e.msg, "schema: unknown field; build_id: unknown field; "
	    "trust_id: unknown field");
	assert_null(parse("{\"name\": \"n\", \"iso_image\": \"" ID2 "\", \"flavor\": "
	    "\"m1\", \"token\": \"gAAAAsecret\"}", REQUEST_API, &e));
	assert_string_equal(e.msg, "token: unknown field");
	assert_null(strstr(e.msg, "gAAAAsecret"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_full_ok),
		cmocka_unit_test(test_request_defaults),
		cmocka_unit_test(test_request_full_missing),
		cmocka_unit_test(test_request_bad_fields),
		cmocka_unit_test(test_request_many_bad),
		cmocka_unit_test(test_request_not_json),
		cmocka_unit_test(test_request_unknown_schema),
		cmocka_unit_test(test_request_v1_and_tokens_refused),
		cmocka_unit_test(test_request_oversized),
		cmocka_unit_test(test_request_api_mode),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
