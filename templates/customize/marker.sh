#!/bin/sh
# marker.sh — leaves a marker in the image: /etc/isoforge-customized holds when the build
# customized it (and its build id, when isoforge passed ISOFORGE_BUILD_ID). Proves the
# customizing step ran; harmless to keep.
set -eu
stamp=$(date -u +%Y-%m-%dT%H:%M:%SZ)
echo "customized-at=$stamp build=${ISOFORGE_BUILD_ID:-unknown}" > /etc/isoforge-customized
chmod 644 /etc/isoforge-customized
sync
echo "marker.sh: wrote /etc/isoforge-customized ($stamp)"
