/* test_chain.c — who holds a version of a chain: the pure part of service/pipeline/chain. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

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
test_holds(void **state)
{
	json_t	*a;

	(void)state;
	a = json_array();
	json_array_append_new(a, img("m", "2026-01-01T00:00:05Z", "3", "queued"));
	json_array_append_new(a, img("k", "2026-01-01T00:00:04Z", "4", "active"));
	/* alone on 3 */
	assert_true(chain_holds_version(a, "m", "2026-01-01T00:00:05Z", 3));
	/* an earlier claim of 3 wins */
	json_array_append_new(a, img("z", "2026-01-01T00:00:04Z", "3", "queued"));
	assert_false(chain_holds_version(a, "m", "2026-01-01T00:00:05Z", 3));
	assert_true(chain_holds_version(a, "z", "2026-01-01T00:00:04Z", 3));
	/* same second: the lower id wins, and both sides agree */
	json_array_append_new(a, img("a", "2026-01-01T00:00:04Z", "3", "queued"));
	assert_false(chain_holds_version(a, "z", "2026-01-01T00:00:04Z", 3));
	assert_true(chain_holds_version(a, "a", "2026-01-01T00:00:04Z", 3));
	json_decref(a);
	/* a killed image holds nothing */
	a = json_array();
	json_array_append_new(a, img("a", "2026-01-01T00:00:01Z", "3", "killed"));
	assert_true(chain_holds_version(a, "m", "2026-01-01T00:00:05Z", 3));
	json_decref(a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_max),
		cmocka_unit_test(test_holds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
