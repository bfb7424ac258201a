"""device_sdk against the project's broker on 127.0.0.1, observed by a service client."""

from __future__ import annotations

import json
import threading

import pytest
from sdk_harness import (
    DEVICE_ID,
    FAST,
    TOKEN,
    UNKNOWN_TOKEN,
    Authenticator,
    BrokerThread,
    Service,
    TlsFiles,
)

from device_sdk import ConnectionLostError, Device, DeviceError, InvalidTokenError, NotConnectedError
from tests.support.net import wait_for

D = f"d/{DEVICE_ID}"


def make_device(port: int, **kwargs: object) -> Device:
    options: dict[str, object] = {"template_id": "TMPL4xyzABCD", "firmware_version": "1.2.3", "backoff": FAST}
    options.update(kwargs)
    return Device(TOKEN, "127.0.0.1", port, **options)  # type: ignore[arg-type]


def test_connect_subscribes_and_publishes_mcu_info(broker: BrokerThread, service: Service) -> None:
    with make_device(broker.port, build="Jan 19 2024 12:25:30") as device:
        assert device.connected
        info = json.loads(service.expect(f"{D}/info/mcu"))
        assert broker.connected_devices() == {DEVICE_ID}
    assert info == {
        "tmpl": "TMPL4xyzABCD",
        "ver": "1.2.3",
        "build": "Jan 19 2024 12:25:30",
        "type": "TMPL4xyzABCD",
        "rxbuff": 1024,
    }
    assert not device.connected


def test_uplinks_reach_the_server(broker: BrokerThread, service: Service) -> None:
    with make_device(broker.port) as device:
        device.write("Temperature", 21.5)
        device.write("Set Temperature", 0.1 + 0.2)
        device.write("Power", True)
        device.write("Color", [255, 128, 0])
        device.write_many({"Temperature": 22, "Label": "hall", "Where": [24.1, 56.9]})
        device.log_event("overheat", "Too hot: 81 °C")
        device.set_meta("Serial Number", "SN-001")
        device.set_property("Temperature", "color", "#FF0000")
        assert service.expect(f"{D}/ds/Temperature") == b"21.5"
        assert service.expect(f"{D}/ds/Set Temperature") == b"0.3"
        assert service.expect(f"{D}/ds/Power") == b"1"
        assert service.expect(f"{D}/ds/Color") == b"255\x00128\x000"
        assert json.loads(service.expect(f"{D}/batch_ds")) == {
            "Temperature": 22,
            "Label": "hall",
            "Where": [24.1, 56.9],
        }
        assert service.expect(f"{D}/event/overheat") == "Too hot: 81 °C".encode()
        assert service.expect(f"{D}/meta/Serial Number") == b"SN-001"
        assert service.expect(f"{D}/ds/Temperature/prop/color") == b"#FF0000"


def test_server_writes_reach_handlers_and_queues(broker: BrokerThread, service: Service) -> None:
    device = make_device(broker.port)
    seen: list[object] = []
    device.on_write("Power", lambda value: seen.append(("Power", value)))
    device.on_any_write(lambda name, value: seen.append(("any", name, value)))
    with device, device.downlinks() as inbox:
        service.publish(f"{D}/downlink/ds/Power", "1")
        assert inbox.wait_for_write("Power", timeout=10) == "1"
    assert seen == [("Power", "1"), ("any", "Power", "1")]


def test_a_failing_handler_does_not_stop_the_device(broker: BrokerThread, service: Service) -> None:
    device = make_device(broker.port)

    @device.on_write("Power")
    def broken(value: str) -> None:
        raise RuntimeError("handler bug")

    with device, device.downlinks() as inbox:
        service.publish(f"{D}/downlink/ds/Power", "1")
        service.publish(f"{D}/downlink/ds/Power", "0")
        assert inbox.wait_for_write("Power", timeout=10) == "1"
        assert inbox.wait_for_write("Power", timeout=10) == "0"
        assert device.connected
        device.write("Alive", 1)
        assert service.expect(f"{D}/ds/Alive") == b"1"


def test_sync_asks_for_values_and_answers_reach_the_handlers(broker: BrokerThread, service: Service) -> None:
    device = make_device(broker.port)
    levels: list[str] = []
    device.on_write("Level", levels.append)
    with device, device.downlinks() as inbox:
        device.sync("Power", "Set Temperature")
        assert service.expect(f"{D}/get/ds") == b"Power,Set Temperature"
        service.publish(f"{D}/downlink/ds/Power", "1")
        assert inbox.wait_for_write("Power", timeout=10) == "1"
        device.sync_all()
        assert service.expect(f"{D}/get/ds/all") == b""
        service.publish(f"{D}/downlink/ds/Level", "42")
        assert inbox.wait_for_write("Level", timeout=10) == "42"
    assert levels == ["42"]


def test_wait_for_write_returns_the_next_write(broker: BrokerThread, service: Service) -> None:
    stop = threading.Event()

    def keep_writing() -> None:  # the device only sees writes made after it starts waiting
        while not stop.wait(0.05):
            service.publish(f"{D}/downlink/ds/Mode", "auto")

    with make_device(broker.port) as device:
        writer = threading.Thread(target=keep_writing)
        writer.start()
        try:
            assert device.wait_for_write("Mode", timeout=10) == "auto"
        finally:
            stop.set()
            writer.join()


def test_reboot_reconfigure_diag_and_ping(broker: BrokerThread, service: Service) -> None:
    device = make_device(broker.port)
    calls: list[object] = []
    device.on_reboot(lambda: calls.append("reboot"))
    device.on_reconfigure(lambda: calls.append("reconfigure"))
    device.on_diag(lambda text: calls.append(("diag", text)))
    with device, device.downlinks() as inbox:
        assert device.last_ping is None
        service.publish(f"{D}/downlink/reboot")
        service.publish(f"{D}/downlink/reconfigure")
        service.publish(f"{D}/downlink/diag", "flood detected")
        service.publish(f"{D}/downlink/ping", qos=1)
        kinds = [inbox.get(timeout=10) for _ in range(4)]
    assert [d.kind for d in kinds] == ["reboot", "reconfigure", "diag", "ping"]
    assert kinds[-1].qos == 1  # so paho acknowledged it with PUBACK, as Blynk expects
    assert calls == ["reboot", "reconfigure", ("diag", "flood detected")]
    assert device.last_ping is not None


def test_invalid_token_raises_and_never_retries(broker: BrokerThread, authenticator: Authenticator) -> None:
    device = Device(UNKNOWN_TOKEN, "127.0.0.1", broker.port, backoff=FAST)
    with pytest.raises(InvalidTokenError):
        device.connect(timeout=10)
    # connect() returned after the network thread ended, so no retry can follow
    assert not [t for t in threading.enumerate() if t.name.startswith("device_sdk")]
    assert authenticator.device_attempts(UNKNOWN_TOKEN) == 1
    with pytest.raises(InvalidTokenError):
        device.write("Temperature", 1)


def test_disconnect_is_reported_and_connect_works_again(broker: BrokerThread, service: Service) -> None:
    device = make_device(broker.port)
    events: list[object] = []
    device.on_connect(lambda: events.append("up"))
    device.on_disconnect(events.append)
    device.connect()
    device.disconnect()
    with pytest.raises(NotConnectedError):
        device.write("Temperature", 1)
    device.connect()
    device.write("Temperature", 2)
    assert service.expect(f"{D}/ds/Temperature") == b"2"
    device.disconnect()
    assert events == ["up", None, "up", None]


def test_reconnects_after_the_broker_restarts(broker: BrokerThread, authenticator: Authenticator) -> None:
    device = make_device(broker.port)
    events: list[object] = []
    device.on_connect(lambda: events.append("up"))
    device.on_disconnect(events.append)
    with device:
        broker.stop()
        wait_for(lambda: not device.connected, message="the device to notice the broker is gone")
        with pytest.raises(NotConnectedError):
            device.write("Temperature", 1)
        authenticator.gate.clear()  # hold the device's login until we are listening
        broker.start()  # same port
        service = Service(broker.port)
        try:
            authenticator.gate.set()
            wait_for(lambda: device.connected, message="the device to reconnect")
            assert json.loads(service.expect(f"{D}/info/mcu"))["ver"] == "1.2.3"  # sent again
            device.write("Temperature", 3)
            assert service.expect(f"{D}/ds/Temperature") == b"3"
        finally:
            service.close()
    assert events[0] == "up"
    assert isinstance(events[1], ConnectionLostError)
    assert events[2:] == ["up", None]


def test_redirect_moves_the_device_to_another_broker(
    broker: BrokerThread, service: Service, authenticator: Authenticator
) -> None:
    second = BrokerThread(authenticator)
    second.start()
    observer = Service(second.port)
    try:
        with make_device(broker.port) as device:
            service.publish(f"{D}/downlink/redirect", f"mqtt://127.0.0.1:{second.port}")
            wait_for(lambda: device.connected and device.endpoint.port == second.port, message="the redirect")
            assert json.loads(observer.expect(f"{D}/info/mcu"))["tmpl"] == "TMPL4xyzABCD"
            device.write("Temperature", 4)
            assert observer.expect(f"{D}/ds/Temperature") == b"4"
            assert broker.connected_devices() == set()
    finally:
        observer.close()
        second.stop()


def test_a_bad_redirect_is_ignored(broker: BrokerThread, service: Service) -> None:
    with make_device(broker.port) as device, device.downlinks() as inbox:
        service.publish(f"{D}/downlink/redirect", "http://elsewhere.example")
        assert inbox.get(timeout=10).kind == "redirect"
        device.write("Temperature", 5)
        assert service.expect(f"{D}/ds/Temperature") == b"5"
        assert device.endpoint.port == broker.port


def test_tls_connection_and_redirect_to_mqtts(authenticator: Authenticator, tls_files: TlsFiles) -> None:
    server = BrokerThread(authenticator, tls=tls_files)
    server.start()
    service = Service(server.port)
    try:
        assert server.tls_port is not None
        device = make_device(server.tls_port, tls=True, ca_certs=str(tls_files.cafile))
        with device:
            assert device.endpoint.uri == f"mqtts://127.0.0.1:{server.tls_port}"
            device.write("Temperature", 6)
            assert service.expect(f"{D}/ds/Temperature") == b"6"
        plain = make_device(server.port, ca_certs=str(tls_files.cafile))
        with plain:
            service.publish(f"{D}/downlink/redirect", f"mqtts://127.0.0.1:{server.tls_port}")
            wait_for(lambda: plain.connected and plain.endpoint.tls, message="the redirect to TLS")
            plain.write("Temperature", 7)
            assert service.expect(f"{D}/ds/Temperature") == b"7"
    finally:
        service.close()
        server.stop()


def test_tls_refuses_an_untrusted_server(authenticator: Authenticator, tls_files: TlsFiles) -> None:
    server = BrokerThread(authenticator, tls=tls_files)
    server.start()
    try:
        assert server.tls_port is not None
        device = make_device(server.tls_port, tls=True)  # system CAs do not know our certificate
        with pytest.raises(DeviceError) as caught:
            device.connect(timeout=0.5)
        assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)
    finally:
        server.stop()
