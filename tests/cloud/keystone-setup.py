#!/usr/bin/python3
# tests/cloud/keystone-setup.py — the minicloud's Keystone content in one process, through
# Keystone's own backends (as `keystone-manage bootstrap` does): bootstrap (admin, roles, region,
# identity endpoints), then the service role, projects, users, role assignments and the image
# and compute endpoints. ~30 HTTP calls against a single-threaded uwsgi cost 2-13 s depending on
# the machine's load; this costs what bootstrap alone costs.
#
# Usage: keystone-setup.py KEYSTONE_CONF < spec.json   (spec: see minicloud's keystone_spec)
# Prints {"projects": {name: id}, "users": {name: id}} on stdout.
import json
import sys
import uuid

import keystone.conf
from keystone.cmd import bootstrap
from keystone.common import sql
from keystone import exception

CONF = keystone.conf.CONF


def main():
    spec = json.load(sys.stdin)
    keystone.conf.configure()
    sql.initialize()
    keystone.conf.set_default_for_default_log_levels()   # also registers the logging options
    CONF(args=['--config-file', sys.argv[1]], project='keystone')
    keystone.conf.setup_logging()

    b = bootstrap.Bootstrapper()
    b.admin_username = 'admin'
    b.admin_password = spec['passwords']['admin']
    b.project_name = 'admin'
    b.admin_role_name = 'admin'
    b.service_name = 'keystone'
    b.region_id = spec['region']
    b.public_url = b.internal_url = b.admin_url = spec['auth_url']
    b.bootstrap()
    p = bootstrap.PROVIDERS
    domain = b.default_domain_id

    roles = {'admin': b.admin_role_id, 'member': b.member_role_id, 'reader': b.reader_role_id}
    for name in spec['extra_roles']:
        rid = uuid.uuid4().hex
        roles[name] = p.role_api.create_role(rid, {'id': rid, 'name': name})['id']

    projects = {'admin': b.project_id}
    for name in spec['projects']:
        pid = uuid.uuid4().hex
        p.resource_api.create_project(pid, {'id': pid, 'name': name, 'domain_id': domain,
                                            'enabled': True, 'description': 'minicloud'})
        projects[name] = pid

    users = {'admin': b.admin_user_id}
    for name, (project, rnames) in spec['grants'].items():
        u = p.identity_api.create_user({'name': name, 'domain_id': domain, 'enabled': True,
                                        'password': spec['passwords'][name],
                                        'default_project_id': projects[project]})
        users[name] = u['id']
        for r in rnames:
            p.assignment_api.add_role_to_user_and_project(u['id'], projects[project], roles[r])

    for stype, sname, url in spec['services']:
        sid = uuid.uuid4().hex
        p.catalog_api.create_service(sid, {'id': sid, 'type': stype, 'name': sname,
                                           'enabled': True})
        for iface in ('public', 'internal', 'admin'):
            eid = uuid.uuid4().hex
            p.catalog_api.create_endpoint(eid, {'id': eid, 'service_id': sid,
                                                'interface': iface, 'url': url,
                                                'region_id': spec['region'], 'enabled': True})
    json.dump({'projects': projects, 'users': users}, sys.stdout)
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except exception.Error as ex:
        print('keystone-setup: %s' % ex, file=sys.stderr)
        sys.exit(1)
