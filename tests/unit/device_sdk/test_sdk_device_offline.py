"""Device behaviour that needs no server: arguments, offline publishing, refused connections."""

from __future__ import annotations

import json
import socket
import threading

import pytest

from device_sdk import (
    AuthToken,
    Backoff,
    ConnectTimeoutError,
    Device,
    DeviceError,
    InvalidTokenError,
    NotConnectedError,
)

TOKEN = "AbCdEfGhIjKlMnOpQrStUvWxYz012345"


def sdk_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("device_sdk")]


def test_port_defaults_follow_tls() -> None:
    assert Device(TOKEN).endpoint.uri == "mqtt://blynk.cloud:1883"
    assert Device(TOKEN, tls=True).endpoint.uri == "mqtts://blynk.cloud:8883"
    assert Device(TOKEN, "fra1.blynk.cloud", 9999, tls=True).endpoint.uri == "mqtts://fra1.blynk.cloud:9999"


def test_token_may_be_given_as_a_value_object_and_stays_secret() -> None:
    device = Device(AuthToken(TOKEN))
    assert device.token == AuthToken(TOKEN)
    assert TOKEN not in repr(device)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"token": "not-a-token"},
        {"token": TOKEN, "port": 0},
        {"token": TOKEN, "host": ""},
        {"token": TOKEN, "rx_buffer": 0},
        {"token": TOKEN, "keepalive": -1},
    ],
)
def test_bad_arguments_are_refused_at_construction(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Device(**kwargs)  # type: ignore[arg-type]


def test_malformed_token_raises_invalid_token_error() -> None:
    with pytest.raises(InvalidTokenError):
        Device("x" * 31)


@pytest.mark.parametrize(
    "call",
    [
        lambda d: d.write("Temp", 1),
        lambda d: d.write_many({"Temp": 1}),
        lambda d: d.log_event("overheat"),
        lambda d: d.set_meta("Serial Number", "A1"),
        lambda d: d.set_property("Temp", "label", "T"),
        lambda d: d.sync("Power"),
        lambda d: d.sync_all(),
    ],
)
def test_publishing_offline_raises_not_connected(call: object) -> None:
    device = Device(TOKEN)
    assert not device.connected
    with pytest.raises(NotConnectedError):
        call(device)  # type: ignore[operator]


def test_argument_errors_come_before_connection_errors() -> None:
    device = Device(TOKEN)
    with pytest.raises(ValueError):
        device.write("a/b", 1)
    with pytest.raises(TypeError):
        device.write("Temp", None)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        device.sync()
    with pytest.raises(ValueError):
        device.sync("a,b")
    with pytest.raises(ValueError):
        device.on_write("a#")
    with pytest.raises(ValueError):
        device.downlinks(maxsize=0)


def test_empty_write_many_sends_nothing() -> None:
    device = Device(TOKEN)
    with pytest.raises(NotConnectedError):
        device.write_many({"Temp": 1})  # sending anything needs a connection,
    assert device.write_many({}) is None  # so this call, which does not raise, sent nothing


def test_handler_registration_works_as_decorator_and_call() -> None:
    device = Device(TOKEN)

    @device.on_write("Power")
    def power(value: str) -> None: ...

    def reboot() -> None: ...

    assert power.__name__ == "power"
    assert device.on_write("Level", power) is power
    for register in (
        device.on_any_write,
        device.on_reboot,
        device.on_reconfigure,
        device.on_diag,
        device.on_connect,
        device.on_disconnect,
        device.on_downlink,
    ):
        assert register(reboot) is reboot


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_connect_gives_up_after_its_timeout_and_stops_trying() -> None:
    device = Device(TOKEN, "127.0.0.1", _closed_port(), backoff=Backoff(initial=0.01, maximum=0.05))
    with pytest.raises(ConnectTimeoutError) as caught:
        device.connect(timeout=0.3)
    assert isinstance(caught.value, (DeviceError, TimeoutError))
    assert isinstance(caught.value.__cause__, OSError)  # the last network error, chained
    assert not device.connected
    assert sdk_threads() == []


def test_disconnect_without_connect_is_harmless() -> None:
    device = Device(TOKEN)
    device.disconnect()
    device.disconnect()
    assert not device.connected
    assert sdk_threads() == []
    with pytest.raises(NotConnectedError):  # still usable as before: offline, not broken
        device.write("Temp", 1)


def test_info_mcu_is_built_from_the_constructor() -> None:
    device = Device(TOKEN, template_id="TMPL1", firmware_version="2.0.1", build="Jan 19 2024 12:25:30", rx_buffer=512)
    info = json.loads(device._link._config.mcu_info)
    assert info == {"tmpl": "TMPL1", "ver": "2.0.1", "build": "Jan 19 2024 12:25:30", "type": "TMPL1", "rxbuff": 512}
