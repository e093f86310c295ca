/* virtd.h — a private libvirtd for one command (the local build when no libvirt URI is set). */
#ifndef ISOFORGE_VIRTD_H
#define ISOFORGE_VIRTD_H

#include "base/util.h"

struct virtd;

/*
 * Starts libvirtd in the foreground in its own mount namespace (unshare(CLONE_NEWNS), no
 * shell): statedir's etc/, lib/, log/ are bind-mounted over /etc/libvirt, /var/lib/libvirt,
 * /var/log/libvirt, cachedir over /var/cache/libvirt (kept between runs: qemu capabilities),
 * statedir's run/ over /run (kept across a restart of libvirtd on the same statedir, so
 * running guests are found again); qemu runs as root without a security driver or cgroups. libvirtd runs
 * under a small reaper process (a child subreaper) so guests are reaped at once. Waits until
 * the socket accepts connections (timeout_s). Needs root. Caller stops it with virtd_stop.
 */
struct virtd	*virtd_start(const char *statedir, const char *cachedir, double timeout_s,
		    struct err *);
/* The URI to connect to: qemu+unix:///system?socket=STATEDIR/libvirt-sock. */
const char	*virtd_uri(const struct virtd *);
/* Stops libvirtd (SIGTERM, then SIGKILL after a few seconds), waits for it, frees. */
void		 virtd_stop(struct virtd **);

#endif
