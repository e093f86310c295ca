/* watch.c — the serial console's last line, and the install's progress text. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"
#include "service/pipeline/watch.h"

/* A line being cleaned: at most cap-1 bytes kept (the rest counted as cut). */
struct watch_line {
	char	*s;
	size_t	 len, cap;
	int	 cut;
};

static void
line_add(struct watch_line *l, const unsigned char *c, size_t n)
{
	/* no leading spaces */
	if (l->len == 0 && n == 1 && c[0] == ' ')
		return;
	if (l->len + n >= l->cap) {
		l->cut = 1;
		return;
	}
	memcpy(l->s + l->len, c, n);
	l->len += n;
}

/* Backspace: the last character (a whole UTF-8 sequence) goes. */
static void
line_back(struct watch_line *l)
{
	if (l->cut || l->len == 0)
		return;
	while (l->len > 0 && ((unsigned char)l->s[l->len - 1] & 0xc0) == 0x80)
		l->len--;
	if (l->len > 0)
		l->len--;
}

/* The line ends: when it has something, it becomes the last one. */
static void
line_end(struct watch_line *l, char *out, size_t outsz, size_t *outlen)
{
	size_t	 n = l->len, keep;

	while (n > 0 && l->s[n - 1] == ' ')
		n--;
	if (n > 0) {
		keep = n;
		if (l->cut) {
			/* room for "...": back to a character boundary */
			keep = outsz > 4 && n > outsz - 4 ? outsz - 4 : outsz > 4 ? n : 0;
			while (keep > 0 && keep < n && ((unsigned char)l->s[keep] & 0xc0) == 0x80)
				keep--;
		}
		memcpy(out, l->s, keep);
		if (l->cut && keep + 3 < outsz) {
			memcpy(out + keep, "...", 3);
			keep += 3;
		}
		out[keep] = '\0';
		*outlen = keep;
	}
	l->len = 0;
	l->cut = 0;
}

/* The length of the valid UTF-8 sequence at p (at most left bytes), 0 when invalid. */
static size_t
utf8_len(const unsigned char *p, size_t left)
{
	size_t	 n, i;

	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4;
	else
		return 0;
	if (n > left)
		return 0;
	for (i = 1; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	/* no overlong 3- and 4-byte forms, no surrogates, nothing past U+10FFFF */
	if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] > 0x9f) ||
	    (p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] > 0x8f))
		return 0;
	return n;
}

/* Past the escape sequence that starts at buf[i] (ESC): CSI, OSC and the string ones, ESC x. */
static size_t
skip_escape(const unsigned char *p, size_t len, size_t i)
{
	i++;
	if (i >= len)
		return i;
	if (p[i] == '[') {
		/* CSI: parameters and intermediates, then a final byte 0x40–0x7e */
		for (i++; i < len; i++)
			if (p[i] >= 0x40 && p[i] <= 0x7e)
				return i + 1;
		return i;
	}
	if (p[i] == ']' || p[i] == 'P' || p[i] == 'X' || p[i] == '^' || p[i] == '_') {
		/* a string, up to BEL or ST (ESC \) */
		for (i++; i < len; i++) {
			if (p[i] == 0x07)
				return i + 1;
			if (p[i] == 0x1b && i + 1 < len && p[i + 1] == '\\')
				return i + 2;
		}
		return i;
	}
	/* ESC, intermediates 0x20–0x2f, a final byte */
	while (i < len && p[i] >= 0x20 && p[i] <= 0x2f)
		i++;
	return i < len ? i + 1 : i;
}

size_t
watch_last_line(const char *buf, size_t len, char *out, size_t outsz)
{
	const unsigned char	*p = (const unsigned char *)buf;
	struct watch_line	 l;
	size_t			 i = 0, n, outlen = 0;
	unsigned char		 sp = ' ';

	if (outsz == 0)
		return 0;
	out[0] = '\0';
	memset(&l, 0, sizeof(l));
	l.cap = outsz;
	l.s = xmalloc(outsz);
	while (i < len) {
		if (p[i] == '\n' || p[i] == '\r') {
			line_end(&l, out, outsz, &outlen);
			i++;
		} else if (p[i] == 0x1b)
			i = skip_escape(p, len, i);
		else if (p[i] == '\t') {
			line_add(&l, &sp, 1);
			i++;
		} else if (p[i] == '\b') {
			line_back(&l);
			i++;
		} else if (p[i] < 0x20 || p[i] == 0x7f)
			i++;
		else if (p[i] < 0x80) {
			line_add(&l, p + i, 1);
			i++;
		} else if ((n = utf8_len(p + i, len - i)) > 0) {
			line_add(&l, p + i, n);
			i += n;
		} else
			i++;
	}
	line_end(&l, out, outsz, &outlen);
	free(l.s);
	return outlen;
}

int
watch_serial_tail(const char *path, char *out, size_t outsz, long long *size)
{
	struct stat	 st;
	char		*buf = NULL;
	off_t		 from;
	ssize_t		 n;
	size_t		 got = 0;
	int		 fd, rc = -1;

	if (outsz > 0)
		out[0] = '\0';
	*size = -1;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	if (fstat(fd, &st) == -1)
		goto cleanup;
	*size = (long long)st.st_size;
	from = st.st_size > WATCH_TAIL ? st.st_size - WATCH_TAIL : 0;
	buf = xmalloc(WATCH_TAIL);
	while (got < WATCH_TAIL) {
		n = pread(fd, buf + got, WATCH_TAIL - got, from + (off_t)got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			goto cleanup;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	watch_last_line(buf, got, out, outsz);
	rc = 0;
cleanup:
	free(buf);
	close(fd);
	return rc;
}

void
watch_duration(double s, char *out, size_t outsz)
{
	long	 t = s > 0 ? (long)(s + 0.5) : 0;

	if (t < 60)
		snprintf(out, outsz, "%ld s", t);
	else if (t < 3600)
		snprintf(out, outsz, "%ldm%02lds", t / 60, t % 60);
	else
		snprintf(out, outsz, "%ldh%02ldm", t / 3600, (t % 3600) / 60);
}

void
watch_bytes(long long n, char *out, size_t outsz)
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB" };
	double	 v;
	size_t	 u;

	if (n < 0) {
		snprintf(out, outsz, "unknown");
		return;
	}
	if (n < 1024) {
		snprintf(out, outsz, "%lld B", n);
		return;
	}
	v = (double)n / 1024;
	for (u = 0; v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0]); u++)
		v /= 1024;
	snprintf(out, outsz, "%.1f %s", v, units[u]);
}

char *
watch_progress_text(double elapsed_s, long long written, const char *line)
{
	char	 d[32], b[32];

	watch_duration(elapsed_s, d, sizeof(d));
	watch_bytes(written, b, sizeof(b));
	if (line != NULL && line[0] != '\0')
		return xasprintf("%s, %s%s, console: \"%s\"", d, written < 0 ?
		    "disk writes " : b, written < 0 ? "unknown" : " written to the root disk",
		    line);
	return xasprintf("%s, %s%s, console: nothing yet", d, written < 0 ? "disk writes " : b,
	    written < 0 ? "unknown" : " written to the root disk");
}
