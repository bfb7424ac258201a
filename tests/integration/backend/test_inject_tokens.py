"""A device's token reissued or revoked from the console and the platform API (issue #17 item 4),
with the real app, PostgreSQL, broker and paho devices: the connected device is disconnected at
once with presence reason ``revoked``, its old token is refused, a reissued one works; every
device token of a template exported with ``tokens.view`` only, never another tenant's; each
action in the audit log."""

from __future__ import annotations

import csv
import io
import json
import queue
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from backend.security import Secrets
from backend.transfer.schemas import DeviceOut
from tests.support.accounts import ADMIN, ROOT_ADMIN, USER, AccountsStack, Api, invite_and_join, start_accounts_stack
from tests.support.net import wait_for
from tests.support.paho import ConnectDevice, PahoDevice
from tests.support.stack import TEST_SECRET

V1 = "/api/v1/organization"


@dataclass
class World:
    acc: AccountsStack
    admin: Api
    user: Api  # role User of the same organization: no tokens.view
    other: Api  # another organization's administrator
    bearer: httpx.Client
    template: int


def _ok(r: httpx.Response, status: int) -> Any:
    assert r.status_code == status, (r.request.method, r.request.url, r.status_code, r.text)
    return r.json() if r.headers.get("content-type", "").startswith("application/json") else r.text


@pytest.fixture(scope="module")
def world(pg_server: str, template_db: str) -> Iterator[World]:
    for acc in start_accounts_stack(pg_server, template_db, "tokens"):
        root = acc.login(*ROOT_ADMIN)
        org, other_org = (_ok(root.post("/api/orgs", json={"name": n}), 201)["id"] for n in ("Ours", "Theirs"))
        admin = invite_and_join(acc, root, org, "admin@example.com", ADMIN)
        user = invite_and_join(acc, root, org, "user@example.com", USER)
        other = invite_and_join(acc, root, other_org, "other@example.com", ADMIN)
        template = _ok(admin.post("/api/console/templates", json={"name": "Meter"}), 201)["id"]
        made = _ok(admin.post("/api/oauth2/clients", json={"name": "app"}), 201)
        access = _ok(
            httpx.post(
                f"{acc.base_url}/oauth2/token",
                params={"grant_type": "client_credentials"},
                auth=(made["client"]["client_id"], made["client_secret"]),
            ),
            200,
        )["access_token"]
        bearer = httpx.Client(base_url=acc.base_url, timeout=30, headers={"Authorization": f"Bearer {access}"})
        yield World(acc, admin, user, other, bearer, template)
        for c in (root, admin, user, other, bearer):
            c.close()


def _device(w: World, name: str) -> DeviceOut:
    body = _ok(w.admin.post("/api/console/devices", json={"name": name, "template_id": w.template}), 201)
    return DeviceOut(
        name=name, id=int(body["id"]), token=str(body["token"]), template="Meter", template_id="", created=True
    )


class Presence:
    """The platform's own view of presence: a service login subscribed to ``sys/presence/<id>``."""

    def __init__(self, w: World, device_id: int) -> None:
        self.messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"watch-{uuid.uuid4().hex[:6]}")
        self.client.username_pw_set("openblynk-service", Secrets(TEST_SECRET).service_password())
        self.client.on_message = lambda c, u, m: self.messages.put(json.loads(m.payload))
        subscribed: queue.Queue[object] = queue.Queue()
        self.client.on_subscribe = lambda c, u, mid, rcs, p=None: subscribed.put(rcs)
        self.client.connect("127.0.0.1", w.acc.config.mqtt_port)
        self.client.loop_start()
        self.client.subscribe(f"sys/presence/{device_id}", qos=1)
        subscribed.get(timeout=10)

    def next_offline(self) -> dict[str, Any]:
        while True:
            doc = self.messages.get(timeout=15)
            if doc.get("online") is False:
                return doc

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _refused(w: World, token: str) -> bool:
    """Whether the broker refuses a login with this token."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"old-{uuid.uuid4().hex[:6]}")
    client.username_pw_set("device", token)
    answer: queue.Queue[Any] = queue.Queue()
    client.on_connect = lambda c, u, f, rc, p=None: answer.put(rc)
    client.connect("127.0.0.1", w.acc.config.mqtt_port)
    client.loop_start()
    try:
        return bool(answer.get(timeout=10).is_failure)
    finally:
        client.disconnect()
        client.loop_stop()


def _disconnected(device: PahoDevice) -> queue.Queue[object]:
    gone: queue.Queue[object] = queue.Queue()
    device.client.on_disconnect = lambda c, u, f, rc, p=None: gone.put(rc)
    return gone


def _wait_online(w: World, device_id: int) -> None:
    def online() -> bool:
        with w.acc.db() as db:
            row = db.execute("SELECT online FROM device WHERE id = %s", (device_id,)).fetchone()
        return bool(row and row[0])

    wait_for(online, timeout=15, message="the device online")


def _actions(w: World, device_id: int) -> list[str]:
    with w.acc.db() as db:
        rows = db.execute(
            "SELECT action FROM audit_log WHERE target_type = 'device' AND target_id = %s ORDER BY id",
            (str(device_id),),
        ).fetchall()
    return [r[0] for r in rows]


def test_a_reissued_token_disconnects_the_device_at_once_and_the_new_one_works(
    world: World, paho_device: ConnectDevice
) -> None:
    w = world
    info = _device(w, "Reissued")
    device = paho_device(w.acc.config, info)
    _wait_online(w, info.id)
    presence = Presence(w, info.id)
    try:
        gone = _disconnected(device)
        new = _ok(w.admin.post(f"/api/inject/devices/{info.id}/token/reissue"), 200)["token"]
        assert new != info.token and len(new) == 32
        gone.get(timeout=15)  # the broker ended the session without waiting for a reconnect
        assert presence.next_offline()["reason"] == "revoked"
    finally:
        presence.close()
    device.client.loop_stop()
    assert _refused(w, info.token)
    paho_device(
        w.acc.config, DeviceOut(name=info.name, id=info.id, token=new, template="", template_id="", created=False)
    )
    _wait_online(w, info.id)
    assert _ok(w.admin.get(f"/api/console/devices/{info.id}/token"), 200)["token"] == new
    assert "device.token_reissue" in _actions(w, info.id)


def test_a_revoked_token_stops_at_once_through_the_platform_api(world: World, paho_device: ConnectDevice) -> None:
    w = world
    info = _device(w, "Revoked")
    device = paho_device(w.acc.config, info)
    _wait_online(w, info.id)
    presence = Presence(w, info.id)
    try:
        gone = _disconnected(device)
        _ok(w.bearer.post(f"{V1}/device/token/revoke", params={"deviceId": info.id}), 204)
        gone.get(timeout=15)
        assert presence.next_offline()["reason"] == "revoked"
    finally:
        presence.close()
    device.client.loop_stop()
    assert _refused(w, info.token)
    again = _ok(w.bearer.post(f"{V1}/device/token/reissue", params={"deviceId": info.id}), 200)["token"]
    assert again != info.token
    assert not _refused(w, again)
    assert {"device.token_revoke", "device.token_reissue"} <= set(_actions(w, info.id))
    # another tenant's administrator cannot touch it
    _ok(w.other.post(f"/api/inject/devices/{info.id}/token/revoke"), 404)
    _ok(w.other.post(f"/api/inject/devices/{info.id}/token/reissue"), 404)
    assert not _refused(w, again)


def test_every_token_of_a_template_is_exported_with_tokens_view_only(world: World) -> None:
    w = world
    made = [_device(w, f"Meter {n}") for n in range(3)]
    text = _ok(w.admin.get("/api/inject/tokens/export.csv", params={"template_id": w.template}), 200)
    rows = {int(r["device_id"]): r for r in csv.DictReader(io.StringIO(text))}
    for info in made:
        assert rows[info.id]["auth_token"] == info.token and rows[info.id]["name"] == info.name
    listed = _ok(w.bearer.get(f"{V1}/device/tokens", params={"templateId": w.template}), 200)
    assert {(d["deviceId"], d["token"]) for d in listed} >= {(i.id, i.token) for i in made}
    # a user without tokens.view, and another organization, get nothing
    _ok(w.user.get("/api/inject/tokens/export.csv", params={"template_id": w.template}), 403)
    _ok(w.other.get("/api/inject/tokens/export.csv", params={"template_id": w.template}), 404)
    with w.acc.db() as db:
        exports = db.execute(
            "SELECT count(*) FROM audit_log WHERE action = 'device.token_export' AND target_id = %s", (str(w.template),)
        ).fetchone()
    assert exports is not None and exports[0] == 2
