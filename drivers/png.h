/* png.h — console screenshots as PNG: libvirt hands qemu's screen over as a PPM (P6). Pure. */
#ifndef ISOFORGE_PNG_H
#define ISOFORGE_PNG_H

#include <stddef.h>

#include "base/util.h"

/* Bounds of a screenshot we convert (qemu's largest VGA modes are far below). */
#define PNG_MAX_SIDE	16384

/*
 * Parses a binary PPM (P6, maxval 255, as qemu writes; comments allowed in the header): *w, *h and
 * *pixels (RGB triplets, borrowed from ppm). -1 with the reason when it is not one.
 */
int	png_parse_ppm(const void *ppm, size_t len, unsigned *w, unsigned *h,
	    const unsigned char **pixels, struct err *);

/*
 * The PNG (8-bit RGB, zlib-compressed, filter 0) of a PPM image: out filled (caller
 * buf_free()s). -1 when ppm is not a P6 PPM.
 */
int	png_from_ppm(const void *ppm, size_t len, struct buf *out, struct err *);

#endif
