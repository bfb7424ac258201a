"""paho's socket read a piece at a time (``backend.transport.buffered``): paho's small reads
are served from one system call, nothing is lost or reordered, and the socket's own answers
(nothing yet, its end) reach paho as before; the client reads every waiting packet a turn."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from backend.transport.buffered import READ_PACKETS, READ_SIZE, BufferedClient, BufferedSocket


class Counting:
    """A socket that counts its ``recv`` calls."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reads = 0

    def recv(self, size: int) -> bytes:
        self.reads += 1
        return self.sock.recv(size)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    yield ours, theirs
    ours.close()
    theirs.close()


def test_small_reads_are_served_from_one_read(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = pair
    counting = Counting(ours)
    buffered = BufferedSocket(counting)
    packets = [b"\x30\x05\x00\x01ab" + bytes([n]) for n in range(50)]  # 50 PUBLISH-shaped packets
    theirs.sendall(b"".join(packets))
    got = []
    for _ in packets:  # as paho reads: first byte, remaining length, the rest
        first, length = buffered.recv(1), buffered.recv(1)
        got.append(first + length + buffered.recv(length[0]))
    assert got == packets
    assert counting.reads == 1
    assert buffered.pending() == 0
    with pytest.raises(BlockingIOError):  # nothing buffered, nothing on the socket
        buffered.recv(1)
    theirs.sendall(b"xyz")
    assert buffered.recv(1) == b"x"
    assert buffered.pending() == 2  # paho's loop then reads without waiting in select
    assert buffered.recv(10) == b"yz"  # never more than what is buffered: no wait for the rest
    theirs.close()
    assert buffered.recv(1) == b""  # the end of the stream, as the socket says it


def test_a_read_larger_than_the_buffer_size_and_the_socket_itself(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = pair
    buffered = BufferedSocket(ours)
    big = bytes(range(256)) * (READ_SIZE // 256 + 8)
    theirs.sendall(big)
    received = bytearray()
    while len(received) < len(big):
        try:
            received += buffered.recv(len(big) - len(received))
        except BlockingIOError:
            continue
    assert received == big
    assert buffered.fileno() == ours.fileno()
    assert buffered.send(b"ok") == 2  # everything else is the socket's
    assert theirs.recv(2) == b"ok"


def test_the_client_reads_every_packet_waiting_in_one_turn_of_its_loop() -> None:
    """paho's loop_read reads one packet a turn for a client with nothing of its own in
    flight (a select call and a keep-alive check a message); ours reads until none is left,
    at most READ_PACKETS, and stops at once on an error."""
    client = BufferedClient(CallbackAPIVersion.VERSION2, client_id="reader")
    ours, theirs = socket.socketpair()
    theirs.close()
    client._sock = ours  # connected, as far as loop_read asks; closed by the client when it goes
    answers = [MQTTErrorCode.MQTT_ERR_SUCCESS] * 5 + [MQTTErrorCode.MQTT_ERR_AGAIN]
    client._packet_read = lambda: answers.pop(0)  # type: ignore[method-assign]
    assert client.loop_read() == MQTTErrorCode.MQTT_ERR_SUCCESS
    assert answers == []  # five packets and the "nothing more" in one call
    answers[:] = [MQTTErrorCode.MQTT_ERR_SUCCESS] * (READ_PACKETS + 1)
    assert client.loop_read() == MQTTErrorCode.MQTT_ERR_SUCCESS
    assert len(answers) == 1  # at most READ_PACKETS: paho's loop writes and checks keep-alive
    handled: list[MQTTErrorCode] = []
    client._loop_rc_handle = lambda rc: handled.append(rc) or rc  # type: ignore[method-assign]
    answers[:] = [MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_PROTOCOL, MQTTErrorCode.MQTT_ERR_SUCCESS]
    assert client.loop_read() == MQTTErrorCode.MQTT_ERR_PROTOCOL
    assert handled == [MQTTErrorCode.MQTT_ERR_PROTOCOL] and len(answers) == 1
