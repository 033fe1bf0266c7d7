"""Everything under /admin: HTTP basic credentials from the settings, or switched off.

    protect_admin(app, settings)    guard every path under /admin of `app` (before routing, so
                                    a path no route serves is guarded too); True when enabled

With TRACKER_ADMIN_USER and TRACKER_ADMIN_PASSWORD set, a request under /admin without those
credentials gets 401 with a `WWW-Authenticate: Basic` challenge; with them unset, every request
under /admin gets 404, and a log line at startup says so. Another admin route needs nothing
more than a path under /admin; `AdminAuth.allows(environ)` checks credentials anywhere else.

Use it behind HTTPS only: basic credentials travel in clear text otherwise.
"""

from __future__ import annotations

import base64
import binascii
import logging

from bottle import Bottle, request

from ..config import Settings
from ..signing import secret_matches
from .responses import error_response

log = logging.getLogger(__name__)

ADMIN_PREFIX = "/admin"
REALM = "tracker admin"


def is_admin_path(path: str, prefix: str = ADMIN_PREFIX) -> bool:
    return path == prefix or path.startswith(prefix + "/")


class AdminAuth:
    """Checks HTTP basic credentials against one user and password, in constant time."""

    def __init__(self, user: str, password: str):
        self._expected = f"{user}:{password}".encode()

    def allows(self, environ: dict) -> bool:
        """Does the request carry the right `Authorization: Basic ...` header?"""
        given = _basic_credentials(environ.get("HTTP_AUTHORIZATION", ""))
        return given is not None and secret_matches(given, self._expected)

    def guard(self) -> None:
        """A before_request hook: refuse requests under /admin without the credentials."""
        if is_admin_path(request.path) and not self.allows(request.environ):
            raise error_response(401, "Authentication required", "HTTP basic credentials of the tracker's admin",
                                 {"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'})


def _basic_credentials(header: str) -> bytes | None:
    """The decoded "user:password" of a Basic Authorization header, or None."""
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        return base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None


def switched_off() -> None:
    """A before_request hook: no admin credentials are configured, so /admin does not exist."""
    if is_admin_path(request.path):
        raise error_response(404, "Not found", "the admin interface is switched off")


def protect_admin(app: Bottle, settings: Settings) -> bool:
    """Guard /admin of `app` with the settings' credentials; True when /admin is enabled."""
    if not settings.admin_user:
        log.info("/admin (the Dramatiq dashboard) is switched off: set TRACKER_ADMIN_USER and "
                 "TRACKER_ADMIN_PASSWORD to enable it")
        app.add_hook("before_request", switched_off)
        return False
    app.add_hook("before_request", AdminAuth(settings.admin_user, settings.admin_password).guard)
    return True
