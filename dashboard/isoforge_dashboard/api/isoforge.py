"""The client of isoforge-api (docs/api.md) for the dashboard.

Every call acts as the logged-in user: the token is the Horizon session's
(``request.user.token.id``), the endpoint the catalog's ``image-build`` service
(openstack_dashboard.api.base.url_for, so the user's region and OPENSTACK_ENDPOINT_TYPE
apply). Plain ``requests``; the token goes only in the X-Auth-Token header and never into an
exception's text or a log line.
"""

import logging
from urllib import parse

from django.conf import settings
import requests

from openstack_dashboard.api import base

from isoforge_dashboard.api.exceptions import IsoforgeBadRequest  # noqa: F401
from isoforge_dashboard.api.exceptions import IsoforgeConflict  # noqa: F401
from isoforge_dashboard.api.exceptions import IsoforgeError
from isoforge_dashboard.api.exceptions import IsoforgeForbidden  # noqa: F401
from isoforge_dashboard.api.exceptions import IsoforgeNotFound  # noqa: F401
from isoforge_dashboard.api.exceptions import IsoforgeUnauthorized  # noqa: F401
from isoforge_dashboard.api.exceptions import by_status

LOG = logging.getLogger(__name__)

SERVICE_TYPE = 'image-build'
API_VERSION = 'image-build 1.0'
TIMEOUT = 30
TERMINAL_STATES = ('active', 'failed', 'cancelled')
STATES = ('queued', 'resolving', 'fetching', 'assembling', 'installing',
          'customizing', 'snapshotting', 'uploading', 'active', 'failed',
          'cancelled')


class APIDict(dict):
    """A dict whose keys are also attributes (Horizon's tables read attributes)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name)


class Build(APIDict):
    @property
    def terminal(self):
        return self.get('state') in TERMINAL_STATES


def _endpoint(request):
    url = getattr(settings, 'ISOFORGE_API_URL', None) or \
        base.url_for(request, SERVICE_TYPE)
    return url.rstrip('/')


def _verify():
    if getattr(settings, 'OPENSTACK_SSL_NO_VERIFY', False):
        return False
    return getattr(settings, 'OPENSTACK_SSL_CACERT', None) or True


def _error(resp):
    detail, code, rid = None, None, resp.headers.get('x-openstack-request-id')
    try:
        body = resp.json()
        errs = body.get('errors') if isinstance(body, dict) else None
        if errs:
            detail = errs[0].get('detail') or errs[0].get('title')
            code = errs[0].get('code')
            rid = errs[0].get('request_id') or rid
    except ValueError:
        pass
    if not detail:
        detail = '%d %s' % (resp.status_code, resp.reason or '')
    cls = by_status(resp.status_code)
    return cls(resp.status_code, detail, code, rid)


def _call(request, method, path, body=None, params=None):
    url = _endpoint(request)
    # the catalog's URL may or may not end with /v1
    if not url.endswith('/v1'):
        url += '/v1'
    headers = {'X-Auth-Token': request.user.token.id,
               'Accept': 'application/json',
               'OpenStack-API-Version': API_VERSION}
    try:
        resp = requests.request(method, url + path, json=body, params=params,
                                headers=headers, timeout=TIMEOUT,
                                verify=_verify())
    except requests.RequestException as e:
        # the exception's text holds the URL only, never a header
        LOG.warning('isoforge-api %s %s: %s', method, path, type(e).__name__)
        raise IsoforgeError(503, 'isoforge-api is not reachable')
    if resp.status_code >= 400:
        err = _error(resp)
        LOG.info('isoforge-api %s %s: %d %s (%s)', method, path,
                 resp.status_code, err.detail, err.request_id)
        raise err
    if resp.status_code == 204 or not resp.content:
        return None
    return resp.json()


def _marker_of(links):
    for link in links or ():
        if link.get('rel') == 'next':
            q = parse.parse_qs(parse.urlsplit(link.get('href', '')).query)
            if q.get('marker'):
                return q['marker'][0]
    return None


def build_list(request, marker=None, limit=None, sort_dir='desc',
               filters=None, paginate=False):
    """One page of the project's builds: (builds, has_more).

    With ``paginate`` the page holds API_RESULT_PAGE_SIZE builds (Horizon's own page size).
    """
    params = dict(filters or {})
    if paginate:
        limit = limit or getattr(settings, 'API_RESULT_PAGE_SIZE', 20)
    if limit:
        params['limit'] = limit
    if marker:
        params['marker'] = marker
    params['sort'] = 'created_at:%s' % sort_dir
    body = _call(request, 'GET', '/builds', params=params)
    builds = [Build(b) for b in body.get('builds', [])]
    return builds, _marker_of(body.get('builds_links')) is not None


def build_get(request, build_id):
    return Build(_call(request, 'GET', '/builds/%s' % parse.quote(build_id, safe=''))['build'])


def build_create(request, **fields):
    return Build(_call(request, 'POST', '/builds', body={'build': fields})['build'])


def build_events(request, build_id):
    body = _call(request, 'GET', '/builds/%s/events' % parse.quote(build_id, safe=''))
    return [APIDict(e) for e in body.get('events', [])]


def build_action(request, build_id, action):
    if action not in ('finish', 'cancel'):
        raise ValueError(action)
    _call(request, 'POST', '/builds/%s/action' % parse.quote(build_id, safe=''),
          body={action: None})


def build_finish(request, build_id):
    build_action(request, build_id, 'finish')


def build_cancel(request, build_id):
    build_action(request, build_id, 'cancel')


def build_delete(request, build_id):
    _call(request, 'DELETE', '/builds/%s' % parse.quote(build_id, safe=''))


def build_console(request, build_id):
    """The noVNC URL of an installing build (single use, expiring)."""
    body = _call(request, 'POST', '/builds/%s/remote-console' % parse.quote(build_id, safe=''),
                 body={'remote_console': {'protocol': 'vnc', 'type': 'novnc'}})
    return APIDict(body['remote_console'])


def chain_list(request):
    return [APIDict(c) for c in _call(request, 'GET', '/chains').get('chains', [])]


def chain_get(request, name):
    chain = _call(request, 'GET', '/chains/%s' % parse.quote(name, safe=''))['chain']
    chain = APIDict(chain)
    chain['versions'] = [APIDict(v) for v in chain.get('versions', [])]
    return chain


def profile_list(request):
    return [APIDict(p) for p in _call(request, 'GET', '/profiles').get('profiles', [])]
