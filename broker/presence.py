"""Messages the broker itself publishes under ``sys/`` (JSON; see ``docs/internal-topics.md``).

``sys/presence/<device_id>`` (QoS 1, retained unless ``presence_retain`` is off). Online, when
a device's session is established::

    {"online": true, "ts": 1764120000000, "ip": "203.0.113.7", "port": 50123,
     "client_id": "esp32-kitchen", "keep_alive": 45, "transport": "tcp"}

Offline, when it ends, with the traffic of the connection that ended::

    {"online": false, "ts": 1764120060000, "reason": "keepalive_timeout",
     "vitals": {"msgs_in": 12, "msgs_out": 3, "bytes_in": 640, "bytes_out": 98, "connected_for_s": 60}}

``sys/vitals/<device_id>`` (QoS 0, not retained), every ``vitals_interval`` seconds while a
device is connected: ``{"ts": ..., "msgs_in": ..., "msgs_out": ..., "bytes_in": ...,
"bytes_out": ..., "connected_for_s": ...}`` (totals of the current connection).

``sys/ping/<device_id>`` (QoS 0), answering a service's ``d/<id>/downlink/ping``:
``{"ts": ..., "rtt_ms": 1.234}`` when the device's PUBACK arrived, or
``{"ts": ..., "rtt_ms": null, "timeout": true}`` after :data:`PING_TIMEOUT` seconds without one
(at once, with ``"offline": true`` added, if the device is not connected).

``ts`` is milliseconds since the Unix epoch; ``client_id`` is the id the firmware sent (may be
``""``); ``transport`` is ``tcp``, ``tls`` or ``ws`` (the WebSocket bridge's proxy listener);
``msgs_*`` count PUBLISH packets, ``bytes_*`` whole packets of every type (CONNECT included).
``reason`` is one of :class:`OfflineReason`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from enum import StrEnum
from json.encoder import encode_basestring as _quote  # JSON string, non-ASCII kept

__all__ = [
    "PING_TIMEOUT",
    "OfflineReason",
    "offline_payload",
    "online_payload",
    "ping_payload",
    "ping_topic",
    "vitals_payload",
    "vitals_topic",
]

PING_TIMEOUT = 10.0
"""Seconds the broker waits for a device's PUBACK to ``downlink/ping``."""


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
    RATE_LIMITED = "rate_limited"
    """The device sent packets (PUBLISH, SUBSCRIBE, UNSUBSCRIBE) above ``device_rate_limit`` for
    ``rate_abuse_seconds`` on end."""
    SLOW_CONSUMER = "slow_consumer"
    """The device did not read what it was sent: more than ``max_outgoing_queue`` messages were
    waiting for it when a QoS 1 message had to be queued."""
    SHUTDOWN = "shutdown"
    """The broker is stopping."""
    REVOKED = "revoked"
    """The platform revoked the device's credentials (its token was rotated or it was deleted)."""
    KICKED = "kicked"
    """An administrator disconnected the gateway it spoke through from the console's list of
    MQTT sessions (the credentials still work: it may connect again)."""


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
"""One encoder for every report: ``json.dumps`` with these options builds a new one each call."""


def _encode(document: Mapping[str, object]) -> bytes:
    return _ENCODER.encode(document).encode("utf-8")


def online_payload(
    *, ip: str | None, port: int | None, client_id: str, keep_alive: int, transport: str, gateway: str | None = None
) -> bytes:
    """The JSON body announcing that a device came online (``gateway``: the key of the gateway
    it speaks through, for a device reached through Blynk's MQTT Gateway API).

    Written out rather than through ``json``: one is made at every connect, and the encoder
    took a twentieth of the broker's time in a storm of connects (README "Performance"). The
    bytes are those ``_encode`` makes of the same document
    (``tests/unit/broker/test_broker_presence_payload.py``).
    """
    text = (
        f'{{"online":true,"ts":{_now_ms()},"ip":{_string(ip)},"port":{"null" if port is None else int(port)},'
        f'"client_id":{_quote(client_id)},"keep_alive":{int(keep_alive)},"transport":{_quote(transport)}'
    )
    if gateway is not None:
        text += f',"gateway":{_quote(gateway)}'
    return (text + "}").encode("utf-8")


def _string(value: str | None) -> str:
    return "null" if value is None else _quote(value)


def offline_payload(reason: OfflineReason, vitals: Mapping[str, int] | None = None) -> bytes:
    """The JSON body announcing that a device went offline, why, and its connection's traffic."""
    document: dict[str, object] = {"online": False, "ts": _now_ms(), "reason": reason.value}
    if vitals is not None:
        document["vitals"] = dict(vitals)
    return _encode(document)


def vitals_topic(device_id: int) -> str:
    """Where the broker reports a connected device's traffic counters."""
    return f"sys/vitals/{device_id}"


def vitals_payload(vitals: Mapping[str, int]) -> bytes:
    """The JSON body of a ``sys/vitals`` report."""
    return _encode({"ts": _now_ms(), **vitals})


def ping_topic(device_id: int) -> str:
    """Where the broker reports the outcome of a ``downlink/ping``."""
    return f"sys/ping/{device_id}"


def ping_payload(rtt_ms: float | None, *, offline: bool = False) -> bytes:
    """``{"ts", "rtt_ms"}``, or ``{"ts", "rtt_ms": null, "timeout": true}`` when no PUBACK came."""
    if rtt_ms is not None:
        return _encode({"ts": _now_ms(), "rtt_ms": round(rtt_ms, 3)})
    document: dict[str, object] = {"ts": _now_ms(), "rtt_ms": None, "timeout": True}
    if offline:
        document["offline"] = True
    return _encode(document)
