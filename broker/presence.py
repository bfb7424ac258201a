"""Presence messages the broker publishes on ``sys/presence/<device_id>`` (JSON, QoS 1).

Online, when a device's session is established::

    {"online": true, "ts": 1764120000000, "ip": "203.0.113.7", "port": 50123,
     "client_id": "esp32-kitchen", "keep_alive": 45}

Offline, when it ends::

    {"online": false, "ts": 1764120060000, "reason": "keepalive_timeout"}

``ts`` is milliseconds since the Unix epoch; ``client_id`` is the id the firmware sent (may be
``""``). ``reason`` is one of :class:`OfflineReason`.
"""

from __future__ import annotations

import json
import time
from enum import StrEnum

__all__ = ["OfflineReason", "offline_payload", "online_payload"]


class OfflineReason(StrEnum):
    """Why a device's session ended."""

    DISCONNECT = "disconnect"
    """The device sent DISCONNECT."""
    KEEPALIVE_TIMEOUT = "keepalive_timeout"
    """Nothing arrived for longer than keep-alive x grace."""
    REPLACED = "replaced"
    """A new connection of the same device took over (published before the new one's online)."""
    CONNECTION_LOST = "connection_lost"
    """The TCP connection closed or broke without DISCONNECT."""
    PACKET_TOO_LARGE = "packet_too_large"
    """The device sent a packet above ``max_packet_size``."""
    PROTOCOL_ERROR = "protocol_error"
    """The device broke MQTT rules badly enough to be dropped (e.g. publish to ``$SYS/...``)."""
    SHUTDOWN = "shutdown"
    """The broker is stopping."""
    REVOKED = "revoked"
    """The platform revoked the device's credentials (its token was rotated or it was deleted)."""


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _encode(document: dict[str, object]) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def online_payload(*, ip: str | None, port: int | None, client_id: str, keep_alive: int) -> bytes:
    """The JSON body announcing that a device came online."""
    return _encode(
        {
            "online": True,
            "ts": _now_ms(),
            "ip": ip,
            "port": port,
            "client_id": client_id,
            "keep_alive": keep_alive,
        }
    )


def offline_payload(reason: OfflineReason) -> bytes:
    """The JSON body announcing that a device went offline, and why."""
    return _encode({"online": False, "ts": _now_ms(), "reason": reason.value})
