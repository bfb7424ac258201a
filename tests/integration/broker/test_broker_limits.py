"""Per-device publish rate limit, failed-login throttling and the bounded outgoing queue."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from _broker_harness import (
    RATE_DIAG,
    SERVICE_PASSWORD,
    SERVICE_USER,
    ManualClock,
    Paho,
    Raw,
    connect_packet,
    eventually,
    offline_reason,
    parse_publish,
    presence_watcher,
    publish_packet,
    running,
    subscribe_packet,
    token,
)

from broker import MqttBroker


async def service(paho: Callable[..., Paho], client_id: str, *filters: str) -> Paho:
    client = await paho(client_id=client_id, username=SERVICE_USER, password=SERVICE_PASSWORD).connect()
    if filters:
        await client.subscribe(*filters, qos=1)
    return client


class Flooder(threading.Thread):
    """A device on a blocking socket in its own thread, publishing QoS 0 as fast as TCP allows.

    Everything blocking happens in the thread: the broker shares the test's event loop.
    """

    def __init__(self, port: int, device_id: int) -> None:
        super().__init__(daemon=True)
        self.port, self.device_id = port, device_id
        self.sock = socket.socket()
        self.stop = threading.Event()
        self.sent = 0
        self.connack = b""
        self.closed_by_broker = False

    def run(self) -> None:
        chunk = publish_packet("ds/Flood", b"x" * 8) * 500
        try:
            self.sock.settimeout(5)
            self.sock.connect(("127.0.0.1", self.port))
            self.sock.sendall(connect_packet(username="device", password=token(self.device_id)))
            self.connack = self.sock.recv(4)
            while not self.stop.is_set():
                self.sock.sendall(chunk)
                self.sent += 500
        except OSError:
            self.closed_by_broker = True

    async def received(self) -> bytes:
        """What the broker sent after CONNACK, up to the first diag (call after stopping)."""

        def read() -> bytes:
            data = bytearray()
            self.sock.settimeout(3)
            with contextlib.suppress(OSError):
                while b"downlink/diag" not in data and (chunk := self.sock.recv(65536)):
                    data += chunk
            return bytes(data)

        return await asyncio.to_thread(read)

    def close(self) -> None:
        self.stop.set()
        self.join(timeout=10)
        self.sock.close()


# ---- rate limit -----------------------------------------------------------------------------


def payloads(client: Paho, topic: str) -> list[str]:
    return [m.payload.decode() for m in list(client.messages) if m.topic == topic]


def diags(device: Paho) -> list[str]:
    return payloads(device, "downlink/diag")


async def test_publishes_over_the_limit_are_dropped_acknowledged_and_explained(clients: list[Any]) -> None:
    clock = ManualClock()  # moves only below: the counts do not depend on the machine's speed
    async with running(clients, rate_clock=clock, device_rate_limit=5.0) as (_, paho):
        backend = await service(paho, "ingest", "d/1/ds/#")
        device = await paho(username="device", password=token(1)).connect()
        for n in range(20):
            await device.publish("ds/T", str(n), qos=1)  # waits for each PUBACK: none is withheld
        await device.received("downlink/diag")
        clock.now += 1.0  # a second later: the bucket holds five again, and one more warning may go
        for n in range(20, 26):
            await device.publish("ds/T", str(n), qos=1)
        await eventually(lambda: "24" in payloads(backend, "d/1/ds/T"), message="the second burst")
        await eventually(lambda: len(diags(device)) == 2, message="the second warning")
        # one publisher's messages arrive in order: anything accepted of 5..19 would be here by now
        assert payloads(backend, "d/1/ds/T") == [str(n) for n in (*range(5), *range(20, 25))]
        assert diags(device) == [RATE_DIAG.format(5)] * 2  # one per second of drops, not one per drop


async def test_a_flooding_device_does_not_cost_another_device_a_message(clients: list[Any]) -> None:
    async with running(clients) as (harness, paho):
        backend = await service(paho, "ingest", "d/+/ds/#")
        good = await paho(username="device", password=token(2)).connect()
        flooder = Flooder(harness.port, 1)
        flooder.start()
        try:
            await eventually(lambda: flooder.sent > 5000, timeout=10, message="flood under way")
            assert flooder.connack == b"\x20\x02\x00\x00"
            for n in range(30):
                await good.publish("ds/Good", str(n), qos=1)
                await asyncio.sleep(0.03)  # ~30/s: under the 50/s limit
            await eventually(lambda: backend.topics().count("d/2/ds/Good") == 30, timeout=10, message="all 30")
        finally:
            flooder.stop.set()
            flooder.join(timeout=10)
        assert [m.payload for m in backend.messages if m.topic == "d/2/ds/Good"] == [str(n).encode() for n in range(30)]
        assert backend.topics().count("d/1/ds/Flood") < flooder.sent / 10  # nearly all of it dropped
        assert b"downlink/diag" in await flooder.received()
        flooder.close()


async def test_a_device_over_the_limit_for_long_is_disconnected(clients: list[Any]) -> None:
    async with running(clients, device_rate_limit=10.0, rate_abuse_seconds=0.5) as (harness, paho):
        watcher = await presence_watcher(paho)
        flooder = Flooder(harness.port, 1)
        flooder.start()
        try:
            assert await offline_reason(watcher, 1, timeout=10) == "rate_limited"
            await eventually(lambda: not flooder.is_alive(), timeout=10, message="flooder sees the close")
            assert flooder.closed_by_broker
        finally:
            flooder.close()
        assert harness.broker.connected_devices() == set()


# ---- failed-login throttling -----------------------------------------------------------------


async def connack(port: int, password: str) -> bytes:
    client = await Raw.open(port)
    try:
        await client.send(connect_packet(username="device", password=password))
        return await client.read_packet()
    finally:
        await client.close()


async def test_logins_under_the_limit_are_unaffected(clients: list[Any]) -> None:
    async with running(clients, auth_failures_per_minute=3) as (harness, _):
        for _ in range(2):
            assert await connack(harness.port, "wrong-token") == b"\x20\x02\x00\x04"
        assert await connack(harness.port, token(1)) == b"\x20\x02\x00\x00"


async def test_after_too_many_failures_an_address_is_refused_without_asking(
    clients: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="broker")
    async with running(clients, auth_failures_per_minute=3) as (harness, _):
        assert harness.authenticator is not None
        for _ in range(3):
            assert await connack(harness.port, "wrong-token") == b"\x20\x02\x00\x04"
        assert len(harness.authenticator.calls) == 3
        for _ in range(5):  # even the right token: the authenticator (the database) is not asked
            assert await connack(harness.port, token(1)) == b"\x20\x02\x00\x04"
        assert len(harness.authenticator.calls) == 3
        warnings = [r for r in caplog.records if "refused logins from" in r.getMessage()]
        assert len(warnings) == 1  # once per window, not per attempt
        broker: MqttBroker = harness.broker
        throttle = broker._core.auth_throttle  # type: ignore[union-attr]  # test hook: move its clock on
        throttle.clock = lambda: time.monotonic() + 61
        assert await connack(harness.port, token(1)) == b"\x20\x02\x00\x00"
        assert len(harness.authenticator.calls) == 4


# ---- bounded outgoing queue -----------------------------------------------------------------


async def non_reading_device(port: int, device_id: int, qos: int) -> Raw:
    """A device with a tiny receive buffer that subscribes to ``downlink/#`` and never reads again."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
    client = Raw(reader, writer)
    await client.send(connect_packet(username="device", password=token(device_id)))
    assert await client.read_packet() == b"\x20\x02\x00\x00"
    await client.send(subscribe_packet(1, "downlink/#", qos=qos))
    assert (await client.read_packet())[0] == 0x90
    return client


async def test_a_device_that_does_not_read_cannot_grow_its_queue(clients: list[Any]) -> None:
    async with running(clients) as (harness, paho):
        broker: MqttBroker = harness.broker
        stuck = await non_reading_device(harness.port, 1, qos=0)
        clients.append(stuck)
        healthy = await paho(username="device", password=token(2)).connect()
        await healthy.subscribe("downlink/#")
        publisher = await service(paho, "console")
        peak = 0

        async def sample() -> None:
            nonlocal peak
            while True:
                peak = max(peak, broker.session_queues().get("dev:1", None).outgoing or 0)  # type: ignore[union-attr]
                await asyncio.sleep(0.005)

        sampler = asyncio.create_task(sample())
        try:
            payload = b"v" * 200
            for n in range(20_000):
                publisher.client.publish("d/1/downlink/ds/Big", payload)
                if n % 400 == 0:
                    publisher.client.publish("d/2/downlink/ds/Check", str(n))
                    await asyncio.sleep(0)  # give the broker's loop a turn now and then
            await eventually(lambda: healthy.topics().count("downlink/ds/Check") == 50, timeout=20, message="checks")
            await eventually(lambda: broker.session_queues()["dev:1"].dropped > 0, timeout=20, message="drops")
        finally:
            sampler.cancel()
        queues = broker.session_queues()["dev:1"]
        assert peak <= broker.settings.max_outgoing_queue
        assert queues.outgoing <= broker.settings.max_outgoing_queue
        assert queues.incoming == 0 and queues.inflight == 0 and queues.backlog == 0
        assert broker.connected_devices() == {1, 2}  # QoS 0 only: dropped, not disconnected


async def test_qos1_past_the_bound_disconnects_the_slow_device(clients: list[Any]) -> None:
    async with running(clients, max_outgoing_queue=50) as (harness, paho):
        watcher = await presence_watcher(paho)
        stuck = await non_reading_device(harness.port, 1, qos=1)
        clients.append(stuck)
        publisher = await service(paho, "console")
        for n in range(2000):  # at QoS 1: a copy goes at the lower of publish and subscription QoS
            publisher.client.publish("d/1/downlink/ds/Big", b"v" * 200 + str(n).encode(), qos=1)
        assert await offline_reason(watcher, 1, timeout=10) == "slow_consumer"
        assert await stuck.closed_by_peer(timeout=5)
        broker: MqttBroker = harness.broker
        assert broker.connected_devices() == set()
        await eventually(lambda: "dev:1" not in broker.session_queues(), message="session dropped")


def test_parse_publish_helper_reads_diag() -> None:  # keeps the raw helper honest for the flood test
    data = publish_packet("downlink/diag", RATE_DIAG.format(50).encode())
    assert parse_publish(data) == ("downlink/diag", RATE_DIAG.format(50).encode())
