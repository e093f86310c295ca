/* ini.h — a small INI parser for operator-edited files (OS profiles, isoforge.conf). */
#ifndef ISOFORGE_INI_H
#define ISOFORGE_INI_H

#include "base/util.h"

/*
 * The format, line by line:
 *   [section]            starts a section (keys before any section have section "")
 *   key = value          key: letters, digits, '_', '-', '.'; value: the rest, trimmed
 *   # comment, ; comment whole-line comments; also inline after whitespace ("a = 1  # x")
 *   key = "a # b "       a double-quoted value keeps '#', ';' and spaces; \" and \\ escape
 * Blank lines are ignored; CRLF line ends are accepted.
 */

/*
 * Calls cb for each "key = value" line with its section ("" before any [section]) and
 * 1-based line number; a syntax error fills err with "FILE:LINE: what" (ERR_INVAL).
 * cb returns 0, or -1 after filling err (e.g. an unknown key, naming FILE:LINE).
 * filename may be NULL ("<string>"). Returns 0, or -1 at the first error (syntax or cb).
 */
int	ini_parse(const char *text, const char *filename,
	    int (*cb)(void *arg, const char *section, const char *key, const char *value,
	        const char *filename, int line, struct err *err),
	    void *arg, struct err *err);

/* Helpers for callbacks: parse a value, filling err with "FILE:LINE: key: ..." on failure. */
int	ini_value_bool(const char *value, int *out, const char *filename, int line,
	    const char *key, struct err *err);
int	ini_value_uint(const char *value, unsigned long min, unsigned long max,
	    unsigned long *out, const char *filename, int line, const char *key, struct err *err);

#endif
