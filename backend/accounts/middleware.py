"""The session middleware: the session cookie becomes a :class:`Principal` (``request.user``).

``SessionMiddleware`` refuses a missing, expired or ended session (401) and, for a
state-changing method, a missing or wrong ``X-CSRF-Token`` header (403). Routes marked
``PUBLIC`` (``backend.access.guards``) skip it; the permission guards then read the principal.
"""

from __future__ import annotations

import hmac
from typing import Any

from litestar.connection import ASGIConnection
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult, DefineMiddleware
from litestar.types import ASGIApp

from backend.access.guards import PUBLIC_KEY, SAFE_METHODS, client_ip
from backend.accounts.runtime import AccountsOf
from backend.accounts.sessions import CSRF_HEADER, SESSION_COOKIE, SessionService
from backend.errors import AuthenticationError, PermissionDeniedError


class SessionMiddleware(AbstractAuthenticationMiddleware):
    """Authenticate by the session cookie and check the CSRF header of state-changing requests."""

    def __init__(self, app: ASGIApp, accounts: AccountsOf, **options: Any) -> None:
        super().__init__(app, **options)
        self._accounts = accounts

    async def authenticate_request(self, connection: ASGIConnection) -> AuthenticationResult:  # type: ignore[type-arg]
        token = connection.cookies.get(SESSION_COOKIE)
        if not token:
            raise AuthenticationError("sign in first")
        runtime = self._accounts(connection.app)
        async with runtime.db.session() as session:
            principal = await SessionService(session, runtime.session_lifetime).authenticate(
                token, client_ip(connection)
            )
        if principal is None:
            raise AuthenticationError("your session has ended; sign in again")
        if connection.scope.get("method", "GET") not in SAFE_METHODS:
            sent = connection.headers.get(CSRF_HEADER, "")
            if not sent or not hmac.compare_digest(sent, principal.csrf_token):
                raise PermissionDeniedError(f"missing or wrong {CSRF_HEADER} header (CSRF check)")
        return AuthenticationResult(user=principal, auth=token)


def session_middleware(accounts: AccountsOf) -> DefineMiddleware:
    """The middleware as the ``/api`` router and the console mount it."""
    return DefineMiddleware(SessionMiddleware, accounts=accounts, exclude_from_auth_key=PUBLIC_KEY)
