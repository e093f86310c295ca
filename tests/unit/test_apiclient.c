/* test_apiclient.c — the pure parts of the CLI's isoforge-api client: the API's error detail
 * and the endpoint as the catalog gives it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "service/cli/apiclient.h"

static void
test_error_detail(void **state)
{
	const char	*full = "{\"errors\": [{\"request_id\": \"req-1\", \"code\": "
			    "\"image-build.conflict\", \"status\": 409, \"title\": \"Conflict\", "
			    "\"detail\": \"build x is cancelled\"}]}";
	const char	*title = "{\"errors\": [{\"status\": 404, \"title\": \"Not Found\", "
			    "\"detail\": \"\"}]}";
	const char	*other = "{\"message\": \"not ours\"}";
	char		*d;

	(void)state;
	d = apiclient_error_detail(full, strlen(full));
	assert_string_equal(d, "build x is cancelled");
	free(d);
	d = apiclient_error_detail(title, strlen(title));
	assert_string_equal(d, "Not Found");
	free(d);
	assert_null(apiclient_error_detail(other, strlen(other)));
	assert_null(apiclient_error_detail("<html>", 6));
	assert_null(apiclient_error_detail(NULL, 0));
}

static void
test_base_url(void **state)
{
	static const char *const cases[][2] = {
		{ "http://h:9480", "http://h:9480" },
		{ "http://h:9480/", "http://h:9480" },
		{ "http://h:9480/v1", "http://h:9480" },
		{ "http://h:9480/v1/", "http://h:9480" },
		{ "https://h/image-build/v1", "https://h/image-build" },
		{ "https://h/image-build", "https://h/image-build" },
		{ "http://h/v10", "http://h/v10" },
	};
	size_t	 i;
	char	*u;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		u = apiclient_base_url(cases[i][0]);
		assert_string_equal(u, cases[i][1]);
		free(u);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_error_detail),
		cmocka_unit_test(test_base_url),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
