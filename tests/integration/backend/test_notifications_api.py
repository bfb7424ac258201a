"""Notifications end to end on the real stack (broker, app, PostgreSQL, an aiosmtpd SMTP
server): a device (paho) logs an event whose definition notifies, the owner and the admins get
an in-app notification and an e-mail, the bell's socket counts live, and the console's JSON
API lists, marks read and keeps preferences, each user seeing only their own."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from backend.transfer.schemas import DeviceOut
from tests.support.accounts import ADMIN, ROOT_ADMIN, USER, AccountsStack, Api, invite_and_join, start_accounts_stack
from tests.support.net import wait_for
from tests.support.paho import ConnectDevice, PahoDevice

NOTIFY = {"email": True, "in_app": True, "recipients": ["owner", "admins"], "addresses": ["ops@site.test"]}


@dataclass
class World:
    acc: AccountsStack
    admin: Api
    user: Api
    template: int
    device: DeviceOut

    def notifications(self, api: Api) -> list[dict[str, Any]]:
        r = api.get("/api/console/notifications")
        assert r.status_code == 200, r.text
        return list(r.json()["content"])

    def sql(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with self.acc.db() as conn:
            cur = conn.execute(sql, args)
            return cur.fetchall() if cur.description else []


def _ok(r: httpx.Response, status: int = 200) -> Any:
    assert r.status_code == status, (r.request.method, r.request.url, r.status_code, r.text)
    return r.json()


@pytest.fixture(scope="module")
def world(pg_server: str, template_db: str) -> Iterator[World]:
    for acc in start_accounts_stack(pg_server, template_db, "notif", event_min_interval_seconds="0"):
        with acc.login(*ROOT_ADMIN) as root:
            org = _ok(root.post("/api/orgs", json={"name": "Farm"}), 201)["id"]
            admin = invite_and_join(acc, root, org, "boss@farm.test", ADMIN)
            user = invite_and_join(acc, root, org, "grower@farm.test", USER)
        template = _ok(admin.post("/api/console/templates", json={"name": "Soil"}), 201)["id"]
        event = {"code": "dry", "name": "Soil dry", "type": "warning", "notify": NOTIFY}
        _ok(admin.post(f"/api/console/templates/{template}/events", json=event))
        made = _ok(admin.post("/api/console/devices", json={"name": "Field 7", "template_id": template}), 201)
        with acc.db() as conn:
            conn.execute("UPDATE device SET owner_id = %s WHERE id = %s", (user.me["id"], made["id"]))
        device = DeviceOut("Field 7", made["id"], made["token"], "Soil", "", True)
        yield World(acc, admin, user, template, device)
        admin.close()
        user.close()


@pytest.fixture
def dev(world: World, paho_device: ConnectDevice) -> PahoDevice:
    return paho_device(world.acc.config, world.device)


def _socket(world: World, api: Api) -> ClientConnection:
    cookie = "; ".join(f"{k}={v}" for k, v in api.cookies.items())
    url = f"ws://127.0.0.1:{world.acc.config.http_port}/live/notices"
    return ws_connect(url, additional_headers={"Cookie": cookie}, open_timeout=10)


def _mail(world: World, address: str, text: str) -> EmailMessage:
    """The e-mail to ``address`` that holds ``text`` (waiting for it)."""

    def find() -> EmailMessage | None:
        return next((m for m in world.acc.outbox.to(address) if text in m.get_content()), None)

    found = wait_for(find, message=f"the e-mail to {address} with {text!r}")
    assert found is not None
    return found


def _count(ws: ClientConnection) -> int:
    msg = json.loads(ws.recv(10))
    assert msg["type"] == "unread", msg
    return int(msg["count"])


def test_the_settings_are_part_of_the_template(world: World) -> None:
    assert world.sql("SELECT notify FROM event_def WHERE template_id = %s", world.template) == [
        ({"email": True, "in_app": True, "recipients": ["owner", "admins"], "addresses": ["ops@site.test"]},)
    ]
    bad = {"code": "x", "name": "X", "notify": {"every_nth": 0}}
    r = world.admin.post(f"/api/console/templates/{world.template}/events", json=bad)
    assert r.status_code == 400 and "every_nth" in r.text


def test_a_device_event_notifies_in_app_and_by_email(world: World, dev: PahoDevice) -> None:
    before = len(world.notifications(world.user))
    with _socket(world, world.user) as ws:
        unread = _count(ws)
        dev.publish("event/dry", "Moisture 12 %", qos=1)
        assert _count(ws) == unread + 1  # the bell rises without a reload
    latest = world.notifications(world.user)[0]
    assert len(world.notifications(world.user)) == before + 1
    assert (latest["title"], latest["body"], latest["level"], latest["source"], latest["device_id"]) == (
        "Field 7: Soil dry",
        "Moisture 12 %",
        "warning",
        "event",
        world.device.id,
    )
    wait_for(lambda: world.notifications(world.admin), message="the admin's notification")
    for address in ("grower@farm.test", "boss@farm.test", "ops@site.test"):
        mail = _mail(world, address, "Moisture 12 %")
        assert mail["Subject"] == "Soil dry on Field 7"


def test_mark_read_and_read_all_count_down_live(world: World, dev: PahoDevice) -> None:
    with _socket(world, world.user) as ws:
        start = _count(ws)
        dev.publish("event/dry", "Moisture 11 %", qos=1)
        dev.publish("event/dry", "Moisture 10 %", qos=1)
        wait_for(lambda: _count(ws) == start + 2, message="two more unread")
        newest = world.notifications(world.user)[0]
        marked = _ok(world.user.post(f"/api/console/notifications/{newest['id']}/read"))
        assert marked == {"marked": 1, "unread": start + 1}
        assert _count(ws) == start + 1
        assert _ok(world.user.post(f"/api/console/notifications/{newest['id']}/read"))["marked"] == 0
        assert _ok(world.user.post("/api/console/notifications/read-all"))["marked"] == start + 1
        assert _count(ws) == 0
    assert _ok(world.user.get("/api/console/notifications/unread")) == {"unread": 0}
    assert _ok(world.user.get("/api/console/notifications", params={"unread": "true"}))["content"] == []


def test_nobody_sees_or_marks_another_users_notifications(world: World, dev: PahoDevice) -> None:
    dev.publish("event/dry", "Moisture 9 %", qos=1)
    wait_for(lambda: any(n["body"] == "Moisture 9 %" for n in world.notifications(world.admin)), message="admin's")
    theirs = next(n for n in world.notifications(world.admin) if n["body"] == "Moisture 9 %")
    mine = {n["id"] for n in world.notifications(world.user)}
    assert theirs["id"] not in mine
    r = world.user.post(f"/api/console/notifications/{theirs['id']}/read")
    assert r.status_code == 404, r.text
    assert world.sql("SELECT read_at FROM notification WHERE id = %s", theirs["id"]) == [(None,)]


def test_preferences_are_kept_and_honoured(world: World, dev: PahoDevice) -> None:
    assert _ok(world.user.get("/api/console/notifications/preferences")) == {
        "email": True,
        "in_app": True,
        "muted": False,
    }
    prefs = _ok(world.user.put("/api/console/notifications/preferences", json={"in_app": False, "email": False}))
    assert prefs == {"email": False, "in_app": False, "muted": False}
    try:
        mails = len(world.acc.outbox.to("grower@farm.test"))
        before = len(world.notifications(world.user))
        dev.publish("event/dry", "Moisture 8 %", qos=1)
        wait_for(lambda: any(n["body"] == "Moisture 8 %" for n in world.notifications(world.admin)), message="admin's")
        _mail(world, "ops@site.test", "Moisture 8 %")
        assert len(world.notifications(world.user)) == before
        assert len(world.acc.outbox.to("grower@farm.test")) == mails
    finally:
        _ok(world.user.put("/api/console/notifications/preferences", json={"in_app": True, "email": True}))


def test_the_notifications_page_and_the_bell(world: World) -> None:
    r = world.user.get("/notifications")
    assert r.status_code == 200, r.text
    assert "Field 7: Soil dry" in r.text and "data-bell-count" in r.text and 'id="notification-preferences"' in r.text


def test_the_bell_socket_closes_when_the_session_ends(world: World) -> None:
    with world.acc.login("grower@farm.test", "a-good-password-1") as other:
        with _socket(world, other) as ws:
            _count(ws)
            _ok(other.post("/api/auth/logout"))
            with pytest.raises(ConnectionClosed):
                while True:
                    ws.recv(10)
            assert ws.close_code == 4008


def test_the_template_editor_shows_and_saves_the_settings(world: World) -> None:
    r = world.admin.get(f"/templates/{world.template}", params={"tab": "events"})
    assert r.status_code == 200, r.text
    assert 'data-event-notify-form="dry"' in r.text and "e-mail, in-app" in r.text
    assert 'name="notify.limit_period_s"' in r.text and "ops@site.test</textarea>" in r.text


def test_changing_an_event_without_its_settings_keeps_them(world: World) -> None:
    renamed = {"code": "dry", "name": "Soil too dry", "type": "warning"}  # the plain event form
    _ok(world.admin.post(f"/api/console/templates/{world.template}/events", json=renamed))
    assert world.sql("SELECT name, notify FROM event_def WHERE template_id = %s", world.template) == [
        (
            "Soil too dry",
            {"email": True, "in_app": True, "recipients": ["owner", "admins"], "addresses": ["ops@site.test"]},
        )
    ]
    off = {**renamed, "name": "Soil dry", "notify": None}  # null turns them off
    _ok(world.admin.post(f"/api/console/templates/{world.template}/events", json=off))
    assert world.sql("SELECT notify FROM event_def WHERE template_id = %s", world.template) == [(None,)]
    _ok(world.admin.post(f"/api/console/templates/{world.template}/events", json={**off, "notify": NOTIFY}))


def test_the_bell_socket_refuses_strangers_and_other_sites(world: World) -> None:
    url = f"ws://127.0.0.1:{world.acc.config.http_port}/live/notices"
    with pytest.raises(InvalidStatus) as refused:  # no session: refused before the upgrade
        ws_connect(url, open_timeout=10)
    assert refused.value.response.status_code == 403  # how an ASGI server answers a refused upgrade
    cookie = "; ".join(f"{k}={v}" for k, v in world.user.cookies.items())
    headers = {"Cookie": cookie, "Origin": "http://evil.example"}
    with ws_connect(url, additional_headers=headers, open_timeout=10) as ws:
        with pytest.raises(ConnectionClosed):
            ws.recv(10)
        assert ws.close_code == 4008


def test_a_contact_field_must_be_a_metadata_field_of_the_template(world: World) -> None:
    event = {"code": "dry", "name": "Soil dry", "notify": {**NOTIFY, "meta_fields": ["Contact"]}}
    r = world.admin.post(f"/api/console/templates/{world.template}/events", json=event)
    assert r.status_code == 400
    assert "Contact, which is not a metadata field of the template" in r.json()["error"]["message"]
