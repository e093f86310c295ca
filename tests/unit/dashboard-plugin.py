#!/usr/bin/python3
"""tests/unit/dashboard-plugin.py — isoforge_dashboard's own logic inside Django (Horizon's
settings, the plugin enabled), without a cloud: the API client's URLs, headers, errors and
paging links; the form's request body; the API's 400 reasons put on the fields they name."""
import sys
from unittest import mock

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.test import RequestFactory  # noqa: E402
from django.urls import reverse  # noqa: E402

from isoforge_dashboard.api import exceptions as exc  # noqa: E402
from isoforge_dashboard.api import isoforge  # noqa: E402
from isoforge_dashboard.content.image_builds import forms as b_forms  # noqa: E402

failures = []


def check(cond, what):
    print('%s %s' % ('ok  ' if cond else 'FAIL', what))
    if not cond:
        failures.append(what)


# the panels are registered where Horizon puts Project -> Compute
check(reverse('horizon:project:image_builds:index') == '/project/image_builds/', 'builds URL')
check(reverse('horizon:project:image_chains:detail', args=['c1']) ==
      '/project/image_chains/c1/', 'chains URL')


class Resp:
    def __init__(self, status, body=None, reason='', headers=None):
        self.status_code = status
        self._body = body
        self.reason = reason
        self.headers = headers or {}
        self.content = b'x' if body is not None else b''

    def json(self):
        if self._body is None:
            raise ValueError('no body')
        return self._body


class Token:
    id = 'gAAAA-secret-token'


class User:
    token = Token()
    id = 'u1'
    username = 'alice'
    roles = [{'name': 'member'}]


req = RequestFactory().get('/')
req.user = User()
calls = []


def fake_request(resp):
    def f(method, url, **kw):
        calls.append((method, url, kw))
        return resp
    return f


# URLs: the endpoint with or without /v1; the token only in its header
for endpoint in ('http://api:9480', 'http://api:9480/', 'http://api:9480/v1'):
    settings.ISOFORGE_API_URL = endpoint
    calls.clear()
    with mock.patch('requests.request', fake_request(Resp(200, {'build': {'id': 'b/1'}}))):
        isoforge.build_get(req, 'b/1')
    m, url, kw = calls[0]
    check(url == 'http://api:9480/v1/builds/b%2F1', 'URL of %s: %s' % (endpoint, url))
check(kw['headers']['X-Auth-Token'] == Token.id and Token.id not in url, 'token in its header only')
check(kw['headers']['OpenStack-API-Version'].startswith('image-build '), 'microversion header')

# errors: the API's detail and code; the status picks the class; no body: the status line
body = {'errors': [{'request_id': 'req-1', 'code': 'image-build.invalid', 'status': 400,
                    'title': 'Bad Request', 'detail': 'flavor: missing'}]}
with mock.patch('requests.request', fake_request(Resp(400, body))):
    try:
        isoforge.build_create(req, name='x')
        check(False, '400 raises')
    except exc.IsoforgeBadRequest as e:
        check(e.detail == 'flavor: missing' and e.request_id == 'req-1', '400 detail, id')
for status, cls in ((401, exc.IsoforgeUnauthorized), (403, exc.IsoforgeForbidden),
                    (404, exc.IsoforgeNotFound), (409, exc.IsoforgeConflict),
                    (500, exc.IsoforgeError)):
    with mock.patch('requests.request', fake_request(Resp(status, None, 'Oops'))):
        try:
            isoforge.build_action(req, 'b1', 'finish')
            check(False, '%d raises' % status)
        except exc.IsoforgeError as e:
            check(type(e) is cls and str(status) in e.detail, '%d -> %s' % (status, cls.__name__))
# the action body
calls.clear()
with mock.patch('requests.request', fake_request(Resp(202))):
    isoforge.build_cancel(req, 'b1')
check(calls[0][2]['json'] == {'cancel': None} and calls[0][1].endswith('/builds/b1/action'),
      'cancel body')

# paging: the next link's marker means there is more; parameters as the API names them
links = [{'rel': 'next', 'href': 'http://api/v1/builds?marker=m9&limit=2'}]
calls.clear()
with mock.patch('requests.request',
                fake_request(Resp(200, {'builds': [{'id': 'a'}, {'id': 'b'}],
                                        'builds_links': links}))):
    builds, more = isoforge.build_list(req, marker='m1', sort_dir='asc', paginate=True,
                                       filters={'state': 'active'})
params = calls[0][2]['params']
check(more and [b.id for b in builds] == ['a', 'b'], 'a page with a next link')
check(params == {'state': 'active', 'limit': settings.API_RESULT_PAGE_SIZE, 'marker': 'm1',
                 'sort': 'created_at:asc'}, 'paging parameters %s' % params)
with mock.patch('requests.request', fake_request(Resp(200, {'builds': []}))):
    check(isoforge.build_list(req)[1] is False, 'the last page')

# the form: choices patched (no cloud); the request body; the API's reasons on the fields
patches = [
    mock.patch.object(b_forms.CreateBuildForm, '_isos', staticmethod(lambda r: [
        isoforge.APIDict(id='iso-1', name='deb'),
        isoforge.APIDict(id='vw-1', name='virtio-win')])),
    mock.patch.object(b_forms.CreateBuildForm, '_flavors',
                      staticmethod(lambda r: [('f1', 'tiny')])),
    mock.patch.object(b_forms.CreateBuildForm, '_chains',
                      staticmethod(lambda r: [('old', 'old (2 versions)')])),
    mock.patch.object(isoforge, 'profile_list', lambda r: [
        isoforge.APIDict(name='linux', os_type='linux'),
        isoforge.APIDict(name='windows-modern', os_type='windows')]),
]
for p in patches:
    p.start()


def form(**data):
    base = {'name': 'b', 'iso_image': 'iso-1', 'flavor': 'f1', 'virtio_win': 'auto',
            'os_profile': '', 'chain': b_forms.NEW_CHAIN, 'new_chain': '', 'firmware': '',
            'visibility': 'private', 'timeout': '7200'}
    base.update(data)
    f = b_forms.CreateBuildForm(req, data=base)
    check(f.is_valid(), 'form valid %s' % (f.errors or ''))
    return f


f = form()
body = f.request_body(f.cleaned_data)
check(body == {'name': 'b', 'iso_image': 'iso-1', 'flavor': 'f1', 'virtio_win_image': 'auto',
               'install': {'mode': 'interactive', 'timeout_s': 7200},
               'image': {'visibility': 'private'}}, 'the smallest body %s' % body)
f = form(virtio_win='none', os_profile='windows-modern', os_distro='win2k22',
         new_chain='w22', firmware='uefi', unattended='on', visibility='shared')
body = f.request_body(f.cleaned_data)
check(body['virtio_win_image'] is None and body['os'] == {'type': 'windows',
      'distro': 'win2k22'} and body['chain'] == 'w22' and body['firmware'] == 'uefi' and
      body['install']['mode'] == 'unattended' and body['image']['visibility'] == 'shared',
      'a full body %s' % body)
f = form(chain='old', virtio_win='vw-1')
body = f.request_body(f.cleaned_data)
check(body['chain'] == 'old' and body['virtio_win_image'] == 'vw-1', 'an existing chain')

reasons = ('flavor: no such flavor; install.timeout_s: must be within 60..604800 seconds; '
           'customize: not here; something odd')
with mock.patch.object(isoforge, 'build_create',
                       side_effect=exc.IsoforgeBadRequest(400, reasons)):
    f = form()
    check(f.handle(req, f.cleaned_data) is False, 'a 400 keeps the form open')
check(f.errors.get('flavor') == ['no such flavor'], 'flavor reason at flavor')
check(f.errors.get('timeout') == ['must be within 60..604800 seconds'], 'timeout reason')
check(f.non_field_errors() == ['customize: not here', 'something odd'],
      'the others above the form: %s' % f.non_field_errors())
with mock.patch.object(isoforge, 'build_create',
                       side_effect=exc.IsoforgeForbidden(403, 'policy: no')):
    f = form()
    check(f.handle(req, f.cleaned_data) is False and f.non_field_errors() == ['policy: no'],
          'a 403 above the form')

print('%d failed' % len(failures))
sys.exit(1 if failures else 0)
