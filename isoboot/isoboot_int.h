/* isoboot_int.h — shared between isoboot's own files, not part of its API. */
#ifndef ISOFORGE_ISOBOOT_INT_H
#define ISOFORGE_ISOBOOT_INT_H

/* 1 when m names a q35 machine ("q35", "pc-q35-7.2"). */
int	isoboot_machine_is_q35(const char *m);

#endif
