/* png.c — a P6 PPM to an 8-bit RGB PNG (zlib for the IDAT and the CRCs). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "drivers/png.h"

/* Skips whitespace and '#' comments of a PPM header. */
static size_t
ppm_skip(const unsigned char *p, size_t len, size_t i)
{
	while (i < len) {
		if (p[i] == '#') {
			while (i < len && p[i] != '\n')
				i++;
		} else if (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r')
			i++;
		else
			break;
	}
	return i;
}

/* A decimal header field of at most 5 digits; -1 when none. */
static long
ppm_number(const unsigned char *p, size_t len, size_t *i)
{
	long	 n = 0;
	int	 digits = 0;

	*i = ppm_skip(p, len, *i);
	while (*i < len && p[*i] >= '0' && p[*i] <= '9' && digits < 6) {
		n = n * 10 + (p[*i] - '0');
		(*i)++;
		digits++;
	}
	return digits == 0 || digits > 5 ? -1 : n;
}

int
png_parse_ppm(const void *ppm, size_t len, unsigned *w, unsigned *h,
    const unsigned char **pixels, struct err *e)
{
	const unsigned char	*p = ppm;
	size_t			 i = 2;
	long			 width, height, maxval;

	if (len < 2 || p[0] != 'P' || p[1] != '6') {
		err_set(e, ERR_INVAL, "screenshot: not a binary PPM (P6)");
		return -1;
	}
	width = ppm_number(p, len, &i);
	height = ppm_number(p, len, &i);
	maxval = ppm_number(p, len, &i);
	if (width < 1 || height < 1 || width > PNG_MAX_SIDE || height > PNG_MAX_SIDE ||
	    maxval != 255) {
		err_set(e, ERR_INVAL, "screenshot: a PPM header out of bounds (%ldx%ld, maxval %ld)",
		    width, height, maxval);
		return -1;
	}
	/* exactly one whitespace byte ends the header */
	if (i >= len || (p[i] != ' ' && p[i] != '\t' && p[i] != '\n' && p[i] != '\r')) {
		err_set(e, ERR_INVAL, "screenshot: a PPM header without its end");
		return -1;
	}
	i++;
	if (len - i < (size_t)width * (size_t)height * 3) {
		err_set(e, ERR_INVAL, "screenshot: a PPM of %ldx%ld with %zu bytes of pixels", width,
		    height, len - i);
		return -1;
	}
	*w = (unsigned)width;
	*h = (unsigned)height;
	*pixels = p + i;
	return 0;
}

static void
png_be32(struct buf *out, uint32_t v)
{
	unsigned char	 b[4] = { v >> 24, v >> 16, v >> 8, v };

	buf_append(out, b, 4);
}

/* A chunk: length, type, data, CRC of type and data. */
static void
png_chunk(struct buf *out, const char type[4], const void *data, size_t len)
{
	uLong	 crc = crc32(0L, Z_NULL, 0);

	png_be32(out, (uint32_t)len);
	buf_append(out, type, 4);
	if (len > 0)
		buf_append(out, data, len);
	crc = crc32(crc, (const Bytef *)type, 4);
	if (len > 0)
		crc = crc32(crc, data, (uInt)len);
	png_be32(out, (uint32_t)crc);
}

int
png_from_ppm(const void *ppm, size_t len, struct buf *out, struct err *e)
{
	static const unsigned char sig[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
	const unsigned char	*px;
	unsigned char		 ihdr[13], *raw = NULL, *z = NULL;
	unsigned		 w, h, y;
	size_t			 row, rawlen;
	uLongf			 zlen;
	int			 rc = -1;

	buf_init(out);
	if (png_parse_ppm(ppm, len, &w, &h, &px, e) == -1)
		return -1;
	/* each row: filter type 0, then its RGB bytes */
	row = (size_t)w * 3;
	rawlen = (row + 1) * h;
	raw = xmalloc(rawlen);
	for (y = 0; y < h; y++) {
		raw[y * (row + 1)] = 0;
		memcpy(raw + y * (row + 1) + 1, px + y * row, row);
	}
	zlen = compressBound((uLong)rawlen);
	z = xmalloc(zlen);
	if (compress2(z, &zlen, raw, (uLong)rawlen, 6) != Z_OK) {
		err_set(e, ERR_INTERNAL, "screenshot: zlib compress failed");
		goto cleanup;
	}
	buf_append(out, sig, sizeof(sig));
	ihdr[0] = w >> 24; ihdr[1] = w >> 16; ihdr[2] = w >> 8; ihdr[3] = w;
	ihdr[4] = h >> 24; ihdr[5] = h >> 16; ihdr[6] = h >> 8; ihdr[7] = h;
	ihdr[8] = 8;		/* bit depth */
	ihdr[9] = 2;		/* colour type: RGB */
	ihdr[10] = 0;		/* deflate */
	ihdr[11] = 0;		/* filter method 0 */
	ihdr[12] = 0;		/* no interlace */
	png_chunk(out, "IHDR", ihdr, sizeof(ihdr));
	png_chunk(out, "IDAT", z, zlen);
	png_chunk(out, "IEND", NULL, 0);
	rc = 0;
cleanup:
	if (rc == -1)
		buf_free(out);
	free(raw);
	free(z);
	return rc;
}
