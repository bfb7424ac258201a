"""A minimal MQTT 3.1.1 server for device_sdk tests that need to see the wire: it records every
PUBLISH with its DUP flag and packet id, and a test decides whether QoS 1 publishes get their
PUBACK, when the connection drops and whether new connections are refused.

The project's broker acknowledges on its own terms; this one lets a test hold PUBACKs back so
that values are in flight when the connection ends.
"""

from __future__ import annotations

import socket
import struct
import threading
from dataclasses import dataclass
from typing import BinaryIO

from sdk_harness import WAIT


@dataclass(frozen=True, slots=True)
class Published:
    connection: int  # 1 for the first accepted session, 2 for the next, ...
    topic: str
    payload: bytes
    dup: bool
    packet_id: int | None


class RawBroker:
    """Serves one connection at a time on 127.0.0.1 (any token is accepted)."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.2)
        self.port: int = self._server.getsockname()[1]
        self.ack = threading.Event()  # PUBACK QoS 1 publishes while set
        self.refuse = threading.Event()  # close new connections at once while set
        self._cond = threading.Condition()
        self._published: list[Published] = []
        self._conn: socket.socket | None = None
        self._sessions = 0
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="raw-broker", daemon=True)
        self._thread.start()

    # -- for tests
    def published(self, topic_prefix: str = "ds/") -> list[Published]:
        with self._cond:
            return [p for p in self._published if p.topic.startswith(topic_prefix)]

    def wait_published(self, count: int, topic_prefix: str = "ds/") -> list[Published]:
        with self._cond:
            ok = self._cond.wait_for(lambda: len(self.published(topic_prefix)) >= count, WAIT)
        assert ok, f"expected {count} publishes on {topic_prefix}, got {self.published(topic_prefix)}"
        return self.published(topic_prefix)

    def drop(self) -> None:
        """Close the current connection without a word (as a crash does)."""
        with self._cond:
            conn = self._conn
        if conn is not None:
            conn.shutdown(socket.SHUT_RDWR)

    def send(self, topic: str, payload: bytes) -> None:
        """Publish a QoS 0 message to the connected device."""
        with self._cond:
            conn = self._conn
        assert conn is not None, "no device is connected"
        name = topic.encode()
        conn.sendall(_packet(0x30, struct.pack("!H", len(name)) + name + payload))

    def close(self) -> None:
        self._closed.set()
        self.drop()
        self._thread.join(WAIT)
        self._server.close()

    # -- the server thread
    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            if self.refuse.is_set():
                conn.close()
                continue
            with conn:
                with self._cond:
                    self._conn = conn
                try:
                    self._session(conn)
                except OSError:
                    pass
                finally:
                    with self._cond:
                        self._conn = None

    def _session(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        number = 0
        while True:
            header = reader.read(1)
            if not header:
                return
            kind, flags = header[0] >> 4, header[0] & 0x0F
            body = reader.read(_remaining_length(reader))
            if kind == 1:  # CONNECT
                with self._cond:
                    self._sessions += 1
                    number = self._sessions
                conn.sendall(b"\x20\x02\x00\x00")
            elif kind == 8:  # SUBSCRIBE: grant QoS 1
                conn.sendall(b"\x90\x03" + body[:2] + b"\x01")
            elif kind == 12:  # PINGREQ
                conn.sendall(b"\xd0\x00")
            elif kind == 14:  # DISCONNECT
                return
            elif kind == 3:  # PUBLISH
                qos = (flags >> 1) & 3
                (length,) = struct.unpack("!H", body[:2])
                topic = body[2 : 2 + length].decode()
                rest = body[2 + length :]
                packet_id = struct.unpack("!H", rest[:2])[0] if qos else None
                payload = rest[2:] if qos else rest
                with self._cond:
                    self._published.append(Published(number, topic, payload, bool(flags & 0x08), packet_id))
                    self._cond.notify_all()
                if qos == 1 and self.ack.is_set():
                    conn.sendall(b"\x40\x02" + rest[:2])


def _remaining_length(reader: BinaryIO) -> int:
    value, shift = 0, 0
    while True:
        byte = reader.read(1)
        if not byte:
            raise OSError("connection closed")
        value |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            return value
        shift += 7


def _packet(first: int, body: bytes) -> bytes:
    length, encoded = len(body), bytearray()
    while True:
        byte, length = length % 128, length // 128
        encoded.append(byte | (0x80 if length else 0))
        if not length:
            return bytes([first]) + bytes(encoded) + body
