/*
 * media.h — reading install ISOs and writing answer media: files out of an ISO (libarchive,
 * no loop mount), a copy of an initrd with one file appended as a cpio newc member, and small
 * answer volumes (ISO 9660 with a label, via xorriso; FAT floppy images, via mtools).
 */
#ifndef ISOFORGE_MEDIA_H
#define ISOFORGE_MEDIA_H

#include <stddef.h>

#include "base/util.h"

/*
 * The content of the file at path (no leading '/' needed; case-insensitive, as ISO 9660
 * without Rock Ridge upper-cases names) inside the ISO iso, at most max bytes; *len gets its
 * size. ERR_NOTFOUND when the ISO has no such file. Caller frees.
 */
char	*media_iso_read(const char *iso, const char *path, size_t max, size_t *len,
	    struct err *);
/* Copies the file at path inside iso to dest (mode 0600, written atomically). */
int	 media_iso_extract(const char *iso, const char *path, const char *dest, struct err *);

/* One cpio newc member: name (no leading '/'), data of len bytes, mode (e.g. 0644). */
struct media_cpio_file {
	const char	*name;
	const void	*data;
	size_t		 len;
	unsigned	 mode;
};
/* The cpio newc archive of files (and the TRAILER!!! member), padded to 4 bytes. Pure.
 * *len gets its size; caller frees. */
void	*media_cpio_newc(const struct media_cpio_file *files, size_t n, size_t *len);
/*
 * dest = a copy of initrd (compressed or not) padded with zeros to a multiple of 4 bytes,
 * then the cpio newc archive of files: the kernel unpacks the concatenation, so the files
 * appear at the root of the initramfs over the initrd's own. dest is written atomically,
 * mode 0600.
 */
int	 media_initrd_append(const char *initrd, const char *dest,
	    const struct media_cpio_file *files, size_t n, struct err *);

/* dest = an ISO 9660 image (Joliet, Rock Ridge) labelled label holding the files of dir
 * (xorriso as an argv child). */
int	 media_make_iso(const char *dir, const char *label, const char *dest, struct err *);
/* dest = a 1.44 MB FAT floppy image labelled label holding the files of dir (mtools). */
int	 media_make_floppy(const char *dir, const char *label, const char *dest, struct err *);

#endif
