/*
 * fuzz_config.c — the INI parser (base/ini.c) with its value helpers, and isoforged's
 * configuration (service/common/config.c) on the same text: config_parse, and config_dump of
 * what it accepts.
 */
#include <stdio.h>

#include "base/ini.h"
#include "service/common/config.h"
#include "tests/fuzz/fuzz.h"

/* ini_parse callback: every value through the helpers; "stop" keys end the parse with an error. */
static int
fuzz_ini_cb(void *arg, const char *section, const char *key, const char *value,
    const char *filename, int line, struct err *err)
{
	unsigned long	 u;
	int		 b;
	size_t		*n = arg;

	(*n)++;
	if (section == NULL || key == NULL || value == NULL || *key == '\0')
		abort();
	ini_value_bool(value, &b, filename, line, key, err);
	ini_value_uint(value, 0, 1000, &u, filename, line, key, err);
	if (strcmp(key, "stop") == 0) {
		err_set(err, ERR_INVAL, "%s:%d: stop", filename, line);
		return -1;
	}
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config	*c;
	struct err	 err;
	char		*text = fuzz_cstring(data, size);
	size_t		 n = 0;
	FILE		*null;

	err_clear(&err);
	if (ini_parse(text, "f.conf", fuzz_ini_cb, &n, &err) != 0 && err.msg[0] == '\0')
		abort();
	err_clear(&err);
	if ((c = config_parse(text, "isoforge.conf", &err)) != NULL) {
		if ((null = fopen("/dev/null", "w")) != NULL) {
			config_dump(c, null);
			fclose(null);
		}
		config_free(&c);
	} else if (err.msg[0] == '\0')
		abort();
	free(text);
	return 0;
}
