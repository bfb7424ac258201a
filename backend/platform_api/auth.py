"""Bearer authentication of the platform API, feeding the one guard mechanism of ``/api``.

``BearerMiddleware`` turns ``Authorization: Bearer <access token>`` into the client's
:class:`Principal` (``request.user``) and counts the request against its organization's rate
limit. The routes then carry the same ``requires(...)`` guards as the console's. No CSRF check:
a Bearer token is never sent by a browser on its own, unlike a cookie.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from litestar.connection import ASGIConnection
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult, DefineMiddleware
from litestar.types import ASGIApp

from backend.access.guards import PUBLIC_KEY, client_ip
from backend.accounts.runtime import AccountsOf
from backend.errors import AuthenticationError
from backend.platform_api.oauth import TokenService
from backend.platform_api.ratelimit import count_request


def bearer_token(connection: ASGIConnection) -> str:  # type: ignore[type-arg]
    """The token of an ``Authorization: Bearer`` header; raises AuthenticationError."""
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError(
            "Authorization header with a Bearer access token is required (get one from POST /oauth2/token)."
        )
    return token.strip()


class BearerMiddleware(AbstractAuthenticationMiddleware):
    """Authenticate a platform API request by its access token, then count it."""

    def __init__(self, app: ASGIApp, accounts: AccountsOf, **options: Any) -> None:
        super().__init__(app, **options)
        self._accounts = accounts

    async def authenticate_request(self, connection: ASGIConnection) -> AuthenticationResult:  # type: ignore[type-arg]
        token = bearer_token(connection)
        runtime = self._accounts(connection.app)
        settings = runtime.settings
        async with runtime.db.session() as session:
            principal = await TokenService(session, timedelta(days=settings.api_refresh_token_days)).authenticate(
                token, client_ip(connection)
            )
        if principal is None:
            raise AuthenticationError("Access token is invalid or expired; get a new one from POST /oauth2/token.")
        async with runtime.db.session() as session:
            await count_request(session, principal.org_id, settings.api_requests_per_minute)
        return AuthenticationResult(user=principal, auth=token)


def bearer_middleware(accounts: AccountsOf) -> DefineMiddleware:
    """The middleware as the platform router mounts it."""
    return DefineMiddleware(BearerMiddleware, accounts=accounts, exclude_from_auth_key=PUBLIC_KEY)
