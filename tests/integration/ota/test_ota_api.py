"""Blynk.Air over the real stack: firmware upload, the signing key, shipments and downloads."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid

import httpx
import psycopg
import pytest

from ota import verify
from tests.integration.backend.conftest import connect_device
from tests.integration.ota.ota_support import FW_TYPE, create_shipment, image, public_key, shipment, upload
from tests.support.accounts import Api
from tests.support.net import wait_for
from tests.support.paho import ConnectDevice
from tests.support.provision import provision, thermostat_doc
from tests.support.stack import StackConfig


def test_upload_parses_hashes_and_signs(admin: Api, stack: StackConfig) -> None:
    data = image("2.3.4")
    fw = upload(admin, data)
    assert (fw["version"], fw["fw_type"], fw["build"], fw["blynk_version"]) == (
        "2.3.4",
        FW_TYPE,
        "Mar 05 2024 18:29:27",
        "1.3.2",
    )
    assert fw["sha256"] == hashlib.sha256(data).hexdigest() and fw["md5"] == hashlib.md5(data).hexdigest()
    key = base64.b64decode(public_key(admin))
    verify(key, base64.b64decode(fw["signature"]), bytes.fromhex(fw["sha256"]), len(data), FW_TYPE, "2.3.4")
    assert (stack.data_dir / "firmware" / fw["sha256"]).read_bytes() == data
    assert upload(admin, data)["id"] == fw["id"]  # the same image again is the same record
    listed = admin.get("/api/ota/firmware").json()
    assert fw["id"] in [f["id"] for f in listed]


@pytest.mark.parametrize(
    "params, body, message",
    [
        ({"filename": "fw.exe"}, b"x" * 100, ".bin or .tar"),
        ({"filename": "fw.bin"}, b"", "empty"),
        ({"filename": "fw.bin"}, b"blnkinf\0mcu\x001.0\0build\0\0", "without a value"),
    ],
)
def test_bad_uploads_are_refused_clearly(
    admin: Api, stack: StackConfig, params: dict[str, str], body: bytes, message: str
) -> None:
    resp = admin.post("/api/ota/firmware", params=params, content=body)
    assert resp.status_code == 400 and message in resp.json()["error"]["message"]
    assert not list((stack.data_dir / "firmware").glob(".upload-*"))  # nothing left behind


def test_bad_shipments_are_refused_clearly(admin: Api, stack: StackConfig) -> None:
    fw = upload(admin, image("1.0.1"))
    info = provision(stack.database_url, thermostat_doc()).devices[0]
    base = {"name": "bad", "firmware_id": fw["id"], "target": {"kind": "devices", "device_ids": [info.id]}}
    for change, status, message in [
        ({"target": {"kind": "nothing"}}, 400, "target"),
        ({"pacing": {"kind": "constant"}}, 400, "per_minute"),
        ({"apply_mode": "sideways"}, 400, "apply_mode"),
        ({"abort": {"failure_percent": 0}}, 400, "failure_percent"),
        ({"target": {"kind": "devices", "device_ids": [10**9]}}, 400, "no devices"),
        ({"firmware_id": 10**9}, 404, "no firmware"),
        ({"attempts_limit": 0}, 400, "attempts"),
    ]:
        resp = admin.post("/api/ota/shipments", json={**base, **change})
        assert resp.status_code == status, (change, resp.text)
        assert message in resp.json()["error"]["message"], (change, resp.text)
    assert all(s["name"] != "bad" for s in admin.get("/api/ota/shipments").json())


def test_offer_download_range_and_success_with_a_plain_device(
    admin: Api, stack: StackConfig, paho_device: ConnectDevice
) -> None:
    """A Blynk firmware as it is (plain paho, no SDK): offer, ranged download, info/mcu."""
    info = provision(stack.database_url, thermostat_doc()).devices[0]
    data = image("1.5.0")
    fw = upload(admin, data)
    dev = paho_device(stack, info)
    dev.publish("info/mcu", json.dumps({"ver": "1.0.0", "type": FW_TYPE}), qos=1)
    ship = create_shipment(
        admin, name=f"plain {info.id}", firmware_id=fw["id"], target={"kind": "devices", "device_ids": [info.id]}
    )
    _, raw = dev.next(timeout=30, topic_prefix="downlink/ota/json")
    offer = json.loads(raw)
    assert {k: offer[k] for k in ("size", "type", "ver", "build", "sha256")} == {
        "size": len(data),
        "type": FW_TYPE,
        "ver": "1.5.0",
        "build": "Mar 05 2024 18:29:27",
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    head = httpx.get(offer["url"], headers={"Range": "bytes=0-99"})
    assert head.status_code == 206 and head.content == data[:100]
    assert head.headers["content-range"] == f"bytes 0-99/{len(data)}"
    assert head.headers["x-sha256"] == base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert head.headers["x-md5"] == hashlib.md5(data).hexdigest()
    assert (head.headers["x-fw-type"], head.headers["x-fw-ver"]) == (FW_TYPE, "1.5.0")
    assert httpx.get(offer["url"], headers={"Range": f"bytes={len(data)}-"}).status_code == 416
    assert wait_for(lambda: _status(admin, ship["id"], info.id) == "requested", 10)
    rest = httpx.get(offer["url"], headers={"Range": "bytes=100-"})
    assert rest.status_code == 206 and head.content + rest.content == data
    assert wait_for(lambda: _status(admin, ship["id"], info.id) == "downloaded", 10)
    assert httpx.get(offer["url"].replace("token=", "token=x")).status_code == 403
    dev.publish("info/mcu", json.dumps({"ver": "1.5.0", "type": FW_TYPE}), qos=1)
    assert wait_for(lambda: _status(admin, ship["id"], info.id) == "success", 10)
    assert wait_for(lambda: shipment(admin, ship["id"])["state"] == "finished", 15)
    assert httpx.get(offer["url"]).status_code == 403  # the offer is over


def test_ota_status_reports_and_bad_payloads(admin: Api, stack: StackConfig, paho_device: ConnectDevice) -> None:
    info = provision(stack.database_url, thermostat_doc()).devices[0]
    fw = upload(admin, image("1.6.0"))
    dev = paho_device(stack, info)
    dev.publish("ota/status", b"nonsense", qos=1)
    _, diag = dev.next(timeout=10, topic_prefix="downlink/diag")
    assert b"ota/status: expected" in diag
    dev.publish("info/mcu", json.dumps({"ver": "1.0.0", "type": FW_TYPE}), qos=1)
    ship = create_shipment(
        admin, name=f"status {info.id}", firmware_id=fw["id"], target={"kind": "devices", "device_ids": [info.id]}
    )
    dev.next(timeout=30, topic_prefix="downlink/ota/json")
    dev.publish("ota/status", json.dumps({"status": "failure", "error": "flash write failed"}), qos=1)
    assert wait_for(lambda: _status(admin, ship["id"], info.id) == "upload_failure", 10)
    _, cleared = dev.next(timeout=10, topic_prefix="downlink/ota/json")
    assert cleared == b""  # the retained offer is withdrawn
    rows = admin.get(f"/api/ota/shipments/{ship['id']}/devices").json()
    assert rows[0]["label"] == "Upload failure" and rows[0]["detail"] == "flash write failed"
    dev.publish("info/mcu", json.dumps({"ver": "1.0.0", "type": FW_TYPE}), qos=1)  # reboots: tries again
    _, again = dev.next(timeout=10, topic_prefix="downlink/ota/json")
    assert json.loads(again)["ver"] == "1.6.0"
    assert admin.post(f"/api/ota/shipments/{ship['id']}/cancel").json()["state"] == "cancelled"
    _, cleared = dev.next(timeout=10, topic_prefix="downlink/ota/json")
    assert cleared == b""
    assert admin.post(f"/api/ota/shipments/{ship['id']}/resume").status_code == 409
    assert admin.delete(f"/api/ota/shipments/{ship['id']}").status_code == 204


def _status(admin: Api, shipment_id: int, device_id: int) -> str | None:
    rows = admin.get(f"/api/ota/shipments/{shipment_id}/devices").json()
    return next((r["status"] for r in rows if r["device_id"] == device_id), None)


def test_the_signed_message_is_what_the_sdk_rebuilds() -> None:
    from device_sdk import FirmwareOffer
    from ota import signed_message

    offer = FirmwareOffer("http://x/y", 10, "T", "1.0", None, bytes(range(32)), bytes(64))
    assert offer.signed_message() == signed_message(bytes(range(32)), 10, "T", "1.0")


def test_firmware_a_shipment_uses_is_not_deleted(admin: Api, stack: StackConfig) -> None:
    fw = upload(admin, image("1.7.0"))
    info = provision(stack.database_url, thermostat_doc()).devices[0]
    ship = create_shipment(
        admin, name=f"keeps {info.id}", firmware_id=fw["id"], target={"kind": "devices", "device_ids": [info.id]}
    )
    r = admin.delete(f"/api/ota/firmware/{fw['id']}")
    assert r.status_code == 409 and "used by a shipment" in r.json()["error"]["message"], r.text
    assert admin.post(f"/api/ota/shipments/{ship['id']}/cancel").status_code == 200
    assert admin.delete(f"/api/ota/shipments/{ship['id']}").status_code == 204
    assert admin.delete(f"/api/ota/firmware/{fw['id']}").status_code == 204
    assert admin.get(f"/api/ota/firmware/{fw['id']}").status_code == 404


def test_a_tag_target_reaches_exactly_the_tagged_device(admin: Api, stack: StackConfig) -> None:
    """Tags set through /api/devices/{id}/tags select the shipment's devices. The tagged device
    has the highest id of the three, and the rollout looks at candidates by id, all in one tick
    (the pacing allows 100): had the others been targets, they would have been offered first."""
    tag = f"air-{uuid.uuid4().hex[:8]}"
    infos = provision(stack.database_url, thermostat_doc(devices=3)).devices
    plain, near, tagged = sorted(infos, key=lambda i: i.id)
    api = admin
    assert api.put(f"/api/devices/{near.id}/tags", json={"tags": [tag + "-other", tag.upper()]}).status_code == 200
    r = api.put(f"/api/devices/{tagged.id}/tags", json={"tags": [f" {tag} "]})
    assert r.status_code == 200 and r.json()["tags"] == [tag]
    assert {"tag": tag, "devices": 1} in api.get("/api/tags").json()
    fw = upload(admin, image("1.8.0"))
    devices = [connect_device(stack, info) for info in (plain, near, tagged)]
    try:
        for dev in devices:
            dev.publish("info/mcu", json.dumps({"ver": "1.0.0", "type": FW_TYPE}), qos=1)

        def ready() -> bool:
            with psycopg.connect(stack.database_url) as conn:
                row = conn.execute(
                    "SELECT count(*) FROM device WHERE id = ANY(%s) AND online AND fw_version = '1.0.0'",
                    ([i.id for i in infos],),
                ).fetchone()
            return row is not None and row[0] == 3

        assert wait_for(ready, 15)
        ship = create_shipment(
            admin,
            name=f"tag {tag}",
            firmware_id=fw["id"],
            target={"kind": "tag", "tag": tag},
            pacing={"kind": "constant", "per_minute": 100},
        )
        assert ship["target"] == {"kind": "tag", "tag": tag}
        _, raw = devices[2].next(timeout=30, topic_prefix="downlink/ota/json")
        assert json.loads(raw)["ver"] == "1.8.0"
        rows = api.get(f"/api/ota/shipments/{ship['id']}/devices").json()
        assert [r["device_id"] for r in rows] == [tagged.id]
        assert api.post(f"/api/ota/shipments/{ship['id']}/cancel").status_code == 200
    finally:
        for dev in devices:
            dev.client.disconnect()
            dev.client.loop_stop()
