"""Blynk.Air pages and the console's device routes added with them, against the real stack:
firmware and shipment pages (and the progress part a shipment page polls), the per-device
statuses with device names, device metadata edits and moves, device tags on the info tab and
in the new-shipment form, a terminal's backlog, devices made through ``DeviceAdmin``, and tenancy and permissions (another organization's rows answer
404; a role without ``air.view`` neither sees the menu entry nor opens the pages)."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import httpx

from tests.integration.console.test_console_api import _read_invitation_token, error, make_device, make_template
from tests.integration.ota.ota_support import FW_TYPE, image
from tests.support.accounts import Api
from tests.support.net import wait_for
from tests.support.paho import ConnectDevice
from tests.support.stack import StackConfig

STRING_STREAMS = [
    {"pin": "V0", "name": "Temperature", "type": "double"},
    {"pin": "V5", "name": "Log", "type": "string", "save_raw": True},
    {"pin": "V6", "name": "Note", "type": "string"},
]


def upload(api: Api, data: bytes, name: str = "fw.bin") -> dict[str, Any]:
    r = api.post("/api/ota/firmware", params={"filename": name}, content=data)
    assert r.status_code == 201, r.text
    return dict(r.json())


def ship(api: Api, firmware_id: int, device_ids: list[int], **extra: Any) -> dict[str, Any]:
    r = api.post(
        "/api/ota/shipments",
        json={
            "name": f"Ship {uuid.uuid4().hex[:6]}",
            "firmware_id": firmware_id,
            "target": {"kind": "devices", "device_ids": device_ids},
            **extra,
        },
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


def join(stack: StackConfig, admin: Api, org: int, role_id: int) -> Api:
    """A new user of ``org`` with the role, signed in."""
    address = f"air-{uuid.uuid4().hex[:6]}@example.com"
    r = admin.post("/api/invitations", json={"email": address, "role_id": role_id, "org_id": org})
    assert r.status_code == 201, r.text
    token = _read_invitation_token(stack, address)
    with httpx.Client(base_url=stack.base_url, timeout=10) as anon:
        r = anon.post("/api/invitations/accept", json={"token": token, "password": "a-good-password-1"})
        assert r.status_code == 201, r.text
    api = Api(stack.base_url)
    api.login(address, "a-good-password-1")
    return api


def test_firmware_and_shipment_pages_show_the_image_and_live_progress(
    stack: StackConfig, admin: Api, paho_device: ConnectDevice
) -> None:
    fw = upload(admin, image("3.1.0"), f"page-{uuid.uuid4().hex[:6]}.bin")
    r = admin.get("/air/firmware")
    assert r.status_code == 200 and fw["filename"] in r.text and fw["sha256"] in r.text and fw["md5"] in r.text
    assert fw["signature"] in r.text and "3.1.0" in r.text and FW_TYPE in r.text and 'href="/air"' in r.text
    rows = admin.get("/air/firmware", headers={"HX-Request": "true"})
    assert rows.status_code == 200 and "<html" not in rows.text and fw["filename"] in rows.text
    assert admin.get("/air", follow_redirects=False).headers["location"] == "/air/shipments"

    tid = make_template(admin)["id"]
    info = make_device(admin, tid)
    page = admin.get(f"/air/shipments/new?firmware={fw['id']}")
    assert page.status_code == 200 and info.name in page.text and f'value="{fw["id"]}" selected' in page.text
    shipment = ship(admin, fw["id"], [info.id])
    listed = admin.get("/air/shipments")
    assert listed.status_code == 200 and shipment["name"] in listed.text and "Live" in listed.text

    dev = paho_device(stack, info)
    dev.publish("info/mcu", json.dumps({"ver": "1.0.0", "type": FW_TYPE}), qos=1)
    dev.next(timeout=30, topic_prefix="downlink/ota/json")
    part = wait_for(
        lambda: (lambda r: r if 'data-status="request_sent"' in r.text else None)(
            admin.get(f"/air/shipments/{shipment['id']}/progress")
        ),
        15,
        message="the device in the progress part",
    )
    assert part.status_code == 200 and "<html" not in part.text and info.name in part.text
    assert "Request sent" in part.text and "Pause" in part.text
    rows = admin.get(f"/api/ota/shipments/{shipment['id']}/devices").json()
    assert [(d["device_id"], d["device_name"], d["label"]) for d in rows] == [(info.id, info.name, "Request sent")]
    assert admin.get(f"/api/ota/shipments/{shipment['id']}/devices", params={"status": "success"}).json() == []
    r = admin.get(f"/api/ota/shipments/{shipment['id']}/devices", params={"status": "done"})
    assert r.status_code == 400 and "status must be one of" in error(r)
    filtered = admin.get(f"/air/shipments/{shipment['id']}/progress", params={"status": "success"})
    assert filtered.status_code == 200 and "No device has this status" in filtered.text
    assert admin.get(f"/air/shipments/{shipment['id']}/progress", params={"status": "x"}).status_code == 400
    full = admin.get(f"/air/shipments/{shipment['id']}")
    assert full.status_code == 200 and 'data-poll="2000"' in full.text and fw["filename"] in full.text
    assert admin.post(f"/api/ota/shipments/{shipment['id']}/cancel").status_code == 200
    ended = admin.get(f"/air/shipments/{shipment['id']}/progress")
    assert ended.status_code == 286 and "Cancelled" in ended.text and "Delete shipment" in ended.text
    assert "data-poll" not in admin.get(f"/air/shipments/{shipment['id']}").text  # nothing left to watch


def test_another_organization_and_a_role_without_air_see_nothing(stack: StackConfig, admin: Api) -> None:
    fw = upload(admin, image("3.2.0"))
    info = make_device(admin, make_template(admin)["id"])
    shipment = ship(admin, fw["id"], [info.id])
    org = admin.post("/api/orgs", json={"name": f"Air tenant {uuid.uuid4().hex[:6]}"}).json()["id"]
    with join(stack, admin, org, 1) as other:  # an Admin, of another organization
        for path in (
            f"/air/shipments/{shipment['id']}",
            f"/air/shipments/{shipment['id']}/progress",
            f"/api/ota/shipments/{shipment['id']}/devices",
            f"/api/ota/firmware/{fw['id']}",
        ):
            assert other.get(path).status_code == 404, path
        assert shipment["name"] not in other.get("/air/shipments").text
        assert fw["sha256"] not in other.get("/air/firmware").text
        assert "Blynk.Air" in other.get("/devices").text
    with join(stack, admin, org, 3) as user:  # the built-in User role has no air.* permission
        assert 'href="/air"' not in user.get("/devices").text
        for path in ("/air/shipments", "/air/firmware", "/air/shipments/new", f"/air/shipments/{shipment['id']}"):
            assert user.get(path).status_code == 403, path


def test_device_metadata_is_edited_and_reaches_the_device(
    stack: StackConfig, admin: Api, paho_device: ConnectDevice
) -> None:
    tid = make_template(admin)["id"]
    for field in ({"name": "Serial", "type": "text"}, {"name": "Rating", "type": "number"}):
        assert admin.post(f"/api/console/templates/{tid}/metadata", json=field).status_code == 200
    info = make_device(admin, tid)
    path = f"/api/console/devices/{info.id}/metadata"
    dev = paho_device(stack, info)
    r = admin.put(path, json={"name": "Serial", "value": "SN-42"})
    assert r.status_code == 200 and r.json() == {"name": "Serial", "value": "SN-42"}
    assert dev.next(topic_prefix="downlink/meta/") == ("downlink/meta/Serial", b"SN-42")
    dev.close()
    for body, status, message in [
        ({"name": "Rating", "value": "high"}, 400, "expects a number"),
        ({"name": "Nope", "value": "1"}, 400, "no metadata field named 'Nope'"),
        ({"name": "Device Owner", "value": "x@y.z"}, 400, "cannot be set"),
        ({"name": "Device Name", "value": "bad!name"}, 400, "Device name should be"),
        ({"name": "Serial"}, 400, "value"),
    ]:
        r = admin.put(path, json=body)
        assert r.status_code == status and message in error(r), (body, r.text)
    new_name = f"Renamed {uuid.uuid4().hex[:6]}"
    assert admin.put(path, json={"name": "Device Name", "value": new_name}).json()["value"] == new_name
    assert admin.get(f"/api/devices/{info.id}").json()["name"] == new_name
    sub = admin.post("/api/orgs", json={"name": f"Meta sub {uuid.uuid4().hex[:6]}"}).json()["id"]
    page = admin.get(f"/devices/{info.id}?tab=info")
    assert page.status_code == 200 and 'value="SN-42"' in page.text and "Move device" in page.text
    assert admin.post(f"/api/devices/{info.id}/move", json={"org_id": sub}).json()["org_id"] == sub
    with join(
        stack, admin, admin.post("/api/orgs", json={"name": f"Meta t {uuid.uuid4().hex[:6]}"}).json()["id"], 1
    ) as other:
        assert other.put(path, json={"name": "Serial", "value": "mine"}).status_code == 404
        assert other.get(f"/api/console/devices/{info.id}/lines", params={"pin": 5}).status_code == 404


def test_a_terminal_opens_with_its_backlog(stack: StackConfig, admin: Api, paho_device: ConnectDevice) -> None:
    tid = make_template(admin, STRING_STREAMS)["id"]
    info = make_device(admin, tid)
    dev = paho_device(stack, info)
    for n in range(5):
        dev.publish("ds/Log", f"line {n}", qos=1)
    dev.publish("ds/Note", "only the latest", qos=1)

    def lines() -> list[str] | None:
        r = admin.get(f"/api/console/devices/{info.id}/lines", params={"pin": 5, "limit": 3})
        assert r.status_code == 200, r.text
        got = [line["value"] for line in r.json()["lines"]]
        return got if len(got) == 3 and got[-1] == "line 4" else None

    assert wait_for(lines, 15, message="the terminal backlog") == ["line 2", "line 3", "line 4"]
    note = wait_for(
        lambda: admin.get(f"/api/console/devices/{info.id}/lines", params={"pin": 6}).json()["lines"] or None,
        15,
        message="the latest value of a datastream without history",
    )
    assert [line["value"] for line in note] == ["only the latest"]
    dev.close()
    for params, status, message in [
        ({"pin": 0}, 400, "a terminal shows strings"),
        ({"pin": 9}, 404, "no datastream"),
        ({"pin": 5, "limit": 0}, 400, "limit must be"),
    ]:
        r = admin.get(f"/api/console/devices/{info.id}/lines", params=params)
        assert r.status_code == status and message in error(r), (params, r.text)


def test_console_devices_are_made_by_device_admin(stack: StackConfig, admin: Api) -> None:
    tid = make_template(admin)["id"]
    info = make_device(admin, tid)
    assert admin.get(f"/api/devices/{info.id}").json()["owner_id"] == admin.me["id"]  # its creator owns it
    r = admin.post("/api/console/devices", json={"name": "bad/name", "template_id": tid})
    assert r.status_code == 400 and "Device name should be" in error(r)
    r = admin.post("/api/console/devices", json={"name": "Ghost", "template_id": 10**9})
    assert r.status_code == 404 and "Template is not found" in error(r)
    sub = admin.post("/api/orgs", json={"name": f"Made sub {uuid.uuid4().hex[:6]}"}).json()["id"]
    r = admin.post(
        "/api/console/devices", json={"name": f"Sub {uuid.uuid4().hex[:6]}", "template_id": tid, "org_id": sub}
    )
    assert r.status_code == 201, r.text
    made = admin.get(f"/api/devices/{r.json()['id']}").json()
    assert (made["org_id"], made["owner_id"]) == (sub, None)  # no user of that organization made it
    audit = admin.get("/api/audit", params={"org_id": sub}).json()["content"]
    assert any(e["action"] == "device.create" for e in audit)


def test_device_tags_on_the_info_tab_and_offered_by_the_shipment_form(stack: StackConfig, admin: Api) -> None:
    suffix = uuid.uuid4().hex[:6]
    upload(admin, image("3.4.0"))  # the form needs an image to ship
    info = make_device(admin, make_template(admin)["id"])
    tags = [f"Floor {suffix}", f"<b>{suffix}</b>"]
    assert admin.put(f"/api/devices/{info.id}/tags", json={"tags": tags}).status_code == 200
    page = admin.get(f"/devices/{info.id}?tab=info")
    assert page.status_code == 200
    form = re.search(
        r'<form method="post" data-api="/api/devices/(\d+)/tags" data-method="PUT"[^>]*>(.*?)</form>', page.text, re.S
    )
    assert form is not None and int(form[1]) == info.id
    textarea = re.search(r'<textarea name="tags"[^>]*data-type="lines"[^>]*>(.*?)</textarea>', form[2], re.S)
    assert textarea is not None and textarea[1] == f"&lt;b&gt;{suffix}&lt;/b&gt;\nFloor {suffix}"
    assert f'<span class="badge">Floor {suffix}</span>' in page.text and f"<b>{suffix}</b>" not in page.text
    new = admin.get("/air/shipments/new")
    datalist = re.search(r'<datalist id="tags-in-use">(.*?)</datalist>', new.text, re.S)
    assert datalist is not None and f'<option value="Floor {suffix}">1 device</option>' in datalist[1]
    assert 'list="tags-in-use"' in new.text

    role = admin.post("/api/roles", json={"name": f"Looker {suffix}", "permissions": ["devices.view", "air.ship"]})
    assert role.status_code == 201, role.text
    with join(stack, admin, admin.me["org_id"], role.json()["id"]) as looker:
        page = looker.get(f"/devices/{info.id}?tab=info")
        assert f'<span class="badge">Floor {suffix}</span>' in page.text and '/tags" data-method' not in page.text
        assert f"Floor {suffix}" in looker.get("/air/shipments/new").text
    org = admin.post("/api/orgs", json={"name": f"Tag tenant {suffix}"}).json()["id"]
    with join(stack, admin, org, 1) as other:  # an Admin of another organization
        upload(other, image("3.4.1"))
        new = other.get("/air/shipments/new")
        assert new.status_code == 200 and f"Floor {suffix}" not in new.text
        assert "No device has a tag yet" in new.text
        assert other.get(f"/devices/{info.id}?tab=info").status_code == 404
