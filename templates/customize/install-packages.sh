#!/bin/sh
# install-packages.sh — installs the packages named in ISOFORGE_PACKAGES (space-separated)
# with the guest's own package manager: apt-get (Debian, Ubuntu), dnf or yum (RHEL family),
# zypper (SUSE), apk (Alpine). Fails when none is named, a name looks wrong, or the install
# fails; the package manager's output is the build's log.
set -eu
pkgs=${ISOFORGE_PACKAGES:-}
[ -n "$pkgs" ] || { echo "install-packages.sh: no packages named (ISOFORGE_PACKAGES)" >&2; exit 2; }
for p in $pkgs; do
	case $p in
	-*|*[!A-Za-z0-9.+:_~=-]*)
		echo "install-packages.sh: not a package name: '$p'" >&2; exit 2;;
	esac
done
if command -v apt-get >/dev/null 2>&1; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get -q update
	# shellcheck disable=SC2086 # one word per package
	apt-get -q -y --no-install-recommends install $pkgs
	apt-get -q clean
elif command -v dnf >/dev/null 2>&1; then
	dnf -y install $pkgs
	dnf clean all
elif command -v yum >/dev/null 2>&1; then
	yum -y install $pkgs
	yum clean all
elif command -v zypper >/dev/null 2>&1; then
	zypper --non-interactive install $pkgs
elif command -v apk >/dev/null 2>&1; then
	apk add --no-cache $pkgs
else
	echo "install-packages.sh: no package manager found (apt-get, dnf, yum, zypper, apk)" >&2
	exit 3
fi
echo "install-packages.sh: installed $pkgs"
