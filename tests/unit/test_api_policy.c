/* test_api_policy.c — isoforge-api's role lists: whole names only, spaces and commas. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "service/api/api.h"

static void
test_policy_roles(void **state)
{
	char	*reader[] = { "reader", NULL };
	char	*member[] = { "member", "reader", NULL };
	char	*adminish[] = { "administrator", "read", NULL };
	char	*none[] = { NULL };

	(void)state;
	assert_true(api_policy_allows("reader,member,admin", reader));
	assert_false(api_policy_allows("member,admin", reader));
	assert_true(api_policy_allows("member,admin", member));
	assert_true(api_policy_allows(" admin , member ", member));
	/* a name is a whole name: neither a prefix nor a longer one matches */
	assert_false(api_policy_allows("admin", adminish));
	assert_false(api_policy_allows("reader", adminish));
	assert_false(api_policy_allows("", member));
	assert_false(api_policy_allows("reader", none));
	assert_false(api_policy_allows("reader", NULL));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_policy_roles),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
