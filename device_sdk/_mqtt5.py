"""What MQTT 5 adds to a device's connection: the server's reason codes, and what to do next.

MQTT 3.1.1 tells a device little: a refused CONNECT, then silence. With ``Device(...,
mqtt5=True)`` the server names its reasons, and the link acts on them:

- a CONNACK 0x86 (bad user name or password) or 0x87 (not authorized): the token is refused,
  :class:`InvalidTokenError` names the code, nothing is retried (as with 3.1.1's 4 and 5);
- a server DISCONNECT (:func:`after_disconnect`): 0x87 means the token was revoked while
  connected, so the device stops as for a refused token; 0x89, 0x8E, 0x96, 0x97 and 0x9F ask
  the device to slow down (server busy, session taken over by another connection with the
  token, message rate too high, quota exceeded, connection rate exceeded), so the next attempt
  waits from step :data:`SLOW_DOWN_ATTEMPT` of the backoff on; anything else (0x8B server
  shutting down, 0x8D keep-alive timeout, 0x95 packet too large...) reconnects as after a
  network loss;
- a PUBACK with a failure reason (0x87 a topic the device may not publish, 0x97 over the rate
  limit): paho does not send that message again, so the value leaves the outbox and the
  application gets a :class:`PublishRefusedError`; resending it would be refused again;
- the CONNACK's ``maximum_packet_size``: a larger value is never sent (:func:`publish_size`),
  since the server would end the connection (0x95) and a QoS 1 value would be resent after
  every reconnect, for ever.
"""

from __future__ import annotations

import enum

from paho.mqtt.reasoncodes import ReasonCode

from ._exceptions import InvalidTokenError

REVOKED = 0x87
"""A server DISCONNECT with this reason (not authorized) ends the device: its token was revoked."""
PACKET_TOO_LARGE = 0x95
SLOW_DOWN = frozenset({0x89, 0x8E, 0x96, 0x97, 0x9F})
"""Server DISCONNECT reasons after which the device reconnects slowly."""
SLOW_DOWN_ATTEMPT = 5
"""After a slow-down reason the backoff continues from this step (32 s by default, jittered)."""
_V311_CODES = {"Bad user name or password": 4, "Not authorized": 5}
TOKEN_REFUSED = frozenset(_V311_CODES)
"""CONNACK reasons that refuse the token (paho names 3.1.1's 4 and 5 as MQTT 5's 0x86, 0x87)."""


class Next(enum.Enum):
    """What the link does after the server ended the connection."""

    RECONNECT = "reconnect"
    SLOW_DOWN = "slow down"
    STOP = "stop"


def after_disconnect(code: int | None) -> Next:
    """The reconnect policy for a server DISCONNECT with reason ``code`` (``None``: none sent)."""
    if code == REVOKED:
        return Next.STOP
    if code in SLOW_DOWN:
        return Next.SLOW_DOWN
    return Next.RECONNECT


def describe(reason: ReasonCode) -> str:
    """``0x8E Session taken over``: a reason as the logs and errors show it."""
    return f"0x{reason.value:02X} {reason.getName()}"


def refused_token(reason: ReasonCode, mqtt5: bool) -> InvalidTokenError:
    """The error for a CONNACK that refused the token, with the code the server really sent."""
    name = reason.getName()
    if mqtt5:
        return InvalidTokenError(f"the server refused the auth token ({describe(reason)})", reason.value, name)
    return InvalidTokenError(f"the server refused the auth token ({name})", _V311_CODES[name], name)


def revoked_token(reason: ReasonCode) -> InvalidTokenError:
    """The error once a server DISCONNECT 0x87 said the token no longer works."""
    return InvalidTokenError(
        f"the server revoked the auth token ({describe(reason)}); not reconnecting", reason.value, reason.getName()
    )


def copy(error: InvalidTokenError) -> InvalidTokenError:
    """A fresh exception with the same message and codes, to raise in another thread."""
    return InvalidTokenError(str(error), error.reason_code, error.reason)


def publish_size(topic: str, payload: bytes, qos: int) -> int:
    """The size in bytes of an MQTT 5 PUBLISH without properties, as the server counts it
    against its ``maximum_packet_size``."""
    remaining = 2 + len(topic.encode()) + (2 if qos else 0) + 1 + len(payload)
    length_bytes = 1
    while remaining >= 128**length_bytes:
        length_bytes += 1
    return 1 + length_bytes + remaining
