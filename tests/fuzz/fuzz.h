/*
 * fuzz.h — shared by the libFuzzer targets of tests/fuzz/ (fuzz_*.c, built by `make fuzzers`
 * into build/fuzz/): the entry point's prototype and a NUL-terminated copy of the input for
 * the parsers that take C strings.
 */
#ifndef ISOFORGE_FUZZ_H
#define ISOFORGE_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The input as a C string (cut at its first NUL, as a file read into a string would be). */
static inline char *
fuzz_cstring(const uint8_t *data, size_t size)
{
	char	*s = xmalloc(size + 1);

	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

#endif
