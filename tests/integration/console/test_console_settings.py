"""The console's organization settings and device export against the real app and PostgreSQL:
the actions log filtered by user, action and time, paged, and exported as streamed CSV; the
OAuth2 clients page (a secret never shown again); a device datastream's CSV export for a range.
Another organization's log, clients and device are answered as missing."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from backend.transfer.schemas import DeviceOut
from tests.support.accounts import ADMIN, AccountsStack, Api, invite_and_join, start_accounts_stack
from tests.support.net import wait_for
from tests.support.paho import ConnectDevice
from tests.support.tenants import TwoTenants, two_tenants


@dataclass
class World:
    acc: AccountsStack
    t: TwoTenants
    colleague: Api
    """A second administrator of A."""


@pytest.fixture(scope="module")
def world(pg_server: str, template_db: str) -> Iterator[World]:
    for acc in start_accounts_stack(pg_server, template_db, "settings"):
        t = two_tenants(acc, save_raw=True)
        colleague = invite_and_join(acc, t.a.admin, t.a.org, "colleague-a@example.com", ADMIN)
        try:
            yield World(acc, t, colleague)
        finally:
            colleague.close()
            t.close()


def _roles(api: Api, org: int, *names: str) -> None:
    for name in names:
        r = api.post("/api/roles", json={"name": name, "permissions": ["devices.view"], "org_id": org})
        assert r.status_code == 201, r.text


def _csv(api: Api, url: str, **params: str | int) -> list[list[str]]:
    with api.stream("GET", url, params=params) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/csv")
        assert "attachment" in r.headers["content-disposition"]
        return list(csv.reader(io.StringIO("".join(r.iter_text()))))


def test_audit_log_filters_pages_and_streams_csv(world: World) -> None:
    a, org = world.t.a.admin, world.t.a.org
    _roles(a, org, "Viewers one", "Viewers two")
    _roles(world.colleague, org, "=cmd|' /C calc'!A0")
    found = a.get("/api/audit", params={"org_id": org, "action": "role."}).json()
    assert found["totalElements"] == 3 and [e["action"] for e in found["content"]] == ["role.create"] * 3
    mine = a.get("/api/audit", params={"action": "role.create", "user": "COLLEAGUE-A@"}).json()["content"]
    assert [e["details"]["name"] for e in mine] == ["=cmd|' /C calc'!A0"]
    assert a.get("/api/audit", params={"action": "role%"}).json()["totalElements"] == 0  # LIKE characters are literal
    entries = a.get("/api/audit", params={"action": "role.create"}).json()["content"]  # newest first
    middle = datetime.fromisoformat(entries[1]["at"])
    since = a.get("/api/audit", params={"action": "role.create", "since": middle.isoformat()}).json()
    assert [e["id"] for e in since["content"]] == [entries[0]["id"], entries[1]["id"]]
    until = a.get("/api/audit", params={"action": "role.create", "until": middle.isoformat()}).json()
    assert [e["id"] for e in until["content"]] == [entries[2]["id"]]
    paged = [a.get("/api/audit", params={"action": "role.", "size": 2, "page": p}).json() for p in (0, 1)]
    assert [len(p["content"]) for p in paged] == [2, 1] and paged[0]["totalElements"] == 3
    bad = a.get("/api/audit", params={"since": "yesterday"})
    assert bad.status_code == 400 and "ISO 8601" in bad.json()["error"]["message"]
    assert a.get("/api/audit", params={"since": middle.isoformat(), "until": middle.isoformat()}).status_code == 400

    rows = _csv(a, "/api/audit/export", action="role.")
    assert rows[0] == ["id", "at", "user", "ip", "action", "target_type", "target_id", "details"]
    assert [int(r[0]) for r in rows[1:]] == sorted(e["id"] for e in entries)  # oldest first
    assert rows[-1][2] == "colleague-a@example.com" and rows[-1][4] == "role.create"
    everything = _csv(a, "/api/audit/export")
    assert len(everything) - 1 == a.get("/api/audit").json()["totalElements"]
    assert _csv(a, "/api/audit/export", user="nobody-at-all") == [rows[0]]

    b = world.t.b.admin
    assert b.get("/api/audit/export", params={"org_id": org}).status_code == 404
    assert b.get("/audit", params={"org": org}).status_code == 404
    assert "Viewers one" not in "".join(",".join(r) for r in _csv(b, "/api/audit/export"))


def test_audit_page_shows_filtered_entries_and_an_export_link(world: World) -> None:
    a = world.t.a.admin
    _roles(a, world.t.a.org, "Page role")
    page = a.get("/audit", params={"action": "role.create", "user": "admin-a@"})
    assert page.status_code == 200 and "role.create" in page.text
    assert 'href="/api/audit/export?org_id=' in page.text and "action=role.create" in page.text
    partial = a.get("/audit", params={"action": "nothing."}, headers={"HX-Request": "true"})
    assert partial.status_code == 200 and "No entries." in partial.text and "<html" not in partial.text
    staff = invite_and_join(world.acc, a, world.t.a.org, "staff-a@example.com", 2)
    with staff:
        assert staff.get("/audit").status_code == 403
        assert staff.get("/api/audit/export").status_code == 403
        assert 'href="/audit"' not in staff.get("/devices").text
    assert 'href="/audit"' in a.get("/devices").text and 'href="/oauth2-clients"' in a.get("/devices").text


def test_oauth2_clients_page_lists_clients_without_their_secrets(world: World) -> None:
    a = world.t.a.admin
    made = a.post("/api/oauth2/clients", json={"name": "Page client", "permissions": ["devices.view"]})
    assert made.status_code == 201, made.text
    secret, client = made.json()["client_secret"], made.json()["client"]
    page = a.get("/oauth2-clients")
    assert page.status_code == 200 and "Page client" in page.text and client["client_id"] in page.text
    assert secret not in page.text and f"/api/oauth2/clients/{client['id']}" in page.text
    assert "Page client" not in world.t.b.admin.get("/oauth2-clients").text
    assert a.delete(f"/api/oauth2/clients/{client['id']}").status_code == 200
    assert "revoked" in a.get("/oauth2-clients").text


def test_oauth2_clients_page_shows_may_use_mqtt_and_the_topics(world: World) -> None:
    a = world.t.a.admin
    made = a.post("/api/oauth2/clients", json={"name": "Node-RED", "permissions": [], "mqtt_enabled": True})
    assert made.status_code == 201, made.text
    client = made.json()["client"]
    page = a.get("/oauth2-clients").text
    assert f'data-mqtt-toggle="{client["id"]}" checked' in page
    assert f"integration:{client['client_id']}" in page
    assert "dev/&lt;device id&gt;/set/&lt;datastream&gt;" in page and "dev/&lt;device token&gt;/downlink/#" in page
    r = a.put(f"/api/oauth2/clients/{client['id']}/mqtt", json={"mqtt_enabled": False})
    assert r.status_code == 200 and r.json()["mqtt_enabled"] is False, r.text
    page = a.get("/oauth2-clients").text
    assert f'data-mqtt-toggle="{client["id"]}" checked' not in page and f"integration:{client['client_id']}" not in page
    assert (
        world.t.b.admin.put(f"/api/oauth2/clients/{client['id']}/mqtt", json={"mqtt_enabled": True}).status_code == 404
    )


def test_a_datastream_exports_its_range_as_csv(world: World) -> None:
    a, device = world.t.a.admin, world.t.a.device
    with world.acc.db() as db:
        now = db.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
    start_ms = int((now - timedelta(hours=1)).timestamp()) * 1000
    start = datetime.fromtimestamp(start_ms / 1000, UTC)
    points = [[start_ms + i * 1000, float(i % 80)] for i in range(120)]
    r = httpx.post(
        f"{world.acc.base_url}/external/api/batch/update", params={"token": device.token, "pin": "v0"}, json=points
    )
    assert r.status_code == 200, r.text
    url = f"/api/console/devices/{device.id}/export"
    window: dict[str, str | int] = {
        "pin": 0,
        "start": start.isoformat(),
        "end": (start + timedelta(seconds=60)).isoformat(),
    }
    wait_for(lambda: len(_csv(a, url, **{**window, "end": now.isoformat()})) == 121, message="the points stored")
    rows = _csv(a, url, **window)
    assert rows[0] == ["ts", "time", "value"]
    assert [int(r[0]) for r in rows[1:]] == [start_ms + i * 1000 for i in range(60)]  # [start, end)
    assert [float(r[2]) for r in rows[1:]] == [float(i % 80) for i in range(60)]
    assert a.get(url, params={**window, "pin": 9}).status_code == 404
    assert a.get(url, params={**window, "end": window["start"]}).status_code == 400
    assert world.t.b.admin.get(url, params=window).status_code == 404
    page = a.get(f"/devices/{device.id}", params={"tab": "datastreams"}).text
    assert "data-export-form" in page and "/static/console/device_tools.js" in page


def test_device_menu_pings_a_real_device_reboots_and_deletes(world: World, paho_device: ConnectDevice) -> None:
    a, acc = world.t.a.admin, world.acc
    made = a.post("/api/console/devices", json={"name": "Menu target", "template_id": world.t.template})
    assert made.status_code == 201, made.text
    info = DeviceOut(
        name="Menu target", id=made.json()["id"], token=made.json()["token"], template="", template_id="", created=True
    )
    offline = a.post(f"/api/console/devices/{info.id}/ping")
    assert offline.status_code == 409 and "offline" in offline.json()["error"]["message"]
    device = paho_device(acc.config, info)
    wait_for(lambda: a.get(f"/api/devices/{info.id}").json()["online"], message="the device online")

    r = a.post(f"/api/console/devices/{info.id}/ping")  # paho acknowledges downlink/ping (QoS 1)
    assert r.status_code == 200, r.text
    rtt = r.json()["rtt_ms"]
    assert isinstance(rtt, float) and rtt >= 0
    topic, _ = device.next(topic_prefix="downlink/ping")
    assert topic == "downlink/ping"
    with acc.db() as db:
        stored = db.execute("SELECT last_ping_ms FROM device WHERE id = %s", (info.id,)).fetchone()
    assert stored is not None and stored[0] == rtt  # the broker's measurement, as stored by the ingest

    assert a.post(f"/api/console/devices/{info.id}/reboot").json() == {"sent": "reboot"}
    assert device.next(topic_prefix="downlink/reboot")[0] == "downlink/reboot"
    actions = [e["action"] for e in a.get("/api/audit", params={"action": "device."}).json()["content"][:2]]
    assert actions == ["device.reboot", "device.ping"]

    b = world.t.b.admin
    for call in (("POST", "ping"), ("POST", "reboot")):
        assert b.request(call[0], f"/api/console/devices/{info.id}/{call[1]}").status_code == 404
    assert b.delete(f"/api/console/devices/{info.id}").status_code == 404
    staff = invite_and_join(acc, a, world.t.a.org, "menu-staff@example.com", 2)  # devices.edit, not tokens.edit
    with staff:
        page = staff.get(f"/devices/{info.id}").text
        assert "data-device-ping" in page and "token/rotate" not in page
    assert a.delete(f"/api/console/devices/{info.id}").json() == {"sent": "delete"}
    assert a.get(f"/api/devices/{info.id}").status_code == 404
    assert a.get("/api/audit", params={"action": "device.delete"}).json()["content"][0]["target_id"] == str(info.id)
