/* test_util.c — buffers, errors, ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

static void
test_buf_grows(void **state)
{
	struct buf	 b;
	int		 i;

	(void)state;
	buf_init(&b);
	for (i = 0; i < 1000; i++)
		buf_printf(&b, "%d,", i);
	assert_int_equal(b.len, strlen(b.data));
	assert_memory_equal(b.data, "0,1,2,", 6);
	buf_free(&b);
	assert_null(b.data);
}

static void
test_err_first_wins(void **state)
{
	struct err	 e;

	(void)state;
	err_clear(&e);
	err_set(&e, ERR_NOTFOUND, "image %s", "x");
	err_set(&e, ERR_IO, "later");
	assert_int_equal(e.kind, ERR_NOTFOUND);
	assert_string_equal(e.msg, "image x");
	err_set(NULL, ERR_IO, "no crash");
}

static void
test_uuid_and_password(void **state)
{
	char	 u[37], v[37], pw[9];

	(void)state;
	util_uuid(u);
	util_uuid(v);
	assert_true(util_is_uuid(u));
	assert_string_not_equal(u, v);
	assert_int_equal(u[14], '4');
	assert_false(util_is_uuid("not-a-uuid"));
	util_password(pw, 8);
	assert_int_equal(strlen(pw), 8);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buf_grows),
		cmocka_unit_test(test_err_first_wins),
		cmocka_unit_test(test_uuid_and_password),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
