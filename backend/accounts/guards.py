"""The one permission guard every ``/api`` route uses, and the session middleware behind it.

- ``SessionMiddleware`` turns the session cookie into a :class:`Principal` (``request.user``),
  refuses a missing, expired or ended session (401) and, for a state-changing method, a missing
  or wrong ``X-CSRF-Token`` header (403). Routes marked ``PUBLIC`` skip it.
- ``requires(*permissions)`` / ``requires_any(...)`` / ``signed_in`` are the guards; a test
  checks that every ``/api`` route has one of them or is ``PUBLIC``.
- ``same_origin`` (on the whole router) refuses a state-changing request whose ``Origin`` (or,
  without one, ``Referer``) is another site, which also covers the routes without a session
  (sign-in, sign-up, reset).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from urllib.parse import urlsplit

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult, DefineMiddleware

from backend.accounts.permissions import Permission, Principal
from backend.accounts.sessions import CSRF_HEADER, SESSION_COOKIE, SessionService
from backend.errors import AuthenticationError, PermissionDeniedError

PUBLIC_KEY = "public"
PUBLIC = {PUBLIC_KEY: True}
"""``opt`` of a route that needs no session (sign-in, sign-up, links from e-mails)."""
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
Guard = Callable[[ASGIConnection, BaseRouteHandler], None]  # type: ignore[type-arg]


class SessionMiddleware(AbstractAuthenticationMiddleware):
    """Authenticate by the session cookie and check the CSRF header of state-changing requests."""

    async def authenticate_request(self, connection: ASGIConnection) -> AuthenticationResult:  # type: ignore[type-arg]
        token = connection.cookies.get(SESSION_COOKIE)
        if not token:
            raise AuthenticationError("sign in first")
        runtime = connection.app.state.accounts
        async with runtime.db.session() as session:
            principal = await SessionService(session, runtime.session_lifetime).authenticate(token, client_ip(connection))
        if principal is None:
            raise AuthenticationError("your session has ended; sign in again")
        if connection.scope.get("method", "GET") not in SAFE_METHODS:
            sent = connection.headers.get(CSRF_HEADER, "")
            if not sent or not hmac.compare_digest(sent, principal.csrf_token):
                raise PermissionDeniedError(f"missing or wrong {CSRF_HEADER} header (CSRF check)")
        return AuthenticationResult(user=principal, auth=token)


def session_middleware() -> DefineMiddleware:
    """The middleware as the ``/api`` router mounts it."""
    return DefineMiddleware(SessionMiddleware, exclude_from_auth_key=PUBLIC_KEY)


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
