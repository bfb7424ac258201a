"""The permission guards every HTTP route uses, and what they need of a request.

- ``requires(*permissions)`` / ``requires_any(...)`` / ``signed_in`` are the guards; a test
  checks that every ``/api`` route has one of them or is ``PUBLIC``. They read the
  :class:`~backend.access.permissions.Principal` that an authentication middleware put on
  ``connection.user`` (``backend.accounts.middleware`` for sessions, the platform API's for
  OAuth2 bearer tokens).
- ``same_origin`` (on the whole router) refuses a state-changing request whose ``Origin`` (or,
  without one, ``Referer``) is another site, which also covers the routes without a session
  (sign-in, sign-up, reset).
- ``client_ip`` is the peer address (no proxy header is trusted).
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from backend.access.permissions import Permission, Principal
from backend.errors import PermissionDeniedError

PUBLIC_KEY = "public"
PUBLIC = {PUBLIC_KEY: True}
"""``opt`` of a route that needs no session (sign-in, sign-up, links from e-mails)."""
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
Guard = Callable[[ASGIConnection, BaseRouteHandler], None]  # type: ignore[type-arg]


def client_ip(connection: ASGIConnection) -> str | None:  # type: ignore[type-arg]
    """The peer address (no proxy header is trusted)."""
    return connection.client.host if connection.client else None


def _mark(guard: Guard, permissions: frozenset[Permission]) -> Guard:
    guard.permissions = permissions  # type: ignore[attr-defined]
    return guard


def requires(*permissions: Permission) -> Guard:
    """A guard that lets through a principal holding every one of ``permissions``."""
    needed = frozenset(permissions)

    def guard(connection: ASGIConnection, _handler: BaseRouteHandler) -> None:  # type: ignore[type-arg]
        principal: Principal = connection.user
        missing = needed - principal.permissions
        if missing:
            raise PermissionDeniedError("your role lacks the permission " + ", ".join(sorted(missing)))

    return _mark(guard, needed)


def requires_any(*permissions: Permission) -> Guard:
    """A guard that lets through a principal holding at least one of ``permissions``."""
    options = frozenset(permissions)

    def guard(connection: ASGIConnection, _handler: BaseRouteHandler) -> None:  # type: ignore[type-arg]
        principal: Principal = connection.user
        if not options & principal.permissions:
            raise PermissionDeniedError("your role lacks the permission " + " or ".join(sorted(options)))

    return _mark(guard, options)


signed_in = requires()
"""The guard of routes any signed-in user may call (their own profile, sign-out)."""


def same_origin(connection: ASGIConnection, _handler: BaseRouteHandler) -> None:  # type: ignore[type-arg]
    """Refuse a state-changing request sent by a page of another origin: its ``Origin``, or
    its ``Referer`` when a browser sent no ``Origin`` (older browsers, some privacy settings).
    A request with neither comes from no web page (a script, the CLI); the session routes
    still want its CSRF token."""
    if connection.scope.get("method", "GET") in SAFE_METHODS:
        return
    source = connection.headers.get("origin")
    if source is None:
        source = connection.headers.get("referer")
    if source is None:
        return
    if source == "null" or urlsplit(source).netloc.lower() != connection.headers.get("host", "").lower():
        raise PermissionDeniedError("cross-site request refused")


def guarded(handler: BaseRouteHandler) -> bool:
    """True when a route is public or carries a permission guard (checked by a test)."""
    if handler.opt.get(PUBLIC_KEY):
        return True
    return any(hasattr(g, "permissions") for g in handler.guards or [])
