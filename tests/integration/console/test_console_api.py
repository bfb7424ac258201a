"""The console's JSON routes and pages against the real app: templates edited piece by piece,
dashboards checked on save, devices created with a token, writes that reach a real MQTT
device, history buckets, the live WebSocket, and tenancy (another organization's template or
device is answered as missing)."""

from __future__ import annotations

import email
import email.policy
import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosedError, InvalidStatus
from websockets.sync.client import connect as ws_connect

from backend.transfer.schemas import DeviceOut
from tests.support.accounts import Api
from tests.support.net import wait_for
from tests.support.paho import ConnectDevice
from tests.support.stack import StackConfig


def make_template(api: Api, datastreams: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    r = api.post("/api/console/templates", json={"name": f"Console {uuid.uuid4().hex[:8]}"})
    assert r.status_code == 201, r.text
    template = r.json()
    for ds in (
        datastreams
        if datastreams is not None
        else [
            {"pin": "V0", "name": "Temperature", "type": "double", "min": -40, "max": 85, "save_raw": True},
            {"pin": "V1", "name": "Power", "type": "integer", "min": 0, "max": 1, "wait_confirmation": True},
            {"pin": "V2", "name": "Where", "type": "location"},
        ]
    ):
        r = api.post(f"/api/console/templates/{template['id']}/datastreams", json=ds)
        assert r.status_code == 200, r.text
    return template  # type: ignore[no-any-return]


def make_device(api: Api, template_id: int) -> DeviceOut:
    r = api.post("/api/console/devices", json={"name": f"Dev {uuid.uuid4().hex[:6]}", "template_id": template_id})
    assert r.status_code == 201, r.text
    body = r.json()
    return DeviceOut(name=body["name"], id=body["id"], token=body["token"], template="", template_id="", created=True)


def error(r: httpx.Response) -> str:
    """The error message: the project's ``{"error": {"message"}}``, or Litestar's body validation."""
    body = r.json()
    if "error" in body:
        return str(body["error"]["message"])
    return f"{body['detail']}: " + "; ".join(f"{e.get('key', '')} {e['message']}" for e in body.get("extra", []))


def test_templates_are_edited_piece_by_piece_with_clear_errors(admin: Api) -> None:
    template = make_template(admin)
    tid = template["id"]
    assert re.fullmatch(r"TMPL[A-Za-z0-9]{8}", template["public_id"])
    r = admin.post(f"/api/console/templates/{tid}/datastreams", json={"pin": "V0", "name": "Again", "type": "double"})
    assert r.status_code == 400 and "already has a datastream on V0" in error(r)
    r = admin.post(f"/api/console/templates/{tid}/datastreams", json={"pin": "V7", "name": "Temperature"})
    assert r.status_code == 400 and "datastream name used twice" in error(r)
    r = admin.post(f"/api/console/templates/{tid}/datastreams", json={"pin": "X9", "name": "Bad"})
    assert r.status_code == 400 and "pin" in error(r)
    r = admin.put(
        f"/api/console/templates/{tid}/datastreams/0",
        json={"pin": "V0", "name": "Temp", "type": "double", "units": "°C"},
    )
    assert r.status_code == 200, r.text
    r = admin.post(
        f"/api/console/templates/{tid}/events", json={"code": "overheat", "name": "Overheat", "type": "warning"}
    )
    assert r.status_code == 200, r.text
    r = admin.post(f"/api/console/templates/{tid}/metadata", json={"name": "Serial", "type": "text"})
    assert r.status_code == 200, r.text
    r = admin.post(f"/api/console/templates/{tid}/metadata", json={"name": "Device Name"})
    assert r.status_code == 400 and "system metadata field" in error(r)
    r = admin.patch(f"/api/console/templates/{tid}", json={"name": template["name"] + " v2", "heartbeat_interval": 60})
    assert r.status_code == 200 and r.json()["heartbeat_interval"] == 60
    r = admin.delete(f"/api/console/templates/{tid}/events/nope")
    assert r.status_code == 404
    page = admin.get(f"/templates/{tid}?tab=datastreams")
    assert page.status_code == 200 and "Temp" in page.text and "°C" in page.text


def test_dashboards_are_checked_against_the_datastreams(admin: Api) -> None:
    tid = make_template(admin)["id"]
    good = [
        {"id": "sw", "type": "switch", "pin": 1, "x": 0, "y": 0, "w": 3, "h": 2},
        {"id": "ch", "type": "chart", "pin": 0, "x": 3, "y": 0, "w": 9, "h": 4, "title": "Temperature"},
        {"id": "mp", "type": "map", "pin": 2, "x": 0, "y": 2, "w": 3, "h": 3},
    ]
    r = admin.put(f"/api/console/templates/{tid}/dashboard", json={"widgets": good})
    assert r.status_code == 200, r.text
    assert [w["id"] for w in admin.get(f"/api/console/templates/{tid}/dashboard").json()["widgets"]] == [
        "sw",
        "ch",
        "mp",
    ]
    bad_cases = [
        ({**good[0], "type": "map"}, "cannot show datastream 'Power' of type integer"),
        ({**good[0], "pin": 9}, "no datastream on V9"),
        ({**good[0], "x": 11, "w": 3}, "does not fit"),
        ({**good[0], "id": "sw2", "x": 4}, "overlap"),
        ({**good[0], "type": "radar"}, "type"),
    ]
    for widget, message in bad_cases:
        widgets = [widget, *good[1:]] if widget["id"] == "sw" else [*good, widget]
        r = admin.put(f"/api/console/templates/{tid}/dashboard", json={"widgets": widgets})
        assert r.status_code == 400 and message in error(r), (widget, r.text)
    r = admin.delete(f"/api/console/templates/{tid}/datastreams/2")
    assert r.status_code == 200
    assert [w["id"] for w in admin.get(f"/api/console/templates/{tid}/dashboard").json()["widgets"]] == ["sw", "ch"]


def test_a_console_write_reaches_the_device_and_history_has_buckets(
    stack: StackConfig, admin: Api, paho_device: ConnectDevice
) -> None:
    tid = make_template(admin)["id"]
    info = make_device(admin, tid)
    assert admin.get(f"/api/console/devices/{info.id}/token").json()["token"] == info.token
    dev = paho_device(stack, info)
    r = admin.post(f"/api/console/devices/{info.id}/values/1", json={"value": "1"})
    assert r.status_code == 200 and r.json() == {"pin": 1, "value": "1"}
    assert dev.next(topic_prefix="downlink/ds/") == ("downlink/ds/Power", b"1")
    r = admin.post(f"/api/console/devices/{info.id}/values/1", json={"value": "on"})
    assert r.status_code == 400, r.text
    r = admin.post(f"/api/console/devices/{info.id}/values/42", json={"value": "1"})
    assert r.status_code == 404
    dev.close()
    now = datetime.now(UTC)
    points = [[int((now - timedelta(minutes=m)).timestamp() * 1000), 20 + m % 5] for m in range(1, 120)]
    r = httpx.post(
        f"{stack.base_url}/external/api/batch/update",
        params={"token": info.token, "pin": "V0"},
        json=points,
        timeout=10,
    )
    assert r.status_code == 200, r.text

    def buckets() -> dict[str, Any] | None:
        r = admin.get(
            f"/api/console/devices/{info.id}/history",
            params={"pin": 0, "start": (now - timedelta(hours=3)).isoformat(), "end": now.isoformat(), "points": 30},
        )
        assert r.status_code == 200, r.text
        return r.json() if len(r.json()["t"]) >= 10 else None

    series = wait_for(buckets, 15, message="imported history in the buckets")
    assert all(lo <= avg <= hi for lo, avg, hi in zip(series["min"], series["avg"], series["max"], strict=True))
    assert min(series["min"]) == 20 and max(series["max"]) == 24
    r = admin.get(f"/api/console/devices/{info.id}/history", params={"pin": 2, "start": "0", "end": "1000"})
    assert r.status_code == 400 and "no chart" in error(r)
    r = admin.get(f"/api/console/devices/{info.id}/history", params={"pin": 0, "start": "yesterday", "end": "1000"})
    assert r.status_code == 400 and "ISO 8601" in error(r)
    old = info.token
    new = admin.post(f"/api/console/devices/{info.id}/token/rotate").json()["token"]
    assert new != old and admin.get(f"/api/console/devices/{info.id}/token").json()["token"] == new


def test_pages_need_a_session_and_the_api_needs_csrf(stack: StackConfig, admin: Api) -> None:
    with httpx.Client(base_url=stack.base_url, timeout=10) as anon:
        r = anon.get("/devices?q=x")
        assert r.status_code in (302, 303) and r.headers["location"] == "/login?next=%2Fdevices%3Fq%3Dx"
        assert anon.get("/login").status_code == 200
        assert anon.get("/static/vendor/htmx.min.js").status_code == 200
        assert anon.get("/static/vendor/left-pad.js").status_code == 404
        assert anon.get("/api/console/templates").status_code == 401
    r = admin.post("/api/console/templates", json={"name": "No CSRF"}, headers={})
    assert r.status_code == 403 and "CSRF" in error(r)
    for path in ("/devices", "/templates", "/orgs", "/users", "/roles", "/account", "/devices/new"):
        r = admin.get(path)
        assert r.status_code == 200 and "<html" in r.text, path
    assert admin.get("/devices/999999").status_code == 404
    assert "not found" in admin.get("/devices/999999").text


def _read_invitation_token(stack: StackConfig, address: str) -> str:
    def token() -> str | None:
        for path in sorted((stack.data_dir / "mail").glob("*.eml")) if (stack.data_dir / "mail").exists() else []:
            message = email.message_from_bytes(Path(path).read_bytes(), policy=email.policy.default)
            if message["To"] == address:
                match = re.search(r"token=([A-Za-z0-9_-]+)", message.get_content())  # type: ignore[attr-defined]
                if match:
                    return match[1]
        return None

    return wait_for(token, 10, message=f"the invitation to {address}")


def test_another_organizations_templates_and_devices_do_not_exist(stack: StackConfig, admin: Api) -> None:
    tid = make_template(admin)["id"]
    info = make_device(admin, tid)
    org = admin.post("/api/orgs", json={"name": f"Tenant {uuid.uuid4().hex[:6]}"}).json()["id"]
    address = f"t-{uuid.uuid4().hex[:6]}@example.com"
    r = admin.post("/api/invitations", json={"email": address, "role_id": 1, "org_id": org})
    assert r.status_code == 201, r.text
    token = _read_invitation_token(stack, address)
    with httpx.Client(base_url=stack.base_url, timeout=10) as anon:
        assert (
            anon.post("/api/invitations/accept", json={"token": token, "password": "a-good-password-1"}).status_code
            == 201
        )
    with Api(stack.base_url) as other:
        other.login(address, "a-good-password-1")
        calls = [
            ("GET", f"/api/console/templates/{tid}", None),
            ("PATCH", f"/api/console/templates/{tid}", {"name": "X"}),
            ("POST", f"/api/console/templates/{tid}/datastreams", {"pin": "V9", "name": "X"}),
            ("PUT", f"/api/console/templates/{tid}/dashboard", {"widgets": []}),
            ("GET", f"/api/console/devices/{info.id}/token", None),
            ("POST", f"/api/console/devices/{info.id}/values/1", {"value": "1"}),
            ("GET", f"/api/console/devices/{info.id}/values", None),
            ("POST", f"/api/console/devices/{info.id}/token/rotate", None),
        ]
        for method, path, body in calls:
            r = other.request(method, path, json=body)
            assert r.status_code == 404, (method, path, r.status_code, r.text)
        # the one thing a sub-organization may do with a template of the organization above it
        # (as a manufacturer's customers do on Blynk): make its own devices of it
        r = other.post("/api/console/devices", json={"name": "Mine", "template_id": tid})
        assert r.status_code == 201, r.text
        assert other.get(f"/api/devices/{r.json()['id']}").json()["org_id"] == org
        assert other.get(f"/devices/{info.id}").status_code == 404
        assert other.get(f"/templates/{tid}").status_code == 404
        assert all(t["id"] != tid for t in other.get("/api/console/templates").json())
    assert admin.get(f"/api/console/devices/{info.id}/token").json()["token"] == info.token


def test_live_values_arrive_over_the_websocket(stack: StackConfig, admin: Api, paho_device: ConnectDevice) -> None:
    tid = make_template(admin)["id"]
    info = make_device(admin, tid)
    cookie = "; ".join(f"{k}={v}" for k, v in admin.cookies.items())
    url = f"ws://127.0.0.1:{stack.http_port}/live?devices={info.id},999999"
    with ws_connect(url, additional_headers={"Cookie": cookie}, open_timeout=10) as ws:
        assert json.loads(ws.recv(10)) == {"type": "hello", "devices": [info.id], "online": []}
        dev = paho_device(stack, info)
        seen = [json.loads(ws.recv(10))]
        while seen[-1]["type"] != "presence":
            seen.append(json.loads(ws.recv(10)))
        assert seen[-1] == {"type": "presence", "online": True, "device": info.id, "ts": seen[-1]["ts"]}
        dev.publish("ds/Temperature", "21.5")
        msg = json.loads(ws.recv(10))
        assert (msg["type"], msg["pin"], msg["value"], msg["origin"]) == ("value", 0, "21.5", "device")
        dev.publish("ds/Temperature/prop/color", "#FF0000")
        msg = json.loads(ws.recv(10))
        assert (msg["type"], msg["pin"], msg["name"], msg["value"]) == ("property", 0, "color", "#FF0000")
        # a page drawn before a change that came before its socket subscribed learns the state
        # from the hello: which of its devices are online now
        with ws_connect(url, additional_headers={"Cookie": cookie}, open_timeout=10) as late:
            assert json.loads(late.recv(10)) == {"type": "hello", "devices": [info.id], "online": [info.id]}
        dev.close()

        def hello_online() -> object:
            with ws_connect(url, additional_headers={"Cookie": cookie}, open_timeout=10) as late:
                return json.loads(late.recv(10))["online"]

        wait_for(
            lambda: hello_online() == [],
            interval=0.1,
            message="the hello names the device online after it disconnected",
        )
    with pytest.raises(InvalidStatus) as refused:
        with ws_connect(url, open_timeout=10):  # no session: the handshake itself is refused
            pass
    assert refused.value.response.status_code == 403
    with ws_connect(url, additional_headers={"Cookie": cookie, "Origin": "http://evil.example"}, open_timeout=10) as ws:
        with pytest.raises(ConnectionClosedError) as closed:  # a receive timeout would be a TimeoutError
            ws.recv(5)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4008, "cross-site WebSocket refused")
