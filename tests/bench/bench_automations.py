"""Automations benchmark: what 1,000 active device-state automations cost the ingest, and how long
a device's value takes to switch another device. Prints figures; asserts nothing.

    .venv/bin/python tests/bench/bench_automations.py [--messages 200000] [--automations 1000] [--runs 3]
        [--samples 200] [--datastreams 1] [--only with|without]

1. **Ingest rate**, side by side in one process and database: the app's ingest loop (as in
   bench_ingest.py: message -> check -> latest value -> history rows committed -> acknowledged)
   fed QoS 1 ``ds/Temperature`` messages from 1,000 devices, once with no automation and once
   with the automation engine holding ``--automations`` enabled device-state automations, one per
   device, on that datastream (``lt -100``: evaluated on every value, never firing, the usual
   state of a threshold rule). Runs alternate, the medians are compared. With ``--datastreams
   N`` each device sends N double datastreams in turn and the automations watch the first, so
   one value in N is evaluated (1, the default, is the worst case: every value is watched).
   ``--only with`` (or ``without``) runs one side alone, for a profiler: callgrind's instructions
   a message are the difference of two ``--messages`` counts, which cancels the start-up; with
   ``--flush-seconds 3600`` no flush depends on how long the run takes (under callgrind the app
   runs ~50 times slower, and the history's flush by age would count with the time).
2. **Trigger -> downlink latency** through the real broker and app processes, with the same
   1,000 automations loaded: a paho sensor publishes a value that crosses a threshold, a paho
   pump receives ``downlink/ds/<name>`` from the automation's control action; from the publish
   call to the pump's receipt, ``--samples`` times (a value back below the threshold re-arms the
   rule between samples). Every process shares this machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import psycopg  # noqa: E402
from _support import progress, scratch_database  # noqa: E402
from bench_ingest import CountingPublisher, ReceivedMessages  # noqa: E402
from psycopg.types.json import Jsonb  # noqa: E402

from backend.automations.engine import AutomationEngine  # noqa: E402
from backend.db.engine import Database  # noqa: E402
from backend.db.migrate import migrate  # noqa: E402
from backend.devices.context import DeviceServices  # noqa: E402
from backend.devices.data import DataService  # noqa: E402
from backend.devices.latest import LatestValues  # noqa: E402
from backend.devices.registry import DeviceRegistry  # noqa: E402
from backend.devices.signals import DeviceSignals  # noqa: E402
from backend.history.partitions import ensure_partitions  # noqa: E402
from backend.history.writer import HistoryWriter  # noqa: E402
from backend.ingest.service import IngestService  # noqa: E402
from backend.scheduler import Scheduler  # noqa: E402
from backend.server.pump import ingest_loop  # noqa: E402
from backend.settings import Settings  # noqa: E402
from backend.transport.mqtt import Message  # noqa: E402
from tests.support.automation_stack import engine_stack  # noqa: E402
from tests.support.paho import connect_device  # noqa: E402
from tests.support.provision import provision_async, thermostat_doc  # noqa: E402


async def pipeline(
    db: Database,
    url: str,
    device_ids: list[int],
    count: int,
    engine_on: bool,
    streams: int = 1,
    flush_seconds: float | None = None,
) -> tuple[float, float]:
    """Rows a second through the ingest loop, with or without the engine listening, and this
    process's CPU time per message in microseconds (the app's share: PostgreSQL's is apart).
    ``flush_seconds``: how often the history is flushed by age (None: as the
    app does; a long time makes the work independent of the wall clock, for a profiler)."""
    settings = Settings()
    registry = DeviceRegistry(db.pool, ttl=3600)
    history = HistoryWriter(
        db.pool,
        batch_rows=settings.history_batch_rows,
        flush_seconds=settings.history_flush_seconds if flush_seconds is None else flush_seconds,
    )
    latest = LatestValues(db.pool)
    signals = DeviceSignals()
    data = DataService(latest, history, CountingPublisher(), signals=signals)
    services = DeviceServices.build(db.pool, data, settings)
    ingest = IngestService(registry, data, services)
    engine = AutomationEngine(db.pool, Scheduler(url, []), signals, registry, data, services.timeline)
    if engine_on:
        await engine.start()
    messages = [
        Message(
            f"d/{device_ids[i % len(device_ids)]}/ds/{stream_name(i // len(device_ids) % streams)}",
            f"{20 + i % 50 / 10}".encode(),
            1,
            False,
            i + 1,
        )
        for i in range(count)
    ]
    for device_id in device_ids:  # a running server knows its active devices and their latest values
        await registry.get(device_id)
        await latest.get_all(device_id)
    history.start()
    services.start()
    t0, cpu0 = time.perf_counter(), time.process_time()
    await ingest_loop(ReceivedMessages(messages), ingest, history)  # type: ignore[arg-type]  # a stand-in client
    await history.stop()
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    progress("with automations" if engine_on else "without", count, count)
    await services.stop()
    await engine.stop()
    return count / elapsed, cpu / count * 1e6


def stream_name(n: int) -> str:
    """The datastreams values are sent to: the thermostat's Temperature (V0, watched), then
    Extra1, Extra2... (V11, V12...)."""
    return "Temperature" if n == 0 else f"Extra{n}"


def add_automations(url: str, org_id: int, device_ids: list[int], pin: int) -> None:
    """One never-firing device-state automation per device (``lt -100`` on ``pin``)."""
    with psycopg.connect(url, autocommit=True) as conn:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO automation (org_id, name, condition, actions) VALUES (%s, %s, %s, %s)",
                [
                    (
                        org_id,
                        f"idle {device_id}",
                        Jsonb({"type": "device_state", "device_id": device_id, "pin": pin, "op": "lt", "value": -100}),
                        Jsonb([{"type": "control", "target": {"device_id": device_id}, "pin": 1, "value": "1"}]),
                    )
                    for device_id in device_ids
                ],
            )
            for (automation_id,) in conn.execute("SELECT id FROM automation").fetchall():  # running apps load them
                conn.execute("SELECT pg_notify('openblynk_changes', %s)", (f"automation:{automation_id}",))


Figures = tuple[list[float], list[float], list[float], list[float]]


async def ingest_rates(args: argparse.Namespace, url: str) -> Figures:
    doc = thermostat_doc("bench", devices=args.automations)
    doc["templates"][0]["datastreams"][0]["save_raw"] = True
    doc["templates"][0]["datastreams"] += [
        {"pin": f"V{10 + n}", "name": stream_name(n), "type": "double", "min": -40, "max": 85, "save_raw": True}
        for n in range(1, args.datastreams)
    ]
    device_ids = [d.id for d in (await provision_async(url, doc)).devices]
    with psycopg.connect(url) as conn:
        org = conn.execute("SELECT org_id FROM device WHERE id = %s", (device_ids[0],)).fetchone()
    assert org is not None
    add_automations(url, org[0], device_ids, 0)
    without: list[float] = []
    with_: list[float] = []
    cpu_without: list[float] = []
    cpu_with: list[float] = []
    async with Database(url, pool_size=4) as db:
        await ensure_partitions(db.pool)
        for run in range(args.runs):
            for engine_on in (False, True) if run % 2 == 0 else (True, False):
                if args.only is not None and engine_on != (args.only == "with"):
                    continue
                async with db.pool.connection() as conn:
                    await conn.execute("TRUNCATE history, history_minute, history_hour")
                    await conn.execute("CHECKPOINT")
                rate, cpu = await pipeline(
                    db, url, device_ids, args.messages, engine_on, args.datastreams, args.flush_seconds
                )
                (with_ if engine_on else without).append(rate)
                (cpu_with if engine_on else cpu_without).append(cpu)
    return without, with_, cpu_without, cpu_with


def latencies(args: argparse.Namespace, server_url: str, template: str) -> list[float]:
    """Seconds from the sensor's publish to the pump's downlink, with 1,000 automations loaded."""
    found: list[float] = []
    with engine_stack(server_url, template, devices=2, device_rate_limit="100000") as stack:
        sensor_info, pump_info = stack.devices
        others = [d.id for d in provision_sync(stack.config.database_url, args.automations - 1)]
        add_automations(stack.config.database_url, stack.org_id, others, 0)
        stack.add(
            {"type": "device_state", "device_id": sensor_info.id, "pin": 0, "op": "gt", "value": 50},
            [{"type": "control", "target": {"device_id": pump_info.id}, "pin": 2, "value": "go"}],
        )
        print(f"  app loaded {stack.apps[0].health()['automations']:,} automations", file=sys.stderr)
        pump = connect_device(stack.config, pump_info)
        sensor = connect_device(stack.config, sensor_info, subscribe=False)
        try:
            pump.drain()
            for n in range(args.samples):
                t0 = time.perf_counter()
                sensor.publish("ds/Temperature", "60", qos=1)
                pump.next(timeout=30, topic_prefix="downlink/ds/Label")
                found.append(time.perf_counter() - t0)
                sensor.publish("ds/Temperature", "40", qos=1)  # re-arms
                progress("trigger -> downlink", n + 1, args.samples)
        finally:
            pump.close()
            sensor.close()
    return found


def provision_sync(url: str, count: int) -> list[Any]:
    return asyncio.run(provision_async(url, thermostat_doc(uuid.uuid4().hex[:6], devices=count))).devices


def database(server: str, name: str) -> str:
    """The URL of database ``name`` on the server of ``server``."""
    base, _, query = server.partition("?")
    return f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(args: argparse.Namespace) -> None:
    with scratch_database("bench-automations") as server:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute("CREATE DATABASE bench_ingest_db")
            conn.execute("CREATE DATABASE bench_template")
        migrate(database(server, "bench_ingest_db"))
        migrate(database(server, "bench_template"))
        without, with_, cpu_without, cpu_with = asyncio.run(ingest_rates(args, database(server, "bench_ingest_db")))
        found = latencies(args, server, "bench_template") if args.samples else []
    print(
        f"\nautomations benchmark: ingest loop, {args.messages:,} QoS 1 messages from {args.automations:,} devices "
        f"over {args.datastreams} datastream(s), 1 in {args.datastreams} watched (raw points and rollups), "
        f"{args.runs} run(s) of each, median (lowest-highest)"
    )
    if args.only is not None:
        rates, cpus = (with_, cpu_with) if args.only == "with" else (without, cpu_without)
        print(
            f"  {args.only} automations only: {statistics.median(rates):,.0f} rows/s, {statistics.median(cpus):.2f} us CPU"
        )
        return
    a, b = statistics.median(without), statistics.median(with_)
    print(f"  no automations                         {a:>10,.0f} rows/s  ({min(without):,.0f}-{max(without):,.0f})")
    print(
        f"  {args.automations:,} device-state automations        {b:>10,.0f} rows/s  ({min(with_):,.0f}-{max(with_):,.0f})"
    )
    ratios = ", ".join(f"{w / n:.0%}" for n, w in zip(without, with_, strict=True))
    print(f"  with / without                         {b / a:>10.0%}         (run by run: {ratios})")
    c, d = statistics.median(cpu_without), statistics.median(cpu_with)
    print(
        f"  app CPU per message: without {c:.2f} us, with {d:.2f} us: {c / d:.0%} of the rate "
        "the app's own CPU allows without them"
    )
    if not args.samples:
        return
    print(
        f"trigger -> downlink through the broker and app, {len(found)} samples, {args.automations:,} automations loaded: "
        f"p50 {percentile(found, 0.5) * 1000:.1f} ms, p99 {percentile(found, 0.99) * 1000:.1f} ms, "
        f"max {max(found) * 1000:.1f} ms"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--automations", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--datastreams", type=int, default=1, help="datastreams each device sends, one watched")
    parser.add_argument("--only", choices=("with", "without"), help="run one side alone (for a profiler)")
    parser.add_argument(
        "--flush-seconds",
        type=float,
        help="flush the history by size only until then (for a profiler: no wall-clock work)",
    )
    main(parser.parse_args())
