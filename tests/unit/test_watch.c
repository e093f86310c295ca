/* test_watch.c — the serial console's last line (escapes, control characters, long lines, no
 * newline at the end, the file's tail), the progress text, and the screenshot's PPM → PNG. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "base/util.h"
#include "drivers/png.h"
#include "service/pipeline/watch.h"

/* The last line of the NUL-terminated s, into a static buffer of WATCH_LINE_MAX. */
static const char *
last(const char *s)
{
	static char	 out[WATCH_LINE_MAX];
	size_t		 n = watch_last_line(s, strlen(s), out, sizeof(out));

	assert_int_equal(n, strlen(out));
	return out;
}

static void
test_last_line_plain(void **state)
{
	(void)state;
	assert_string_equal(last(""), "");
	assert_string_equal(last("\n\n\r\n"), "");
	assert_string_equal(last("one\ntwo\n"), "two");
	/* empty and blank lines at the end do not count */
	assert_string_equal(last("one\ntwo\n\n   \n\t\n"), "two");
	/* no newline at the end: the line being written (a prompt) is the last one */
	assert_string_equal(last("one\nContinue? [y/N] "), "Continue? [y/N]");
	/* CRLF, and CR redraws of one line: what is shown last */
	assert_string_equal(last("a\r\nb\r\n"), "b");
	assert_string_equal(last("progress 10%\rprogress 20%\rprogress 30%"), "progress 30%");
	/* spaces trimmed, tabs are spaces */
	assert_string_equal(last("   indented\tword  \n"), "indented word");
}

static void
test_last_line_escapes(void **state)
{
	(void)state;
	/* CSI: colours, cursor moves, erase; ESC x and charset designations */
	assert_string_equal(last("\033[1;31mred\033[0m text\033[K\n"), "red text");
	assert_string_equal(last("\033[2J\033[H\033[?25lscreen\033[?25h"), "screen");
	assert_string_equal(last("\033(Bplain\033=\033>"), "plain");
	/* OSC (a window title) up to BEL or ST */
	assert_string_equal(last("\033]0;title\007after"), "after");
	assert_string_equal(last("\033]2;title\033\\after2"), "after2");
	/* a line of escapes only is empty: the one before it stays the last */
	assert_string_equal(last("kept\n\033[0m\033[K\n"), "kept");
	/* control characters go; a backspace takes the character before it */
	assert_string_equal(last("a\001b\002c\177d\n"), "abcd");
	assert_string_equal(last("Loading |\b/\b-\b\\"), "Loading \\");
	assert_string_equal(last("\xc3\xa9t\xc3\xa9\b\b\n"), "\xc3\xa9");
	/* a sequence cut at the end of the buffer */
	assert_string_equal(last("text\033["), "text");
	assert_string_equal(last("text\033"), "text");
}

static void
test_last_line_utf8(void **state)
{
	(void)state;
	/* valid UTF-8 kept, invalid bytes dropped (the line goes into JSON events) */
	assert_string_equal(last("Gr\xc3\xbc\xc3\x9f" "e \xe2\x9c\x93\n"), "Gr\xc3\xbc\xc3\x9f" "e \xe2\x9c\x93");
	assert_string_equal(last("a\xff\xfe" "b\xc3\n"), "ab");
	assert_string_equal(last("x\xed\xa0\x80y\xc0\xafz"), "xyz");	/* surrogate, overlong */
}

static void
test_last_line_long(void **state)
{
	char	 big[4000], out[WATCH_LINE_MAX], small[8];
	size_t	 n, i;

	(void)state;
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	n = watch_last_line(big, strlen(big), out, sizeof(out));
	assert_int_equal(n, sizeof(out) - 1);
	assert_int_equal(strlen(out), sizeof(out) - 1);
	assert_string_equal(out + n - 3, "...");
	/* a cut never splits a character: 2-byte characters only */
	for (i = 0; i + 1 < sizeof(big) - 1; i += 2) {
		big[i] = '\xc3';
		big[i + 1] = '\xa9';
	}
	big[i] = '\0';
	n = watch_last_line(big, strlen(big), out, sizeof(out));
	assert_true(n <= sizeof(out) - 1);
	assert_string_equal(out + n - 3, "...");
	for (i = 0; i < n - 3; i += 2)
		assert_memory_equal(out + i, "\xc3\xa9", 2);
	assert_int_equal((n - 3) % 2, 0);
	/* a long line before a short last one does not spill over */
	memset(big, 'y', 3000);
	memcpy(big + 3000, "\nshort\n", 8);
	assert_string_equal(last(big), "short");
	/* a tiny output buffer */
	n = watch_last_line("abcdefghij\n", 11, small, sizeof(small));
	assert_int_equal(n, strlen(small));
	assert_true(n < sizeof(small));
	assert_string_equal(small, "abcd...");
}

static void
test_serial_tail_file(void **state)
{
	char		 path[] = "/tmp/isoforge-test-watch.XXXXXX", out[WATCH_LINE_MAX];
	long long	 size;
	FILE		*f;
	int		 fd, i;

	(void)state;
	assert_int_equal(watch_serial_tail("/nonexistent/console.log", out, sizeof(out), &size),
	    -1);
	assert_string_equal(out, "");
	assert_int_equal(size, -1);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	assert_int_equal(watch_serial_tail(path, out, sizeof(out), &size), 0);
	assert_int_equal(size, 0);
	assert_string_equal(out, "");
	/* far more than the tail that is read: the last line is still found */
	for (i = 0; i < 5000; i++)
		fprintf(f, "\033[32mline %d\033[0m\r\n", i);
	fprintf(f, "Partitioning disks \033[7m 42%% \033[0m");
	fflush(f);
	assert_int_equal(watch_serial_tail(path, out, sizeof(out), &size), 0);
	assert_true(size > WATCH_TAIL);
	assert_int_equal(size, ftell(f));
	assert_string_equal(out, "Partitioning disks  42%");
	fclose(f);
	unlink(path);
}

static void
test_progress_text(void **state)
{
	char	 s[32], *t;

	(void)state;
	watch_duration(45.2, s, sizeof(s));
	assert_string_equal(s, "45 s");
	watch_duration(725, s, sizeof(s));
	assert_string_equal(s, "12m05s");
	watch_duration(3 * 3600 + 125, s, sizeof(s));
	assert_string_equal(s, "3h02m");
	watch_bytes(0, s, sizeof(s));
	assert_string_equal(s, "0 B");
	watch_bytes(12 * 1024 * 1024 + 100 * 1024, s, sizeof(s));
	assert_string_equal(s, "12.1 MiB");
	watch_bytes(1288490189LL, s, sizeof(s));
	assert_string_equal(s, "1.2 GiB");
	t = watch_progress_text(725, 1288490189LL, "Installing the base system");
	assert_string_equal(t, "12m05s, 1.2 GiB written to the root disk, console: "
	    "\"Installing the base system\"");
	free(t);
	t = watch_progress_text(3, -1, "");
	assert_string_equal(t, "3 s, disk writes unknown, console: nothing yet");
	free(t);
}

/* Big-endian 32 bits. */
static uint32_t
be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void
test_png_from_ppm(void **state)
{
	struct buf		 ppm, png;
	struct err		 e;
	const unsigned char	*p;
	unsigned char		 raw[2 * (1 + 3 * 3)];
	uLongf			 rawlen = sizeof(raw);
	size_t			 off;
	uint32_t		 len;
	unsigned		 x, y;

	(void)state;
	/* 3x2, with a comment in the header */
	buf_init(&ppm);
	buf_puts(&ppm, "P6\n# qemu\n3 2\n255\n");
	for (y = 0; y < 2; y++)
		for (x = 0; x < 3; x++) {
			unsigned char px[3] = { (unsigned char)(x * 80), (unsigned char)(y * 200), 7 };

			buf_append(&ppm, px, 3);
		}
	err_clear(&e);
	assert_int_equal(png_from_ppm(ppm.data, ppm.len, &png, &e), 0);
	p = (const unsigned char *)png.data;
	assert_memory_equal(p, "\x89PNG\r\n\x1a\n", 8);
	/* IHDR first: 3x2, 8-bit RGB; each chunk's CRC right */
	assert_int_equal(be32(p + 8), 13);
	assert_memory_equal(p + 12, "IHDR", 4);
	assert_int_equal(be32(p + 16), 3);
	assert_int_equal(be32(p + 20), 2);
	assert_int_equal(p[24], 8);
	assert_int_equal(p[25], 2);
	for (off = 8; off < png.len; off += 12 + len) {
		len = be32(p + off);
		assert_true(off + 12 + len <= png.len);
		assert_int_equal(crc32(crc32(0L, Z_NULL, 0), p + off + 4, len + 4),
		    be32(p + off + 8 + len));
		if (memcmp(p + off + 4, "IDAT", 4) == 0) {
			/* the pixels, each row after its filter byte 0 */
			assert_int_equal(uncompress(raw, &rawlen, p + off + 8, len), Z_OK);
			assert_int_equal(rawlen, sizeof(raw));
			assert_int_equal(raw[0], 0);
			assert_int_equal(raw[1 + 3 * 2], 160);
			assert_int_equal(raw[10 + 1 + 1], 200);
		}
	}
	assert_int_equal(off, png.len);
	assert_memory_equal(p + png.len - 8, "IEND", 4);
	buf_free(&png);

	/* not a P6, a short one, a header out of bounds: refused */
	assert_int_equal(png_from_ppm("P3\n1 1\n255\n0 0 0", 16, &png, &e), -1);
	err_clear(&e);
	assert_int_equal(png_from_ppm(ppm.data, ppm.len - 1, &png, &e), -1);
	assert_non_null(strstr(e.msg, "bytes of pixels"));
	err_clear(&e);
	assert_int_equal(png_from_ppm("P6 99999 1 255\n", 15, &png, &e), -1);
	err_clear(&e);
	assert_int_equal(png_from_ppm("P6 1 1 65535\n\0\0\0\0\0\0", 19, &png, &e), -1);
	buf_free(&ppm);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_last_line_plain),
		cmocka_unit_test(test_last_line_escapes),
		cmocka_unit_test(test_last_line_utf8),
		cmocka_unit_test(test_last_line_long),
		cmocka_unit_test(test_serial_tail_file),
		cmocka_unit_test(test_progress_text),
		cmocka_unit_test(test_png_from_ppm),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
