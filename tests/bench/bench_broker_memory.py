"""Broker memory: resident set size of our broker and of Debian's Mosquitto, side by side.

Run: ``.venv/bin/python tests/bench/bench_broker_memory.py [--connections 10000] [--burst 50000]``.

Each broker runs in its own process (ours: :func:`broker.MqttBroker` as
``tests/bench/bench_broker.py`` starts it, through the broker tests' harness; Mosquitto:
``/usr/sbin/mosquitto`` on loopback, anonymous), so its ``VmRSS``/``VmHWM`` in
``/proc/<pid>/status`` are the broker's alone. Phases:

1. idle: the broker just started;
2. ``--connections`` idle clients (service credentials, one subscription each, as
   bench_broker's idle devices), then bytes per connection = RSS growth / connections;
3. a control: a device subscribed at QoS 1 that reads and acknowledges everything, while a
   publisher sends it ``--burst`` QoS 1 messages of ``--payload`` bytes (what the burst itself
   leaves in the broker's memory);
4. a slow consumer: the same, but the subscriber stops reading (its socket buffers fill, the
   broker must keep or drop what it cannot write); once as a device (its downlink topic; our
   per-device outgoing bound applies) and once as a service client (the service bound).

Loopback only, bounded in time, prints figures and asserts nothing. The open-file limit is
raised for this process and the brokers (a connection is a descriptor in each of them).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration" / "broker"))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from _broker_harness import (  # noqa: E402
    SERVICE_PASSWORD,
    SERVICE_USER,
    Raw,
    connect_packet,
    ours,
    publish_packet,
    subscribe_packet,
    token,
)

from tests.support.net import free_port, port_open  # noqa: E402

MOSQUITTO = Path("/usr/sbin/mosquitto")
DEVICE = 1  # the harness's device 1 is the slow device consumer
DOWNLINK = "downlink/ds/Power"
KEEPALIVE = 600  # idle clients send no PINGREQ during the run


def raise_open_file_limit(needed: int) -> int:
    """Raise the soft RLIMIT_NOFILE towards ``needed`` (children inherit it); the limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        soft = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return int(soft)


def memory(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of ``pid`` in bytes, from /proc/<pid>/status."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) * 1024
    return values["VmRSS"], values["VmHWM"]


def mb(n: float) -> str:
    return f"{n / 1024 / 1024:.1f} MB"


# ---- the brokers, each in its own process -----------------------------------------------------


async def serve_ours() -> None:
    """Child mode: run our broker until stdin closes; print its port first."""
    logging.basicConfig(level=logging.ERROR)
    async with ours() as harness:
        print(f"PORT {harness.port}", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


@contextlib.asynccontextmanager
async def broker_process(kind: str) -> AsyncIterator[tuple[int, int]]:
    """(pid, port) of a running broker of ``kind`` ("ours" or "mosquitto"); stopped on exit."""
    with tempfile.TemporaryDirectory(prefix="bench-broker-memory-") as tmp:
        if kind == "ours":
            proc = subprocess.Popen(
                [sys.executable, __file__, "--serve-ours"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
            )
            assert proc.stdout is not None
            line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 60)
            port = int(line.split()[1])
        else:
            port = free_port()
            conf = Path(tmp) / "mosquitto.conf"
            conf.write_text(
                f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest none\n"
                "max_connections -1\n"
            )
            proc = subprocess.Popen([str(MOSQUITTO), "-c", str(conf)], stdin=subprocess.PIPE)
            deadline = time.monotonic() + 30
            while not port_open(port):
                assert proc.poll() is None and time.monotonic() < deadline, "mosquitto did not start"
                await asyncio.sleep(0.05)
        try:
            yield proc.pid, port
        finally:
            if proc.stdin:
                proc.stdin.close()
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# ---- clients -----------------------------------------------------------------------------------


async def connect(port: int, client_id: str, username: str | None, password: str | None) -> Raw:
    client = await Raw.open(port)
    await client.send(connect_packet(client_id, username=username, password=password, keepalive=KEEPALIVE))
    connack = await client.read_packet(timeout=30)
    assert connack[3] == 0, f"{client_id} refused: {connack!r}"
    return client


async def idle_clients(port: int, count: int) -> list[Raw]:
    """``count`` idle clients, each subscribed to its own ``d/<n>/downlink/ds/Power``."""
    clients: list[Raw] = []

    async def one(n: int) -> Raw:
        client = await connect(port, f"idle-{n}", SERVICE_USER, SERVICE_PASSWORD)
        await client.send(subscribe_packet(1, f"d/{n + 100}/{DOWNLINK}", qos=1))
        await client.read_packet(timeout=30)
        return client

    async with asyncio.timeout(600):
        for start in range(0, count, 200):
            clients.extend(await asyncio.gather(*(one(n) for n in range(start, min(count, start + 200)))))
            if len(clients) % 2000 == 0 or len(clients) == count:
                print(f"    {len(clients)} idle clients connected", flush=True)
    return clients


@dataclass
class Burst:
    """What one burst did: PUBACKs the publisher got, seconds it took, the broker's VmRSS and
    VmHWM after it, messages the consumer received (a slow one: once it reads again) and
    whether the broker closed the consumer's connection."""

    acked: int
    seconds: float
    rss: int
    peak: int
    received: int
    closed: bool


async def consumer(kind: str, pid: int, port: int, as_device: bool, burst: int, payload: int, reads: bool) -> Burst:
    """Subscribe a client that then reads nothing (``reads``: that reads and acknowledges every
    message, the control); publish ``burst`` QoS 1 messages to it."""
    full_topic = f"d/{DEVICE}/{DOWNLINK}"
    if as_device and kind == "ours":  # a device: its own topic, under its mount
        slow = await connect(port, "slow-device", "device", token(DEVICE))
        await slow.send(subscribe_packet(1, DOWNLINK, qos=1))
    else:
        slow = await connect(port, f"slow-{'device' if as_device else 'service'}", SERVICE_USER, SERVICE_PASSWORD)
        await slow.send(subscribe_packet(1, full_topic, qos=1))
    await slow.read_packet(timeout=30)
    received = [0]
    transport = cast(asyncio.Transport, slow.writer.transport)
    if reads:
        reading = asyncio.create_task(acknowledge(slow, received, 60))
    else:
        # the slow consumer reads nothing for now: shrink its receive buffer so the broker
        # meets it soon (the kernel would otherwise hold a few MB of the burst for it). Not
        # below loopback's segment size (64 KB): with 4 KB the receiver never announced room
        # for a whole segment again after its window closed, and the broker's kernel sent only
        # on its ever rarer zero-window probes (the "28 messages" once reported here).
        slow.writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 131_072)
        transport.pause_reading()

    publisher = await connect(port, "burst-publisher", SERVICE_USER, SERVICE_PASSWORD)
    acked = 0

    async def drain() -> None:
        nonlocal acked
        with contextlib.suppress(Exception):
            while True:
                data = await publisher.read_packet(timeout=30)
                if data[0] >> 4 == 4:  # PUBACK
                    acked += 1

    reader = asyncio.create_task(drain())
    body = b"x" * payload
    started = time.monotonic()
    with contextlib.suppress(TimeoutError, ConnectionError):
        async with asyncio.timeout(120):
            for n in range(burst):
                await publisher.send(publish_packet(full_topic, body, qos=1, packet_id=n % 65535 + 1))
            while acked < burst and not reader.done():
                await asyncio.sleep(0.1)
    elapsed = time.monotonic() - started
    await asyncio.sleep(2)  # let the broker settle what it keeps
    rss, peak = memory(pid)
    if not reads:  # read again: what did the broker keep for it?
        transport.resume_reading()
        reading = asyncio.create_task(acknowledge(slow, received, 3))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(reading), 30)
    closed = reading.done() and reading.result()
    for task in (reader, reading):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    for client in (publisher, slow):
        await client.close()
    return Burst(acked, elapsed, rss, peak, received[0], closed)


async def acknowledge(client: Raw, received: list[int], quiet: float) -> bool:
    """Read every message and answer each QoS 1 PUBLISH with its PUBACK, counting them in
    ``received[0]``, until ``quiet`` seconds pass without a packet (False) or the broker
    closes the connection (True)."""
    while True:
        try:
            data = await client.read_packet(timeout=quiet)
        except TimeoutError:
            return False
        except (asyncio.IncompleteReadError, ConnectionError):
            return True
        if data[0] >> 4 == 3:
            received[0] += 1
            if data[0] & 0x06:
                at = 1
                while data[at] & 0x80:  # the remaining length's bytes
                    at += 1
                topic_length = int.from_bytes(data[at + 1 : at + 3])
                packet_id = data[at + 3 + topic_length : at + 5 + topic_length]
                with contextlib.suppress(ConnectionError):
                    await client.send(bytes([0x40, 2]) + packet_id)


async def run(kind: str, connections: int, burst: int, payload: int) -> None:
    print(f"{kind}:", flush=True)
    async with broker_process(kind) as (pid, port):
        await asyncio.sleep(1)
        idle_rss, _ = memory(pid)
        print(f"  idle: RSS {mb(idle_rss)}", flush=True)
        started = time.monotonic()
        clients = await idle_clients(port, connections)
        took = time.monotonic() - started
        await asyncio.sleep(3)
        loaded_rss, _ = memory(pid)
        per = (loaded_rss - idle_rss) / max(1, connections)
        print(
            f"  {connections} idle connections (connected in {took:.0f} s): RSS {mb(loaded_rss)}, "
            f"{per / 1024:.1f} KB per connection",
            flush=True,
        )
        phases = (
            ("control: a device that reads", True, True),
            ("slow consumer: a device", True, False),
            ("slow consumer: a service client", False, False),
        )
        for who, as_device, reads in phases:
            before, _ = memory(pid)
            got = await consumer(kind, pid, port, as_device, burst, payload, reads)
            print(
                f"  {who}: burst of {burst} QoS 1 x {payload} B ({mb(burst * payload)}) in {got.seconds:.0f} s, "
                f"{got.acked} PUBACKs; RSS {mb(before)} -> {mb(got.rss)} (+{mb(got.rss - before)}), "
                f"peak (VmHWM) {mb(got.peak)}; the consumer received {got.received}"
                + (" (then the broker closed it)" if got.closed else ""),
                flush=True,
            )
        for client in clients:
            await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--burst", type=int, default=50_000)
    parser.add_argument("--payload", type=int, default=256)
    parser.add_argument("--only", choices=("ours", "mosquitto"))
    parser.add_argument("--serve-ours", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_ours:
        asyncio.run(serve_ours())
        return
    limit = raise_open_file_limit(args.connections + 1000)  # one descriptor a connection in each process
    connections = min(args.connections, limit - 1000)
    if connections < args.connections:
        print(f"open-file limit {limit}: {connections} connections instead of {args.connections}")
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", flush=True)
    logging.basicConfig(level=logging.ERROR)
    for kind in ("ours", "mosquitto"):
        if args.only in (None, kind):
            asyncio.run(run(kind, connections, args.burst, args.payload))


if __name__ == "__main__":
    main()
