"""The device actions menu's "Request info" against the real app, broker and PostgreSQL: a
device on openblynk's device_sdk answers ``downlink/get/info/mcu`` with its ``info/mcu`` (the
answer is stored and returned with the time it arrived); a paho device, standing in for Blynk's
own libraries, ignores the unknown downlink and the menu says it did not answer. Another
organization's device is answered as missing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from backend.transfer.schemas import DeviceOut
from device_sdk import Device
from tests.support.accounts import AccountsStack, start_accounts_stack
from tests.support.net import wait_for
from tests.support.paho import ConnectDevice
from tests.support.tenants import TwoTenants, two_tenants


@pytest.fixture(scope="module")
def world(pg_server: str, template_db: str) -> Iterator[tuple[AccountsStack, TwoTenants]]:
    for acc in start_accounts_stack(pg_server, template_db, "devinfo"):
        t = two_tenants(acc)
        try:
            yield acc, t
        finally:
            t.close()


def test_a_device_sdk_device_answers_with_its_info(world: tuple[AccountsStack, TwoTenants]) -> None:
    acc, t = world
    a, device_id = t.a.admin, t.a.device.id
    offline = a.post(f"/api/console/devices/{device_id}/info")
    assert offline.status_code == 409 and "offline" in offline.json()["error"]["message"]
    device = Device(
        t.a.device.token,
        host="127.0.0.1",
        port=acc.config.mqtt_port,
        template_id="TMPLinfo0001",
        firmware_version="2.1.0",
        build="Dec 06 2026 10:00:00",
    )
    with device, acc.db() as db:
        sql = "SELECT online, fw_version FROM device WHERE id = %s"
        wait_for(lambda: db.execute(sql, (device_id,)).fetchone() == (True, "2.1.0"), message="the connect's info")
        # The next info/mcu says 2.2.0: only an answer to the request can carry it now.
        device.set_firmware("2.2.0", "Dec 06 2026 11:00:00")
        asked = datetime.now(UTC)
        r = a.post(f"/api/console/devices/{device_id}/info")
        assert r.status_code == 200, r.text
        got = r.json()
        assert (got["fw_version"], got["fw_build"], got["fw_type"], got["board_template_id"], got["rx_buffer"]) == (
            "2.2.0",
            "Dec 06 2026 11:00:00",
            "TMPLinfo0001",
            "TMPLinfo0001",
            1024,
        )
        assert asked <= datetime.fromisoformat(got["received_at"]) <= datetime.now(UTC)
    with acc.db() as db:
        row = db.execute("SELECT fw_version, fw_build FROM device WHERE id = %s", (device_id,)).fetchone()
    assert row == ("2.2.0", "Dec 06 2026 11:00:00")
    entry = a.get("/api/audit", params={"action": "device.info_request"}).json()["content"][0]
    assert entry["target_id"] == str(device_id)
    assert t.b.admin.post(f"/api/console/devices/{device_id}/info").status_code == 404


def test_a_device_that_ignores_the_request_is_said_not_to_answer(
    world: tuple[AccountsStack, TwoTenants], paho_device: ConnectDevice
) -> None:
    acc, t = world
    a = t.a.admin
    made = a.post("/api/console/devices", json={"name": "Blynk library device", "template_id": t.template})
    assert made.status_code == 201, made.text
    info = DeviceOut(
        name="Blynk library device",
        id=made.json()["id"],
        token=made.json()["token"],
        template="",
        template_id="",
        created=True,
    )
    device = paho_device(acc.config, info)  # subscribed to downlink/#, answers nothing
    wait_for(lambda: a.get(f"/api/devices/{info.id}").json()["online"], message="the device online")
    r = a.post(f"/api/console/devices/{info.id}/info")
    assert r.status_code == 409, r.text
    message = r.json()["error"]["message"]
    assert message.startswith("Blynk library device did not answer within 10 s")
    assert "Blynk's own libraries ignore it" in message
    assert device.next(topic_prefix="downlink/get/info/mcu") == ("downlink/get/info/mcu", b"")
