"""GET /external/api/provision against the real app: the template check and the firmware
fields stored on the device as info/mcu stores them."""

from __future__ import annotations

import httpx
import psycopg
import pytest

from backend.transfer.schemas import DeviceOut
from tests.support.blynk import blynk_error
from tests.support.stack import StackConfig

FIELDS = "fw_version, fw_build, fw_type, blynk_version, board_template_id"


def firmware(stack: StackConfig, device_id: int) -> tuple[object, ...]:
    with psycopg.connect(stack.database_url) as conn:
        row = conn.execute(f"SELECT {FIELDS} FROM device WHERE id = %s", (device_id,)).fetchone()
    assert row is not None
    return tuple(row)


def test_provision_stores_the_firmware_info(http: httpx.Client, stack: StackConfig, devices: list[DeviceOut]) -> None:
    dev = devices[0]
    r = http.get(
        "/external/api/provision",
        params={
            "token": dev.token,
            "templateId": dev.template_id,
            "build": "Oct 1 2026 10:00:00",
            "ver": "1.0.0",
            "type": "MCU",
            "fwType": dev.template_id,
            "blVer": "2.27.2",
            "boType": "ESP32",
        },
    )
    assert (r.status_code, r.text) == (200, "")
    assert firmware(stack, dev.id) == ("1.0.0", "Oct 1 2026 10:00:00", dev.template_id, "2.27.2", dev.template_id)


def test_only_the_template_id_is_required_and_absent_fields_are_kept(
    http: httpx.Client, stack: StackConfig, devices: list[DeviceOut]
) -> None:
    dev = devices[0]
    base = {"token": dev.token, "templateId": dev.template_id}
    assert http.get("/external/api/provision", params={**base, "ver": "2.0.0", "blVer": "1.3.2"}).status_code == 200
    r = http.get("/external/api/provision", params=base)
    assert (r.status_code, r.text) == (200, "")
    assert firmware(stack, dev.id) == ("2.0.0", None, None, "1.3.2", dev.template_id)


def test_long_fields_are_cut_as_info_mcu_does(http: httpx.Client, stack: StackConfig, devices: list[DeviceOut]) -> None:
    dev = devices[0]
    params = {"token": dev.token, "templateId": dev.template_id, "ver": "9" * 500}
    assert http.get("/external/api/provision", params=params).status_code == 200
    assert firmware(stack, dev.id)[0] == "9" * 64


@pytest.mark.parametrize(
    ("template_id", "message"),
    [
        ("TMPLxxxxxxxx", "Template ID doesn't match the device's template."),
        (None, "Request with incorrect parameters"),
        ("", "Request with incorrect parameters"),
    ],
)
def test_a_wrong_or_missing_template_id_is_refused_and_nothing_is_stored(
    http: httpx.Client, stack: StackConfig, devices: list[DeviceOut], template_id: str | None, message: str
) -> None:
    dev = devices[0]
    params = {"token": dev.token, "ver": "6.6.6"}
    if template_id is not None:
        params["templateId"] = template_id
    r = http.get("/external/api/provision", params=params)
    assert (r.status_code, r.json()) == (400, blynk_error(message))
    assert firmware(stack, dev.id) == (None, None, None, None, None)


def test_another_templates_id_is_refused(http: httpx.Client, stack: StackConfig, devices: list[DeviceOut]) -> None:
    from tests.support.provision import provision, thermostat_doc

    other = provision(stack.database_url, thermostat_doc()).devices[0]
    r = http.get("/external/api/provision", params={"token": devices[0].token, "templateId": other.template_id})
    assert (r.status_code, r.json()) == (400, blynk_error("Template ID doesn't match the device's template."))


def test_token_errors(http: httpx.Client) -> None:
    r = http.get("/external/api/provision", params={"templateId": "TMPLabcdefgh"})
    assert (r.status_code, r.json()) == (400, blynk_error("No token provided."))
    r = http.get("/external/api/provision", params={"token": "q" * 32, "templateId": "TMPLabcdefgh"})
    assert (r.status_code, r.json()) == (400, blynk_error("Invalid token."))


@pytest.mark.parametrize("call", ["provision", "batch", "upload"])
def test_reporting_over_http_counts_as_online(http: httpx.Client, devices: list[DeviceOut], call: str) -> None:
    """Blynk's "log when the device reports any data": an HTTP-only device that provisions,
    imports points or uploads a file is online afterwards, like one that calls update."""
    dev = devices[1]
    assert http.get(f"/external/api/isHardwareConnected?token={dev.token}").text == "false"
    if call == "provision":
        r = http.get("/external/api/provision", params={"token": dev.token, "templateId": dev.template_id})
    elif call == "batch":
        import time

        r = http.post(f"/external/api/batch/update?token={dev.token}&pin=v0", json=[[int(time.time() * 1000), 1.5]])
    else:
        r = http.post(f"/external/api/upload?token={dev.token}", files={"upfile": ("a.txt", b"hello")})
    assert r.status_code == 200, r.text
    assert http.get(f"/external/api/isHardwareConnected?token={dev.token}").text == "true"
