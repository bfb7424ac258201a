"""Commands the platform sends to a device (Blynk's Device Menu): ping, reboot, reconfigure,
redirect, diagnostics and openblynk's request for ``info/mcu``, each a publish on the device's
``downlink/...`` topic.

``downlink/ping`` goes out at QoS 1: the device's PUBACK is the answer, and the broker reports
the round trip on ``sys/ping/<id>`` (docs/internal-topics.md), which the ingest stores as the
device's last ping. ``downlink/redirect`` carries a new endpoint URI: ``mqtt[s]://host:port``
or ``ws[s]://host:port/mqtt`` (reference §1.4).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from backend.devices.data import Publisher, downlink_topic
from backend.errors import ValidationError
from broker.topics import Downlink

_HOST = (
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
    r"|\[[0-9A-Fa-f:.]+\])"
)
_REDIRECT = re.compile(
    rf"^(?:(?P<mqtt>mqtts?)://{_HOST}:(?P<p1>\d{{1,5}})|(?P<ws>wss?)://{_HOST}:(?P<p2>\d{{1,5}})/mqtt)$"
)


@dataclass(frozen=True, slots=True)
class RedirectUri:
    """A ``downlink/redirect`` target: ``mqtt[s]://host:port`` or ``ws[s]://host:port/mqtt``."""

    value: str

    def __post_init__(self) -> None:
        match = _REDIRECT.match(self.value)
        port = int(match["p1"] or match["p2"]) if match else 0
        if not match or not 0 < port < 65536:
            raise ValidationError(
                f"redirect URI must be mqtt[s]://host:port or ws[s]://host:port/mqtt, not {self.value[:100]!r}"
            )

    def __str__(self) -> str:
        return self.value


class DeviceCommands:
    """Sends Device Menu commands to devices through the broker."""

    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher

    def ping(self, device_id: int) -> None:
        """``downlink/ping`` at QoS 1; the round trip arrives on ``sys/ping/<id>``."""
        self._send(device_id, Downlink.PING)

    def reboot(self, device_id: int) -> None:
        """``downlink/reboot``: the device should restart."""
        self._send(device_id, Downlink.REBOOT)

    def request_info(self, device_id: int) -> None:
        """``downlink/get/info/mcu``: the device should publish ``info/mcu`` again (openblynk's
        own downlink: ``device_sdk`` answers it, Blynk's libraries ignore it)."""
        self._send(device_id, Downlink.GET_INFO)

    def reconfigure(self, device_id: int) -> None:
        """``downlink/reconfigure``: the device should re-enter its Wi-Fi configuration mode."""
        self._send(device_id, Downlink.RECONFIGURE)

    def redirect(self, device_id: int, uri: RedirectUri) -> None:
        """``downlink/redirect``: the device should reconnect to ``uri`` (QoS 0, as Blynk)."""
        self._send(device_id, Downlink.REDIRECT, uri.value.encode())

    def diag(self, device_id: int, text: str) -> None:
        """``downlink/diag``: free-text diagnostics for the device (at most 512 bytes)."""
        self._send(device_id, Downlink.DIAG, text.encode()[:512])

    def _send(self, device_id: int, downlink: Downlink, payload: bytes = b"") -> None:
        """Publish a downlink of the table at its QoS (``downlink/ping`` 1, the others 0)."""
        self.publisher.publish(downlink_topic(device_id, downlink.topic()), payload, qos=downlink.qos)
