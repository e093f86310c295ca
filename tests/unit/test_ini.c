/* test_ini.c — the INI parser: sections, comments, quoting, errors with FILE:LINE. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "base/ini.h"
#include "base/util.h"

/* Collects "section|key|value|line;" for each call. */
static int
collect(void *arg, const char *section, const char *key, const char *value,
    const char *filename, int line, struct err *err)
{
	struct buf	*b = arg;

	(void)filename;
	(void)err;
	buf_printf(b, "%s|%s|%s|%d;", section, key, value, line);
	return 0;
}

/* Refuses the key "bad", naming FILE:LINE as callbacks should. */
static int
refuse_bad(void *arg, const char *section, const char *key, const char *value,
    const char *filename, int line, struct err *err)
{
	(void)arg;
	(void)section;
	(void)value;
	if (strcmp(key, "bad") == 0) {
		err_set(err, ERR_INVAL, "%s:%d: unknown key '%s'", filename, line, key);
		return -1;
	}
	return 0;
}

/* Fails without filling err. */
static int
refuse_silently(void *arg, const char *section, const char *key, const char *value,
    const char *filename, int line, struct err *err)
{
	(void)arg; (void)section; (void)key; (void)value; (void)filename; (void)line; (void)err;
	return -1;
}

static void
test_ini_basic(void **state)
{
	struct buf	 b;
	struct err	 e;
	const char	*text =
	    "# a profile\n"
	    "top = 1\n"
	    "\n"
	    "[disk]\r\n"
	    "  bus   =   virtio  \n"
	    "; comment\n"
	    "path = /a/b c#d   # inline comment\n"
	    "empty =\n"
	    "[ net.x ]\n"
	    "model = \"e1000 # not a comment \\\" \\\\\"  ; comment\n"
	    "semi = a;b\n";

	(void)state;
	buf_init(&b);
	err_clear(&e);
	assert_int_equal(ini_parse(text, "p.conf", collect, &b, &e), 0);
	assert_int_equal(e.kind, ERR_NONE);
	assert_string_equal(b.data,
	    "|top|1|2;"
	    "disk|bus|virtio|5;"
	    "disk|path|/a/b c#d|7;"
	    "disk|empty||8;"
	    "net.x|model|e1000 # not a comment \" \\|10;"
	    "net.x|semi|a;b|11;");
	buf_free(&b);
}

static void
test_ini_empty(void **state)
{
	struct buf	 b;
	struct err	 e;

	(void)state;
	buf_init(&b);
	err_clear(&e);
	assert_int_equal(ini_parse("", "x", collect, &b, &e), 0);
	assert_int_equal(ini_parse("\n\n# only\n", NULL, collect, &b, &e), 0);
	assert_int_equal(b.len, 0);
	buf_free(&b);
}

/* Each syntax error names the file and the line. */
static void
test_ini_errors(void **state)
{
	static const struct {
		const char	*text;
		const char	*msg;
	} cases[] = {
		{ "a = 1\nnot a pair\n", "f.conf:2: expected 'key = value' or '[section]'" },
		{ "[sec\n", "f.conf:1: missing ']' in section header" },
		{ "\n\n[]\n", "f.conf:3: empty section name" },
		{ "[a] b\n", "f.conf:1: text after section header" },
		{ "[a b]\n", "f.conf:1: bad character ' ' in section name" },
		{ " = x\n", "f.conf:1: missing key before '='" },
		{ "disk bus = x\n", "f.conf:1: bad key 'disk bus' (letters, digits, '_', '-', '.')" },
		{ "a = \"open\n", "f.conf:1: unterminated quoted value" },
		{ "a = \"x\" y\n", "f.conf:1: text after the closing quote" },
		{ "a = \"\\n\"\n", "f.conf:1: bad escape in quoted value (only \\\" and \\\\)" },
	};
	struct buf	 b;
	struct err	 e;
	size_t		 i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		buf_init(&b);
		err_clear(&e);
		assert_int_equal(ini_parse(cases[i].text, "f.conf", collect, &b, &e), -1);
		assert_int_equal(e.kind, ERR_INVAL);
		assert_string_equal(e.msg, cases[i].msg);
		buf_free(&b);
	}
	err_clear(&e);
	assert_int_equal(ini_parse("junk\n", NULL, collect, NULL, &e), -1);
	assert_string_equal(e.msg, "<string>:1: expected 'key = value' or '[section]'");
}

/* A callback's error is passed through; one that forgets err still gets FILE:LINE. */
static void
test_ini_cb_errors(void **state)
{
	struct err	 e;

	(void)state;
	err_clear(&e);
	assert_int_equal(ini_parse("ok = 1\n\nbad = 2\nok = 3\n", "p.conf", refuse_bad, NULL,
	    &e), -1);
	assert_string_equal(e.msg, "p.conf:3: unknown key 'bad'");
	err_clear(&e);
	assert_int_equal(ini_parse("\nx = 1\n", "p.conf", refuse_silently, NULL, &e), -1);
	assert_string_equal(e.msg, "p.conf:2: x: rejected");
}

static void
test_ini_values(void **state)
{
	struct err	 e;
	unsigned long	 n = 0;
	int		 v = -1;

	(void)state;
	err_clear(&e);
	assert_int_equal(ini_value_bool("Yes", &v, "f", 1, "k", &e), 0);
	assert_int_equal(v, 1);
	assert_int_equal(ini_value_bool("off", &v, "f", 1, "k", &e), 0);
	assert_int_equal(v, 0);
	assert_int_equal(ini_value_bool("maybe", &v, "f", 4, "tpm", &e), -1);
	assert_string_equal(e.msg, "f:4: tpm: 'maybe' is not yes or no");

	err_clear(&e);
	assert_int_equal(ini_value_uint("2048", 1, 4096, &n, "f", 1, "ram", &e), 0);
	assert_int_equal(n, 2048);
	assert_int_equal(ini_value_uint("-1", 1, 4096, &n, "f", 2, "ram", &e), -1);
	assert_string_equal(e.msg, "f:2: ram: '-1' is not a number");
	err_clear(&e);
	assert_int_equal(ini_value_uint("12x", 1, 4096, &n, "f", 2, "ram", &e), -1);
	assert_string_equal(e.msg, "f:2: ram: '12x' is not a number");
	err_clear(&e);
	assert_int_equal(ini_value_uint("0", 1, 4096, &n, "f", 3, "ram", &e), -1);
	assert_string_equal(e.msg, "f:3: ram: 0 is out of range 1..4096");
	err_clear(&e);
	assert_int_equal(ini_value_uint("99999999999999999999999", 1, 4096, &n, "f", 3, "ram",
	    &e), -1);
	assert_int_equal(e.kind, ERR_INVAL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ini_basic),
		cmocka_unit_test(test_ini_empty),
		cmocka_unit_test(test_ini_errors),
		cmocka_unit_test(test_ini_cb_errors),
		cmocka_unit_test(test_ini_values),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
