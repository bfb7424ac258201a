"""The errors ``device_sdk`` raises.

One tree, rooted at :class:`DeviceError`, so ``except DeviceError`` catches everything the
library raises on purpose::

    DeviceError
     ├── InvalidTokenError        the auth token is malformed, or the server refused it
     │                            (CONNACK 4 / 5; MQTT 5: 0x86 / 0x87, or a DISCONNECT 0x87
     │                            revoking it); also a ValueError
     ├── NotConnectedError        a publish needs a live connection and there is none
     ├── OutboxFullError          the QoS 1 outbox stayed full (nothing is dropped to make room)
     ├── PublishRefusedError      MQTT 5: the server refused a value (a PUBACK with a failure
     │                            reason) or it is larger than the server accepts; passed to
     │                            ``on_refused`` handlers, raised by a QoS 0 send too large
     ├── ConnectionLostError      the connection dropped; passed to ``on_disconnect`` handlers
     ├── FirmwareRejectedError    an OTA offer or image the OtaAgent refused (device_sdk._ota)
     └── DeviceTimeoutError       a bounded wait ran out; also a TimeoutError
          └── ConnectTimeoutError  ``connect()`` got no usable connection in time

Programming errors keep their built-in types: a bad datastream name or an unencodable value
raises ``ValueError`` / ``TypeError`` at the call site. Exceptions from paho-mqtt and the socket
layer never escape: network failures are retried, and their last cause is chained onto
:class:`ConnectTimeoutError` when ``connect()`` gives up.
"""

from __future__ import annotations


class DeviceError(Exception):
    """Root of every error raised by ``device_sdk``."""


class InvalidTokenError(DeviceError, ValueError):
    """The auth token is not a Blynk token, or the server refused it.

    Raised by :class:`~device_sdk.AuthToken` for a malformed token, and by
    :meth:`~device_sdk.Device.connect` when the server answers CONNACK 4 (bad user name or
    password) or 5 (not authorized); over MQTT 5, 0x86 or 0x87, or a server DISCONNECT 0x87
    (the token was revoked while connected). A refused token stops all reconnect attempts.

    Attributes:
        reason_code: The code the server sent (4 or 5 over MQTT 3.1.1; 0x86 or 0x87 over
            MQTT 5), or ``None`` for a malformed token.
        reason: The code's name, e.g. ``"Bad user name or password"``, or ``None``.
    """

    def __init__(self, message: str, reason_code: int | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason_code = reason_code
        self.reason = reason


class NotConnectedError(DeviceError):
    """The operation needs a live connection to the server and there is none right now."""


class OutboxFullError(DeviceError):
    """A QoS 1 value found the outbox full (``outbox_limit`` values without a PUBACK) for the
    whole ``outbox_timeout``; the value was not queued. The outbox never drops a value to make
    room: the caller decides (retry later, :meth:`~device_sdk.Device.flush`, or give it up).
    """


class PublishRefusedError(DeviceError):
    """The server refused a value sent over MQTT 5, or it is larger than the server accepts.

    A QoS 1 value whose PUBACK carries a failure reason (0x87 not authorized: a topic the
    device may not publish; 0x97 quota exceeded: over the server's rate limit) is dropped from
    the outbox, never sent again, and handed to ``on_refused`` handlers as this error. A value
    larger than the ``maximum_packet_size`` of the server's CONNACK is not sent at all: at
    QoS 1 it is dropped from the outbox the same way (``reason_code`` 0x95), at QoS 0 this is
    raised by the send. MQTT 3.1.1 has no such answers.

    Attributes:
        topic: The value's topic, e.g. ``"ds/Temperature"``.
        payload: The value as sent.
        reason_code: The PUBACK's reason code (0x95 for a value that was too large).
        reason: The code's name, e.g. ``"Quota exceeded"``.
    """

    def __init__(self, message: str, topic: str, payload: bytes, reason_code: int, reason: str) -> None:
        super().__init__(message)
        self.topic = topic
        self.payload = payload
        self.reason_code = reason_code
        self.reason = reason


class ConnectionLostError(DeviceError):
    """The connection to the server dropped; the device reconnects on its own (except after a
    DISCONNECT 0x87 over MQTT 5: the token was revoked).

    Not raised; handed to ``on_disconnect`` handlers to say why the connection ended.

    Attributes:
        reason_code: Over MQTT 5, the reason of the server's DISCONNECT (e.g. 0x8E session
            taken over, 0x8D keep-alive timeout, 0x96 message rate too high, 0x87 token
            revoked, 0x8B server shutting down, 0x95 packet too large); ``None`` when the
            server sent none (MQTT 3.1.1, or the network failed).
        reason: That code's name, e.g. ``"Session taken over"``, or ``None``.
    """

    def __init__(self, message: str, reason_code: int | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason_code = reason_code
        self.reason = reason


class DeviceTimeoutError(DeviceError, TimeoutError):
    """A bounded wait (for a connection or a downlink) ran out of time."""


class ConnectTimeoutError(DeviceTimeoutError):
    """:meth:`~device_sdk.Device.connect` got no usable connection within its timeout.

    The last network error, if any, is chained as ``__cause__``.
    """
