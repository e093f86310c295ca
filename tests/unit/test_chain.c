/* test_chain.c — the pure part of service/pipeline/chain: the highest version, the keyed ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "service/pipeline/chain.h"

static json_t *
img(const char *id, const char *created, const char *version, const char *status)
{
	return json_pack("{s:s, s:s, s:s?, s:s}", "id", id, "created_at", created,
	    "isoforge_version", version, "status", status);
}

static void
test_max(void **state)
{
	json_t	*a;

	(void)state;
	a = json_array();
	assert_int_equal(chain_max_version(a), 0);
	json_array_append_new(a, img("a", "2026-01-01T00:00:00Z", "2", "active"));
	json_array_append_new(a, img("b", "2026-01-01T00:00:01Z", "10", "killed"));
	json_array_append_new(a, img("c", "2026-01-01T00:00:02Z", "9", "active"));
	json_array_append_new(a, img("d", "2026-01-01T00:00:02Z", "x", "active"));
	json_array_append_new(a, img("e", "2026-01-01T00:00:02Z", NULL, "active"));
	/* a killed image's number is not given again */
	assert_int_equal(chain_max_version(a), 10);
	json_decref(a);
}

static void
test_version_id(void **state)
{
	struct chain_key	 k = { (const unsigned char *)"secret", 6 };
	struct chain_key	 k2 = { (const unsigned char *)"secreT", 6 };
	char			 a[37], b[37];

	(void)state;
	chain_version_id(&k, "p1", "win2019", 3, a);
	assert_true(util_is_uuid(a));
	assert_int_equal(a[14], '8');			/* RFC 9562 version 8 */
	assert_non_null(strchr("89ab", a[19]));		/* variant 10 */
	chain_version_id(&k, "p1", "win2019", 3, b);
	assert_string_equal(a, b);			/* every worker computes the same */
	chain_version_id(&k, "p1", "win2019", 4, b);
	assert_string_not_equal(a, b);
	chain_version_id(&k, "p2", "win2019", 3, b);	/* another project */
	assert_string_not_equal(a, b);
	chain_version_id(&k, "p1", "win2018", 3, b);
	assert_string_not_equal(a, b);
	/* no ambiguity where the fields meet */
	chain_version_id(&k, "p1w", "in2019", 3, b);
	assert_string_not_equal(a, b);
	chain_version_id(&k, "p1", "win201", 93, b);
	assert_string_not_equal(a, b);
	chain_version_id(&k2, "p1", "win2019", 3, b);	/* without the key, another id */
	assert_string_not_equal(a, b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_max),
		cmocka_unit_test(test_version_id),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
