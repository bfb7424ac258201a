"""MQTT 5 beside MQTT 3.1.1 through openblynk's broker: the same load, paho clients at each version.

A paho device (a Blynk token) publishes ``ds/Temperature`` and a paho service client subscribed
to ``d/+/ds/#`` receives it, both speaking the protocol under test; a closed loop keeps
``--window`` messages in flight. Each message carries its send time, so the figures are
throughput (messages delivered a second) and latency from ``publish()`` to ``on_message``
(p50, p99), at QoS 0 and at QoS 1 (both legs). The broker runs in its own process (the
project's MqttBroker on a free loopback port, with the integration tests' authenticator and
the device rate limit lifted), so the clients do not share its interpreter. Versions alternate
(3.1.1 first in odd rounds, v5 first in even ones) so a change in the machine's load falls on
both; the medians of the rounds are printed side by side.

Run: ``.venv/bin/python tests/bench/bench_mqtt5.py [--rounds 5] [--messages 5000]``.
Progress on stderr; every phase has a timeout and the whole run stops at ``--max-seconds``.
Not a pass/fail test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "integration" / "broker"))
sys.path.insert(0, str(ROOT))

import paho.mqtt.client as mqtt  # noqa: E402
from _broker_harness import SERVICE_PASSWORD, SERVICE_USER, ours, token  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

VERSIONS = {"3.1.1": mqtt.MQTTv311, "5": mqtt.MQTTv5}
PHASE_TIMEOUT = 120.0  # seconds for one measurement
DEVICE_ID = 1


@dataclass
class Figures:
    """One measurement: messages a second, and latencies in seconds."""

    rate: float
    latencies: list[float] = field(default_factory=list)

    def quantile(self, q: int) -> float:
        return statistics.quantiles(self.latencies, n=100)[q - 1]


# -- the broker, in its own process ------------------------------------------------------------


async def serve() -> None:
    """Run the broker; print its port; stop when stdin closes."""
    async with ours(device_rate_limit=1e9, rate_abuse_seconds=1e9) as harness:
        print(harness.port, flush=True)
        await asyncio.to_thread(sys.stdin.read)


def start_broker() -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.strip().isdigit():
        proc.kill()
        raise SystemExit(f"the broker did not start: {line!r}")
    return proc, int(line)


# -- the clients -------------------------------------------------------------------------------


def client(port: int, protocol: int, username: str, password: str, client_id: str) -> mqtt.Client:
    """A connected paho client running its network loop on a thread."""
    connected = threading.Event()
    paho = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=protocol,
        clean_session=None if protocol == mqtt.MQTTv5 else True,
    )
    paho.username_pw_set(username, password)
    paho.on_connect = lambda *_: connected.set()
    paho.max_inflight_messages_set(1000)
    paho.connect("127.0.0.1", port)
    paho.loop_start()
    if not connected.wait(10):
        raise SystemExit(f"{client_id}: no CONNACK within 10 s")
    return paho


def measure(port: int, version: str, qos: int, messages: int, window: int) -> Figures:
    """``messages`` values from a device to a subscriber, ``window`` in flight."""
    protocol = VERSIONS[version]
    latencies: list[float] = []
    done = threading.Event()
    slots = threading.Semaphore(window)
    subscribed = threading.Event()
    subscriber = client(port, protocol, SERVICE_USER, SERVICE_PASSWORD, f"bench-sub-{version}-{qos}")

    def on_message(_c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        latencies.append(time.perf_counter() - float(message.payload))
        slots.release()
        if len(latencies) >= messages:
            done.set()

    subscriber.on_message = on_message
    subscriber.on_subscribe = lambda *_: subscribed.set()
    subscriber.subscribe("d/+/ds/#", qos=qos)
    device = client(port, protocol, "device", token(DEVICE_ID), f"bench-dev-{version}-{qos}")
    try:
        if not subscribed.wait(10):
            raise SystemExit("the subscriber got no SUBACK within 10 s")
        started = time.perf_counter()
        deadline = started + PHASE_TIMEOUT
        for _ in range(messages):
            if not slots.acquire(timeout=max(0.0, deadline - time.perf_counter())):
                raise SystemExit(f"{version} QoS {qos}: {len(latencies)} of {messages} delivered in {PHASE_TIMEOUT} s")
            device.publish("ds/Temperature", f"{time.perf_counter():.9f}", qos=qos)
        if not done.wait(max(0.0, deadline - time.perf_counter())):
            raise SystemExit(f"{version} QoS {qos}: {len(latencies)} of {messages} delivered in {PHASE_TIMEOUT} s")
        return Figures(messages / (time.perf_counter() - started), latencies)
    finally:
        for paho in (device, subscriber):
            paho.disconnect()
            paho.loop_stop()


# -- the run -----------------------------------------------------------------------------------


def run(rounds: int, messages: int, window: int, max_seconds: float) -> None:
    proc, port = start_broker()
    results: dict[tuple[str, int], list[Figures]] = {}
    begun = time.monotonic()
    try:
        for n in range(rounds):
            order = ["3.1.1", "5"] if n % 2 == 0 else ["5", "3.1.1"]
            for version in order:
                for qos in (0, 1):
                    if time.monotonic() - begun > max_seconds:
                        print(f"  stopping: --max-seconds {max_seconds:g} reached", file=sys.stderr, flush=True)
                        return report(results, messages, window)
                    figures = measure(port, version, qos, messages, window)
                    results.setdefault((version, qos), []).append(figures)
                    print(
                        f"  round {n + 1}/{rounds} MQTT {version:5} QoS {qos}: {figures.rate:8,.0f} msg/s, "
                        f"p50 {figures.quantile(50) * 1000:5.2f} ms, p99 {figures.quantile(99) * 1000:6.2f} ms",
                        file=sys.stderr,
                        flush=True,
                    )
        report(results, messages, window)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def report(results: dict[tuple[str, int], list[Figures]], messages: int, window: int) -> None:
    load = os.getloadavg()
    print(
        f"\n{messages:,} messages a measurement, {window} in flight, medians of the rounds; "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    print(f"{'':8}| {'MQTT 3.1.1':^38} | {'MQTT 5':^38} | v5 / 3.1.1")
    for qos in (0, 1):
        cells = []
        for version in VERSIONS:
            runs = results.get((version, qos), [])
            if not runs:
                cells.append(f"{'(not measured)':^38}")
                continue
            rate = statistics.median(r.rate for r in runs)
            p50 = statistics.median(r.quantile(50) for r in runs) * 1000
            p99 = statistics.median(r.quantile(99) for r in runs) * 1000
            cells.append(f"{rate:8,.0f} msg/s p50 {p50:5.2f} p99 {p99:6.2f} ms")
        ratio = ""
        if results.get(("3.1.1", qos)) and results.get(("5", qos)):
            v3 = statistics.median(r.rate for r in results[("3.1.1", qos)])
            v5 = statistics.median(r.rate for r in results[("5", qos)])
            ratio = f"{v5 / v3:.0%} of the rate"
        print(f"QoS {qos}   | {cells[0]} | {cells[1]} | {ratio}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--window", type=int, default=20, help="messages in flight (closed loop)")
    parser.add_argument("--max-seconds", type=float, default=600.0)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve())
        return
    print(f"uptime: {os.getloadavg()} (load average 1, 5, 15 min)", file=sys.stderr, flush=True)
    run(args.rounds, args.messages, args.window, args.max_seconds)


if __name__ == "__main__":
    main()
