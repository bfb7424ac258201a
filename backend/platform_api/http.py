"""The platform API's HTTP surface besides its ``/api/v1/organization`` controllers:
``POST /oauth2/token`` and the console's routes for OAuth2 clients (under ``/api``, session and
CSRF). The top mounts the ``/api/v1/organization`` router (Bearer tokens, the same permission
guards as ``/api``)."""

from __future__ import annotations

import base64
import binascii
from datetime import timedelta
from typing import Any

from litestar import Controller, MediaType, Request, Response, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED
from sqlmodel.ext.asyncio.session import AsyncSession

from backend.access.guards import PUBLIC, requires
from backend.access.permissions import Permission as P
from backend.access.scope import Scope
from backend.accounts.runtime import AccountsRuntime
from backend.audit.services import AuditService
from backend.platform_api.oauth import ClientInfo, OAuthClientService, OAuthError, TokenService
from backend.platform_api.schemas import NewOAuthClientOut, OAuthClientIn, OAuthClientMqttIn, OAuthClientOut, TokenOut

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _oauth_error(_request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, str]]:
    assert isinstance(exc, OAuthError)
    headers = NO_STORE if exc.status != 401 else {**NO_STORE, "WWW-Authenticate": 'Basic realm="oauth2"'}
    return Response(
        {"error": exc.error, "error_description": exc.message},
        status_code=exc.status,
        media_type=MediaType.JSON,
        headers=headers,
    )


def basic_credentials(header: str) -> tuple[str, str] | None:
    """``(client_id, client_secret)`` of an ``Authorization: Basic`` header, or None without one."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        client_id, sep, secret = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise OAuthError(
            "invalid_request", "The Basic authorization header is not base64 of clientId:clientSecret."
        ) from None
    if not sep:
        raise OAuthError("invalid_request", "The Basic authorization header is not base64 of clientId:clientSecret.")
    return client_id, secret


@post(
    "/oauth2/token",
    opt=PUBLIC,
    status_code=HTTP_200_OK,
    exception_handlers={OAuthError: _oauth_error},
    tags=["Platform API: authentication"],
)
async def token(
    request: Request[Any, Any, Any], accounts_runtime: NamedDependency[AccountsRuntime]
) -> Response[TokenOut]:
    """OAuth2 client credentials (Blynk's): ``grant_type=client_credentials`` or
    ``refresh_token`` (with ``refresh_token=``), client credentials as HTTP Basic or as
    ``client_id`` and ``client_secret``; parameters in the query string or a form body."""
    params: dict[str, str] = dict(request.query_params)
    if request.headers.get("content-type", "").split(";")[0].strip() in FORM_TYPES:
        params.update({k: v for k, v in (await request.form()).items() if isinstance(v, str)})
    grant = params.get("grant_type", "")
    credentials = basic_credentials(request.headers.get("authorization", ""))
    client_id, secret = credentials or (params.get("client_id", ""), params.get("client_secret", ""))
    runtime = accounts_runtime
    async with runtime.db.session() as session:
        tokens = TokenService(session, timedelta(days=runtime.settings.api_refresh_token_days))
        if grant == "client_credentials":
            pair = await tokens.client_credentials(client_id, secret)
        elif grant == "refresh_token":
            pair = await tokens.refresh(client_id, secret, params.get("refresh_token", ""))
        elif not grant:
            raise OAuthError("invalid_request", "grant_type is required (client_credentials or refresh_token).")
        else:
            raise OAuthError(
                "unsupported_grant_type",
                f"grant_type {grant[:40]!r} is not supported; use client_credentials or refresh_token.",
            )
    return Response(TokenOut(pair.access_token, pair.token_type, pair.expires_in, pair.refresh_token), headers=NO_STORE)


def _client_out(client: ClientInfo) -> OAuthClientOut:
    return OAuthClientOut(
        client.id,
        client.client_id,
        client.org_id,
        client.name,
        client.permissions,
        client.created_at.isoformat(),
        client.revoked_at.isoformat() if client.revoked_at else None,
        client.mqtt_enabled,
    )


class OAuthClientController(Controller):
    """OAuth2 clients of the platform API (Console → Settings → Developers → OAuth2), under ``/api``."""

    path = "/oauth2/clients"
    tags = ["Platform API: clients"]

    @get("/", guards=[requires(P.API_CLIENTS)])
    async def list_clients(
        self,
        db_session: NamedDependency[AsyncSession],
        org_scope: NamedDependency[Scope],
        audit: NamedDependency[AuditService],
        org_id: FromQuery[int | None] = None,
    ) -> list[OAuthClientOut]:
        """Clients of one organization or of the whole scope (revoked ones too)."""
        return [_client_out(c) for c in await OAuthClientService(db_session, org_scope, audit).list_clients(org_id)]

    @post("/", guards=[requires(P.API_CLIENTS)], status_code=HTTP_201_CREATED)
    async def create_client(
        self,
        data: JSONBody[OAuthClientIn],
        db_session: NamedDependency[AsyncSession],
        org_scope: NamedDependency[Scope],
        audit: NamedDependency[AuditService],
    ) -> NewOAuthClientOut:
        """A client of an organization of the scope; ``client_secret`` is shown in this answer only."""
        service = OAuthClientService(db_session, org_scope, audit)
        made = await service.create(data.org_id, data.name, data.permissions, data.mqtt_enabled)
        return NewOAuthClientOut(_client_out(made.client), made.client_secret)

    @delete("/{client_pk:int}", guards=[requires(P.API_CLIENTS)], status_code=HTTP_200_OK)
    async def revoke_client(
        self,
        client_pk: FromPath[int],
        db_session: NamedDependency[AsyncSession],
        org_scope: NamedDependency[Scope],
        audit: NamedDependency[AuditService],
    ) -> OAuthClientOut:
        """Revoke a client: its secret and every token it was given stop working at once."""
        return _client_out(await OAuthClientService(db_session, org_scope, audit).revoke(client_pk))

    @put("/{client_pk:int}/mqtt", guards=[requires(P.API_CLIENTS)], status_code=HTTP_200_OK)
    async def set_client_mqtt(
        self,
        client_pk: FromPath[int],
        data: JSONBody[OAuthClientMqttIn],
        db_session: NamedDependency[AsyncSession],
        org_scope: NamedDependency[Scope],
        audit: NamedDependency[AuditService],
    ) -> OAuthClientOut:
        """Switch "may use MQTT" (integration logins, README "Bridging and integrations"); off
        ends the client's integration connections at once."""
        service = OAuthClientService(db_session, org_scope, audit)
        return _client_out(await service.set_mqtt(client_pk, data.mqtt_enabled))
