"""The errors of isoforge-api as exceptions; imported by the enabled files at settings time,
so nothing of Django here."""


class IsoforgeError(Exception):
    """An answer of isoforge-api that is not a success.

    ``status`` is the HTTP status, ``code`` the API's ``image-build.<code>``, ``detail`` the
    API's detail (which never holds a secret: docs/api.md), ``request_id`` its request id.
    """

    def __init__(self, status, detail, code=None, request_id=None):
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.request_id = request_id

    def __str__(self):
        return self.detail


class IsoforgeBadRequest(IsoforgeError):
    pass


class IsoforgeUnauthorized(IsoforgeError):
    pass


class IsoforgeForbidden(IsoforgeError):
    pass


class IsoforgeNotFound(IsoforgeError):
    pass


class IsoforgeConflict(IsoforgeError):
    pass


_BY_STATUS = {400: IsoforgeBadRequest, 401: IsoforgeUnauthorized,
              403: IsoforgeForbidden, 404: IsoforgeNotFound,
              409: IsoforgeConflict}


def by_status(status):
    return _BY_STATUS.get(status, IsoforgeError)
