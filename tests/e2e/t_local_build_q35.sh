#!/usr/bin/env bash
# t_local_build_q35.sh — `isoforge local build` on q35 (SATA CD-ROMs): the test installer installs onto the
# fresh virtio root disk and powers off; the registered image has Nova's and the lineage
# properties (and none isoforge must never write), matches its record's hashes, nothing of the
# build is left, and the image booted alone is the installed system, not the ISO.
. "$(dirname "$0")/local-lib.sh"

check_local_build q35 sata
echo PASS
