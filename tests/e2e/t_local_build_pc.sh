#!/usr/bin/env bash
# t_local_build_pc.sh — `isoforge local build` on pc (i440fx): the test installer installs onto the
# fresh virtio root disk and powers off; the registered image has Nova's and the lineage
# properties (and none isoforge must never write), matches its record's hashes, nothing of the
# build is left, and the image booted alone is the installed system, not the ISO.
. "$(dirname "$0")/local-lib.sh"

check_local_build pc ide
echo PASS
