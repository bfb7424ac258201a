"""Device Menu commands: topics, QoS and the redirect URI rule."""

from __future__ import annotations

import pytest

from backend.devices.commands import DeviceCommands, RedirectUri
from backend.errors import ValidationError


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, int]] = []

    def publish(self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False) -> None:
        self.sent.append((topic, payload if isinstance(payload, bytes) else payload.encode(), qos))


def test_commands_publish_on_the_device_downlinks() -> None:
    rec = Recorder()
    commands = DeviceCommands(rec)
    commands.ping(7)
    commands.reboot(7)
    commands.reconfigure(7)
    commands.redirect(7, RedirectUri("mqtts://ny3.example.com:8883"))
    commands.diag(7, "hello")
    commands.request_info(7)
    assert rec.sent == [
        ("d/7/downlink/ping", b"", 1),
        ("d/7/downlink/reboot", b"", 0),
        ("d/7/downlink/reconfigure", b"", 0),
        ("d/7/downlink/redirect", b"mqtts://ny3.example.com:8883", 0),
        ("d/7/downlink/diag", b"hello", 0),
        ("d/7/downlink/get/info/mcu", b"", 0),
    ]


@pytest.mark.parametrize(
    "uri",
    [
        "mqtt://10.0.0.2:1883",
        "mqtts://fra1.blynk.cloud:8883",
        "wss://fra1.blynk.cloud:443/mqtt",
        "ws://[::1]:8080/mqtt",
    ],
)
def test_good_redirects(uri: str) -> None:
    assert str(RedirectUri(uri)) == uri


@pytest.mark.parametrize(
    "uri",
    [
        "",
        "http://x:80",
        "mqtt://x",
        "mqtt://x:0",
        "mqtt://x:70000",
        "wss://x:443",
        "wss://x:443/other",
        "mqtt://x:1883/mqtt",
        "mqtts://bad host:8883",
    ],
)
def test_bad_redirects(uri: str) -> None:
    with pytest.raises(ValidationError):
        RedirectUri(uri)
