"""The connected gateway and integration sessions of the organizations in scope, and "disconnect
now" (issue #14 item 7; console: Settings -> Developers -> MQTT sessions).

The broker process knows the connections (``broker.MqttBroker.bridge_sessions``); the app asks
it over its loopback control port (:class:`BrokerControl`, ``backend.server.broker_control``)
and :class:`BridgeSessions` decides what a caller sees: each session's credentials (an OAuth
client, or ``mgmt_device`` with a device's token) are resolved here to their organization, and
only sessions of organizations in the caller's scope are shown or may be ended. A session of
another organization is "not found", exactly like one that never existed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlmodel.ext.asyncio.session import AsyncSession

from backend.access.scope import Scope
from backend.audit.services import AuditService
from backend.db.sql import fetch_all
from backend.errors import NotFoundError, UnavailableError

TIMEOUT_SECONDS = 3.0
UNREACHABLE = "the broker's list of MQTT sessions cannot be reached from this app process"


class BrokerControl:
    """The broker process's control routes on 127.0.0.1:``port``, with its bearer token."""

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.token = token

    async def _call(self, method: str, path: str) -> Any:
        if not self.port:
            raise UnavailableError(UNREACHABLE + " (OPENBLYNK_BROKER_METRICS_PORT is 0)")
        try:
            async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS) as client:
                answer = await client.request(
                    method, f"http://127.0.0.1:{self.port}{path}", headers={"Authorization": f"Bearer {self.token}"}
                )
        except httpx.HTTPError as exc:
            raise UnavailableError(UNREACHABLE) from exc
        if answer.status_code != 200:
            raise UnavailableError(f"{UNREACHABLE} (answered {answer.status_code})")
        return answer.json()

    async def sessions(self) -> list[dict[str, Any]]:
        """Every organization's gateway and integration sessions, as the broker lists them."""
        return list(await self._call("GET", "/bridge-sessions"))

    async def disconnect(self, session_id: str) -> bool:
        """End one; whether it was still connected."""
        return bool((await self._call("POST", f"/bridge-sessions/{session_id}/disconnect"))["disconnected"])


@dataclass(frozen=True, slots=True)
class BridgeSessionInfo:
    """One session as the console shows it."""

    id: str
    kind: str
    """``gateway`` or ``integration``."""
    org_id: int
    login: str
    """The user name it logged in with: the OAuth client's id (``integration:`` prefixed for an
    integration), or ``mgmt_device``."""
    credentials: str
    """The OAuth client's name, or the name of the device whose token it used."""
    client_id: str
    """The MQTT client id it sent."""
    address: str | None
    port: int | None
    connected_at: datetime
    devices: int
    subscriptions: int
    msgs_in: int
    msgs_out: int
    bytes_in: int
    bytes_out: int


def _pk(key: str, kind: str) -> int | None:
    prefix, _, pk = key.partition(":")
    return int(pk) if prefix == kind and pk.isdigit() else None


class BridgeSessions:
    """The sessions of one caller's scope (see module docstring)."""

    def __init__(self, session: AsyncSession, scope: Scope, audit: AuditService, control: BrokerControl) -> None:
        self.session = session
        self.scope = scope
        self.audit = audit
        self.control = control

    async def shown(self, org_id: int | None = None) -> list[BridgeSessionInfo]:
        """Sessions of one organization of the scope, or of the whole scope; oldest first."""
        if org_id is not None:
            await self.scope.require_org(org_id)
        orgs = {org_id} if org_id is not None else set(await self.scope.org_ids())
        raw = await self.control.sessions()
        clients = await self._names("oauth_client", "client_id", [_pk(s["key"], "client") for s in raw])
        devices = await self._names("device", "NULL", [_pk(s["key"], "device") for s in raw])
        shown = []
        for item in raw:
            client_pk, device_pk = _pk(item["key"], "client"), _pk(item["key"], "device")
            if client_pk is not None and client_pk in clients:
                org, name, login = clients[client_pk]
                login = ("integration:" if item["kind"] == "integration" else "") + login
            elif device_pk is not None and device_pk in devices:
                org, name, _ = devices[device_pk]
                login = "mgmt_device"
            else:
                continue  # its credentials are gone: the broker is ending it
            if org in orgs:
                shown.append(_info(item, org, login, name))
        return shown

    async def _names(self, table: str, login: str, pks: list[int | None]) -> dict[int, tuple[int, str, str]]:
        wanted = sorted({pk for pk in pks if pk is not None})
        if not wanted:
            return {}
        rows = await fetch_all(
            self.session,
            f"SELECT id, org_id, name, {login} AS login FROM {table} WHERE id = ANY(:ids)",  # noqa: S608 (constants)
            ids=wanted,
        )
        return {int(r["id"]): (int(r["org_id"]), str(r["name"]), str(r["login"] or "")) for r in rows}

    async def disconnect(self, session_id: str) -> BridgeSessionInfo:
        """End one session of the scope now (its credentials keep working); audited."""
        found = next((s for s in await self.shown() if s.id == session_id), None)
        if found is None or not await self.control.disconnect(session_id):
            raise NotFoundError("MQTT session not found")
        await self.audit.record(
            self.scope.principal,
            found.org_id,
            "mqtt_session.disconnect",
            "mqtt_session",
            found.id,
            kind=found.kind,
            login=found.login,
            client_id=found.client_id,
            address=found.address,
        )
        return found


def _info(item: dict[str, Any], org: int, login: str, name: str) -> BridgeSessionInfo:
    return BridgeSessionInfo(
        id=str(item["id"]),
        kind=str(item["kind"]),
        org_id=org,
        login=login,
        credentials=name,
        client_id=str(item["client_id"]),
        address=item["address"],
        port=item["port"],
        connected_at=datetime.fromtimestamp(float(item["connected_at"]), UTC),
        devices=int(item["devices"]),
        subscriptions=int(item["subscriptions"]),
        msgs_in=int(item["msgs_in"]),
        msgs_out=int(item["msgs_out"]),
        bytes_in=int(item["bytes_in"]),
        bytes_out=int(item["bytes_out"]),
    )
