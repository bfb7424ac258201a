"""Devices through one bridged Mosquitto connection vs the same devices connected directly
(issue #14 item 8): messages a second end to end and p50/p99 latency, side by side.

Run: ``.venv/bin/python tests/bench/bench_gateway.py [--devices 1000] [--messages 20000]``.

Both runs use openblynk's broker (in this process) and one service subscriber on ``d/+/ds/#``
standing where the app's ingest stands; "end to end" is from a device's PUBLISH to that
subscriber. *direct*: every device has its own MQTT connection to openblynk (user name
``device``). *bridged*: every device talks to Debian's Mosquitto (its own process) configured
by ``docs/mosquitto-bridge.conf``, which carries them all over one gateway connection. The
devices take turns (round robin), QoS 0, at most ``WINDOW`` messages in flight (closed loop).
Loopback only, bounded in time (each phase has a timeout), prints progress and figures. Not a
pass/fail test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration" / "broker"))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from _broker_harness import Raw, connect_packet, publish_packet, subscribe_packet  # noqa: E402

from broker import (  # noqa: E402
    BrokerSettings,
    ConnectInfo,
    DeviceIdentity,
    GatewayIdentity,
    MqttBroker,
    ServiceIdentity,
)
from tests.support.mosquitto import bridge_config, free_port, running_mosquitto  # noqa: E402

WINDOW = 20
SERVICE = ("bench-service", "bench-service-secret")
BRIDGE = ("bench-bridge", "bench-bridge-secret")
Send = Callable[[int, bytes], Awaitable[None]]


class BenchAuth:
    """Device tokens, one service login and one gateway whose scope is every device."""

    def __init__(self, devices: int) -> None:
        self.tokens = {f"bench{n:06d}".ljust(32, "t"): n + 1 for n in range(devices)}

    async def authenticate(self, info: ConnectInfo) -> DeviceIdentity | ServiceIdentity | GatewayIdentity | None:
        if (info.username, info.password) == SERVICE:
            return ServiceIdentity(info.client_id)
        if (info.username, info.password) == BRIDGE:
            return GatewayIdentity("client:bench", self)
        device = self.tokens.get(info.password or "") if info.username == "device" else None
        return DeviceIdentity(device) if device is not None else None

    async def device_for(self, token: str) -> int | None:
        return self.tokens.get(token)

    async def still_valid(self) -> bool:
        return True


async def connect(port: int, client_id: str, username: str | None = None, password: str | None = None) -> Raw:
    client = await Raw.open(port)
    await client.send(connect_packet(client_id, username=username, password=password))
    assert (await client.read_packet(timeout=30))[3] == 0, f"{client_id} refused"
    return client


async def connect_all(port: int, count: int, login: Callable[[int], tuple[str | None, str | None]]) -> list[Raw]:
    clients: list[Raw] = []
    for start in range(0, count, 100):
        clients += await asyncio.gather(
            *(connect(port, f"dev-{n}", *login(n)) for n in range(start, min(count, start + 100)))
        )
    print(f"  {len(clients)} devices connected", flush=True)
    return clients


async def measure(subscriber: Raw, send: Send, devices: int, messages: int) -> tuple[float, list[float]]:
    """Closed loop: device ``n % devices`` sends message ``n``; the subscriber's arrivals release the window."""
    latencies: list[float] = []
    window = asyncio.Semaphore(WINDOW)

    async def produce() -> None:
        for n in range(messages):
            await window.acquire()
            await send(n % devices, struct.pack("!d", time.perf_counter()))

    async def consume() -> None:
        while len(latencies) < messages:
            data = await subscriber.read_packet(timeout=30)
            latencies.append(time.perf_counter() - struct.unpack("!d", data[-8:])[0])
            window.release()

    started = time.perf_counter()
    async with asyncio.timeout(300):
        await asyncio.gather(produce(), consume())
    return messages / (time.perf_counter() - started), latencies


async def run(mode: str, devices: int, messages: int) -> tuple[float, list[float]]:
    auth = BenchAuth(devices)
    tokens = list(auth.tokens)
    settings = BrokerSettings(host="127.0.0.1", port=0, service_max_subscriptions=max(10_000, devices + 10))
    async with MqttBroker(settings, auth) as broker:
        subscriber = await connect(broker.port, "bench-sub", *SERVICE)
        await subscriber.send(subscribe_packet(1, "d/+/ds/#"))
        await subscriber.read_packet()
        if mode == "direct":
            clients = await connect_all(broker.port, devices, lambda n: ("device", tokens[n]))

            async def send(n: int, payload: bytes) -> None:
                await clients[n].send(publish_packet("ds/Temperature", payload))

            await measure(subscriber, send, devices, min(messages, 1000))  # warm-up
            result = await measure(subscriber, send, devices, messages)
            for client in clients:
                await client.close()
            return result
        with tempfile.TemporaryDirectory() as workdir:
            prefixes = {f"site/d{n}/": token for n, token in enumerate(tokens)}
            config = bridge_config(free_port(), broker.port, *BRIDGE, prefixes, "bench-bridge")
            with running_mosquitto(config, Path(workdir)) as mosquitto:
                await asyncio.to_thread(mosquitto.bridge_connected, "bench-bridge", 120)
                clients = await connect_all(mosquitto.port, devices, lambda _n: (None, None))

                async def send(n: int, payload: bytes) -> None:
                    await clients[n].send(publish_packet(f"site/d{n}/ds/Temperature", payload))

                await measure(subscriber, send, devices, min(messages, 1000))  # warm-up (tokens resolved)
                result = await measure(subscriber, send, devices, messages)
                for client in clients:
                    await client.close()
                return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=20_000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    rows = []
    for mode in ("direct", "bridged"):
        print(f"{mode}: {args.devices} devices, {args.messages} messages", flush=True)
        rate, latencies = asyncio.run(run(mode, args.devices, args.messages))
        q = statistics.quantiles(latencies, n=100)
        rows.append((mode, rate, q[49] * 1000, q[98] * 1000))
    print(f"\n{args.devices} devices, {args.messages} messages, QoS 0, window {WINDOW}")
    print(f"{'':10} {'msgs/s':>10} {'p50 ms':>8} {'p99 ms':>8}")
    for mode, rate, p50, p99 in rows:
        print(f"{mode:10} {rate:>10,.0f} {p50:>8.2f} {p99:>8.2f}")


if __name__ == "__main__":
    main()
