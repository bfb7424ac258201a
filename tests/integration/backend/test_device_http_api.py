"""Blynk's HTTP device API against the real app and broker: bodies and status codes as Blynk's."""

from __future__ import annotations

import time

import httpx
import pytest

from backend.transfer.schemas import DeviceOut
from tests.integration.backend.conftest import PahoDevice
from tests.support.blynk import blynk_error
from tests.support.net import wait_for
from tests.support.stack import StackConfig


def test_update_reaches_the_device_and_get_reads_it_back(http: httpx.Client, device: PahoDevice) -> None:
    token = device.info.token
    start = time.perf_counter()
    r = http.get(f"/external/api/update?token={token}&V0=21.5")
    assert (r.status_code, r.text) == (200, "")
    topic, payload = device.next(topic_prefix="downlink/ds/")
    latency_ms = (time.perf_counter() - start) * 1000
    assert (topic, payload) == ("downlink/ds/Temperature", b"21.5")
    print(f"HTTP update -> device: {latency_ms:.1f} ms")
    r = http.get(f"/external/api/get?token={token}&V0")
    assert (r.status_code, r.text) == (200, "21.5")
    assert r.headers["content-type"].startswith("text/plain")


def test_update_clamps_to_min_max(http: httpx.Client, device: PahoDevice) -> None:
    token = device.info.token
    assert http.get(f"/external/api/update?token={token}&v1=5").status_code == 200
    assert device.next(topic_prefix="downlink/ds/") == ("downlink/ds/Power", b"1")
    assert http.get(f"/external/api/get?token={token}&v1").text == "1"


def test_update_by_datastream_id_and_pin_param(http: httpx.Client, device: PahoDevice) -> None:
    token = device.info.token
    assert (
        http.get("/external/api/update", params={"token": token, "dataStreamId": "2", "value": "hi there"}).status_code
        == 200
    )
    assert device.next(topic_prefix="downlink/ds/") == ("downlink/ds/Label", b"hi there")
    assert http.get("/external/api/get", params={"token": token, "dataStreamId": "2"}).text == "hi there"
    r = http.get(f"/external/api/update?token={token}&pin=V3&value=24.1&value=56.9")
    assert r.status_code == 200
    assert device.next(topic_prefix="downlink/ds/") == ("downlink/ds/Where", b"24.1\x0056.9")


def test_get_several_pins_gives_typed_json(http: httpx.Client, devices: list[DeviceOut]) -> None:
    token = devices[1].token
    assert http.get(f"/external/api/batch/update?token={token}&v0=23.5&v1=1&v2=abc").status_code == 200
    r = http.get(f"/external/api/get?token={token}&v0&v1&v2")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert r.json() == {"v0": 23.5, "v1": 1, "v2": "abc"}
    assert r.text == '{"v0":23.5,"v1":1,"v2":"abc"}'


def test_get_all(http: httpx.Client, devices: list[DeviceOut]) -> None:
    token = devices[1].token
    http.get(f"/external/api/batch/update?token={token}&v0=1.5&v3=10,20")
    assert http.get(f"/external/api/getAll?token={token}").json() == {"v0": 1.5, "v3": [10.0, 20.0]}


def test_get_unset_pin_gives_the_default_value(http: httpx.Client, devices: list[DeviceOut]) -> None:
    assert http.get(f"/external/api/get?token={devices[0].token}&v2").text == "none"


def test_is_hardware_connected(http: httpx.Client, stack: StackConfig, devices: list[DeviceOut]) -> None:
    from tests.integration.backend.conftest import connect_device

    token = devices[1].token
    assert http.get(f"/external/api/isHardwareConnected?token={token}").text == "false"
    dev = connect_device(stack, devices[1], subscribe=False)
    wait_for(lambda: http.get(f"/external/api/isHardwareConnected?token={token}").text == "true")
    dev.client.disconnect()
    dev.client.loop_stop()
    wait_for(lambda: http.get(f"/external/api/isHardwareConnected?token={token}").text == "false")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("v1", "No token provided."),
        ("token=&v1", "No token provided."),
        ("token=invalidtokeninvalidtokeninvali&v1", "Invalid token."),
        ("token=short&v1", "Invalid token."),
    ],
)
def test_missing_or_invalid_token(http: httpx.Client, query: str, message: str) -> None:
    for path in ("get", "update", "batch/update", "isHardwareConnected", "getAll"):
        r = http.get(f"/external/api/{path}?{query}")
        assert (r.status_code, r.json()) == (400, blynk_error(message)), path


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("x1", "Wrong pin format."),
        ("V256", "Wrong pin format."),
        ("", "Wrong pin format."),
        ("v99", "No datastream setup for that pin."),
        ("dataStreamId=abc", "Wrong dataStreamId format."),
        ("dataStreamId=%C2%B2", "Wrong dataStreamId format."),  # "²": a digit to str.isdigit, not to int
    ],
)
def test_bad_pins(http: httpx.Client, devices: list[DeviceOut], query: str, message: str) -> None:
    r = http.get(f"/external/api/get?token={devices[0].token}&{query}")
    assert (r.status_code, r.json()) == (400, blynk_error(message))


def test_wrong_type_is_refused_and_changes_nothing(http: httpx.Client, devices: list[DeviceOut]) -> None:
    token = devices[1].token
    http.get(f"/external/api/update?token={token}&v0=10")
    r = http.get(f"/external/api/update?token={token}&v0=warm")
    assert (r.status_code, r.json()) == (400, blynk_error("Value doesn't match the Datastream data type."))
    r = http.get(f"/external/api/batch/update?token={token}&v0=11&v1=on")
    assert r.status_code == 400
    assert http.get(f"/external/api/get?token={token}&v0").text == "10.0"  # nothing of the batch applied


def test_unknown_datastream_id(http: httpx.Client, devices: list[DeviceOut]) -> None:
    r = http.get(f"/external/api/update?token={devices[0].token}&dataStreamId=77&value=1")
    assert r.status_code == 400
    assert r.json()["error"]["message"].startswith("Requested dataStream doesn't exist in the product")
