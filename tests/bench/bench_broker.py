"""Throughput and latency: our broker vs stock amqtt 0.12.1, with 1,000 idle subscribed devices.

Run: ``.venv/bin/python tests/bench/bench_broker.py [--devices 1000] [--messages 5000]``.
Loopback only, bounded in time (each phase has a timeout), prints progress and figures.
Not a pass/fail test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration" / "broker"))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from _broker_harness import (  # noqa: E402
    SERVICE_PASSWORD,
    SERVICE_USER,
    Harness,
    Raw,
    connect_packet,
    ours,
    publish_packet,
    stock,
    subscribe_packet,
)

TOPIC = "bench/telemetry"
WINDOW = 20  # messages in flight end to end (closed loop)


async def connect(port: int, username: str, password: str, client_id: str = "") -> Raw:
    client = await Raw.open(port)
    await client.send(connect_packet(client_id, username=username, password=password))
    assert (await client.read_packet())[3] == 0
    return client


async def idle_devices(h: Harness, count: int) -> list[Raw]:
    """``count`` idle clients, each subscribed to its own ``d/<n>/downlink/ds/Power`` filter.

    They connect with service credentials (the harness has only nine device tokens and a
    device connection replaces the previous one), which gives both brokers the same filters.
    """
    devices: list[Raw] = []
    for start in range(0, count, 100):
        batch = await asyncio.gather(
            *(
                connect(h.port, SERVICE_USER, SERVICE_PASSWORD, f"idle-{n}")
                for n in range(start, min(count, start + 100))
            )
        )
        for n, device in enumerate(batch, start):
            await device.send(subscribe_packet(1, f"d/{n}/downlink/ds/Power"))
            await device.read_packet()
        devices.extend(batch)
        print(f"  {len(devices)} idle subscribers connected", flush=True)
    return devices


async def measure(h: Harness, messages: int) -> tuple[float, list[float]]:
    subscriber = await connect(h.port, SERVICE_USER, SERVICE_PASSWORD, "bench-sub")
    await subscriber.send(subscribe_packet(1, TOPIC))
    await subscriber.read_packet()
    publisher = await connect(h.port, SERVICE_USER, SERVICE_PASSWORD, "bench-pub")
    latencies: list[float] = []
    window = asyncio.Semaphore(WINDOW)

    async def produce() -> None:
        for _ in range(messages):
            await window.acquire()
            await publisher.send(publish_packet(TOPIC, struct.pack("!d", time.perf_counter())))

    async def consume() -> None:
        while len(latencies) < messages:
            data = await subscriber.read_packet(timeout=10)
            latencies.append(time.perf_counter() - struct.unpack("!d", data[-8:])[0])
            window.release()

    started = time.perf_counter()
    async with asyncio.timeout(120):
        await asyncio.gather(produce(), consume())
    elapsed = time.perf_counter() - started
    for client in (subscriber, publisher):
        await client.close()
    return messages / elapsed, latencies


async def run(kind: str, devices: int, messages: int) -> None:
    factory = ours if kind == "ours" else stock
    print(f"{kind}: starting broker", flush=True)
    async with factory() as h:
        idle = await idle_devices(h, devices)
        rate, latencies = await measure(h, messages)
        quantiles = statistics.quantiles(latencies, n=100)
        print(
            f"{kind}: {rate:,.0f} msg/s delivered (QoS 0, window {WINDOW}), "
            f"p50 {quantiles[49] * 1000:.1f} ms, p99 {quantiles[98] * 1000:.1f} ms, "
            f"{devices} idle subscribed clients",
            flush=True,
        )
        for client in idle:
            await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=5000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    for kind in ("ours", "stock"):
        asyncio.run(run(kind, args.devices, args.messages))


if __name__ == "__main__":
    main()
