"""device_sdk over MQTT 5 (``Device(..., mqtt5=True)``, issue #18 item 3), against the project's
broker on 127.0.0.1 (sdk_harness) and, at the end, the whole stack (PostgreSQL, broker, app,
the WebSocket bridge over TLS): values and downlinks as over 3.1.1, and the server's reason
codes in the device's errors and events, driving what it does next."""

from __future__ import annotations

import itertools
import logging
import queue
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sdk_harness import DEVICE_ID, FAST, TOKEN, UNKNOWN_TOKEN, WAIT, Authenticator, BrokerThread, Service
from test_sdk_websocket import redirect

from device_sdk import (
    Backoff,
    ConnectionLostError,
    Device,
    DeviceError,
    InvalidTokenError,
    OtaAgent,
    PublishRefusedError,
)
from tests.integration.ota.ota_support import FW_TYPE, create_shipment, image, public_key, upload, wait_counts
from tests.support.accounts import Api
from tests.support.net import wait_for
from tests.support.provision import provision, thermostat_doc
from tests.support.stack import StackConfig

D = f"d/{DEVICE_ID}"
SLOW = Backoff(initial=1.0, maximum=120.0, jitter=0.0)  # no jitter: the next delay is exact


def make_device(port: int, token: str = TOKEN, **kwargs: object) -> Device:
    options: dict[str, object] = {"template_id": "TMPL4xyzABCD", "backoff": FAST, "mqtt5": True}
    options.update(kwargs)
    return Device(token, "127.0.0.1", port, **options)  # type: ignore[arg-type]


def lost_errors(device: Device) -> queue.Queue[DeviceError | None]:
    errors: queue.Queue[DeviceError | None] = queue.Queue()
    device.on_disconnect(errors.put)
    return errors


def refusals(device: Device) -> queue.Queue[PublishRefusedError]:
    refused: queue.Queue[PublishRefusedError] = queue.Queue()
    device.on_refused(refused.put)
    return refused


def next_delay(caplog: pytest.LogCaptureFixture) -> str:
    """The delay of the device's next reconnect, as it logs it."""
    wait_for(
        lambda: any(r.getMessage().startswith("reconnecting to") for r in caplog.records),
        message="the device to plan its reconnect",
    )
    message = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("reconnecting to"))
    return message.rsplit(" in ", 1)[1]


def test_values_and_downlinks_over_mqtt5(broker: BrokerThread, service: Service) -> None:
    with make_device(broker.port, qos=1) as device:
        with device.downlinks() as inbox:
            device.write("Temperature", 21.5)
            device.write("Humidity", 40, qos=0)
            device.write_many({"Temperature": 22})
            device.flush(WAIT)
            assert service.expect(f"{D}/ds/Temperature") == b"21.5"
            assert service.expect(f"{D}/ds/Humidity") == b"40"
            assert service.expect(f"{D}/batch_ds") == b'{"Temperature":22}'
            service.publish(f"{D}/downlink/ds/Power", "1", qos=1)
            assert inbox.wait_for_write("Power", WAIT) == "1"
        assert device.pending == 0


def test_a_wrong_token_is_refused_with_0x86(broker: BrokerThread, authenticator: Authenticator) -> None:
    device = make_device(broker.port, token=UNKNOWN_TOKEN)
    with pytest.raises(InvalidTokenError, match=r"0x86 Bad user name or password") as refused:
        device.connect(timeout=WAIT)
    assert (refused.value.reason_code, refused.value.reason) == (0x86, "Bad user name or password")
    assert authenticator.device_attempts(UNKNOWN_TOKEN) == 1  # never retried
    with pytest.raises(InvalidTokenError) as v311:  # the same over MQTT 3.1.1: its return code 4
        make_device(broker.port, token=UNKNOWN_TOKEN, mqtt5=False).connect(timeout=WAIT)
    assert (v311.value.reason_code, str(v311.value)) == (
        4,
        "the server refused the auth token (Bad user name or password)",
    )


def test_the_same_token_twice_takes_the_session_over_with_0x8e(
    broker: BrokerThread, service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="device_sdk")
    with make_device(broker.port, backoff=SLOW) as first:
        errors = lost_errors(first)
        with make_device(broker.port) as second:
            error = errors.get(timeout=WAIT)
            assert isinstance(error, ConnectionLostError)
            assert (error.reason_code, error.reason) == (0x8E, "Session taken over")
            assert "0x8E Session taken over" in str(error)
            # two devices sharing a token must not take it from each other in a loop: the
            # first waits from the sixth step of its backoff (1 s * 2**5), not its first
            assert next_delay(caplog) == "32.0 s"
            second.write("Temperature", 5)
            assert service.expect(f"{D}/ds/Temperature") == b"5"


def test_a_revoked_token_ends_the_device_with_0x87(broker: BrokerThread, authenticator: Authenticator) -> None:
    device = make_device(broker.port, qos=1)
    errors = lost_errors(device)
    with device:
        del authenticator.devices[TOKEN]
        broker.disconnect_device(DEVICE_ID)
        error = errors.get(timeout=WAIT)
        assert isinstance(error, ConnectionLostError)
        assert (error.reason_code, error.reason) == (0x87, "Not authorized")
        wait_for(lambda: not device.connected, message="the device to stop")
        with pytest.raises(InvalidTokenError, match="revoked") as revoked:
            device.write("Temperature", 1)
        assert revoked.value.reason_code == 0x87
    assert authenticator.device_attempts(TOKEN) == 1  # it never tried again


def test_values_over_the_rate_limit_are_refused_with_0x97(authenticator: Authenticator) -> None:
    # The rate limit's clock stands still: 4 tokens in all. SUBSCRIBE and info/mcu take two.
    server = BrokerThread(authenticator, rate_clock=lambda: 0.0, device_rate_limit=4.0)
    server.start()
    service = Service(server.port)
    try:
        with make_device(server.port, qos=1) as device:
            refused = refusals(device)
            for n in range(1, 6):
                device.write("Seq", n)
            device.flush(WAIT)  # refused values leave the outbox: nothing waits
            errors = [refused.get(timeout=WAIT) for _ in range(3)]
            assert [(e.topic, e.payload, e.reason_code, e.reason) for e in errors] == [
                ("ds/Seq", str(n).encode(), 0x97, "Quota exceeded") for n in (3, 4, 5)
            ]
            assert [service.expect(f"{D}/ds/Seq") for _ in range(2)] == [b"1", b"2"]
            assert device.pending == 0 and device.connected
    finally:
        service.close()
        server.stop()


def test_a_flood_is_disconnected_with_0x96_and_reconnects_slowly(
    authenticator: Authenticator, caplog: pytest.LogCaptureFixture
) -> None:
    # Each reading of the rate limit's clock moves it 1 ms on: the second drop ends the streak.
    ticks = itertools.count()
    server = BrokerThread(
        authenticator, rate_clock=lambda: next(ticks) / 1000, device_rate_limit=3.0, rate_abuse_seconds=0.0005
    )
    server.start()
    caplog.set_level(logging.INFO, logger="device_sdk")
    try:
        device = make_device(server.port, qos=1, backoff=SLOW)
        errors = lost_errors(device)
        with device:
            for n in range(5):
                device.write("Seq", n)
            error = errors.get(timeout=WAIT)
            assert isinstance(error, ConnectionLostError)
            assert (error.reason_code, error.reason) == (0x96, "Message rate too high")
            assert next_delay(caplog) == "32.0 s"
    finally:
        server.stop()


def test_a_server_shutdown_is_0x8b_and_the_device_comes_back(
    broker: BrokerThread, authenticator: Authenticator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="device_sdk")
    device = make_device(broker.port, backoff=SLOW, qos=1)
    errors = lost_errors(device)
    with device:
        broker.stop()
        error = errors.get(timeout=WAIT)
        assert isinstance(error, ConnectionLostError)
        assert (error.reason_code, error.reason) == (0x8B, "Server shutting down")
        assert next_delay(caplog) == "1.0 s"  # an ordinary reconnect
        device.write("Temperature", 3)  # kept in the outbox meanwhile
        broker.start()
        service = Service(broker.port)
        try:
            device.flush(WAIT)
            assert service.expect(f"{D}/ds/Temperature") == b"3"
        finally:
            service.close()


def test_a_value_above_the_servers_packet_size_is_not_sent(broker: BrokerThread, service: Service) -> None:
    big = "x" * 2000  # above the broker's 1024 bytes for devices
    with make_device(broker.port) as device:
        errors = lost_errors(device)
        refused = refusals(device)
        with pytest.raises(PublishRefusedError, match="maximum packet size") as qos0:
            device.write("Label", big)
        assert (qos0.value.reason_code, qos0.value.topic) == (0x95, "ds/Label")
        device.write("Label", big, qos=1)
        device.write("Label", "small", qos=1)
        device.flush(WAIT)
        error = refused.get(timeout=WAIT)
        assert (error.reason_code, error.reason, error.payload) == (0x95, "Packet too large", big.encode())
        assert service.expect(f"{D}/ds/Label") == b"small"
        assert device.connected and errors.empty()  # the connection was never put at risk


# -- the whole stack: the app stores what the device sends ----------------------------------------


@pytest.fixture
def api(stack: StackConfig) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.base_url, timeout=10) as client:
        yield client


def test_a_v5_device_on_the_stack_stores_values_and_gets_writes(stack: StackConfig, api: httpx.Client) -> None:
    info = provision(stack.database_url, thermostat_doc()).devices[0]
    writes: queue.Queue[str] = queue.Queue()
    with Device(info.token, "127.0.0.1", stack.mqtt_port, backoff=FAST, qos=1, mqtt5=True) as device:
        device.on_write("Power", writes.put)
        device.write("Temperature", 23.5)
        device.flush(WAIT)  # the broker acknowledges after the app's commit
        assert api.get("/external/api/get", params={"token": info.token, "v0": ""}).text == "23.5"
        assert api.get("/external/api/update", params={"token": info.token, "V1": "1"}).status_code == 200
        assert writes.get(timeout=WAIT) == "1"
    with pytest.raises(InvalidTokenError) as refused:
        Device(info.token[::-1], "127.0.0.1", stack.mqtt_port, mqtt5=True).connect(timeout=WAIT)
    assert refused.value.reason_code == 0x86


def test_a_token_revoked_in_the_console_reaches_the_v5_device_as_0x87(stack: StackConfig, admin: Api) -> None:
    info = provision(stack.database_url, thermostat_doc()).devices[0]
    device = Device(info.token, "127.0.0.1", stack.mqtt_port, backoff=FAST, mqtt5=True)
    errors = lost_errors(device)
    with device:
        assert admin.post(f"/api/inject/devices/{info.id}/token/revoke").status_code == 204
        error = errors.get(timeout=WAIT)
        assert isinstance(error, ConnectionLostError)
        assert (error.reason_code, error.reason) == (0x87, "Not authorized")
        wait_for(lambda: not device.connected, message="the device to stop")
        with pytest.raises(InvalidTokenError, match="revoked"):
            device.write("Temperature", 1)
    with pytest.raises(InvalidTokenError) as refused:  # and the old token is refused from now on
        Device(info.token, "127.0.0.1", stack.mqtt_port, mqtt5=True).connect(timeout=WAIT)
    assert refused.value.reason_code == 0x86


@pytest.mark.timeout(120)
def test_a_v5_device_over_wss_takes_a_firmware_update(
    stack: StackConfig, admin: Api, api: httpx.Client, tmp_path: Path
) -> None:
    info = provision(stack.database_url, thermostat_doc()).devices[0]
    ca = tmp_path / "ca.pem"
    ca.write_bytes(api.get("/ca.pem").content)
    wss_uri = f"wss://localhost:{stack.https_port}/mqtt"
    writes: queue.Queue[str] = queue.Queue()
    device = Device(
        info.token,
        "127.0.0.1",
        stack.mqtt_port,
        ca_certs=str(ca),
        backoff=FAST,
        qos=1,
        mqtt5=True,
        firmware_version="1.0.0",
        firmware_type=FW_TYPE,
    )
    OtaAgent(device, public_key(admin), directory=tmp_path / "firmware")
    with device:
        device.on_write("Power", writes.put)
        redirect(stack, info.name, wss_uri)
        wait_for(lambda: device.connected and device.endpoint.uri == wss_uri, message="the device online over wss")
        device.write("Temperature", 24.5)
        device.flush(WAIT)
        assert api.get("/external/api/get", params={"token": info.token, "v0": ""}).text == "24.5"
        assert api.get("/external/api/update", params={"token": info.token, "V1": "1"}).status_code == 200
        assert writes.get(timeout=WAIT) == "1"
        firmware = upload(admin, image("2.0.0"))
        target = {"kind": "devices", "device_ids": [info.id]}
        ship = create_shipment(admin, name=f"v5 {info.id}", firmware_id=firmware["id"], target=target)
        done = wait_counts(admin, ship["id"], lambda s: s["state"] == "finished", timeout=60)
        assert done["counts"]["success"] == 1 and device.firmware_version == "2.0.0"
        assert device.endpoint.uri == wss_uri
