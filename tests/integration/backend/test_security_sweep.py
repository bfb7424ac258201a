"""The cross-tenant sweep of every HTTP route (issue #11 item 9).

``ROUTES`` classifies every route of the real app (built by ``backend.server.factory.create_app``): how a
caller proves who it is (``PUBLIC``, ``DEVICE`` token, console ``SESSION`` cookie, platform
``BEARER`` token) and, for each kind of id the route takes (in its path, its query or its body),
how that id is filled. ``test_every_route_is_in_the_table`` fails when a route is added (or
removed) without its row here.

The sweep then builds two sibling tenants A and B (each with an administrator, a member, a
custom role, an invitation, an OAuth client, a template with a datastream, an event and a
metadata field, devices with values, a tag, an uploaded file and an export, firmware and a
shipment) and, for every row with ids, in both directions:

- calls the route as tenant B with tenant A's ids and expects the row's exact refusal (404 for
  what B may not know exists; 403 where the codebase deliberately says so, such as a forged
  firmware download token);
- checks that nothing anywhere in the database changed during B's calls;
- then makes the very same call as tenant A and expects the row's exact success, so the ids B
  used were real.

Rows without ids that read lists are called by B and must not show anything of A's (every
name A made carries A's marker), while A's own answer shows A's marker. Every route is also
called without credentials and must answer the exact refusal of its kind.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from websockets.sync.client import connect as ws_connect

from backend.server.factory import create_app
from backend.settings import Settings
from ota import DownloadTokens, build_tag
from tests.support.accounts import (
    ADMIN,
    ROOT_ADMIN,
    STAFF,
    USER,
    AccountsStack,
    Api,
    invite_and_join,
    start_accounts_stack,
)
from tests.support.dbstate import changed_tables, settled_state
from tests.support.images import png
from tests.support.net import wait_for
from tests.support.stack import TEST_SECRET

PUBLIC, DEVICE, SESSION, BEARER = "public", "device-token", "session", "bearer"
V1 = "/api/v1/organization"
FW_TYPE = "OBSWEEP"


# -- the world: two sibling tenants ----------------------------------------------------------


class Bearer(httpx.Client):
    """A platform API client holding an access token."""

    def __init__(self, base_url: str, token: str) -> None:
        super().__init__(base_url=base_url, timeout=30, headers={"Authorization": f"Bearer {token}"})


@dataclass
class Tenant:
    """One tenant's organization, people, credentials and things; every name holds ``marker``."""

    name: str
    marker: str
    org: int
    sub: int  # a sub-organization of ``org``
    admin: Api
    bearer: Bearer
    admin_id: int
    admin_email: str
    member: int  # a Staff user
    role: int  # a custom role no one holds
    invitation: int
    client: int  # OAuth client primary key
    template: int
    template_public: str
    device: int
    token: str
    firmware: int
    shipment: int
    upload: str  # the stored name of a file the device uploaded
    export: str  # the file name of a data export of the device
    spares: dict[str, Any] = field(default_factory=dict)

    def spare(self, key: str, make: Callable[[], Any]) -> Any:
        """A throwaway resource made once per key (the foreign and the own call use the same one)."""
        if key not in self.spares:
            self.spares[key] = make()
        return self.spares[key]


@dataclass
class World:
    acc: AccountsStack
    root: Api
    a: Tenant
    b: Tenant

    @property
    def base_url(self) -> str:
        return self.acc.base_url


def _ok(r: httpx.Response, status: int) -> Any:
    assert r.status_code == status, (r.request.method, r.request.url, r.status_code, r.text)
    return r.json() if r.content and r.headers.get("content-type", "").startswith("application/json") else r.text


def _image(version: str) -> bytes:
    tag = build_tag({"mcu": version, "fw-type": FW_TYPE, "build": "Mar 05 2024 18:29:27", "blynk": "1.3.2"})
    return os.urandom(2048) + tag + os.urandom(2048)


def make_device(api: Api, template: int, name: str) -> tuple[int, str]:
    body = _ok(api.post("/api/console/devices", json={"name": name, "template_id": template}), 201)
    return int(body["id"]), str(body["token"])


def make_shipment(api: Api, firmware: int, device: int, name: str) -> int:
    body = _ok(
        api.post(
            "/api/ota/shipments",
            json={"name": name, "firmware_id": firmware, "target": {"kind": "devices", "device_ids": [device]}},
        ),
        201,
    )
    return int(body["id"])


def make_client(api: Api, name: str) -> tuple[int, str]:
    made = _ok(api.post("/api/oauth2/clients", json={"name": name}), 201)
    r = httpx.post(
        f"{api.base_url}/oauth2/token",
        params={"grant_type": "client_credentials"},
        auth=(made["client"]["client_id"], made["client_secret"]),
    )
    return int(made["client"]["id"]), str(_ok(r, 200)["access_token"])


def build_tenant(acc: AccountsStack, root: Api, name: str) -> Tenant:
    marker = f"Zq{name}{uuid.uuid4().hex[:6]}"
    low = name.lower()
    org = _ok(root.post("/api/orgs", json={"name": f"Org {marker}"}), 201)["id"]
    admin = invite_and_join(acc, root, org, f"admin-{low}@example.com", ADMIN)
    _ok(admin.patch(f"/api/users/{admin.me['id']}", json={"name": f"Admin {marker}"}), 200)
    sub = _ok(admin.post("/api/orgs", json={"name": f"Sub {marker}", "parent_id": org}), 201)["id"]
    member = invite_and_join(acc, admin, org, f"member-{low}@example.com", STAFF)
    _ok(admin.patch(f"/api/users/{member.me['id']}", json={"name": f"Member {marker}"}), 200)
    member.close()
    role = _ok(admin.post("/api/roles", json={"name": f"Role {marker}", "permissions": ["users.view"]}), 201)["id"]
    invitation = _ok(
        admin.post(
            "/api/invitations", json={"email": f"later-{low}@example.com", "role_id": USER, "name": f"Later {marker}"}
        ),
        201,
    )["id"]
    client, access = make_client(admin, f"Client {marker}")
    tmpl = _ok(admin.post("/api/console/templates", json={"name": f"Template {marker}"}), 201)
    for ds in (
        {"pin": "V0", "name": f"Temp {marker}", "type": "double", "min": -40, "max": 85, "save_raw": True},
        {"pin": "V1", "name": f"Power {marker}", "type": "integer", "min": 0, "max": 1},
    ):
        _ok(admin.post(f"/api/console/templates/{tmpl['id']}/datastreams", json=ds), 200)
    _ok(
        admin.post(
            f"/api/console/templates/{tmpl['id']}/events",
            json={"code": "overheat", "name": f"Overheat {marker}", "type": "warning"},
        ),
        200,
    )
    _ok(admin.post(f"/api/console/templates/{tmpl['id']}/metadata", json={"name": "Serial", "type": "text"}), 200)
    device, token = make_device(admin, tmpl["id"], f"Device {marker}")
    _ok(admin.put(f"/api/devices/{device}/tags", json={"tags": [f"tag {marker}"]}), 200)
    _ok(admin.put(f"/api/console/devices/{device}/metadata", json={"name": "Serial", "value": f"SN {marker}"}), 200)
    base = acc.base_url
    now = int(datetime.now(UTC).timestamp() * 1000)
    _ok(
        httpx.post(
            f"{base}/external/api/batch/update",
            params={"token": token, "pin": "V0"},
            json=[[now - 60_000 * m, 20 + m] for m in range(1, 5)],
        ),
        200,
    )
    _ok(httpx.get(f"{base}/external/api/update", params={"token": token, "V1": "1"}), 200)
    _ok(
        httpx.get(
            f"{base}/external/api/logEvent", params={"token": token, "code": "overheat", "description": f"Hot {marker}"}
        ),
        200,
    )
    uploaded = _ok(
        httpx.post(
            f"{base}/external/api/upload",
            params={"token": token},
            files={"upfile": (f"{marker}.txt", f"file of {marker}".encode(), "text/plain")},
        ),
        200,
    )
    export = _ok(httpx.get(f"{base}/external/api/data/get", params={"token": token, "dataStreamId": "0"}), 200)
    firmware = _ok(admin.post("/api/ota/firmware", params={"filename": f"{marker}.bin"}, content=_image("2.0.0")), 201)[
        "id"
    ]
    shipment = make_shipment(admin, firmware, device, f"Ship {marker}")
    return Tenant(
        name,
        marker,
        org,
        sub,
        admin,
        Bearer(base, access),
        admin.me["id"],
        f"admin-{low}@example.com",
        member.me["id"],
        role,
        invitation,
        client,
        tmpl["id"],
        tmpl["public_id"],
        device,
        token,
        firmware,
        shipment,
        uploaded.rsplit("/", 1)[1],
        export["link"].rsplit("/", 1)[1],
    )


@pytest.fixture(scope="module")
def world(pg_server: str, template_db: str) -> Iterator[World]:
    for acc in start_accounts_stack(pg_server, template_db, "sweep"):
        root = acc.login(*ROOT_ADMIN)
        w = World(acc, root, build_tenant(acc, root, "A"), build_tenant(acc, root, "B"))
        yield w
        close_bridges(w.a, w.b)
        for api in (root, w.a.admin, w.b.admin, w.a.bearer, w.b.bearer):
            api.close()


# -- throwaway resources (made in the owner's tenant, once per key) --------------------------


def spare_org(o: Tenant, key: str) -> int:
    return int(
        o.spare(
            key,
            lambda: _ok(o.admin.post("/api/orgs", json={"name": f"{key} {o.marker}", "parent_id": o.org}), 201)["id"],
        )
    )


def spare_user(o: Tenant, key: str, role: int = USER) -> int:
    def make() -> int:
        r = o.bearer.post(
            f"{V1}/users/create-in-org",
            json={
                "email": f"{key}-{o.marker.lower()}@example.com",
                "name": f"{key} {o.marker}",
                "password": "a-good-password-1",
                "roleId": role,
            },
        )
        return int(_ok(r, 201)["id"])

    return int(o.spare(key, make))


def spare_role(o: Tenant, key: str) -> int:
    return int(
        o.spare(
            key,
            lambda: _ok(o.admin.post("/api/roles", json={"name": f"{key} {o.marker}", "permissions": []}), 201)["id"],
        )
    )


def spare_invitation(o: Tenant, key: str) -> int:
    return int(
        o.spare(
            key,
            lambda: _ok(
                o.admin.post(
                    "/api/invitations", json={"email": f"{key}-{o.marker.lower()}@example.com", "role_id": USER}
                ),
                201,
            )["id"],
        )
    )


def spare_client(o: Tenant, key: str) -> int:
    return int(o.spare(key, lambda: make_client(o.admin, f"{key} {o.marker}")[0]))


def mqtt_login(port: int, username: str, password: str, client_id: str) -> socket.socket:
    """A raw MQTT 3.1.1 connection (keep-alive 0: it stays until closed) that got CONNACK 0."""

    def text(value: str) -> bytes:
        return len(value.encode()).to_bytes(2, "big") + value.encode()

    body = text("MQTT") + bytes([4, 0xC2, 0, 0]) + text(client_id) + text(username) + text(password)
    size, length = b"", len(body)
    while True:
        length, digit = divmod(length, 128)
        size += bytes([digit | (0x80 if length else 0)])
        if not length:
            break
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"\x10" + size + body)
    assert sock.recv(4) == b"\x20\x02\x00\x00"
    return sock


def spare_bridge(w: World, o: Tenant, key: str) -> str:
    """The id of a connected gateway session of a new OAuth client of the tenant (one per key;
    its socket stays open until :func:`close_bridges`)."""

    def make() -> str:
        made = _ok(o.admin.post("/api/oauth2/clients", json={"name": f"{key} {o.marker}"}), 201)
        client_id = f"sweep-{key}-{o.name}"
        o.spares[f"{key}-socket"] = mqtt_login(
            w.acc.config.mqtt_port, made["client"]["client_id"], made["client_secret"], client_id
        )

        def listed() -> str | None:
            sessions = _ok(o.admin.get("/api/integrations/sessions"), 200)
            return next((str(s["id"]) for s in sessions if s["client_id"] == client_id), None)

        return wait_for(listed, message=f"{client_id} listed")

    return str(o.spare(key, make))


def close_bridges(*tenants: Tenant) -> None:
    """Close the sockets :func:`spare_bridge` left open."""
    for tenant in tenants:
        for spare in tenant.spares.values():
            if isinstance(spare, socket.socket):
                spare.close()


def spare_device(o: Tenant, key: str) -> int:
    return int(o.spare(key, lambda: make_device(o.admin, o.template, f"{key} {o.marker}")[0]))


def spare_location(o: Tenant, key: str) -> int:
    """A location of the tenant's organization (made once per key), named with its marker."""
    body = {"name": f"{key} {o.marker}", "lat": 56.95, "lon": 24.1}
    return int(o.spare(key, lambda: _ok(o.admin.post("/api/locations", json=body), 201)["id"]))


def spare_image(o: Tenant, key: str) -> int:
    """An image of the tenant's library (made once per key, each key its own picture), named with its marker."""

    def make() -> int:
        shade = sum(f"{key} {o.marker}".encode()) % 256
        r = o.admin.post(
            "/api/console/images",
            params={"name": f"{key} {o.marker}.png"},
            content=png(2, 2, (shade, len(key), len(o.marker))),
            headers={"Content-Type": "image/png", "X-CSRF-Token": o.admin.csrf},
        )
        return int(_ok(r, 201)["id"])

    return int(o.spare(key, make))


def spare_static(o: Tenant) -> int:
    """Static tokens of the tenant's template (made once); the template's id."""

    def make() -> int:
        body = {"template_id": o.template, "count": 2}
        _ok(o.admin.post("/api/inject/static-tokens/generate", json=body), 201)
        return o.template

    return int(o.spare("static-tokens", make))


def spare_code(o: Tenant, key: str) -> str:
    """The claim code of a new static token of the tenant's template (one per key)."""
    return str(
        o.spare(
            key,
            lambda: _ok(o.bearer.post(f"{V1}/static-tokens/generate", json={"productId": o.template, "count": 1}), 201)[
                0
            ]["token"],
        )
    )


def spare_claimed(o: Tenant, key: str) -> int:
    """A static token's device the tenant's administrator claimed into the tenant (one per key)."""
    return int(
        o.spare(
            key,
            lambda: _ok(o.admin.post("/api/inject/claim", json={"code": spare_code(o, f"{key}-code")}), 201)[
                "device_id"
            ],
        )
    )


def spare_template(o: Tenant, key: str) -> int:
    def make() -> int:
        tid = _ok(o.admin.post("/api/console/templates", json={"name": f"{key} {o.marker}"}), 201)["id"]
        _ok(
            o.admin.post(
                f"/api/console/templates/{tid}/datastreams", json={"pin": "V3", "name": "Spare", "type": "string"}
            ),
            200,
        )
        _ok(
            o.admin.post(
                f"/api/console/templates/{tid}/events", json={"code": "spare", "name": "Spare", "type": "info"}
            ),
            200,
        )
        _ok(o.admin.post(f"/api/console/templates/{tid}/metadata", json={"name": "Spare", "type": "text"}), 200)
        return int(tid)

    return int(o.spare(key, make))


def spare_firmware(o: Tenant, key: str) -> int:
    return int(
        o.spare(
            key,
            lambda: _ok(
                o.admin.post("/api/ota/firmware", params={"filename": "spare.bin"}, content=_image("2.0.1")), 201
            )["id"],
        )
    )


def spare_shipment(o: Tenant, key: str, cancelled: bool = False) -> int:
    def make() -> int:
        sid = make_shipment(o.admin, o.firmware, spare_device(o, f"{key}-dev"), f"{key} {o.marker}")
        if cancelled:
            _ok(o.admin.post(f"/api/ota/shipments/{sid}/cancel"), 200)
        return sid

    return int(o.spare(key, make))


def download_token(w: World, shipment: int, device: int) -> str:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"openblynk ota download tokens").derive(
        TEST_SECRET.encode()
    )
    return DownloadTokens(key).issue(shipment, device, int(datetime.now(UTC).timestamp()) + 3600)


def offered_download(w: World, o: Tenant, c: Tenant) -> Call:
    """The download of the owner's device in the caller's shipment; as if the offer was sent."""
    shipment = spare_shipment(c, "dl-ship")
    device = c.spares["dl-ship-dev"] if o is c else o.device
    with w.acc.db() as db:
        db.execute("UPDATE ota_device SET status = 'request_sent' WHERE shipment_id = %s", (shipment,))
    return Call("GET", "/api/ota/download", params={"token": download_token(w, shipment, device)})


def automation_body(o: Tenant, key: str, device: int) -> dict[str, Any]:
    """A scene of ``o``'s that switches ``device`` (its name carries ``o``'s marker)."""
    return {
        "name": f"{key} {o.marker}",
        "condition": {"type": "scene"},
        "actions": [{"type": "control", "target": {"device_id": device}, "pin": 1, "value": "1"}],
    }


def spare_automation(o: Tenant, key: str) -> int:
    return int(
        o.spare(
            key,
            lambda: _ok(o.admin.post("/api/console/automations", json=automation_body(o, key, o.device)), 201)["id"],
        )
    )


def automations_of(path: str, **params: Any) -> Fill:
    """A list of automations, once both tenants have one."""

    def fill(w: World, o: Tenant, c: Tenant) -> Call:
        spare_automation(o, "listed-auto")
        spare_automation(c, "listed-auto")
        return G(path, **params)

    return fill


def webhook_body(o: Tenant, key: str, **trigger: Any) -> dict[str, Any]:
    """A webhook of ``o``'s (its name carries ``o``'s marker) on ``trigger`` (default: any
    datastream of ``o``'s template); its URL is refused by the address guard, so a test sends
    nothing."""
    return {
        "name": f"{key} {o.marker}",
        **(trigger or {"trigger": "template_datastream", "template_id": o.template}),
        "url": "http://127.0.0.1:9/hook",
    }


def spare_webhook(o: Tenant, key: str) -> int:
    return int(o.spare(key, lambda: _ok(o.admin.post("/api/console/webhooks", json=webhook_body(o, key)), 201)["id"]))


def webhooks_listed(w: World, o: Tenant, c: Tenant) -> Call:
    """The list of webhooks, once both tenants have one."""
    spare_webhook(o, "listed-hook")
    spare_webhook(c, "listed-hook")
    return G("/api/console/webhooks")


def spare_notification(o: Tenant, key: str) -> int:
    """An in-app notification of the tenant's administrator: an event of the tenant's device whose
    definition notifies the organization's admins (one per key); its id."""

    def make() -> int:
        code = f"notice_{key}".replace("-", "_")
        event = {"code": code, "name": f"Notice {o.marker}", "notify": {"in_app": True, "recipients": ["admins"]}}
        _ok(o.admin.post(f"/api/console/templates/{o.template}/events", json=event), 200)
        r = httpx.get(f"{o.admin.base_url}/external/api/logEvent", params={"token": o.token, "code": code})
        _ok(r, 200)

        def found() -> int | None:
            listed = _ok(o.admin.get("/api/console/notifications", params={"size": 100}), 200)["content"]
            return next((n["id"] for n in listed if n["title"].endswith(f"Notice {o.marker}")), None)

        return int(wait_for(found, message=f"the notification {key} of {o.name}"))

    return int(o.spare(key, make))


def notifications_listed(path: str) -> Fill:
    """A list of notifications (JSON or the page), once both tenants' admins have one."""

    def fill(w: World, o: Tenant, c: Tenant) -> Call:
        spare_notification(o, "listed-notice")
        spare_notification(c, "listed-notice")
        return G(path)

    return fill


def webhooks_page_listed(w: World, o: Tenant, c: Tenant) -> Call:
    """The console's page of webhooks, once both tenants have one."""
    webhooks_listed(w, o, c)
    return G("/webhooks")


# -- the table -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    params: dict[str, Any] | None = None
    json: Any = None
    content: bytes | None = None
    files: dict[str, Any] | None = None


Fill = Callable[[World, Tenant, Tenant], Call]
"""(world, owner of the ids, caller) -> the request; the caller's own ids come from ``caller``."""


@dataclass(frozen=True)
class Ids:
    """One way a route names another tenant's thing: the call, B's exact refusal, A's success."""

    fill: Fill
    foreign: int
    own: int


@dataclass(frozen=True)
class Route:
    kind: str
    ids: dict[str, Ids] = field(default_factory=dict)
    """Id kind -> how it is filled. Empty: the route names no tenant's thing."""
    lists: Fill | None = None
    """For a route without ids that reads the caller's things: the call; A's answer shows A's
    marker, B's answer shows none of A's."""
    anon: int | None = None
    """Status without credentials (default by kind: /api and bearer 401, pages 302 to /login, device 400)."""
    note: str = ""


def G(path: str, **params: Any) -> Call:
    return Call("GET", path, params=params or None)


def I(fill: Fill, foreign: int = 404, own: int = 200) -> Ids:  # noqa: E743 (short on purpose: the table reads better)
    return Ids(fill, foreign, own)


def S(note: str = "", **ids: Ids) -> Route:
    return Route(SESSION, ids, note=note)


def B(note: str = "", **ids: Ids) -> Route:
    return Route(BEARER, ids, note=note)


def _dev_write(o: Tenant, body: dict[str, Any]) -> dict[str, Any]:
    return {"deviceId": o.device, **body}


NOW_MS = int(datetime.now(UTC).timestamp() * 1000)
YEAR_AGO = NOW_MS - 365 * 86_400_000
ROUTES: dict[tuple[str, str], Route] = {
    ("GET", "/webhooks"): Route(SESSION, lists=webhooks_page_listed),
    ("GET", "/webhooks/new"): S(org=I(lambda w, o, c: G("/webhooks/new", org_id=o.org))),
    ("GET", "/webhooks/{webhook_id:int}"): S(webhook=I(lambda w, o, c: G(f"/webhooks/{spare_webhook(o, 'hook')}"))),
    # ---- notifications (issue #13): each user's own, the console's JSON API and page
    ("GET", "/api/console/notifications"): Route(SESSION, lists=notifications_listed("/api/console/notifications")),
    ("GET", "/api/console/notifications/unread"): Route(SESSION),
    ("POST", "/api/console/notifications/{notification_id:int}/read"): S(
        notification=I(
            lambda w, o, c: Call("POST", f"/api/console/notifications/{spare_notification(o, 'read-notice')}/read")
        )
    ),
    ("POST", "/api/console/notifications/read-all"): Route(SESSION),
    ("GET", "/api/console/notifications/preferences"): Route(SESSION),
    ("PUT", "/api/console/notifications/preferences"): Route(SESSION),
    ("GET", "/notifications"): Route(SESSION, lists=notifications_listed("/notifications")),
    # ---- webhooks (issue #13): the console's JSON API
    ("GET", "/api/console/webhooks"): Route(
        SESSION, {"org": I(lambda w, o, c: G("/api/console/webhooks", org_id=o.org))}, lists=webhooks_listed
    ),
    ("POST", "/api/console/webhooks"): S(
        org=I(
            lambda w, o, c: Call(
                "POST", "/api/console/webhooks", params={"org_id": o.org}, json=webhook_body(o, "made")
            ),
            own=201,
        ),
        template=I(
            lambda w, o, c: Call(
                "POST",
                "/api/console/webhooks",
                json=webhook_body(c, "made-tpl", trigger="template_datastream", template_id=o.template),
            ),
            foreign=400,
            own=201,
        ),
        device=I(
            lambda w, o, c: Call(
                "POST",
                "/api/console/webhooks",
                json=webhook_body(c, "made-dev", trigger="device_datastream", device_id=o.device),
            ),
            foreign=400,
            own=201,
        ),
    ),
    ("GET", "/api/console/webhooks/{webhook_id:int}"): S(
        webhook=I(lambda w, o, c: G(f"/api/console/webhooks/{spare_webhook(o, 'hook')}"))
    ),
    ("PUT", "/api/console/webhooks/{webhook_id:int}"): S(
        webhook=I(
            lambda w, o, c: Call(
                "PUT", f"/api/console/webhooks/{spare_webhook(o, 'hook')}", json=webhook_body(o, "hook")
            )
        ),
        device=I(
            lambda w, o, c: Call(
                "PUT",
                f"/api/console/webhooks/{spare_webhook(c, 'hook')}",
                json=webhook_body(c, "hook", trigger="device_datastream", device_id=o.device),
            ),
            foreign=400,
        ),
    ),
    ("DELETE", "/api/console/webhooks/{webhook_id:int}"): S(
        webhook=I(lambda w, o, c: Call("DELETE", f"/api/console/webhooks/{spare_webhook(o, 'deleted-hook')}"), own=204)
    ),
    ("POST", "/api/console/webhooks/{webhook_id:int}/secret"): S(
        webhook=I(lambda w, o, c: Call("POST", f"/api/console/webhooks/{spare_webhook(o, 'hook')}/secret"))
    ),
    ("POST", "/api/console/webhooks/{webhook_id:int}/test"): S(
        webhook=I(lambda w, o, c: Call("POST", f"/api/console/webhooks/{spare_webhook(o, 'hook')}/test"))
    ),
    ("GET", "/api/console/webhooks/{webhook_id:int}/deliveries"): S(
        webhook=I(lambda w, o, c: G(f"/api/console/webhooks/{spare_webhook(o, 'hook')}/deliveries"))
    ),
    # ---- automations (issue #13): the console's JSON API and the platform API
    ("GET", "/api/console/automations"): Route(
        SESSION,
        {"org": I(lambda w, o, c: G("/api/console/automations", org_id=o.org))},
        lists=automations_of("/api/console/automations"),
    ),
    ("POST", "/api/console/automations"): S(
        org=I(
            lambda w, o, c: Call(
                "POST", "/api/console/automations", params={"org_id": o.org}, json=automation_body(o, "made", o.device)
            ),
            own=201,
        ),
        device=I(
            lambda w, o, c: Call("POST", "/api/console/automations", json=automation_body(c, "made", o.device)),
            foreign=400,
            own=201,
        ),
    ),
    ("GET", "/api/console/automations/log"): S(
        org=I(lambda w, o, c: G("/api/console/automations/log", org_id=o.org)),
        automation=I(lambda w, o, c: G("/api/console/automations/log", automation_id=spare_automation(o, "auto"))),
    ),
    ("GET", "/api/console/automations/{automation_id:int}"): S(
        automation=I(lambda w, o, c: G(f"/api/console/automations/{spare_automation(o, 'auto')}"))
    ),
    ("PUT", "/api/console/automations/{automation_id:int}"): S(
        automation=I(
            lambda w, o, c: Call(
                "PUT",
                f"/api/console/automations/{spare_automation(o, 'auto')}",
                json=automation_body(o, "auto", o.device),
            )
        ),
        device=I(
            lambda w, o, c: Call(
                "PUT",
                f"/api/console/automations/{spare_automation(c, 'auto')}",
                json=automation_body(c, "auto", o.device),
            ),
            foreign=400,
        ),
    ),
    ("DELETE", "/api/console/automations/{automation_id:int}"): S(
        automation=I(
            lambda w, o, c: Call("DELETE", f"/api/console/automations/{spare_automation(o, 'deleted-auto')}"), own=204
        )
    ),
    ("POST", "/api/console/automations/{automation_id:int}/enable"): S(
        automation=I(lambda w, o, c: Call("POST", f"/api/console/automations/{spare_automation(o, 'auto')}/enable"))
    ),
    ("POST", "/api/console/automations/{automation_id:int}/disable"): S(
        automation=I(
            lambda w, o, c: Call("POST", f"/api/console/automations/{spare_automation(o, 'off-auto')}/disable")
        )
    ),
    ("POST", "/api/console/automations/{automation_id:int}/run"): S(
        automation=I(lambda w, o, c: Call("POST", f"/api/console/automations/{spare_automation(o, 'auto')}/run"))
    ),
    ("POST", f"{V1}/automation/run"): B(
        automation=I(
            lambda w, o, c: Call("POST", f"{V1}/automation/run", params={"automationId": spare_automation(o, "auto")})
        )
    ),
    ("GET", f"{V1}/automations"): Route(
        BEARER,
        {"org": I(lambda w, o, c: G(f"{V1}/automations", orgId=o.org))},
        lists=automations_of(f"{V1}/automations"),
    ),
    ("GET", f"{V1}/automation"): B(
        automation=I(lambda w, o, c: G(f"{V1}/automation", automationId=spare_automation(o, "auto")))
    ),
    ("POST", f"{V1}/automation/create"): B(
        org=I(
            lambda w, o, c: Call(
                "POST", f"{V1}/automation/create", params={"orgId": o.org}, json=automation_body(o, "v1-made", o.device)
            ),
            own=201,
        ),
        device=I(
            lambda w, o, c: Call("POST", f"{V1}/automation/create", json=automation_body(c, "v1-made", o.device)),
            foreign=400,
            own=201,
        ),
    ),
    ("PUT", f"{V1}/automation"): B(
        automation=I(
            lambda w, o, c: Call(
                "PUT",
                f"{V1}/automation",
                params={"automationId": spare_automation(o, "auto")},
                json=automation_body(o, "auto", o.device),
            )
        )
    ),
    ("DELETE", f"{V1}/automation"): B(
        automation=I(
            lambda w, o, c: Call(
                "DELETE", f"{V1}/automation", params={"automationId": spare_automation(o, "v1-deleted-auto")}
            ),
            own=204,
        )
    ),
    ("GET", f"{V1}/automation/logs"): B(
        automation=I(lambda w, o, c: G(f"{V1}/automation/logs", automationId=spare_automation(o, "auto")))
    ),
    # ---- public: no credentials; the token-bearing links are secrets, not tenant ids
    ("GET", "/"): Route(PUBLIC, anon=302),
    ("GET", "/login"): Route(PUBLIC, anon=200),
    ("GET", "/signup"): Route(PUBLIC, anon=200),
    ("GET", "/signup/confirm"): Route(PUBLIC, anon=200),
    ("GET", "/password-reset"): Route(PUBLIC, anon=200),
    ("GET", "/invitations/accept"): Route(PUBLIC, anon=200),
    ("GET", "/healthz"): Route(PUBLIC, anon=200),
    ("GET", "/readyz"): Route(PUBLIC, anon=200),
    ("GET", "/metrics"): Route(PUBLIC, anon=200, note="loopback clients only, or OPENBLYNK_METRICS_TOKEN"),
    ("GET", "/ca.pem"): Route(PUBLIC, anon=200),
    ("GET", "/static/console/{file_path:path}"): Route(PUBLIC, anon=404),
    ("HEAD", "/static/console/{file_path:path}"): Route(PUBLIC, anon=404),
    ("GET", "/static/vendor/{name:str}"): Route(PUBLIC, anon=404),
    ("GET", "/schema"): Route(PUBLIC, anon=200),
    ("GET", "/schema/openapi.json"): Route(PUBLIC, anon=200),
    ("GET", "/schema/{path:str}"): Route(PUBLIC, anon=404),
    ("POST", "/api/auth/login"): Route(PUBLIC, anon=400),
    ("POST", "/api/auth/signup"): Route(PUBLIC, anon=400),
    ("POST", "/api/auth/signup/confirm"): Route(PUBLIC, anon=400),
    ("POST", "/api/auth/password-reset"): Route(PUBLIC, anon=400),
    ("POST", "/api/auth/password-reset/confirm"): Route(PUBLIC, anon=400),
    ("GET", "/api/invitations/preview"): Route(PUBLIC, anon=400),
    ("POST", "/api/invitations/accept"): Route(PUBLIC, anon=400),
    ("POST", "/oauth2/token"): Route(PUBLIC, anon=400, note="client id and secret in the request"),
    # capability URLs: the random name is the permission; the device id in the path must match it
    ("GET", "/device_uploads/{device_id:int}/{name:str}"): Route(
        PUBLIC,
        {"device id with the caller's file name": I(lambda w, o, c: G(f"/device_uploads/{o.device}/{c.upload}"))},
        anon=404,
    ),
    ("GET", "/{name:str}"): Route(
        PUBLIC,
        {
            "device id inside the caller's export name": I(
                lambda w, o, c: G("/" + c.export.replace(f"device_data_{c.device}_", f"device_data_{o.device}_"))
            )
        },
        anon=404,
    ),
    ("GET", "/api/ota/download"): Route(
        PUBLIC,
        {"device id in a signed token of the caller's shipment": I(offered_download, foreign=403)},
        anon=400,
        note="the signed token names shipment and device",
    ),
    # ---- device token: the token is the credential and names the device; no other id but provisioning's template
    ("GET", "/external/api/get"): Route(DEVICE),
    ("GET", "/external/api/getAll"): Route(DEVICE),
    ("GET", "/external/api/update"): Route(DEVICE),
    ("GET", "/external/api/batch/update"): Route(DEVICE),
    ("POST", "/external/api/batch/update"): Route(DEVICE),
    ("GET", "/external/api/isHardwareConnected"): Route(DEVICE),
    ("GET", "/external/api/update/property"): Route(DEVICE),
    ("GET", "/external/api/logEvent"): Route(DEVICE),
    ("GET", "/external/api/logevent"): Route(DEVICE),
    ("GET", "/external/api/device/meta"): Route(DEVICE),
    ("GET", "/external/api/device/meta/update"): Route(DEVICE),
    ("GET", "/external/api/data/get"): Route(DEVICE),
    ("POST", "/external/api/upload"): Route(DEVICE),
    ("GET", "/external/api/provision"): Route(
        DEVICE,
        {
            "template public id": I(
                lambda w, o, c: G("/external/api/provision", token=c.token, templateId=o.template_public), foreign=400
            )
        },
    ),
    # ---- console pages (session cookie)
    ("GET", "/automations"): Route(SESSION, lists=automations_of("/automations")),
    ("GET", "/automations/new"): S(org=I(lambda w, o, c: G("/automations/new", org_id=o.org))),
    ("GET", "/automations/{automation_id:int}"): S(
        automation=I(lambda w, o, c: G(f"/automations/{spare_automation(o, 'auto')}"))
    ),
    ("GET", "/automations/log"): S(
        automation=I(lambda w, o, c: G("/automations/log", automation_id=spare_automation(o, "auto")))
    ),
    ("GET", "/account"): Route(SESSION, lists=lambda w, o, c: G("/account")),
    ("GET", "/air"): Route(SESSION),
    ("GET", "/air/firmware"): Route(SESSION, lists=lambda w, o, c: G("/air/firmware")),
    ("GET", "/air/shipments"): Route(SESSION, lists=lambda w, o, c: G("/air/shipments")),
    ("GET", "/air/shipments/new"): S(
        firmware=I(lambda w, o, c: G("/air/shipments/new", firmware=o.firmware), foreign=200)
    ),
    ("GET", "/air/shipments/{shipment_id:int}"): S(shipment=I(lambda w, o, c: G(f"/air/shipments/{o.shipment}"))),
    ("GET", "/air/shipments/{shipment_id:int}/progress"): S(
        shipment=I(lambda w, o, c: G(f"/air/shipments/{o.shipment}/progress"))
    ),
    ("GET", "/devices"): Route(
        SESSION,
        {
            "org filter": I(lambda w, o, c: G("/devices", org=o.org)),
            "template filter": I(lambda w, o, c: G("/devices", template=o.template), foreign=200),
        },
        lists=lambda w, o, c: G("/devices"),
    ),
    ("GET", "/devices/new"): S(template=I(lambda w, o, c: G("/devices/new", template=o.template), foreign=200)),
    ("GET", "/devices/{device_id:int}"): S(device=I(lambda w, o, c: G(f"/devices/{o.device}"))),
    # ---- the installable app (issue #19): a public shell, its worker and manifest; JSON reads
    ("GET", "/app"): Route(PUBLIC, anon=200),
    ("GET", "/app/sw.js"): Route(PUBLIC, anon=200),
    ("GET", "/app/manifest.webmanifest"): Route(PUBLIC, anon=200),
    ("GET", "/app/api/session"): Route(SESSION, note="the caller's own e-mail, permissions and CSRF token"),
    ("GET", "/app/api/devices"): Route(SESSION, lists=lambda w, o, c: G("/app/api/devices")),
    ("GET", "/app/api/devices/{device_id:int}"): S(device=I(lambda w, o, c: G(f"/app/api/devices/{o.device}"))),
    ("GET", "/templates"): Route(SESSION, lists=lambda w, o, c: G("/templates")),
    ("GET", "/templates/{template_id:int}"): S(template=I(lambda w, o, c: G(f"/templates/{o.template}"))),
    ("GET", "/orgs"): Route(SESSION, lists=lambda w, o, c: G("/orgs")),
    ("GET", "/users"): Route(SESSION, lists=lambda w, o, c: G("/users")),
    ("GET", "/roles"): Route(SESSION, lists=lambda w, o, c: G("/roles")),
    # ---- /api: accounts, organizations, devices, audit, OAuth clients (session cookie + CSRF)
    ("POST", "/api/auth/logout"): Route(SESSION),
    ("POST", "/api/auth/logout-all"): Route(SESSION),
    ("POST", "/api/auth/password"): Route(SESSION),
    ("GET", "/api/users/me"): Route(SESSION, lists=lambda w, o, c: G("/api/users/me")),
    ("GET", "/api/permissions"): Route(SESSION),
    ("GET", "/api/users"): Route(
        SESSION, {"org": I(lambda w, o, c: G("/api/users", org_id=o.org))}, lists=lambda w, o, c: G("/api/users")
    ),
    ("GET", "/api/users/{user_id:int}"): S(user=I(lambda w, o, c: G(f"/api/users/{o.member}"))),
    ("PATCH", "/api/users/{user_id:int}"): S(
        user=I(lambda w, o, c: Call("PATCH", f"/api/users/{o.member}", json={"name": f"Member {o.marker}"})),
        role=I(lambda w, o, c: Call("PATCH", f"/api/users/{spare_user(c, 'gets-role')}", json={"role_id": o.role})),
    ),
    ("DELETE", "/api/users/{user_id:int}"): S(
        user=I(lambda w, o, c: Call("DELETE", f"/api/users/{spare_user(o, 'deleted')}"), own=204)
    ),
    ("POST", "/api/users/{user_id:int}/suspend"): S(
        user=I(lambda w, o, c: Call("POST", f"/api/users/{spare_user(o, 'suspended')}/suspend"))
    ),
    ("POST", "/api/users/{user_id:int}/activate"): S(
        user=I(lambda w, o, c: Call("POST", f"/api/users/{o.member}/activate"))
    ),
    ("POST", "/api/users/{user_id:int}/logout"): S(
        user=I(lambda w, o, c: Call("POST", f"/api/users/{o.member}/logout"))
    ),
    ("GET", "/api/roles"): Route(
        SESSION, {"org": I(lambda w, o, c: G("/api/roles", org_id=o.org))}, lists=lambda w, o, c: G("/api/roles")
    ),
    ("GET", "/api/roles/{role_id:int}"): S(role=I(lambda w, o, c: G(f"/api/roles/{o.role}"))),
    ("POST", "/api/roles"): S(
        org=I(
            lambda w, o, c: Call(
                "POST", "/api/roles", json={"name": f"Planted {c.marker}{o.name}", "permissions": [], "org_id": o.org}
            ),
            own=201,
        )
    ),
    ("PATCH", "/api/roles/{role_id:int}"): S(
        role=I(lambda w, o, c: Call("PATCH", f"/api/roles/{o.role}", json={"permissions": ["users.view"]}))
    ),
    ("DELETE", "/api/roles/{role_id:int}"): S(
        role=I(lambda w, o, c: Call("DELETE", f"/api/roles/{spare_role(o, 'deleted-role')}"), own=204)
    ),
    ("GET", "/api/invitations"): Route(
        SESSION,
        {"org": I(lambda w, o, c: G("/api/invitations", org_id=o.org))},
        lists=lambda w, o, c: G("/api/invitations"),
    ),
    ("POST", "/api/invitations"): S(
        org=I(
            lambda w, o, c: Call(
                "POST",
                "/api/invitations",
                json={"email": f"spy-{c.name}-{o.marker.lower()}@example.com", "role_id": USER, "org_id": o.org},
            ),
            own=201,
        ),
        role=I(
            lambda w, o, c: Call(
                "POST",
                "/api/invitations",
                json={"email": f"role-{c.name}-{o.marker.lower()}@example.com", "role_id": o.role, "org_id": c.org},
            ),
            own=201,
        ),
    ),
    ("DELETE", "/api/invitations/{invitation_id:int}"): S(
        invitation=I(lambda w, o, c: Call("DELETE", f"/api/invitations/{spare_invitation(o, 'withdrawn')}"), own=204)
    ),
    ("GET", "/api/orgs"): Route(SESSION, lists=lambda w, o, c: G("/api/orgs")),
    ("GET", "/api/orgs/{org_id:int}"): S(org=I(lambda w, o, c: G(f"/api/orgs/{o.org}"))),
    ("POST", "/api/orgs"): S(
        parent=I(
            lambda w, o, c: Call("POST", "/api/orgs", json={"name": f"Inside {c.name} {o.marker}", "parent_id": o.org}),
            own=201,
        )
    ),
    ("PATCH", "/api/orgs/{org_id:int}"): S(
        org=I(lambda w, o, c: Call("PATCH", f"/api/orgs/{o.sub}", json={"name": f"Sub {o.marker}"}))
    ),
    ("DELETE", "/api/orgs/{org_id:int}"): S(
        org=I(lambda w, o, c: Call("DELETE", f"/api/orgs/{spare_org(o, 'deleted-org')}"), own=204)
    ),
    ("POST", "/api/orgs/{org_id:int}/move"): S(
        org=I(lambda w, o, c: Call("POST", f"/api/orgs/{spare_org(o, 'moved-org')}/move", json={"parent_id": o.sub})),
        parent=I(
            lambda w, o, c: Call("POST", f"/api/orgs/{spare_org(c, 'moving-org')}/move", json={"parent_id": o.sub})
        ),
    ),
    ("GET", "/api/devices"): Route(
        SESSION, {"org": I(lambda w, o, c: G("/api/devices", org_id=o.org))}, lists=lambda w, o, c: G("/api/devices")
    ),
    ("GET", "/api/devices/{device_id:int}"): S(device=I(lambda w, o, c: G(f"/api/devices/{o.device}"))),
    ("POST", "/api/devices/{device_id:int}/move"): S(
        device=I(
            lambda w, o, c: Call("POST", f"/api/devices/{spare_device(o, 'moved-dev')}/move", json={"org_id": o.sub})
        ),
        org=I(
            lambda w, o, c: Call("POST", f"/api/devices/{spare_device(c, 'moving-dev')}/move", json={"org_id": o.sub})
        ),
    ),
    ("GET", "/api/devices/{device_id:int}/tags"): S(device=I(lambda w, o, c: G(f"/api/devices/{o.device}/tags"))),
    ("PUT", "/api/devices/{device_id:int}/tags"): S(
        device=I(lambda w, o, c: Call("PUT", f"/api/devices/{o.device}/tags", json={"tags": [f"tag {o.marker}"]}))
    ),
    ("GET", "/api/tags"): Route(
        SESSION, {"org": I(lambda w, o, c: G("/api/tags", org_id=o.org))}, lists=lambda w, o, c: G("/api/tags")
    ),
    ("GET", "/api/audit"): Route(
        SESSION, {"org": I(lambda w, o, c: G("/api/audit", org_id=o.org))}, lists=lambda w, o, c: G("/api/audit")
    ),
    ("GET", "/api/oauth2/clients"): Route(
        SESSION,
        {"org": I(lambda w, o, c: G("/api/oauth2/clients", org_id=o.org))},
        lists=lambda w, o, c: G("/api/oauth2/clients"),
    ),
    ("POST", "/api/oauth2/clients"): S(
        org=I(
            lambda w, o, c: Call(
                "POST", "/api/oauth2/clients", json={"name": f"Planted {c.name} {o.marker}", "org_id": o.org}
            ),
            own=201,
        )
    ),
    ("DELETE", "/api/oauth2/clients/{client_pk:int}"): S(
        client=I(lambda w, o, c: Call("DELETE", f"/api/oauth2/clients/{spare_client(o, 'revoked')}"))
    ),
    # ---- locations (issue #19)
    ("GET", "/locations"): Route(SESSION, lists=lambda w, o, c: (spare_location(o, "loc"), G("/locations"))[1]),
    ("GET", "/api/locations"): Route(
        SESSION,
        {"org": I(lambda w, o, c: G("/api/locations", org_id=o.org))},
        lists=lambda w, o, c: (spare_location(o, "loc"), G("/api/locations"))[1],
    ),
    ("POST", "/api/locations"): S(
        org=I(
            lambda w, o, c: Call(
                "POST",
                "/api/locations",
                json={"name": f"Made {c.name} {o.marker}", "lat": 1, "lon": 2, "org_id": o.org},
            ),
            own=201,
        )
    ),
    ("GET", "/api/locations/{location_id:int}"): S(
        location=I(lambda w, o, c: G(f"/api/locations/{spare_location(o, 'loc')}"))
    ),
    ("PUT", "/api/locations/{location_id:int}"): S(
        location=I(
            lambda w, o, c: Call(
                "PUT",
                f"/api/locations/{spare_location(o, 'loc')}",
                json={"name": f"loc {o.marker}", "lat": 3, "lon": 4},
            )
        )
    ),
    ("DELETE", "/api/locations/{location_id:int}"): S(
        location=I(lambda w, o, c: Call("DELETE", f"/api/locations/{spare_location(o, 'deleted-loc')}"))
    ),
    ("GET", "/api/locations/{location_id:int}/devices"): S(
        location=I(lambda w, o, c: G(f"/api/locations/{spare_location(o, 'loc')}/devices"))
    ),
    ("PUT", "/api/locations/{location_id:int}/devices"): S(
        location=I(
            lambda w, o, c: Call("PUT", f"/api/locations/{spare_location(o, 'loc')}/devices", json={"device_ids": []})
        ),
        device=I(
            lambda w, o, c: Call(
                "PUT", f"/api/locations/{spare_location(c, 'loc')}/devices", json={"device_ids": [o.device]}
            )
        ),
    ),
    # ---- organization settings pages (issue #19): the actions log and its CSV, OAuth2 clients
    ("GET", "/api/audit/export"): Route(
        SESSION,
        {"org": I(lambda w, o, c: G("/api/audit/export", org_id=o.org))},
        lists=lambda w, o, c: G("/api/audit/export"),
    ),
    ("GET", "/audit"): Route(
        SESSION, {"org": I(lambda w, o, c: G("/audit", org=o.org))}, lists=lambda w, o, c: G("/audit")
    ),
    ("GET", "/oauth2-clients"): Route(SESSION, lists=lambda w, o, c: G("/oauth2-clients")),
    # ---- connected MQTT gateway and integration sessions (issue #14 item 7)
    ("GET", "/mqtt-sessions"): Route(
        SESSION, lists=lambda w, o, c: (spare_bridge(w, c, "mqtt-listed"), G("/mqtt-sessions"))[1]
    ),
    ("GET", "/api/integrations/sessions"): Route(
        SESSION,
        {"org": I(lambda w, o, c: G("/api/integrations/sessions", org_id=o.org))},
        lists=lambda w, o, c: (spare_bridge(w, c, "mqtt-listed"), G("/api/integrations/sessions"))[1],
    ),
    ("POST", "/api/integrations/sessions/{session_id:str}/disconnect"): S(
        session=I(
            lambda w, o, c: Call("POST", f"/api/integrations/sessions/{spare_bridge(w, o, 'mqtt-kicked')}/disconnect")
        )
    ),
    ("PUT", "/api/oauth2/clients/{client_pk:int}/mqtt"): S(
        client=I(
            lambda w, o, c: Call(
                "PUT", f"/api/oauth2/clients/{spare_client(o, 'mqtt')}/mqtt", json={"mqtt_enabled": True}
            )
        )
    ),
    # ---- /api/ota: Blynk.Air (session)
    ("GET", "/api/ota/firmware"): Route(SESSION, lists=lambda w, o, c: G("/api/ota/firmware")),
    ("POST", "/api/ota/firmware"): Route(SESSION, note="stores an image in the caller's organization; names no id"),
    ("GET", "/api/ota/firmware/{firmware_id:int}"): S(firmware=I(lambda w, o, c: G(f"/api/ota/firmware/{o.firmware}"))),
    ("DELETE", "/api/ota/firmware/{firmware_id:int}"): S(
        firmware=I(lambda w, o, c: Call("DELETE", f"/api/ota/firmware/{spare_firmware(o, 'deleted-fw')}"), own=204)
    ),
    ("GET", "/api/ota/signing-key"): Route(SESSION),
    ("GET", "/api/ota/shipments"): Route(SESSION, lists=lambda w, o, c: G("/api/ota/shipments")),
    ("POST", "/api/ota/shipments"): S(
        firmware=I(
            lambda w, o, c: Call(
                "POST",
                "/api/ota/shipments",
                json={
                    "name": f"fw {c.name} {o.marker}",
                    "firmware_id": o.firmware,
                    "target": {"kind": "devices", "device_ids": [c.device]},
                },
            ),
            own=201,
        ),
        devices=I(
            lambda w, o, c: Call(
                "POST",
                "/api/ota/shipments",
                json={
                    "name": f"dev {c.name} {o.marker}",
                    "firmware_id": c.firmware,
                    "target": {"kind": "devices", "device_ids": [o.device]},
                },
            ),
            foreign=400,
            own=201,
        ),
        template=I(
            lambda w, o, c: Call(
                "POST",
                "/api/ota/shipments",
                json={
                    "name": f"tmpl {c.name} {o.marker}",
                    "firmware_id": c.firmware,
                    "target": {"kind": "template", "template_id": o.template},
                },
            ),
            foreign=400,
            own=201,
        ),
        org=I(
            lambda w, o, c: Call(
                "POST",
                "/api/ota/shipments",
                json={
                    "name": f"org {c.name} {o.marker}",
                    "firmware_id": c.firmware,
                    "target": {"kind": "org", "org_id": o.org},
                },
            ),
            foreign=400,
            own=201,
        ),
        note="a target outside the caller's organization is refused as a bad target (400), in the words "
        "used for one that does not exist; a tag target is a name, not an id, and the rollout bounds "
        "every target by the shipment's organization",
    ),
    ("GET", "/api/ota/shipments/{shipment_id:int}"): S(
        shipment=I(lambda w, o, c: G(f"/api/ota/shipments/{o.shipment}"))
    ),
    ("GET", "/api/ota/shipments/{shipment_id:int}/devices"): S(
        shipment=I(lambda w, o, c: G(f"/api/ota/shipments/{o.shipment}/devices"))
    ),
    ("POST", "/api/ota/shipments/{shipment_id:int}/{action:str}"): S(
        shipment=I(lambda w, o, c: Call("POST", f"/api/ota/shipments/{spare_shipment(o, 'paused')}/pause"))
    ),
    ("DELETE", "/api/ota/shipments/{shipment_id:int}"): S(
        shipment=I(
            lambda w, o, c: Call("DELETE", f"/api/ota/shipments/{spare_shipment(o, 'deleted-ship', True)}"), own=204
        )
    ),
    # ---- /api/inject: Blynk.Inject for the console (session)
    ("GET", "/api/inject/static-tokens"): Route(
        SESSION,
        {"template": I(lambda w, o, c: G("/api/inject/static-tokens", template_id=spare_static(o)))},
        lists=lambda w, o, c: (spare_static(o), spare_static(c), G("/api/inject/static-tokens"))[2],
    ),
    ("POST", "/api/inject/static-tokens/generate"): S(
        template=I(
            lambda w, o, c: Call(
                "POST", "/api/inject/static-tokens/generate", json={"template_id": o.template, "count": 1}
            ),
            own=201,
        ),
        org=I(
            lambda w, o, c: Call(
                "POST",
                "/api/inject/static-tokens/generate",
                json={"template_id": c.template, "count": 1, "org_id": o.org},
            ),
            own=201,
        ),
    ),
    ("POST", "/api/inject/static-tokens/import"): S(
        template=I(
            lambda w, o, c: Call(
                "POST",
                "/api/inject/static-tokens/import",
                json={"template_id": o.template, "csv": "sn\nSN-1\n", "mapping": {"sn": "Serial"}},
            ),
            own=201,
        )
    ),
    ("GET", "/api/inject/static-tokens/export.csv"): S(
        template=I(lambda w, o, c: G("/api/inject/static-tokens/export.csv", template_id=spare_static(o)))
    ),
    ("GET", "/api/inject/static-tokens/labels.svg"): S(
        template=I(lambda w, o, c: G("/api/inject/static-tokens/labels.svg", template_id=spare_static(o)))
    ),
    ("GET", "/provision"): Route(SESSION),
    ("POST", "/api/inject/provisioning"): S(
        template=I(
            lambda w, o, c: Call(
                "POST", "/api/inject/provisioning", json={"template_id": o.template, "name": f"Wifi {c.name}"}
            ),
            own=201,
        )
    ),
    ("POST", "/api/inject/claim/headless"): S(
        note="the serial and the PIN of a window the device opened are the credential "
        "(tests/integration/backend/test_inject_static_tokens.py)"
    ),
    ("POST", "/api/inject/devices/{device_id:int}/token/reissue"): S(
        device=I(lambda w, o, c: Call("POST", f"/api/inject/devices/{spare_device(o, 'reissued')}/token/reissue"))
    ),
    ("POST", "/api/inject/devices/{device_id:int}/token/revoke"): S(
        device=I(
            lambda w, o, c: Call("POST", f"/api/inject/devices/{spare_device(o, 'token-revoked')}/token/revoke"),
            own=204,
        )
    ),
    ("GET", "/api/inject/tokens/export.csv"): S(
        template=I(lambda w, o, c: G("/api/inject/tokens/export.csv", template_id=o.template))
    ),
    ("GET", "/static-tokens"): Route(
        SESSION, lists=lambda w, o, c: (spare_static(o), spare_static(c), G("/static-tokens"))[2]
    ),
    ("GET", "/claim"): Route(
        SESSION, lists=lambda w, o, c: (spare_claimed(o, "listed"), spare_claimed(c, "listed"), G("/claim"))[2]
    ),
    ("POST", "/api/inject/claim"): S(
        note="the claim code is the credential: claiming a device of another organization is the feature "
        "(tests/integration/backend/test_inject_static_tokens.py)"
    ),
    ("POST", "/api/inject/devices/{device_id:int}/unclaim"): S(
        device=I(lambda w, o, c: Call("POST", f"/api/inject/devices/{spare_claimed(o, 'unclaimed')}/unclaim"), own=204)
    ),
    # ---- /api/console: the console's JSON routes (session)
    ("GET", "/api/console/templates"): Route(SESSION, lists=lambda w, o, c: G("/api/console/templates")),
    ("POST", "/api/console/templates"): S(
        org=I(
            lambda w, o, c: Call(
                "POST", "/api/console/templates", json={"name": f"Planted {c.name} {o.marker}", "org_id": o.org}
            ),
            own=201,
        )
    ),
    ("GET", "/api/console/templates/{template_id:int}"): S(
        template=I(lambda w, o, c: G(f"/api/console/templates/{o.template}"))
    ),
    ("PATCH", "/api/console/templates/{template_id:int}"): S(
        template=I(
            lambda w, o, c: Call("PATCH", f"/api/console/templates/{o.template}", json={"name": f"Template {o.marker}"})
        )
    ),
    ("GET", "/api/console/templates/{template_id:int}/dashboard"): S(
        template=I(lambda w, o, c: G(f"/api/console/templates/{o.template}/dashboard"))
    ),
    ("PUT", "/api/console/templates/{template_id:int}/dashboard"): S(
        template=I(lambda w, o, c: Call("PUT", f"/api/console/templates/{o.template}/dashboard", json={"widgets": []}))
    ),
    # ---- an organization's image library (issue #19 item 2: image buttons)
    ("GET", "/api/console/images"): Route(
        SESSION,
        {"org": I(lambda w, o, c: G("/api/console/images", org_id=o.org))},
        lists=lambda w, o, c: (spare_image(o, "img"), spare_image(c, "img"), G("/api/console/images"))[2],
    ),
    ("POST", "/api/console/images"): S(
        org=I(
            lambda w, o, c: Call(
                "POST",
                "/api/console/images",
                params={"org_id": o.org, "name": f"planted {c.name} {o.marker}.png"},
                content=png(3, 3),
            ),
            own=201,
        ),
        note="no Content-Type: the file's first bytes tell its type",
    ),
    ("DELETE", "/api/console/images/{image_id:int}"): S(
        image=I(lambda w, o, c: Call("DELETE", f"/api/console/images/{spare_image(o, 'deleted-img')}"), own=204)
    ),
    ("GET", "/api/console/images/{image_id:int}/content"): S(
        image=I(lambda w, o, c: G(f"/api/console/images/{spare_image(o, 'img')}/content")),
        note="a customer organization below the owner may see it (tests/integration/console/test_console_images.py)",
    ),
    ("GET", "/api/console/templates/{template_id:int}/mobile-dashboard"): S(
        template=I(lambda w, o, c: G(f"/api/console/templates/{o.template}/mobile-dashboard"))
    ),
    ("PUT", "/api/console/templates/{template_id:int}/mobile-dashboard"): S(
        template=I(
            lambda w, o, c: Call(
                "PUT",
                f"/api/console/templates/{o.template}/mobile-dashboard",
                json={"widgets": [{"id": "relay", "type": "switch", "pin": 1, "w": 2}]},
            )
        )
    ),
    ("POST", "/api/console/templates/{template_id:int}/datastreams"): S(
        template=I(
            lambda w, o, c: Call(
                "POST",
                f"/api/console/templates/{spare_template(o, 'tmpl-ds')}/datastreams",
                json={"pin": "V9", "name": "Planted", "type": "string"},
            )
        )
    ),
    ("PUT", "/api/console/templates/{template_id:int}/datastreams/{pin:int}"): S(
        template=I(
            lambda w, o, c: Call(
                "PUT",
                f"/api/console/templates/{spare_template(o, 'tmpl-ds')}/datastreams/3",
                json={"pin": "V3", "name": "Spare", "type": "string"},
            )
        )
    ),
    ("DELETE", "/api/console/templates/{template_id:int}/datastreams/{pin:int}"): S(
        template=I(
            lambda w, o, c: Call("DELETE", f"/api/console/templates/{spare_template(o, 'tmpl-del')}/datastreams/3")
        )
    ),
    ("POST", "/api/console/templates/{template_id:int}/events"): S(
        template=I(
            lambda w, o, c: Call(
                "POST",
                f"/api/console/templates/{spare_template(o, 'tmpl-ds')}/events",
                json={"code": "planted", "name": "Planted", "type": "info"},
            )
        )
    ),
    ("DELETE", "/api/console/templates/{template_id:int}/events/{code:str}"): S(
        template=I(
            lambda w, o, c: Call("DELETE", f"/api/console/templates/{spare_template(o, 'tmpl-del')}/events/spare")
        )
    ),
    ("POST", "/api/console/templates/{template_id:int}/metadata"): S(
        template=I(
            lambda w, o, c: Call(
                "POST",
                f"/api/console/templates/{spare_template(o, 'tmpl-ds')}/metadata",
                json={"name": "Planted", "type": "text"},
            )
        )
    ),
    ("DELETE", "/api/console/templates/{template_id:int}/metadata/{name:str}"): S(
        template=I(
            lambda w, o, c: Call("DELETE", f"/api/console/templates/{spare_template(o, 'tmpl-del')}/metadata/Spare")
        )
    ),
    ("POST", "/api/console/devices"): S(
        template=I(
            lambda w, o, c: Call(
                "POST", "/api/console/devices", json={"name": f"Planted {c.name} {o.marker}", "template_id": o.template}
            ),
            own=201,
        ),
        org=I(
            lambda w, o, c: Call(
                "POST",
                "/api/console/devices",
                json={"name": f"Org planted {c.name} {o.marker}", "template_id": c.template, "org_id": o.org},
            ),
            own=201,
        ),
    ),
    ("GET", "/api/console/devices/{device_id:int}/token"): S(
        device=I(lambda w, o, c: G(f"/api/console/devices/{o.device}/token"))
    ),
    ("POST", "/api/console/devices/{device_id:int}/token/rotate"): S(
        device=I(lambda w, o, c: Call("POST", f"/api/console/devices/{spare_device(o, 'rotated')}/token/rotate"))
    ),
    ("GET", "/api/console/devices/{device_id:int}/values"): S(
        device=I(lambda w, o, c: G(f"/api/console/devices/{o.device}/values"))
    ),
    ("POST", "/api/console/devices/{device_id:int}/values/{pin:int}"): S(
        device=I(lambda w, o, c: Call("POST", f"/api/console/devices/{o.device}/values/1", json={"value": "1"}))
    ),
    ("GET", "/api/console/devices/{device_id:int}/lines"): S(
        device=I(lambda w, o, c: G(f"/api/console/devices/{o.device}/lines", pin=0), own=400),
        note="the sweep's template has no terminal: A's own call is refused for the pin, after the device check",
    ),
    ("PUT", "/api/console/devices/{device_id:int}/metadata"): S(
        device=I(
            lambda w, o, c: Call(
                "PUT", f"/api/console/devices/{o.device}/metadata", json={"name": "Serial", "value": f"SN {o.marker}"}
            )
        )
    ),
    ("GET", "/api/console/devices/{device_id:int}/history"): S(
        device=I(
            lambda w, o, c: G(
                f"/api/console/devices/{o.device}/history", pin=0, start=str(YEAR_AGO), end=str(NOW_MS + 86_400_000)
            )
        )
    ),
    ("GET", "/api/console/devices/{device_id:int}/timeline"): S(
        device=I(lambda w, o, c: G(f"/api/console/devices/{o.device}/timeline"))
    ),
    ("GET", "/api/console/devices/{device_id:int}/export"): S(
        device=I(
            lambda w, o, c: G(
                f"/api/console/devices/{o.device}/export", pin=0, start=str(YEAR_AGO), end=str(NOW_MS + 86_400_000)
            )
        )
    ),
    ("POST", "/api/console/devices/{device_id:int}/ping"): S(
        device=I(lambda w, o, c: Call("POST", f"/api/console/devices/{spare_device(o, 'menu')}/ping"), own=409),
        note="own 409: the spare device never connected (test_console_settings pings a real one)",
    ),
    ("POST", "/api/console/devices/{device_id:int}/reboot"): S(
        device=I(lambda w, o, c: Call("POST", f"/api/console/devices/{spare_device(o, 'menu')}/reboot"), own=409),
    ),
    ("POST", "/api/console/devices/{device_id:int}/info"): S(
        device=I(lambda w, o, c: Call("POST", f"/api/console/devices/{spare_device(o, 'menu')}/info"), own=409),
        note="own 409: the spare device never connected (test_device_info_request asks a real one)",
    ),
    ("DELETE", "/api/console/devices/{device_id:int}"): S(
        device=I(lambda w, o, c: Call("DELETE", f"/api/console/devices/{spare_device(o, 'menu-deleted')}"))
    ),
    # ---- /api/v1/organization: the platform API (Bearer token)
    ("GET", V1): Route(BEARER, {"org": I(lambda w, o, c: G(V1, orgId=o.org))}, lists=lambda w, o, c: G(V1)),
    ("DELETE", V1): B(
        org=I(lambda w, o, c: Call("DELETE", V1, params={"orgId": spare_org(o, "v1-deleted-org")}), own=204)
    ),
    ("GET", f"{V1}/profile"): Route(BEARER, lists=lambda w, o, c: G(f"{V1}/profile")),
    ("GET", f"{V1}/search"): Route(BEARER, lists=lambda w, o, c: G(f"{V1}/search")),
    ("POST", f"{V1}/create"): B(
        parent=I(
            lambda w, o, c: Call(
                "POST", f"{V1}/create", json={"name": f"V1 inside {c.name} {o.marker}", "parentOrganizationId": o.org}
            ),
            own=201,
        )
    ),
    # ---- Blynk.Inject (issue #17): static tokens and claims; a claim code is a credential, not an id
    ("GET", f"{V1}/static-tokens"): B(
        template=I(lambda w, o, c: G(f"{V1}/static-tokens", templateId=spare_static(o))),
    ),
    ("POST", f"{V1}/static-tokens/generate"): B(
        template=I(
            lambda w, o, c: Call("POST", f"{V1}/static-tokens/generate", json={"productId": o.template, "count": 1}),
            own=201,
        ),
        org=I(
            lambda w, o, c: Call(
                "POST", f"{V1}/static-tokens/generate", json={"productId": c.template, "count": 1, "orgId": o.org}
            ),
            own=201,
        ),
    ),
    ("POST", f"{V1}/static-tokens/claim"): B(
        org=I(
            lambda w, o, c: Call(
                "POST", f"{V1}/static-tokens/claim", json={"token": spare_code(c, "v1-claim-org"), "orgId": o.org}
            )
        ),
        user=I(
            lambda w, o, c: Call(
                "POST", f"{V1}/static-tokens/claim", json={"token": spare_code(c, "v1-claim-user"), "userId": o.member}
            )
        ),
    ),
    ("POST", f"{V1}/device/provisioning-token"): B(
        template=I(
            lambda w, o, c: Call(
                "POST", f"{V1}/device/provisioning-token", json={"templateId": o.template, "name": "Wifi v1"}
            ),
            own=201,
        ),
        org=I(
            lambda w, o, c: Call(
                "POST",
                f"{V1}/device/provisioning-token",
                json={"templateId": c.template, "name": "Wifi v1 org", "orgId": o.org},
            ),
            own=201,
        ),
        user=I(
            lambda w, o, c: Call(
                "POST",
                f"{V1}/device/provisioning-token",
                json={"templateId": c.template, "name": "Wifi v1 user", "userId": o.member},
            ),
            own=201,
        ),
    ),
    ("POST", f"{V1}/static-tokens/claim-headless"): B(
        org=I(
            lambda w, o, c: Call(
                "POST",
                f"{V1}/static-tokens/claim-headless",
                json={"serial": "none", "pin": "000000", "orgId": o.org},
            ),
            own=404,
        ),
        user=I(
            lambda w, o, c: Call(
                "POST",
                f"{V1}/static-tokens/claim-headless",
                json={"serial": "none", "pin": "000000", "userId": o.member},
            ),
            own=404,
        ),
        note="no window is open: the owner's call passes the organization and user checks and finds no device "
        "(a real window: test_inject_static_tokens.py)",
    ),
    ("POST", f"{V1}/device/token/reissue"): B(
        device=I(
            lambda w, o, c: Call(
                "POST", f"{V1}/device/token/reissue", params={"deviceId": spare_device(o, "v1-reissued")}
            )
        )
    ),
    ("POST", f"{V1}/device/token/revoke"): B(
        device=I(
            lambda w, o, c: Call(
                "POST", f"{V1}/device/token/revoke", params={"deviceId": spare_device(o, "v1-revoked")}
            ),
            own=204,
        )
    ),
    ("GET", f"{V1}/device/tokens"): B(template=I(lambda w, o, c: G(f"{V1}/device/tokens", templateId=o.template))),
    ("POST", f"{V1}/static-tokens/unclaim"): B(
        device=I(
            lambda w, o, c: Call(
                "POST", f"{V1}/static-tokens/unclaim", json={"deviceId": spare_claimed(o, "v1-unclaimed")}
            ),
            own=204,
        )
    ),
    ("GET", f"{V1}/templates"): Route(BEARER, lists=lambda w, o, c: G(f"{V1}/templates")),
    ("GET", f"{V1}/template"): B(template=I(lambda w, o, c: G(f"{V1}/template", templateId=o.template))),
    ("GET", f"{V1}/template/datastreams"): B(
        template=I(lambda w, o, c: G(f"{V1}/template/datastreams", templateId=o.template))
    ),
    ("GET", f"{V1}/template/events"): B(template=I(lambda w, o, c: G(f"{V1}/template/events", templateId=o.template))),
    ("GET", f"{V1}/template/metafields"): B(
        template=I(lambda w, o, c: G(f"{V1}/template/metafields", templateId=o.template))
    ),
    ("GET", f"{V1}/users"): Route(
        BEARER, {"org": I(lambda w, o, c: G(f"{V1}/users", orgId=o.org))}, lists=lambda w, o, c: G(f"{V1}/users")
    ),
    ("GET", f"{V1}/user"): B(user=I(lambda w, o, c: G(f"{V1}/user", userId=o.member))),
    ("GET", f"{V1}/search/users"): Route(BEARER, lists=lambda w, o, c: G(f"{V1}/search/users", query="Zq")),
    ("PUT", f"{V1}/users/role"): B(
        user=I(
            lambda w, o, c: Call("PUT", f"{V1}/users/role", params={"userId": spare_user(o, "v1-role"), "roleId": USER})
        ),
        role=I(
            lambda w, o, c: Call(
                "PUT", f"{V1}/users/role", params={"userId": spare_user(c, "v1-gets-role"), "roleId": o.role}
            )
        ),
    ),
    ("POST", f"{V1}/users/invite"): B(
        org=I(
            lambda w, o, c: Call(
                "POST",
                f"{V1}/users/invite",
                json={"email": f"v1-spy-{c.name}-{o.marker.lower()}@example.com", "roleId": USER, "orgId": o.org},
            ),
            own=201,
        ),
        role=I(
            lambda w, o, c: Call(
                "POST",
                f"{V1}/users/invite",
                json={"email": f"v1-role-{c.name}-{o.marker.lower()}@example.com", "roleId": o.role},
            ),
            own=201,
        ),
    ),
    ("POST", f"{V1}/users/register"): Route(BEARER, note="acts in the caller's own organization; names no id"),
    ("POST", f"{V1}/users/create"): B(
        org=I(
            lambda w, o, c: Call(
                "POST",
                f"{V1}/users/create",
                json={
                    "email": f"v1-made-{c.name}-{o.marker.lower()}@example.com",
                    "password": "a-good-password-1",
                    "roleId": USER,
                    "orgId": o.org,
                },
            ),
            own=201,
        )
    ),
    ("POST", f"{V1}/users/create-in-org"): B(
        org=I(
            lambda w, o, c: Call(
                "POST",
                f"{V1}/users/create-in-org",
                json={
                    "email": f"v1-in-{c.name}-{o.marker.lower()}@example.com",
                    "password": "a-good-password-1",
                    "roleId": USER,
                    "orgId": o.org,
                },
            ),
            own=201,
        ),
        role=I(
            lambda w, o, c: Call(
                "POST",
                f"{V1}/users/create-in-org",
                json={
                    "email": f"v1-inrole-{c.name}-{o.marker.lower()}@example.com",
                    "password": "a-good-password-1",
                    "roleId": o.role,
                },
            ),
            own=201,
        ),
    ),
    ("POST", f"{V1}/users/transfer"): B(
        user=I(
            lambda w, o, c: Call(
                "POST",
                f"{V1}/users/transfer",
                json={"userId": spare_user(o, "v1-transferred"), "targetOrgId": o.sub, "roleId": USER},
            ),
            own=201,
        ),
        org=I(
            lambda w, o, c: Call(
                "POST",
                f"{V1}/users/transfer",
                json={"userId": spare_user(c, "v1-transferring"), "targetOrgId": o.sub, "roleId": USER},
            ),
            own=201,
        ),
    ),
    ("GET", f"{V1}/devices"): Route(BEARER, lists=lambda w, o, c: G(f"{V1}/devices")),
    ("GET", f"{V1}/search/devices"): Route(BEARER, lists=lambda w, o, c: G(f"{V1}/search/devices")),
    ("POST", f"{V1}/device/create"): B(
        template=I(
            lambda w, o, c: Call(
                "POST",
                f"{V1}/device/create",
                json={"templateId": o.template, "name": f"V1 planted {c.name} {o.marker}"},
            ),
            own=201,
        ),
        org=I(
            lambda w, o, c: Call(
                "POST",
                f"{V1}/device/create",
                json={"templateId": c.template, "name": f"V1 org planted {c.name} {o.marker}", "orgId": o.org},
            ),
            own=201,
        ),
    ),
    ("GET", f"{V1}/device"): B(device=I(lambda w, o, c: G(f"{V1}/device", deviceId=o.device))),
    ("GET", f"{V1}/device/baseInfo"): B(device=I(lambda w, o, c: G(f"{V1}/device/baseInfo", deviceId=o.device))),
    ("PUT", f"{V1}/device"): B(
        device=I(
            lambda w, o, c: Call(
                "PUT", f"{V1}/device", params={"deviceId": o.device}, json={"name": f"Device {o.marker}"}
            )
        )
    ),
    ("DELETE", f"{V1}/device"): B(
        device=I(
            lambda w, o, c: Call("DELETE", f"{V1}/device", params={"deviceId": spare_device(o, "v1-deleted-dev")}),
            own=204,
        )
    ),
    ("DELETE", f"{V1}/device/clear"): B(
        device=I(
            lambda w, o, c: Call(
                "DELETE", f"{V1}/device/clear", params={"deviceId": spare_device(o, "v1-cleared-dev")}
            ),
            own=204,
        )
    ),
    ("GET", f"{V1}/device/online"): B(device=I(lambda w, o, c: G(f"{V1}/device/online", deviceId=o.device))),
    ("DELETE", f"{V1}/device/owner"): B(
        device=I(
            lambda w, o, c: Call(
                "DELETE", f"{V1}/device/owner", params={"deviceId": spare_device(o, "v1-unowned-dev")}
            ),
            own=204,
        )
    ),
    ("POST", f"{V1}/device/transfer"): B(
        device=I(
            lambda w, o, c: Call(
                "POST", f"{V1}/device/transfer", json={"deviceId": spare_device(o, "v1-given-dev"), "newOrgId": o.sub}
            ),
            own=204,
        ),
        org=I(
            lambda w, o, c: Call(
                "POST", f"{V1}/device/transfer", json={"deviceId": spare_device(c, "v1-giving-dev"), "newOrgId": o.sub}
            ),
            own=204,
        ),
        user=I(
            lambda w, o, c: Call(
                "POST",
                f"{V1}/device/transfer",
                json={"deviceId": spare_device(c, "v1-giving-dev-u"), "newUserId": o.member},
            ),
            own=204,
        ),
    ),
    ("POST", f"{V1}/device/trigger-event"): B(
        device=I(
            lambda w, o, c: Call(
                "POST", f"{V1}/device/trigger-event", json={"deviceId": o.device, "eventCode": "overheat"}
            ),
            own=204,
        )
    ),
    ("GET", f"{V1}/device/timeline"): B(device=I(lambda w, o, c: G(f"{V1}/device/timeline", deviceId=o.device))),
    ("GET", f"{V1}/device/logs"): B(device=I(lambda w, o, c: G(f"{V1}/device/logs", deviceId=o.device))),
    ("GET", f"{V1}/device/metafield"): B(device=I(lambda w, o, c: G(f"{V1}/device/metafield", deviceId=o.device))),
    ("POST", f"{V1}/device/metafield"): B(
        device=I(
            lambda w, o, c: Call(
                "POST",
                f"{V1}/device/metafield",
                json=_dev_write(o, {"metaFieldName": "Serial", "value": f"SN {o.marker}"}),
            ),
            own=204,
        )
    ),
    ("GET", f"{V1}/device/by-owner"): B(
        org=I(lambda w, o, c: G(f"{V1}/device/by-owner", ownerEmail=c.admin_email, orgId=o.org)),
        owner=I(lambda w, o, c: G(f"{V1}/device/by-owner", ownerEmail=o.admin_email), foreign=200),
        note="another tenant's e-mail is looked up in the caller's own organization: an empty page",
    ),
    ("GET", f"{V1}/device/by-user-org"): B(
        user=I(lambda w, o, c: G(f"{V1}/device/by-user-org", userEmail=o.admin_email))
    ),
    ("GET", f"{V1}/device/last-activated"): B(org=I(lambda w, o, c: G(f"{V1}/device/last-activated", orgId=o.org))),
    ("GET", f"{V1}/device/tags"): B(device=I(lambda w, o, c: G(f"{V1}/device/tags", deviceId=o.device))),
    ("GET", f"{V1}/tags"): Route(
        BEARER, {"org": I(lambda w, o, c: G(f"{V1}/tags", orgId=o.org))}, lists=lambda w, o, c: G(f"{V1}/tags")
    ),
    ("POST", f"{V1}/device/import/batch"): B(
        device=I(
            lambda w, o, c: Call(
                "POST",
                f"{V1}/device/import/batch",
                json=_dev_write(o, {"dataStreamId": 0, "values": [{"value": 21, "ts": NOW_MS - 3_600_000}]}),
            ),
            own=204,
        )
    ),
    ("GET", f"{V1}/device/datastreams"): B(device=I(lambda w, o, c: G(f"{V1}/device/datastreams", deviceId=o.device))),
    ("POST", f"{V1}/device/datastream"): B(
        device=I(
            lambda w, o, c: Call(
                "POST", f"{V1}/device/datastream", json=_dev_write(o, {"dataStreamId": 1, "value": 1})
            ),
            own=204,
        )
    ),
    ("POST", f"{V1}/device/datastreams"): B(
        device=I(
            lambda w, o, c: Call("POST", f"{V1}/device/datastreams", json=_dev_write(o, {"values": {"1": 1}})), own=204
        )
    ),
    ("POST", f"{V1}/device/datastream/property"): B(
        device=I(
            lambda w, o, c: Call(
                "POST",
                f"{V1}/device/datastream/property",
                json=_dev_write(o, {"dataStreamId": 1, "property": "color", "value": "#FF0000"}),
            ),
            own=204,
        )
    ),
    ("GET", f"{V1}/device/datastream/history"): B(
        device=I(lambda w, o, c: G(f"{V1}/device/datastream/history", deviceId=o.device, pin="v0"))
    ),
    ("GET", f"{V1}/device/datastream/series"): B(
        device=I(lambda w, o, c: G(f"{V1}/device/datastream/series", deviceId=o.device, pin="v0", **{"from": YEAR_AGO}))
    ),
    ("GET", f"{V1}/device/datastream/raw"): B(
        device=I(lambda w, o, c: G(f"{V1}/device/datastream/raw", deviceId=o.device, pin="v0", **{"from": YEAR_AGO}))
    ),
    ("GET", f"{V1}/device/datastream/export"): B(
        device=I(lambda w, o, c: G(f"{V1}/device/datastream/export", deviceId=o.device, pin="v0", **{"from": YEAR_AGO}))
    ),
}

WEBSOCKETS: dict[str, str] = {
    "/live": SESSION,  # the sweep checks the devices it streams (test_the_live_feed_names_only_the_callers_devices)
    "/live/notices": SESSION,  # only the caller's own unread count (tests/integration/backend/test_notifications_api.py)
    "/mqtt": DEVICE,  # MQTT over WebSocket: isolation is the broker's (tests/integration/broker/test_broker_routing.py)
}


# -- the route list of the real app ----------------------------------------------------------


def app_routes() -> tuple[set[tuple[str, str]], set[str]]:
    """(method, path) of every HTTP handler of the real app, and the WebSocket paths.
    Litestar's automatic OPTIONS answers are left out: they carry no handler of ours."""
    with warnings.catch_warnings(record=True):  # deprecation notes of handlers are another test's business
        warnings.simplefilter("always")
        app = create_app(Settings(secret_key=TEST_SECRET), "postgresql://unused/unused")
    http: set[tuple[str, str]] = set()
    ws: set[str] = set()
    for route in app.routes:
        handlers = getattr(route, "route_handlers", None)
        if handlers is None:
            ws.add(route.path)
            continue
        for handler in handlers:
            for method in handler.http_methods:
                if method == "OPTIONS" and handler.handler_name == "options_handler":
                    continue
                http.add((method, route.path))
    return http, ws


def test_every_route_is_in_the_table() -> None:
    http, ws = app_routes()
    missing = sorted(http - set(ROUTES))
    assert not missing, (
        "routes not in the security sweep's table; add each to ROUTES in "
        f"tests/integration/backend/test_security_sweep.py with its kind and ids: {missing}"
    )
    gone = sorted(set(ROUTES) - http)
    assert not gone, f"ROUTES names routes the app no longer has; remove them: {gone}"
    assert ws == set(WEBSOCKETS), (
        "WebSocket routes not in WEBSOCKETS of tests/integration/backend/"
        f"test_security_sweep.py: {sorted(ws - set(WEBSOCKETS))}"
    )
    assert {r.kind for r in ROUTES.values()} == {PUBLIC, DEVICE, SESSION, BEARER}
    id_kinds = {kind for route in ROUTES.values() for kind in route.ids}
    assert {
        "device",
        "template",
        "org",
        "parent",
        "user",
        "owner",
        "role",
        "invitation",
        "client",
        "firmware",
        "shipment",
        "devices",
    } <= id_kinds, id_kinds


# -- calling ---------------------------------------------------------------------------------


def send(w: World, kind: str, caller: Tenant | None, call: Call) -> httpx.Response:
    """Make ``call`` as ``caller`` with the credential of ``kind`` (None: no credential)."""
    kwargs: dict[str, Any] = {"params": call.params, "json": call.json, "content": call.content, "files": call.files}
    if caller is not None and kind == SESSION:
        return caller.admin.request(call.method, call.path, **kwargs)
    if caller is not None and kind == BEARER:
        return caller.bearer.request(call.method, call.path, **kwargs)
    with httpx.Client(base_url=w.base_url, timeout=30) as anon:
        return anon.request(call.method, call.path, **kwargs)


@pytest.mark.parametrize("direction", ["B calls with A's ids", "A calls with B's ids"])
def test_no_route_reaches_the_other_tenant(world: World, direction: str) -> None:
    owner, caller = (world.a, world.b) if direction.startswith("B") else (world.b, world.a)
    calls = [
        (key, id_kind, ids, ids.fill(world, owner, caller), ids.fill(world, owner, owner))
        for key, route in ROUTES.items()
        for id_kind, ids in route.ids.items()
    ]
    before = settled_state(world.acc.config.database_url)
    wrong = []
    for (method, path), id_kind, ids, foreign, _own in calls:
        r = send(world, ROUTES[(method, path)].kind, caller, foreign)
        if r.status_code != ids.foreign or (method == "GET" and owner.marker in r.text):
            wrong.append(
                f"{method} {path} [{id_kind}] {foreign.params or ''} {foreign.json or ''}: "
                f"{r.status_code} (want {ids.foreign}) {r.text[:200]}"
            )
    assert not wrong, "\n".join(wrong)
    assert changed_tables(before, settled_state(world.acc.config.database_url)) == set()
    for (method, path), id_kind, ids, _foreign, own in calls:
        r = send(world, ROUTES[(method, path)].kind, owner, own)
        if r.status_code != ids.own:
            wrong.append(f"{method} {path} [{id_kind}] as the owner: {r.status_code} (want {ids.own}) {r.text[:200]}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("direction", ["B lists", "A lists"])
def test_lists_show_only_the_callers_own(world: World, direction: str) -> None:
    owner, caller = (world.a, world.b) if direction.startswith("B") else (world.b, world.a)
    wrong = []
    for (_method, path), route in ROUTES.items():
        if route.lists is None:
            continue
        mine = send(world, route.kind, owner, route.lists(world, owner, owner))
        theirs = send(world, route.kind, caller, route.lists(world, owner, caller))
        if mine.status_code != 200 or owner.marker not in mine.text:
            wrong.append(f"{path}: the owner's own answer lacks its marker ({mine.status_code})")
        if theirs.status_code != 200 or owner.marker in theirs.text or caller.marker not in theirs.text:
            wrong.append(f"{path}: {theirs.status_code}, shows the other tenant: {owner.marker in theirs.text}")
    assert not wrong, "\n".join(wrong)


def test_every_route_refuses_a_caller_without_credentials(world: World) -> None:
    """The kind in the table is the truth: a session or Bearer route without them answers 401
    (a console page sends the visitor to sign in), a device route without a token Blynk's 400."""
    wrong = []
    for (method, path), route in ROUTES.items():
        expected = route.anon
        if expected is None:
            expected = {SESSION: 401 if path.startswith("/api/") else 302, BEARER: 401, DEVICE: 400}[route.kind]
        url = (
            path.replace("{file_path:path}", "missing.js")
            .replace("{name:str}", "missing")
            .replace("{path:str}", "missing")
            .replace("{device_id:int}", str(world.a.device))
            .replace("{action:str}", "pause")
        )
        for name, value in (
            ("{user_id:int}", world.a.member),
            ("{role_id:int}", world.a.role),
            ("{invitation_id:int}", world.a.invitation),
            ("{org_id:int}", world.a.org),
            ("{client_pk:int}", world.a.client),
            ("{firmware_id:int}", world.a.firmware),
            ("{shipment_id:int}", world.a.shipment),
            ("{template_id:int}", world.a.template),
            ("{pin:int}", 1),
            ("{webhook_id:int}", 1),
            ("{code:str}", "overheat"),
            ("{automation_id:int}", 1),
            ("{notification_id:int}", 1),
            ("{location_id:int}", 1),
            ("{image_id:int}", 1),
        ):
            url = url.replace(name, str(value))
        with httpx.Client(base_url=world.base_url, timeout=30) as anon:
            r = anon.request(method, url, json={} if method in ("POST", "PUT", "PATCH") else None)
        if r.status_code != expected:
            wrong.append(f"{method} {path} ({route.kind}): {r.status_code}, want {expected}: {r.text[:120]}")
        elif route.kind == SESSION and expected == 302 and not r.headers["location"].startswith("/login?next="):
            wrong.append(f"{method} {path}: sends a signed-out visitor to {r.headers['location']}")
    assert not wrong, "\n".join(wrong)


def test_the_live_feed_names_only_the_callers_devices(world: World) -> None:
    a, b = world.a, world.b
    base = world.base_url
    for caller, owner in ((b, a), (a, b)):
        for tenant in (a, b):  # both online (over HTTP): the hello names only the caller's as online
            _ok(httpx.get(f"{base}/external/api/update", params={"token": tenant.token, "V1": "1"}), 200)
        cookie = "; ".join(f"{k}={v}" for k, v in caller.admin.cookies.items())
        url = f"ws://127.0.0.1:{world.acc.config.http_port}/live?devices={owner.device},{caller.device}"
        with ws_connect(url, additional_headers={"Cookie": cookie}, open_timeout=10) as ws:
            hello = json.loads(ws.recv(10))
            assert hello == {"type": "hello", "devices": [caller.device], "online": [caller.device]}
