"""OAuth2 client credentials for the platform API, as Blynk's ``/oauth2/token`` answers them.

- A client belongs to one organization and holds a set of permissions, at most those of the
  user who made it (so a client can never do more than its maker). Its secret is shown once
  and only its SHA-256 is stored.
- The maker's power is checked again at every token request and every Bearer request: the
  client acts with its stored permissions *and* its maker's current role's (the intersection),
  and only in an organization its maker can still reach. While the maker is suspended, or once
  deleted, the client's secret and tokens are refused (suspension and deletion also delete its
  tokens, so a reactivated maker's client starts again from its secret). A client made by
  another client belongs to that client's maker.
- ``client_credentials`` gives a Bearer access token that works for 300 s and a refresh token;
  ``refresh_token`` trades a refresh token (each works once) for a new pair.
- A Bearer token resolves to a :class:`Principal` of the client's organization with the
  client's permissions: the platform routes are guarded by the same guards as ``/api``.

Errors at the token endpoint are :class:`OAuthError` (Blynk's ``{"error", "error_description"}``
body, HTTP 400, or 401 for a client whose maker no longer lets it work); everything else is the
project's error tree.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import RowMapping
from sqlmodel.ext.asyncio.session import AsyncSession

from backend.access.permissions import ALL, Permission, Principal, expand, parse
from backend.access.scope import Scope, ancestry
from backend.audit.services import AuditService
from backend.db.changes import Change, notify
from backend.db.sql import execute, fetch_all, fetch_one
from backend.errors import AuthenticationError, NotFoundError, PermissionDeniedError, ValidationError

ACCESS_TOKEN_SECONDS = 300
"""Blynk's ``expires_in``."""
CLIENT_ID_PREFIX = "oa2-client-id_"
OAUTH_ERRORS = frozenset(
    {"invalid_request", "invalid_client", "invalid_grant", "unauthorized_client", "unsupported_grant_type"}
)
WRONG_CLIENT = "Client ID is not found or password is wrong."
"""Blynk's text for an unknown client or a wrong secret (one text, so neither can be told apart)."""
MAKER_GONE = (
    "This client no longer works: the user who made it is suspended, was deleted or can no longer "
    "reach its organization."
)
_WITH_MAKER = """oauth_client c LEFT JOIN app_user u ON u.id = c.created_by AND u.status = 'active'
    LEFT JOIN role r ON r.id = u.role_id"""
"""A client with its maker while the maker is active (``u``, ``r`` are NULL otherwise)."""
_MAKER_COLUMNS = "u.id AS maker_id, u.org_id AS maker_org, r.permissions AS maker_permissions"


def _hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


class OAuthError(ValidationError):
    """An OAuth2 error of the token endpoint (RFC 6749 5.2), answered as Blynk does."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        assert error in OAUTH_ERRORS, error
        super().__init__(description)
        self.error = error
        self.status = status


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """A client as its organization's developers see it (never the secret)."""

    id: int
    client_id: str
    org_id: int
    name: str
    permissions: list[str]
    created_by: int | None
    created_at: datetime
    revoked_at: datetime | None
    mqtt_enabled: bool = False
    """"May use MQTT": it logs in to the broker as an integration client (``integration:<client_id>``)."""


@dataclass(frozen=True, slots=True)
class NewClient:
    """A client just made, with its secret (shown this once)."""

    client: ClientInfo
    client_secret: str


@dataclass(frozen=True, slots=True)
class TokenPair:
    """What ``/oauth2/token`` answers."""

    access_token: str
    refresh_token: str
    expires_in: int = ACCESS_TOKEN_SECONDS
    token_type: str = "Bearer"


_CLIENT_COLUMNS = "id, client_id, org_id, name, permissions, created_by, created_at, revoked_at, mqtt_enabled"


class OAuthClientService:
    """Clients of the organizations in one principal's scope (``api.clients``)."""

    def __init__(self, session: AsyncSession, scope: Scope, audit: AuditService) -> None:
        self.session = session
        self.scope = scope
        self.principal: Principal = scope.principal
        self.audit = audit

    async def create(
        self, org_id: int | None, name: str, permissions: list[str] | None, mqtt: bool = False
    ) -> NewClient:
        """A client of ``org_id`` (the caller's by default) holding ``permissions`` (by default
        every permission of the caller); nobody can give a client a permission they lack.
        ``mqtt``: it may also log in to the broker as an integration client."""
        org = org_id if org_id is not None else self.principal.org_id
        await self.scope.require_org(org)
        name = name.strip()
        if not 1 <= len(name) <= 100:
            raise ValidationError("a client name must have 1 to 100 characters")
        wanted = parse(p for p in permissions if p != ALL) if permissions is not None else self.principal.permissions
        if permissions is not None and ALL in permissions:
            raise ValidationError("list the permissions the client needs; '*' is the Admin role's alone")
        missing = wanted - self.principal.permissions
        if missing:
            raise PermissionDeniedError("you cannot give a client a permission you lack: " + ", ".join(sorted(missing)))
        secret = secrets.token_urlsafe(30)
        row = await fetch_one(
            self.session,
            f"""
            INSERT INTO oauth_client (client_id, secret_hash, org_id, name, permissions, created_by, mqtt_enabled)
            VALUES (:cid, :h, :org, :name, :perms, :by, :mqtt) RETURNING {_CLIENT_COLUMNS}""",
            cid=CLIENT_ID_PREFIX + secrets.token_urlsafe(24),
            h=_hash(secret),
            org=org,
            name=name,
            perms=sorted(p.value for p in wanted),
            by=self.principal.user_id or self.principal.maker_id,
            mqtt=mqtt,
        )
        assert row is not None
        client = ClientInfo(**row)
        if mqtt:  # the app's device feed starts feeding its organization
            await notify(self.session, Change("oauth_client", client.id))
        await self.audit.record(
            self.principal,
            org,
            "oauth_client.create",
            "oauth_client",
            client.id,
            client_id=client.client_id,
            name=name,
            permissions=client.permissions,
            mqtt_enabled=mqtt,
        )
        return NewClient(client, secret)

    async def list_clients(self, org_id: int | None) -> list[ClientInfo]:
        """Clients of one organization, or of the whole scope (revoked ones too), by id."""
        if org_id is not None:
            await self.scope.require_org(org_id)
        orgs = [org_id] if org_id is not None else sorted(await self.scope.org_ids())
        rows = await fetch_all(
            self.session, f"SELECT {_CLIENT_COLUMNS} FROM oauth_client WHERE org_id = ANY(:orgs) ORDER BY id", orgs=orgs
        )
        return [ClientInfo(**r) for r in rows]

    async def get(self, client_pk: int) -> ClientInfo:
        """One client in scope."""
        row = await fetch_one(
            self.session,
            f"SELECT {_CLIENT_COLUMNS} FROM oauth_client WHERE id = :id AND org_id = ANY(:orgs)",
            id=client_pk,
            orgs=sorted(await self.scope.org_ids()),
        )
        if row is None:
            raise NotFoundError("OAuth client not found")
        return ClientInfo(**row)

    async def revoke(self, client_pk: int) -> ClientInfo:
        """Stop a client at once: its secret and every token it holds stop working."""
        client = await self.get(client_pk)
        if client.revoked_at is None:
            await execute(self.session, "UPDATE oauth_client SET revoked_at = now() WHERE id = :id", id=client_pk)
            await execute(self.session, "DELETE FROM oauth_token WHERE client_id = :id", id=client_pk)
            await notify(self.session, Change("oauth_client", client_pk, revoked=True))  # its MQTT logins end
            await self.audit.record(
                self.principal,
                client.org_id,
                "oauth_client.revoke",
                "oauth_client",
                client_pk,
                client_id=client.client_id,
            )
        return await self.get(client_pk)

    async def set_mqtt(self, client_pk: int, enabled: bool) -> ClientInfo:
        """Switch "may use MQTT"; switched off, its integration connections end at once (the
        broker asks the client again on the change notice)."""
        client = await self.get(client_pk)
        if client.revoked_at is None and client.mqtt_enabled != enabled:
            await execute(
                self.session, "UPDATE oauth_client SET mqtt_enabled = :on WHERE id = :id", on=enabled, id=client_pk
            )
            await notify(self.session, Change("oauth_client", client_pk))
            await self.audit.record(
                self.principal,
                client.org_id,
                "oauth_client.mqtt",
                "oauth_client",
                client_pk,
                client_id=client.client_id,
                mqtt_enabled=enabled,
            )
        return await self.get(client_pk)


class TokenService:
    """The token endpoint and Bearer authentication."""

    def __init__(self, session: AsyncSession, refresh_lifetime: timedelta) -> None:
        self.session = session
        self.refresh_lifetime = refresh_lifetime

    async def client_credentials(self, client_id: str, client_secret: str) -> TokenPair:
        """A new token pair for a client that proves its secret."""
        return await self._issue(await self._client(client_id, client_secret))

    async def refresh(self, client_id: str, client_secret: str, refresh_token: str) -> TokenPair:
        """Trade a refresh token of this client (it works once) for a new pair."""
        client = await self._client(client_id, client_secret)
        if not refresh_token:
            raise OAuthError("invalid_request", "refresh_token is required with grant_type=refresh_token")
        row = await fetch_one(
            self.session,
            """
            UPDATE oauth_token SET used_at = now() WHERE token_hash = :h AND kind = 'refresh' AND client_id = :c
              AND used_at IS NULL AND expires_at > now() RETURNING id""",
            h=_hash(refresh_token),
            c=client,
        )
        if row is None:
            raise OAuthError("invalid_grant", "Refresh token is invalid, expired or already used.")
        return await self._issue(client)

    async def authenticate(self, access_token: str, ip: str | None) -> Principal | None:
        """The principal of a live access token of a client that is not revoked, or None; raises
        AuthenticationError when the client's maker no longer lets it work."""
        row = await fetch_one(
            self.session,
            f"""
            SELECT c.id, c.client_id, c.org_id, c.permissions, {_MAKER_COLUMNS}
            FROM oauth_token t JOIN {_WITH_MAKER} ON c.id = t.client_id
            WHERE t.token_hash = :h AND t.kind = 'access' AND t.expires_at > now() AND c.revoked_at IS NULL""",
            h=_hash(access_token),
        )
        if row is None:
            return None
        permissions = await self._effective(row)
        if permissions is None:
            raise AuthenticationError(MAKER_GONE)
        return Principal(
            user_id=0,
            org_id=int(row["org_id"]),
            email=f"oauth2:{row['client_id']}",
            role_id=0,
            permissions=permissions,
            ip=ip,
            client_id=int(row["id"]),
            maker_id=int(row["maker_id"]),
        )

    async def verify_client(self, client_id: str, client_secret: str) -> int | None:
        """The id of a working client proving its secret, else None (the broker's gateway
        logins: the same rules as the token endpoint's)."""
        try:
            return await self._client(client_id, client_secret)
        except OAuthError:
            return None

    async def working_org(self, client_pk: int) -> int | None:
        """The organization of a client that still works (not revoked, its maker still lets it),
        else None."""
        row = await fetch_one(
            self.session,
            f"SELECT c.id, c.org_id, c.permissions, {_MAKER_COLUMNS} FROM {_WITH_MAKER} "
            "WHERE c.id = :id AND c.revoked_at IS NULL",
            id=client_pk,
        )
        if row is None or await self._effective(row) is None:
            return None
        return int(row["org_id"])

    async def mqtt_principal(self, client_pk: int) -> Principal | None:
        """The principal of a working client that "may use MQTT" (its integration writes are
        checked as its platform API calls are), else None."""
        row = await fetch_one(
            self.session,
            f"SELECT c.id, c.client_id, c.org_id, c.permissions, {_MAKER_COLUMNS} FROM {_WITH_MAKER} "
            "WHERE c.id = :id AND c.revoked_at IS NULL AND c.mqtt_enabled",
            id=client_pk,
        )
        permissions = await self._effective(row) if row is not None else None
        if row is None or permissions is None:
            return None
        return Principal(
            user_id=0,
            org_id=int(row["org_id"]),
            email=f"oauth2:{row['client_id']}",
            role_id=0,
            permissions=permissions,
            ip=None,
            client_id=int(row["id"]),
            maker_id=int(row["maker_id"]),
        )

    async def mqtt_org(self, client_pk: int) -> int | None:
        """The organization of a working client that "may use MQTT", else None."""
        row = await fetch_one(
            self.session, "SELECT mqtt_enabled FROM oauth_client WHERE id = :id AND mqtt_enabled", id=client_pk
        )
        return await self.working_org(client_pk) if row is not None else None

    async def purge_expired(self) -> int:
        """Delete tokens past their end (they already no longer work)."""
        return await execute(self.session, "DELETE FROM oauth_token WHERE expires_at <= now() - interval '1 day'")

    async def _client(self, client_id: str, client_secret: str) -> int:
        if not client_id or not client_secret:
            raise OAuthError(
                "invalid_client",
                "Client credentials are missing: send them as HTTP Basic "
                "authorization or as client_id and client_secret parameters.",
            )
        row = await fetch_one(
            self.session,
            f"SELECT c.id, c.org_id, c.permissions, c.secret_hash, {_MAKER_COLUMNS} "
            f"FROM {_WITH_MAKER} WHERE c.client_id = :cid AND c.revoked_at IS NULL",
            cid=client_id,
        )
        if row is None or not hmac.compare_digest(bytes(row["secret_hash"]), _hash(client_secret)):
            raise OAuthError("invalid_client", WRONG_CLIENT)
        if await self._effective(row) is None:
            raise OAuthError("invalid_client", MAKER_GONE, status=401)
        return int(row["id"])

    async def _effective(self, row: RowMapping) -> frozenset[Permission] | None:
        """What a client may do now: its permissions within its maker's current ones, or None
        when its maker is suspended or deleted or can no longer reach the client's organization.
        One query found the maker; a second runs only for a client of an organization below the
        maker's own."""
        if row["maker_id"] is None:
            return None
        maker = expand(row["maker_permissions"] or [])
        if row["maker_org"] != row["org_id"] and (
            Permission.ORGS_VIEW_SUB not in maker
            or int(row["maker_org"]) not in await ancestry(self.session, int(row["org_id"]))
        ):
            return None
        return expand(row["permissions"]) & maker

    async def _issue(self, client: int) -> TokenPair:
        now = datetime.now(UTC)
        access, refresh = secrets.token_urlsafe(30), secrets.token_urlsafe(30)
        await execute(
            self.session,
            """
            INSERT INTO oauth_token (client_id, kind, token_hash, expires_at)
            VALUES (:c, 'access', :a, :a_exp), (:c, 'refresh', :r, :r_exp)""",
            c=client,
            a=_hash(access),
            a_exp=now + timedelta(seconds=ACCESS_TOKEN_SECONDS),
            r=_hash(refresh),
            r_exp=now + self.refresh_lifetime,
        )
        return TokenPair(access, refresh)
