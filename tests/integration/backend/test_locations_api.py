"""Locations (issue #19) against the real app and PostgreSQL: made, checked, changed and deleted
in an organization, devices assigned (only the organization's own; a device moved away leaves
its location), audited, and another tenant's locations answered as missing; a device assigned
to a location answers get/utc/all/json with the location's zone and get/loc/all with its place."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.support.accounts import STAFF, invite_and_join, start_accounts_stack
from tests.support.net import wait_for
from tests.support.paho import ConnectDevice
from tests.support.tenants import TwoTenants, two_tenants

RIGA = {"name": "Riga office", "address": "Brivibas iela 1", "lat": 56.9496, "lon": 24.1052, "time_zone": "Europe/Riga"}


@pytest.fixture(scope="module")
def t(pg_server: str, template_db: str) -> Iterator[TwoTenants]:
    for acc in start_accounts_stack(pg_server, template_db, "locations"):
        tenants = two_tenants(acc)
        try:
            yield tenants
        finally:
            tenants.close()


def test_locations_are_made_checked_changed_and_deleted(t: TwoTenants) -> None:
    a = t.a.admin
    made = a.post("/api/locations", json=RIGA)
    assert made.status_code == 201, made.text
    loc = made.json()
    assert {k: loc[k] for k in RIGA} == RIGA and loc["org_id"] == t.a.org and loc["devices"] == 0
    bad = [
        ({**RIGA, "name": "North", "lat": 91}, 400, "latitude"),
        ({**RIGA, "name": "North", "time_zone": "Mars/Olympus"}, 400, "unknown time zone"),
        ({**RIGA, "name": " "}, 400, "name"),
        (RIGA, 409, "already has a location"),
    ]
    for body, status, message in bad:
        r = a.post("/api/locations", json=body)
        assert r.status_code == status and message in r.json()["error"]["message"], (body, r.text)
    changed = a.put(f"/api/locations/{loc['id']}", json={**RIGA, "name": "Riga HQ", "time_zone": ""})
    assert changed.status_code == 200 and changed.json()["name"] == "Riga HQ" and changed.json()["time_zone"] == ""
    assert [x["name"] for x in a.get("/api/locations").json()] == ["Riga HQ"]
    assert a.get("/api/locations").json() == [a.get(f"/api/locations/{loc['id']}").json()]
    assert a.delete(f"/api/locations/{loc['id']}").status_code == 200
    assert a.get(f"/api/locations/{loc['id']}").status_code == 404
    actions = [e["action"] for e in a.get("/api/audit", params={"action": "location."}).json()["content"]]
    assert actions == ["location.delete", "location.update", "location.create"]


def test_devices_are_assigned_within_the_organization(t: TwoTenants) -> None:
    a, b = t.a.admin, t.b.admin
    loc = a.post("/api/locations", json={**RIGA, "name": "Plant"}).json()
    r = a.put(f"/api/locations/{loc['id']}/devices", json={"device_ids": [t.b.device.id]})
    assert r.status_code == 404  # B's device is not A's to place
    r = a.put(f"/api/locations/{loc['id']}/devices", json={"device_ids": [t.a.device.id]})
    assert r.status_code == 200 and r.json()["devices"] == 1, r.text
    listed = a.get(f"/api/locations/{loc['id']}/devices").json()
    assert [(d["id"], d["here"]) for d in listed] == [(t.a.device.id, True)]
    page = a.get("/locations")
    assert page.status_code == 200 and "Plant" in page.text and f'value="{t.a.device.id}" checked' in page.text
    # a device moved to another organization leaves its location
    assert t.root.post(f"/api/devices/{t.a.device.id}/move", json={"org_id": t.b.org}).status_code == 200
    assert a.get(f"/api/locations/{loc['id']}").json()["devices"] == 0
    assert t.root.post(f"/api/devices/{t.a.device.id}/move", json={"org_id": t.a.org}).status_code == 200
    a.put(f"/api/locations/{loc['id']}/devices", json={"device_ids": [t.a.device.id]})
    assert a.put(f"/api/locations/{loc['id']}/devices", json={"device_ids": []}).json()["devices"] == 0

    for method, path, body in (
        ("GET", f"/api/locations/{loc['id']}", None),
        ("PUT", f"/api/locations/{loc['id']}", RIGA),
        ("DELETE", f"/api/locations/{loc['id']}", None),
        ("GET", f"/api/locations/{loc['id']}/devices", None),
        ("PUT", f"/api/locations/{loc['id']}/devices", {"device_ids": []}),
        ("GET", f"/api/locations?org_id={t.a.org}", None),
        ("POST", "/api/locations", {**RIGA, "org_id": t.a.org}),
    ):
        r = b.request(method, path, json=body)
        assert r.status_code == 404, (method, path, r.status_code, r.text)
    assert "Plant" not in b.get("/locations").text and b.get("/api/locations").json() == []


def test_a_role_without_locations_is_refused(t: TwoTenants) -> None:
    staff = invite_and_join(t.acc, t.a.admin, t.a.org, "staff-loc@example.com", STAFF)
    with staff:
        assert staff.get("/api/locations").status_code == 403
        assert staff.get("/locations").status_code == 403
        assert staff.post("/api/locations", json=RIGA).status_code == 403
        assert 'href="/locations"' not in staff.get("/devices").text
    assert 'href="/locations"' in t.a.admin.get("/devices").text


def test_a_device_takes_its_locations_place_and_time_zone(t: TwoTenants, paho_device: ConnectDevice) -> None:
    a = t.a.admin
    tokyo = a.post("/api/locations", json={"name": "Tokyo", "lat": 35.68, "lon": 139.69, "time_zone": "Asia/Tokyo"})
    assert tokyo.status_code == 201, tokyo.text
    device = paho_device(t.acc.config, t.a.device)
    device.publish("get/utc/all/json", "")
    before = json.loads(device.next(topic_prefix="downlink/utc/all/json")[1])
    assert before["tz_name"] != "Asia/Tokyo"
    assert (
        a.put(f"/api/locations/{tokyo.json()['id']}/devices", json={"device_ids": [t.a.device.id]}).status_code == 200
    )

    def zone() -> str:
        device.publish("get/utc/all/json", "")
        return str(json.loads(device.next(topic_prefix="downlink/utc/all/json")[1])["tz_name"])

    wait_for(lambda: zone() == "Asia/Tokyo", message="the device's zone to follow its location")  # a change notice
    device.publish("get/loc/all", "")
    assert device.next(topic_prefix="downlink/loc/all")[1] == b"35.68,139.69"
    assert a.delete(f"/api/locations/{tokyo.json()['id']}").status_code == 200
    wait_for(lambda: zone() == before["tz_name"], message="the zone back once the location is gone")
