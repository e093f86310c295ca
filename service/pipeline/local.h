/* local.h — the embedded default's drivers of the pipeline (DESIGN.md "The embedded default"). */
#ifndef ISOFORGE_LOCAL_H
#define ISOFORGE_LOCAL_H

#include "service/pipeline/build.h"

/* Absolute, canonical path of an existing file (or block device) given as medium what;
 * libvirt wants absolute paths. Caller frees. */
char	*local_media_path(const char *what, const char *path, struct err *);

/* Media from local files: iso_ref and virtio_win_ref are paths; ctx unused (NULL). */
extern const struct source_ops source_file_ops;
/* Images into drivers/localstore (ctx: struct localstore *). */
extern const struct registry_ops registry_local_ops;

#endif
