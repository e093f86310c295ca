/* qemuimg.h — qemu-img as a child process: pure argv builders, and the functions that run them. */
#ifndef ISOFORGE_QEMUIMG_H
#define ISOFORGE_QEMUIMG_H

#include <signal.h>

#include <jansson.h>

#include "base/util.h"

/*
 * Argv builders: pure, NULL-terminated vectors of newly allocated strings, argv[0] "qemu-img";
 * the caller frees with qemuimg_argv_free.
 */
/* qemu-img create -q -f qcow2 PATH SIZE */
char	**qemuimg_create_argv(const char *path, unsigned long long size_bytes);
/* qemu-img info --output=json [-U] PATH ; -U (--force-share) reads an image in use */
char	**qemuimg_info_argv(const char *path, int force_share);
/* qemu-img convert -p [-f SRC_FMT] -O qcow2 [-c] SRC DST ; src_fmt NULL lets qemu-img probe */
char	**qemuimg_convert_argv(const char *src, const char *src_fmt, const char *dst, int compress);
/* qemu-img compare -q A B  (exit 0 identical, 1 different) */
char	**qemuimg_compare_argv(const char *a, const char *b);
void	  qemuimg_argv_free(char ***);

/* Parses one line of `qemu-img convert -p` ("    (12.34/100%)"); -1 when it is not one. */
double	  qemuimg_parse_progress(const char *line);

/*
 * The doers. Errors carry qemu-img's own stderr ("Failed to get shared "write" lock");
 * a missing input is ERR_NOTFOUND naming the file.
 */
/* qemu-img's version line ("qemu-img version 7.2.0 ..."): it is there and runs; caller frees. */
char	 *qemuimg_version(struct err *);
/* Creates a new qcow2 image of size_bytes (virtual) at path; an existing file is an error. */
int	  qemuimg_create(const char *path, unsigned long long size_bytes, struct err *);
/* qemu-img info as JSON, with --force-share (works while a VM has it open, values may then
 * be stale). *info is a new reference; the caller json_decref()s it. */
int	  qemuimg_info(const char *path, json_t **info, struct err *);
/*
 * Converts src to a qcow2 image at dst ([-c]: compressed). Writes a temporary file next to dst
 * (".<name>.part-XXXXXX"), fsyncs it and renames it to dst only on success: dst is either the
 * whole image or untouched. progress (may be NULL) gets 0..100 as qemu-img reports it.
 */
int	  qemuimg_convert(const char *src, const char *dst, int compress,
	    void (*progress)(void *arg, double pct), void *arg, struct err *);
/* qemuimg_convert that also stops (ERR_CANCELLED) once cancel_fd (an eventfd or a pipe;
 * -1: none) is readable, and after timeout_s (0: none). durable 0: no fsync — for a work
 * file that a crash of the host makes worthless anyway (a build's snapshot is converted again
 * when the build resumes; whoever keeps it, e.g. the local store, makes it durable). */
int	  qemuimg_convert_ex(const char *src, const char *dst, int compress,
	    void (*progress)(void *arg, double pct), void *arg,
	    int cancel_fd, double timeout_s, int durable, struct err *);
/* Compares the guest-visible contents of two images: *same is 1 or 0. */
int	  qemuimg_compare(const char *a, const char *b, int *same, struct err *);

#endif
