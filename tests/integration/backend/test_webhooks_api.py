"""Webhooks end to end: the console's JSON API on the real app (with the allow-list set for a
local receiver), "send test", the delivery log, and real devices (paho) whose values and first
connection fire webhooks whose requests the receiver verifies."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from backend.transfer.schemas import DeviceOut
from tests.integration.backend.test_platform_api import get_token, make_client
from tests.support.accounts import ROOT_ADMIN, STAFF, AccountsStack, Api, invite_and_join, start_accounts_stack
from tests.support.net import wait_for
from tests.support.paho import ConnectDevice
from tests.support.provision import provision, thermostat_doc
from tests.support.webhook_receiver import Receiver, receiving

HOOKS = "/api/console/webhooks"


@dataclass
class World:
    acc: AccountsStack
    admin: Api
    receiver: Receiver
    device: DeviceOut
    template: int
    org: int


@pytest.fixture(scope="module")
def world(pg_server: str, template_db: str) -> Iterator[World]:
    with receiving() as receiver:
        for acc in start_accounts_stack(pg_server, template_db, "hooks", webhook_allowed_hosts="127.0.0.1"):
            [device] = provision(acc.config.database_url, thermostat_doc()).devices
            with acc.db() as db:
                row = db.execute(
                    "SELECT id, org_id FROM template WHERE public_id = %s", (device.template_id,)
                ).fetchone()
            assert row
            with acc.login(*ROOT_ADMIN) as admin:
                yield World(acc, admin, receiver, device, int(row[0]), int(row[1]))


def _made(r: Any, status: int = 201) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    return body


def _hook(w: World, name: str, path: str, **fields: Any) -> dict[str, Any]:
    body = {"name": name, "trigger": "manual", "url": w.receiver.url(path), **fields}
    return _made(w.admin.post(HOOKS, json=body))


def _requests_to(w: World, path: str) -> list[Any]:
    return [r for r in w.receiver.requests if r.path == path]


def test_webhooks_are_made_checked_listed_changed_and_deleted(world: World) -> None:
    w = world
    made = _hook(w, "Soil log", "/crud", trigger="template_datastream", template_id=w.template, pin=0)
    assert made["secret"].startswith("whsec_") and made["enabled"] and made["failures"] == 0
    with w.acc.db() as db:
        [(stored,)] = db.execute("SELECT secret FROM webhook WHERE id = %s", (made["id"],)).fetchall()
    assert stored.startswith("gAAAA") and made["secret"] not in stored  # sealed (Fernet), never stored as shown
    assert made["org_id"] == w.org
    again = w.admin.post(HOOKS, json={"name": "Soil log", "trigger": "manual", "url": "https://x.example/"})
    assert again.status_code == 409 and "already has a webhook of this name" in again.text
    listed = w.admin.get(HOOKS).json()
    assert made["id"] in [h["id"] for h in listed["content"]]
    for bad, why in (
        ({"trigger": "template_datastream", "template_id": w.template, "pin": 77}, "no datastream on V77"),
        ({"trigger": "device_datastream", "device_id": 999999}, "not one of the organization's"),
        ({"trigger": "template_datastream", "template_id": 999999}, "not one the organization may use"),
        ({"method": "GET", "body": "x"}, "a GET request has no body"),
        ({"body_kind": "plain", "body": "{TRIGGER_VALUE}" * 6}, "the limit is 5120"),
        ({"body": '{"broken": '}, "not JSON"),
        ({"url": "file:///etc/passwd"}, "http:// or https://"),
        ({"trigger": "user_added", "pin": 1}, "names no template, device or pin"),
    ):
        r = w.admin.post(HOOKS, json={"name": "bad", "trigger": "manual", "url": "https://x.example/", **bad})
        assert r.status_code == 400 and why in r.json()["error"]["message"], (bad, r.text)
    changed = _made(
        w.admin.put(f"{HOOKS}/{made['id']}", json={"name": "Soil log 2", "trigger": "manual", "url": made["url"]}), 200
    )
    assert (changed["name"], changed["trigger"], changed["secret"]) == ("Soil log 2", "manual", made["secret"])
    rotated = _made(w.admin.post(f"{HOOKS}/{made['id']}/secret"), 200)
    assert rotated["secret"] != made["secret"]
    assert w.admin.delete(f"{HOOKS}/{made['id']}").status_code == 204
    assert w.admin.get(f"{HOOKS}/{made['id']}").status_code == 404
    with w.acc.db() as db:
        actions = [
            r[0]
            for r in db.execute(
                "SELECT action FROM audit_log WHERE target_type = 'webhook' AND target_id = %s ORDER BY id",
                (str(made["id"]),),
            )
        ]
    assert actions == ["webhook.create", "webhook.update", "webhook.secret_rotate", "webhook.delete"]


def test_send_test_delivers_sample_values_signed_and_logs_it(world: World) -> None:
    w = world
    made = _hook(w, "Tester", "/tested", body='{"device": "{DEVICE_NAME}", "value": "{TRIGGER_VALUE}"}')
    outcome = _made(w.admin.post(f"{HOOKS}/{made['id']}/test"), 200)
    assert (outcome["ok"], outcome["status"], outcome["error"], outcome["response_head"]) == (True, 200, None, "thanks")
    [request] = _requests_to(w, "/tested")
    assert json.loads(request.body) == {"device": "Sample device", "value": "23.5"}
    assert w.receiver.verified(request, made["secret"])
    log = w.admin.get(f"{HOOKS}/{made['id']}/deliveries").json()
    assert log["totalElements"] == 1
    [entry] = log["content"]
    assert (entry["ok"], entry["status"], entry["trigger"]) == (True, 200, f"test by {ROOT_ADMIN[0]}")


def test_send_test_of_a_refused_address_shows_why(world: World) -> None:
    w = world
    made = _made(w.admin.post(HOOKS, json={"name": "Metadata", "trigger": "manual", "url": "http://169.254.169.254/"}))
    outcome = _made(w.admin.post(f"{HOOKS}/{made['id']}/test"), 200)
    assert (outcome["ok"], outcome["refused"], outcome["status"]) == (False, True, None)
    assert "169.254.169.254, a link-local address" in outcome["error"]


def test_a_role_without_the_webhook_permissions_is_refused(world: World) -> None:
    w = world
    with invite_and_join(w.acc, w.admin, w.org, "staff-hooks@example.com", STAFF) as staff:
        r = staff.get(HOOKS)
        assert r.status_code == 403 and "webhooks.view" in r.json()["error"]["message"]
        r = staff.post(HOOKS, json={"name": "x", "trigger": "manual", "url": "https://x.example/"})
        assert r.status_code == 403 and "webhooks.edit" in r.json()["error"]["message"]


def test_a_device_value_fires_the_template_and_the_device_webhooks(world: World, paho_device: ConnectDevice) -> None:
    w = world
    body = '{"device": "{DEVICE_NAME}", "stream": "{DATASTREAM_NAME}", "value": {TRIGGER_VALUE}}'
    template_hook = _hook(
        w, "Temperature", "/template", trigger="template_datastream", template_id=w.template, pin=0, body=body
    )
    device_hook = _hook(
        w,
        "Any of the device",
        "/device",
        trigger="device_datastream",
        device_id=w.device.id,
        body_kind="form",
        body="v={TRIGGER_VALUE}&pin={DATASTREAM_PIN}",
    )
    device = paho_device(w.acc.config, w.device)

    def reloaded() -> bool:  # the triggers reload on the change notice; a value sent before is not hooked
        device.publish("ds/Power", "1", qos=1)
        return bool(_requests_to(w, "/device"))

    wait_for(reloaded, 15, interval=0.5, message="the device webhook to fire once the triggers reloaded")
    device.publish("ds/Temperature", "21.5", qos=1)
    wait_for(lambda: _requests_to(w, "/template"), 15, message="the template webhook's request")
    [fired] = _requests_to(w, "/template")
    assert json.loads(fired.body) == {"device": w.device.name, "stream": "Temperature", "value": 21.5}
    assert w.receiver.verified(fired, template_hook["secret"])
    wait_for(lambda: any(r.body == b"v=21.5&pin=0" for r in _requests_to(w, "/device")), 15, message="V0 on /device")
    assert all(r.body in (b"v=1&pin=1", b"v=21.5&pin=0") for r in _requests_to(w, "/device"))
    assert all(w.receiver.verified(r, device_hook["secret"]) for r in _requests_to(w, "/device"))


def test_a_first_connection_fires_its_webhook(world: World, paho_device: ConnectDevice) -> None:
    w = world
    _hook(
        w, "Hello", "/first", trigger="first_connection", method="PUT", body_kind="plain", body="{DEVICE_NAME} is here"
    )
    _hook(w, "Probe", "/probe", trigger="device_datastream", device_id=w.device.id, pin=1)
    known = paho_device(w.acc.config, w.device)

    def reloaded() -> bool:  # the probe fires once the triggers read both webhooks (notices come in order)
        known.publish("ds/Power", "0", qos=1)
        return bool(_requests_to(w, "/probe"))

    wait_for(reloaded, 15, interval=0.5, message="the triggers to reload")
    made = _made(w.admin.post("/api/console/devices", json={"name": "Newcomer", "template_id": w.template}))
    fresh = DeviceOut(name="Newcomer", id=made["id"], token=made["token"], template="", template_id="", created=True)
    paho_device(w.acc.config, fresh)
    wait_for(lambda: _requests_to(w, "/first"), 15, message="the first-connection webhook")
    [request] = _requests_to(w, "/first")
    assert (request.method, request.body) == ("PUT", b"Newcomer is here")


@pytest.mark.parametrize("how", ["created-through-the-platform-api", "invited"])
def test_a_user_added_to_the_organization_fires_its_webhook(world: World, paho_device: ConnectDevice, how: str) -> None:
    w = world
    path, probe = f"/joined/{how}", f"/probe/{how}"
    _hook(w, f"Joined {how}", path, trigger="user_added", body_kind="plain", body="{USER_EMAIL} as {USER_NAME}")
    _hook(w, f"Probe {how}", probe, trigger="device_datastream", device_id=w.device.id, pin=1)
    known = paho_device(w.acc.config, w.device)

    def reloaded() -> bool:  # the probe fires once the triggers read both webhooks (notices come in order)
        known.publish("ds/Power", "1", qos=1)
        return bool(_requests_to(w, probe))

    wait_for(reloaded, 15, interval=0.5, message="the triggers to reload")
    address = f"joined-{how}@example.com"

    def send() -> None:
        if how == "invited":
            invite_and_join(w.acc, w.admin, w.org, address, STAFF).close()
            return
        made = make_client(w.admin, f"hr-{how}", w.org)
        token = get_token(w.acc.base_url, made)["access_token"]
        body = {"email": address, "password": "a-good-password-1", "name": "Made", "roleId": STAFF}
        r = httpx.post(
            f"{w.acc.base_url}/api/v1/organization/users/create-in-org",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
        )
        assert r.status_code == 201, r.text

    send()
    wait_for(lambda: _requests_to(w, path), 15, message="the user-added webhook")
    [request] = _requests_to(w, path)
    assert request.body == f"{address} as {'T' if how == 'invited' else 'Made'}".encode()
