"""Blynk's HTTP endpoints for properties, events and metadata against the real app and broker,
with Blynk's status codes and error texts; HTTP-only devices online after reporting data."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from backend.transfer.schemas import DeviceOut
from tests.integration.backend.conftest import PahoDevice, connect_device, is_connected
from tests.integration.backend.devices_doc import provision_rich, query, timeline
from tests.support.blynk import blynk_error
from tests.support.net import wait_for
from tests.support.stack import StackConfig

API = "/external/api"


@pytest.fixture
def rich(stack: StackConfig) -> list[DeviceOut]:
    return provision_rich(stack)


@pytest.fixture
def dev(stack: StackConfig, rich: list[DeviceOut]) -> Iterator[PahoDevice]:
    device = connect_device(stack, rich[0])
    wait_for(lambda: is_connected(stack, rich[0].token))
    yield device
    device.client.disconnect()
    device.client.loop_stop()


def test_update_property(stack: StackConfig, http: httpx.Client, dev: PahoDevice) -> None:
    token = dev.info.token
    r = http.get(f"{API}/update/property?token={token}&pin=v1&label=Main%20switch&color=%23D3435C")
    assert (r.status_code, r.text) == (200, "")
    r = http.get(f"{API}/update/property?token={token}&pin=V1&labels=Off&labels=On")
    assert r.status_code == 200
    assert query(
        stack,
        "SELECT property, value FROM device_property WHERE device_id = %s AND pin = 1 ORDER BY property",
        dev.info.id,
    ) == [("color", "#D3435C"), ("label", "Main switch"), ("labels", "Off\x1fOn")]
    for q, message in [
        ("pin=v1&bogus=1", "Unknown widget property 'bogus'."),
        ("label=x", "Wrong pin format."),
        ("pin=x1&label=x", "Wrong pin format."),
        ("pin=v99&label=x", "No datastream setup for that pin."),
        ("pin=v1", "Request with incorrect parameters"),
    ]:
        r = http.get(f"{API}/update/property?token={token}&{q}")
        assert (r.status_code, r.json()) == (400, blynk_error(message)), q
    assert http.get(f"{API}/update/property?pin=v1&label=x").json() == blynk_error("No token provided.")
    assert not [m for m in dev.drain() if m[0].startswith("downlink/ds/")]  # no downlink for properties


def test_log_event(stack: StackConfig, http: httpx.Client, rich: list[DeviceOut]) -> None:
    token = rich[1].token
    assert http.get(f"{API}/logEvent?token={token}&code=overheat").status_code == 200
    r = http.get(f"{API}/logevent?token={token}&code=door&description=Back%20door")
    assert (r.status_code, r.text) == (200, "")
    assert [e for e in timeline(stack, rich[1].id) if e[0] == "event"] == [
        ("event", "overheat", "warning", "Too hot"),
        ("event", "door", "info", "Back door"),
    ]
    for q, message in [
        ("", "Event code is not provided."),
        ("code=", "Event code is not provided."),
        ("code=nope", "Can't find Event with this code in Product template"),
    ]:
        r = http.get(f"{API}/logEvent?token={token}&{q}")
        assert (r.status_code, r.json()) == (400, blynk_error(message)), q


def test_device_meta_read_and_update(http: httpx.Client, dev: PahoDevice) -> None:
    token = dev.info.token
    r = http.get(f"{API}/device/meta?token={token}&metaFieldName=Serial%20Number")
    assert (r.status_code, r.text) == (200, "unset")  # the field's default
    assert http.get(f"{API}/device/meta?token={token}&metaFieldId=1").text == dev.info.name  # Device Name
    r = http.get(f"{API}/device/meta/update?token={token}&metaFieldId=10&value=SN-7")  # Serial Number
    assert (r.status_code, r.text) == (200, "")
    assert dev.next(topic_prefix="downlink/meta/") == ("downlink/meta/Serial Number", b"SN-7")
    assert http.get(f"{API}/device/meta?token={token}&metaFieldId=10").text == "SN-7"
    r = http.get(
        f"{API}/device/meta/update", params={"token": token, "metaFieldName": "Location", "value": "56.95,24.1"}
    )
    assert r.status_code == 200
    assert dev.next(topic_prefix="downlink/meta/") == ("downlink/meta/Location", b"56.95,24.1")
    assert http.get(f"{API}/device/meta?token={token}&metaFieldName=loc.latlon").text == "56.95 24.1"
    dev.publish("get/loc/all", "")
    assert dev.next(topic_prefix="downlink/loc") == ("downlink/loc/all", b"56.95,24.1")
    for path, q, message in [
        ("device/meta", "", "Wrong metaField format."),
        ("device/meta", "metaFieldId=abc", "Wrong metaField format."),
        ("device/meta", "metaFieldId=%C2%B2", "Wrong metaField format."),
        ("device/meta", "metaFieldId=99", "MetaField doesn't exist."),
        ("device/meta", "metaFieldName=Nope", "MetaField doesn't exist."),
        ("device/meta/update", "metaFieldName=Count&value=many", "Wrong value"),
        ("device/meta/update", "metaFieldName=Location&value=north", "Wrong value"),
        ("device/meta/update", "metaFieldName=Count", "Request with incorrect parameters"),
        ("device/meta/update", "metaFieldId=1&value=x", "Request with incorrect parameters"),
    ]:
        r = http.get(f"{API}/{path}?token={token}&{q}")
        assert (r.status_code, r.json()) == (400, blynk_error(message)), (path, q)


def test_an_http_only_device_is_online_for_one_and_a_half_heartbeats(stack: StackConfig, http: httpx.Client) -> None:
    info = provision_rich(stack, heartbeat=1)[0]
    assert http.get(f"{API}/isHardwareConnected?token={info.token}").text == "false"
    assert http.get(f"{API}/get?token={info.token}&v0").status_code == 200  # reading is not reporting
    assert http.get(f"{API}/isHardwareConnected?token={info.token}").text == "false"
    assert http.get(f"{API}/update?token={info.token}&v0=20").status_code == 200
    assert http.get(f"{API}/isHardwareConnected?token={info.token}").text == "true"
    wait_for(
        lambda: http.get(f"{API}/isHardwareConnected?token={info.token}").text == "false",
        message="offline after heartbeat x 1.5 without reports",
    )
    assert [e[0] for e in timeline(stack, info.id)] == ["online", "offline"]
