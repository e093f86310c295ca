#!/bin/sh
# generalize.sh — run last: makes the image a template rather than one machine. Removes the
# SSH host keys (each instance makes its own: sshd's keygen service, cloud-init or dropbear -R),
# empties /etc/machine-id (systemd makes a new one at first boot), cleans package caches, logs'
# contents, shell history and cloud-init's state. The ephemeral build key is removed by isoforge
# itself after the last script.
set -u
rm -f /etc/ssh/ssh_host_*_key /etc/ssh/ssh_host_*_key.pub /etc/dropbear/dropbear_*_host_key
[ -f /etc/machine-id ] && : > /etc/machine-id
rm -f /var/lib/dbus/machine-id
command -v apt-get >/dev/null 2>&1 && apt-get -q clean
command -v dnf >/dev/null 2>&1 && dnf -q clean all
command -v cloud-init >/dev/null 2>&1 && cloud-init clean --logs
if [ -d /var/log ]; then
	find /var/log -type f \( -name '*.gz' -o -name '*.[0-9]' -o -name '*.old' \) -delete
	find /var/log -type f -exec truncate -s 0 {} +
fi
rm -f /root/.bash_history /root/.ash_history /root/.lesshst
sync
echo "generalize.sh: done"
exit 0
