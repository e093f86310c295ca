#!/usr/bin/env bash
# t_dashboard_plugin.sh — the Horizon plugin's own logic (dashboard-plugin.py) inside Debian's
# Horizon settings with the plugin enabled (tests/dashboard/horizon settings), no cloud.
set -u
[ -f /usr/share/openstack-dashboard/manage.py ] || { echo "needs openstack-dashboard: skipped"; exit 77; }
top=$(cd "$(dirname "$0")/../.." && pwd)
"$top/tests/dashboard/horizon" settings "$TEST_TMP/horizon" || exit 1
cd /usr/share/openstack-dashboard &&
PYTHONPATH=$TEST_TMP/horizon/settings:$top/dashboard DJANGO_SETTINGS_MODULE=openstack_dashboard.settings \
	/usr/bin/python3 -W ignore "$top/tests/unit/dashboard-plugin.py"
