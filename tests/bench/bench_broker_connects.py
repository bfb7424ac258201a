"""Connects a second and memory a connection: openblynk's broker beside Debian's Mosquitto.

    .venv/bin/python tests/bench/bench_broker_connects.py [--devices 5000] [--runs 3]
        [--trace 30] [--profile DIR]

Each broker runs alone in its own process on a free loopback port: Mosquitto
(``/usr/sbin/mosquitto``, anonymous) and openblynk's broker as ``openblynk broker`` runs it
(uvloop, the same garbage-collector thresholds, ``sink_acks`` on) but with a token table for an
authenticator instead of PostgreSQL, so the figures are the broker's own (the token lookup of
the real process is measured by ``bench_broker_vs_mosquitto.py --only idle``). The load client
is the one of that benchmark (``tests/bench/loadgen.c``, built here with gcc): ``--devices``
devices connect, 64 at a time, each with a token and clean session, and subscribe to
``downlink/#`` at QoS 1 as Blynk devices do. Printed for each broker and run, the brokers taking
turns: connects a second (the load client's clock, CONNECT to SUBACK), the broker's CPU time a
connect (``/proc/<pid>/stat``, which the machine's load moves less than the wall clock) and its
resident memory a connection (VmRSS growth / connections). Medians at the end.

``--trace N``: one more run of openblynk's broker on asyncio's own loop with ``tracemalloc``,
printing the N source lines that allocated the most memory still held per connection.
``--profile DIR``: py-spy profiles (raw folded stacks) of openblynk's broker during each storm.
Loopback only; prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import resource
import signal
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_broker_vs_mosquitto import (  # noqa: E402
    WORK,
    Client,
    Load,
    Profiler,
    build_loadgen,
    cpu_seconds,
    memory,
    mosquitto,
    say,
)

from backend.cli import BROKER_GC_THRESHOLDS  # noqa: E402
from broker import BrokerSettings, ConnectInfo, DeviceIdentity, MqttBroker  # noqa: E402

TOKEN = "bench-token-"
WARM_UP = 50  # devices connected before the figures start (first-connect costs, imports)


class TokenTable:
    """``device`` / ``bench-token-<n>`` is device n; anything else is refused."""

    async def authenticate(self, info: ConnectInfo) -> DeviceIdentity | None:
        password = info.password or ""
        if info.username == "device" and password.startswith(TOKEN):
            return DeviceIdentity(int(password[len(TOKEN) :]))
        return None


# ---- child mode: the broker process ------------------------------------------------------------


async def serve(trace: bool) -> None:
    """Run openblynk's broker until SIGTERM; print its port; on SIGUSR1 print what tracemalloc
    holds beyond the previous SIGUSR1 (the first one only takes the reference)."""
    settings = BrokerSettings(host="127.0.0.1", port=0, sink_acks=True, device_rate_limit=1e6)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    reference: list[tracemalloc.Snapshot] = []

    def snapshot() -> None:
        gc.collect()
        taken = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
        if not reference:
            reference.append(taken)
            print("SNAPSHOT", flush=True)
            return
        stats = taken.compare_to(reference[0], "lineno")
        print(f"HELD {sum(s.size_diff for s in stats)}", flush=True)
        for stat in stats[:100]:
            frame = stat.traceback[0]
            print(f"LINE {stat.size_diff} {stat.count_diff} {frame.filename}:{frame.lineno}", flush=True)
        print("END", flush=True)

    if trace:
        tracemalloc.start()
        loop.add_signal_handler(signal.SIGUSR1, snapshot)
    async with MqttBroker(settings, TokenTable()) as mqtt:
        print(f"PORT {mqtt.port}", flush=True)
        await stop.wait()


def child(trace: bool) -> None:
    if trace:
        asyncio.run(serve(trace))
        return
    import uvloop

    gc.set_threshold(*BROKER_GC_THRESHOLDS)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(trace))


@contextmanager
def openblynk(trace: bool = False) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """(process, port) of openblynk's broker in a child process."""
    cmd = [sys.executable, __file__, "--serve", *(["--traced"] if trace else [])]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("PORT "):
        proc.kill()
        raise RuntimeError(f"openblynk's broker did not start: {line!r}")
    try:
        yield proc, int(line.split()[1])
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---- the parent: load and figures -----------------------------------------------------------------


def devices(prefix: str, first: int, count: int) -> list[Client]:
    return [
        Client(f"{prefix}{n}", "device", f"{TOKEN}{n}", True, "downlink/#", "ds/Temperature")
        for n in range(first, first + count)
    ]


def storm(
    binary: Path, pid: int, port: int, count: int, profile: tuple[Profiler, str] | None = None
) -> tuple[float, float, float]:
    """(connects a second, broker CPU microseconds a connect, broker KB a connection)."""
    load = Load(binary, port)
    try:
        load.connect("warm", devices("warm", 1_000_000, WARM_UP))
        time.sleep(1)
        if profile is not None:
            profile[0].start(profile[1], {"broker": pid})
        rss, cpu = memory(pid), cpu_seconds(pid)
        connected, seconds = load.connect("storm", devices("dev", 1, count))
        cpu = cpu_seconds(pid) - cpu
        if profile is not None:
            profile[0].stop()
        time.sleep(1)
        grown = memory(pid) - rss
    finally:
        load.quit()
    done = max(connected, 1)
    return connected / seconds, cpu / done * 1e6, grown / done / 1024


def traced(binary: Path, count: int, lines: int) -> None:
    """Where openblynk's broker holds memory per connection (see the module docstring)."""
    say(f"openblynk (asyncio loop, tracemalloc): {count:,} devices connect")
    with openblynk(trace=True) as (proc, port):
        assert proc.stdout is not None
        load = Load(binary, port)
        try:
            load.connect("warm", devices("warm", 1_000_000, WARM_UP))
            proc.send_signal(signal.SIGUSR1)
            assert proc.stdout.readline().startswith("SNAPSHOT")
            connected, _seconds = load.connect("storm", devices("dev", 1, count))
            proc.send_signal(signal.SIGUSR1)
            held = int(proc.stdout.readline().split()[1])
            rows = []
            while (line := proc.stdout.readline()).startswith("LINE"):
                _, size, blocks, where = line.split(maxsplit=3)
                rows.append((int(size), int(blocks), where.strip()))
        finally:
            load.quit()
    done = max(connected, 1)
    print(f"\nopenblynk, Python memory held a connection (tracemalloc): {held / done / 1024:.1f} KB")
    print(f"{'bytes':>8} {'blocks':>7}  allocated at (per connection)")
    for size, blocks, where in rows[:lines]:
        print(f"{size / done:8.0f} {blocks / done:7.2f}  {where.replace(str(Path.cwd()) + '/', '')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3, help="storms per broker, the brokers taking turns")
    parser.add_argument("--trace", type=int, default=0, metavar="N", help="also print the N top allocation lines")
    parser.add_argument("--profile", type=Path, help="record py-spy profiles of openblynk's broker here")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--traced", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        child(args.traced)
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = args.devices + WARM_UP + 1000  # a descriptor a connection, in each process
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise SystemExit(f"{needed} open files needed, the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, needed), hard))
    WORK.mkdir(parents=True, exist_ok=True)
    binary = build_loadgen()
    profiler = Profiler(args.profile)
    results: dict[str, list[tuple[float, float, float]]] = {"openblynk": [], "mosquitto": []}
    for run in range(1, args.runs + 1):
        for who in ("openblynk", "mosquitto") if run % 2 else ("mosquitto", "openblynk"):
            say(f"run {run}, {who}: {args.devices:,} devices connect (load average {os.getloadavg()[0]:.1f})")
            if who == "openblynk":
                with openblynk() as (proc, port):
                    profile = (profiler, f"connects-run{run}") if args.profile else None
                    figures = storm(binary, proc.pid, port, args.devices, profile)
            else:
                with mosquitto() as (pid, port):
                    figures = storm(binary, pid, port, args.devices)
            results[who].append(figures)
            say(
                f"  = {figures[0]:,.0f} connects/s, {figures[1]:,.0f} us CPU a connect, {figures[2]:.1f} KB a connection"
            )
    print(f"\n{args.devices:,} devices connecting (64 at a time) and subscribing, {args.runs} runs each, medians")
    print(f"{'':34} {'openblynk':>12} {'Mosquitto':>12} {'ratio':>7}")
    for index, label in enumerate(("connects a second", "broker CPU a connect (us)", "memory a connection (KB)")):
        ours = statistics.median(r[index] for r in results["openblynk"])
        theirs = statistics.median(r[index] for r in results["mosquitto"])
        print(f"{label:34} {ours:12,.1f} {theirs:12,.1f} {ours / theirs:6.2f}x")
    for who, runs in results.items():
        print(f"  {who} runs: " + "; ".join(f"{c:,.0f}/s {u:,.0f} us {k:.1f} KB" for c, u, k in runs))
    if args.trace:
        traced(binary, args.devices, args.trace)


if __name__ == "__main__":
    main()
