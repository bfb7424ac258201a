"""The errors ``device_sdk`` raises.

One tree, rooted at :class:`DeviceError`, so ``except DeviceError`` catches everything the
library raises on purpose::

    DeviceError
     ├── InvalidTokenError        the auth token is malformed, or the server refused it
     │                            (CONNACK 4 / 5); also a ValueError
     ├── NotConnectedError        a publish needs a live connection and there is none
     ├── OutboxFullError          the QoS 1 outbox stayed full (nothing is dropped to make room)
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
    password) or 5 (not authorized). A refused token stops all reconnect attempts.
    """


class NotConnectedError(DeviceError):
    """The operation needs a live connection to the server and there is none right now."""


class OutboxFullError(DeviceError):
    """A QoS 1 value found the outbox full (``outbox_limit`` values without a PUBACK) for the
    whole ``outbox_timeout``; the value was not queued. The outbox never drops a value to make
    room: the caller decides (retry later, :meth:`~device_sdk.Device.flush`, or give it up).
    """


class ConnectionLostError(DeviceError):
    """The connection to the server dropped; the device reconnects on its own.

    Not raised; handed to ``on_disconnect`` handlers to say why the connection ended.
    """


class DeviceTimeoutError(DeviceError, TimeoutError):
    """A bounded wait (for a connection or a downlink) ran out of time."""


class ConnectTimeoutError(DeviceTimeoutError):
    """:meth:`~device_sdk.Device.connect` got no usable connection within its timeout.

    The last network error, if any, is chained as ``__cause__``.
    """
