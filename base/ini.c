/* ini.c — a small INI parser: sections, key = value, comments, quoted values. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/ini.h"
#include "base/util.h"

static int
ini_is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static int
ini_key_char(char c)
{
	return isalnum((unsigned char)c) || c == '_' || c == '-' || c == '.';
}

/* Trims s in place (leading and trailing white space); returns the new start. */
static char *
ini_trim(char *s)
{
	char	*end;

	while (ini_is_space(*s))
		s++;
	end = s + strlen(s);
	while (end > s && ini_is_space(end[-1]))
		*--end = '\0';
	return s;
}

/*
 * Turns the raw text after '=' into the value, in place: a double-quoted value loses its
 * quotes and escapes; otherwise an inline comment (# or ; after white space) is cut.
 * Returns 0, or -1 with err filled.
 */
static int
ini_value(char *raw, const char *fn, int line, char **out, struct err *err)
{
	char	*v, *r, *w;

	v = ini_trim(raw);
	if (*v != '"') {
		for (r = v; *r != '\0'; r++)
			if ((*r == '#' || *r == ';') && r > v && ini_is_space(r[-1])) {
				*r = '\0';
				break;
			}
		*out = ini_trim(v);
		return 0;
	}
	/* quoted: copy with escapes, then only a comment or nothing may follow */
	for (r = v + 1, w = v; *r != '"'; r++) {
		if (*r == '\0') {
			err_set(err, ERR_INVAL, "%s:%d: unterminated quoted value", fn, line);
			return -1;
		}
		if (*r == '\\') {
			if (r[1] != '"' && r[1] != '\\') {
				err_set(err, ERR_INVAL, "%s:%d: bad escape in quoted value "
				    "(only \\\" and \\\\)", fn, line);
				return -1;
			}
			r++;
		}
		*w++ = *r;
	}
	*w = '\0';
	for (r++; ini_is_space(*r); r++)
		;
	if (*r != '\0' && *r != '#' && *r != ';') {
		err_set(err, ERR_INVAL, "%s:%d: text after the closing quote", fn, line);
		return -1;
	}
	*out = v;
	return 0;
}

/* Parses text line by line and calls cb for each key; see ini.h. */
int
ini_parse(const char *text, const char *filename,
    int (*cb)(void *, const char *, const char *, const char *, const char *, int, struct err *),
    void *arg, struct err *err)
{
	char		*copy = NULL, *section = NULL, *p, *nl, *s, *eq, *key, *value, *k;
	const char	*fn = filename != NULL ? filename : "<string>";
	int		 line = 0, rc = -1;

	if (text == NULL) {
		err_set(err, ERR_INVAL, "%s: no text", fn);
		return -1;
	}
	copy = xstrdup(text);
	section = xstrdup("");
	for (p = copy; p != NULL; p = nl) {
		line++;
		nl = strchr(p, '\n');
		if (nl != NULL)
			*nl++ = '\0';
		s = ini_trim(p);
		if (*s == '\0' || *s == '#' || *s == ';')
			continue;
		if (*s == '[') {
			char	*close = strchr(s, ']'), *rest, *name;

			if (close == NULL) {
				err_set(err, ERR_INVAL, "%s:%d: missing ']' in section header",
				    fn, line);
				goto cleanup;
			}
			*close = '\0';
			rest = ini_trim(close + 1);
			if (*rest != '\0' && *rest != '#' && *rest != ';') {
				err_set(err, ERR_INVAL, "%s:%d: text after section header", fn, line);
				goto cleanup;
			}
			name = ini_trim(s + 1);
			if (*name == '\0') {
				err_set(err, ERR_INVAL, "%s:%d: empty section name", fn, line);
				goto cleanup;
			}
			for (k = name; *k != '\0'; k++)
				if (!ini_key_char(*k)) {
					err_set(err, ERR_INVAL, "%s:%d: bad character '%c' in section "
					    "name", fn, line, isprint((unsigned char)*k) ? *k : '?');
					goto cleanup;
				}
			free(section);
			section = xstrdup(name);
			continue;
		}
		eq = strchr(s, '=');
		if (eq == NULL) {
			err_set(err, ERR_INVAL, "%s:%d: expected 'key = value' or '[section]'",
			    fn, line);
			goto cleanup;
		}
		*eq = '\0';
		key = ini_trim(s);
		if (*key == '\0') {
			err_set(err, ERR_INVAL, "%s:%d: missing key before '='", fn, line);
			goto cleanup;
		}
		for (k = key; *k != '\0'; k++)
			if (!ini_key_char(*k)) {
				err_set(err, ERR_INVAL, "%s:%d: bad key '%s' (letters, digits, "
				    "'_', '-', '.')", fn, line, key);
				goto cleanup;
			}
		if (ini_value(eq + 1, fn, line, &value, err) == -1)
			goto cleanup;
		if (cb(arg, section, key, value, fn, line, err) == -1) {
			/* a callback that forgot err still yields a located error */
			err_set(err, ERR_INVAL, "%s:%d: %s: rejected", fn, line, key);
			goto cleanup;
		}
	}
	rc = 0;
cleanup:
	free(section);
	free(copy);
	return rc;
}

/* Parses yes/no, true/false, on/off, 1/0 (case-insensitive). */
int
ini_value_bool(const char *value, int *out, const char *fn, int line, const char *key,
    struct err *err)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	size_t	 i;

	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(value, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcasecmp(value, no[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	err_set(err, ERR_INVAL, "%s:%d: %s: '%s' is not yes or no", fn != NULL ? fn : "<string>",
	    line, key, value);
	return -1;
}

/* Parses a decimal unsigned number within [min, max]. */
int
ini_value_uint(const char *value, unsigned long min, unsigned long max, unsigned long *out,
    const char *fn, int line, const char *key, struct err *err)
{
	char		*end;
	unsigned long	 n;

	if (fn == NULL)
		fn = "<string>";
	if (!isdigit((unsigned char)value[0])) {
		err_set(err, ERR_INVAL, "%s:%d: %s: '%s' is not a number", fn, line, key, value);
		return -1;
	}
	errno = 0;
	n = strtoul(value, &end, 10);
	if (*end != '\0') {
		err_set(err, ERR_INVAL, "%s:%d: %s: '%s' is not a number", fn, line, key, value);
		return -1;
	}
	if (errno == ERANGE || n < min || n > max) {
		err_set(err, ERR_INVAL, "%s:%d: %s: %s is out of range %lu..%lu", fn, line, key,
		    value, min, max);
		return -1;
	}
	*out = n;
	return 0;
}
