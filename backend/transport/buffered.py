"""paho's socket, read a piece at a time instead of with a system call for every few bytes.

paho-mqtt 2.2 reads each packet with at least three ``recv`` calls: its first byte, each byte
of its remaining length, then the rest. The app's ingest receives tens of thousands of small
PUBLISHes a second, and py-spy on the app under ``tests/bench/bench_broker_vs_mosquitto.py``
(issue #16) put those system calls at about a sixth of the app's busy time.

:class:`BufferedSocket` reads what the socket holds (up to :data:`READ_SIZE` bytes) in one call
and serves paho's small reads from it. Its ``pending()`` (which paho's loop asks of any socket
that has one, as it does of TLS sockets) keeps the loop from waiting in ``select`` while bytes
are buffered. :class:`BufferedClient` is paho's client on that socket. It overrides
``Client._create_socket``, a private method of paho-mqtt, which ``pyproject.toml`` pins to 2.2.0.
"""

from __future__ import annotations

from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode

__all__ = ["READ_PACKETS", "READ_SIZE", "BufferedClient", "BufferedSocket"]

READ_SIZE = 65_536
"""Bytes asked of the socket in one call at most."""
READ_PACKETS = 256
"""Packets :meth:`BufferedClient.loop_read` reads at most before paho's loop writes and checks
its keep-alive again."""


class BufferedSocket:
    """A connected socket whose reads go through a buffer; everything else is the socket's."""

    __slots__ = ("_buffer", "_sock")

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._buffer = bytearray()

    def recv(self, size: int) -> bytes:
        """Up to ``size`` bytes: from the buffer, else from one read of the socket (which
        raises as the socket does: ``BlockingIOError`` when it holds nothing; ``b""`` at its end)."""
        buffer = self._buffer
        if not buffer:
            data: bytes = self._sock.recv(max(size, READ_SIZE))
            if len(data) <= size:
                return data
            buffer += data
        chunk = bytes(buffer[:size])
        del buffer[:size]  # CPython drops a bytearray's front without moving the rest
        return chunk

    def pending(self) -> int:
        """Bytes that can be read without waiting (buffered here, or in a TLS layer below)."""
        inner = getattr(self._sock, "pending", None)
        return len(self._buffer) + (inner() if inner is not None else 0)

    def fileno(self) -> int:
        """The socket's descriptor (paho's ``select`` waits on it)."""
        return int(self._sock.fileno())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class BufferedClient(paho.Client):
    """paho's client, reading through a :class:`BufferedSocket`, up to :data:`READ_PACKETS`
    packets a turn of its loop (paho's reads one packet a turn for a client with no message
    of its own in flight: a ``select`` call and its keep-alive check a message)."""

    def _create_socket(self) -> Any:
        return BufferedSocket(super()._create_socket())

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        """paho's ``loop_read``, reading packets until none is left or :data:`READ_PACKETS`."""
        for _ in range(READ_PACKETS):
            if self._sock is None:
                return MQTTErrorCode.MQTT_ERR_NO_CONN
            rc = self._packet_read()
            if rc > 0:
                return self._loop_rc_handle(rc)
            if rc == MQTTErrorCode.MQTT_ERR_AGAIN:
                break
        return MQTTErrorCode.MQTT_ERR_SUCCESS
