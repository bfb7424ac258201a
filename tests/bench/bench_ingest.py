"""Ingest pipeline benchmark: from a received MQTT message to a committed history row
(broker excluded), side by side with raw binary COPY of the same rows into the same
database. Prints figures; asserts nothing.

    .venv/bin/python tests/bench/bench_ingest.py [--messages 200000] [--devices 100] [--runs 3] [--rollups-only]

The pipeline is the app's own ingest loop (``backend.server.pump.ingest_loop``) fed QoS 1
`d/<id>/ds/Temperature` messages by a stand-in for the broker connection, which hands out
what is waiting as the real one does (here every message is waiting, as under a burst):
device lookup, value check and clamp, latest value, live feed, history batch (raw point and
minute and hour rollups), last-seen, and the acknowledgement of each message once its rows
are committed; then the writer's final flush. The datastream keeps raw data ("Save Raw
Data"), so the pipeline stores the same rows as the raw COPY; ``--rollups-only`` turns that
off (Blynk's default: one averaged point per minute, no raw rows). Downlinks go to a
counting publisher (there is no broker in this measurement).

Each run empties the tables and checkpoints first; the runs of the two alternate, which goes
first switching each time, and the medians are compared. A shared machine moves both figures
by a fifth or more between runs: read the run-by-run ratios as well as the median. A short
run measures a burst, whose last rows the database writes alone after the app has taken them
all; a long one (``--messages 400000``) comes close to the rate the pipeline sustains.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _support import progress, raw_copy, scratch_database  # noqa: E402  (also puts the repository on sys.path)

from backend.db.engine import Database  # noqa: E402
from backend.db.migrate import migrate  # noqa: E402
from backend.devices.context import DeviceServices  # noqa: E402
from backend.devices.data import DataService  # noqa: E402
from backend.devices.latest import LatestValues  # noqa: E402
from backend.devices.registry import DeviceRegistry  # noqa: E402
from backend.history.partitions import ensure_partitions  # noqa: E402
from backend.history.writer import HistoryWriter  # noqa: E402
from backend.ingest.service import IngestService  # noqa: E402
from backend.server.pump import ingest_loop  # noqa: E402
from backend.settings import Settings  # noqa: E402
from backend.transport.mqtt import Message  # noqa: E402
from tests.support.provision import provision_async  # noqa: E402


class CountingPublisher:
    """Stands in for the broker connection: counts what would be published."""

    def __init__(self) -> None:
        self.published = 0

    def publish(self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False) -> None:
        self.published += 1


class ReceivedMessages:
    """Stands in for the app's broker connection (``ServiceClient``): hands out the messages
    in batches of what is waiting (here: all of them, up to the limit the loop asks for), then
    the end of the stream, and counts the acknowledgements, which must come in order."""

    def __init__(self, messages: list[Message]) -> None:
        self._messages = messages
        self._taken = 0
        self.acknowledged = 0

    async def take(self, limit: int) -> list[Message] | None:
        batch = self._messages[self._taken : self._taken + limit]
        self._taken += len(batch)
        return batch or None

    def done_all(self, receipts: list[int]) -> None:
        for receipt in receipts:
            self.acknowledged += 1
            if receipt != self.acknowledged:
                raise AssertionError(f"acknowledged {receipt} when {self.acknowledged} was next")


async def pipeline(db: Database, device_ids: list[int], count: int) -> tuple[float, int, int]:
    settings = Settings()
    registry = DeviceRegistry(db.pool, ttl=3600)
    history = HistoryWriter(
        db.pool, batch_rows=settings.history_batch_rows, flush_seconds=settings.history_flush_seconds
    )  # as the app makes it
    latest = LatestValues(db.pool)
    publisher = CountingPublisher()
    data = DataService(latest, history, publisher)
    services = DeviceServices.build(db.pool, data, settings)
    ingest = IngestService(registry, data, services)
    messages = [
        Message(
            f"d/{device_ids[i % len(device_ids)]}/ds/Temperature",
            f"{20 + i % 50 / 10}".encode(),
            1,
            False,
            receipt=i + 1,
        )
        for i in range(count)
    ]
    client = ReceivedMessages(messages)
    for device_id in device_ids:  # a running server knows its active devices and their latest values
        await registry.get(device_id)
        await latest.get_all(device_id)
    history.start()
    services.start()
    t0 = time.perf_counter()
    await ingest_loop(client, ingest, history)  # type: ignore[arg-type]  # a stand-in client
    await history.stop()
    elapsed = time.perf_counter() - t0
    progress("pipeline", count, count)
    await services.stop()
    return count / elapsed, publisher.published, client.acknowledged


def copy_rows(device_ids: list[int], count: int) -> list[tuple[object, ...]]:
    """The rows the pipeline stores, ready for raw COPY."""
    start = datetime.now(UTC)
    return [
        (device_ids[i % len(device_ids)], 0, start + timedelta(microseconds=i), 20.0 + i % 50 / 10, None)
        for i in range(count)
    ]


async def main(args: argparse.Namespace, url: str) -> None:
    migrate(url)
    doc = {
        "templates": [
            {
                "name": "Bench",
                "datastreams": [
                    {
                        "pin": "V0",
                        "name": "Temperature",
                        "type": "double",
                        "min": -40,
                        "max": 85,
                        "save_raw": not args.rollups_only,
                    }
                ],
            }
        ],
        "devices": [{"name": f"bench-{i}", "template": "Bench"} for i in range(args.devices)],
    }
    device_ids = [d.id for d in (await provision_async(url, doc)).devices]
    copy_rates: list[float] = []
    rates: list[float] = []
    async with Database(url, pool_size=4) as db:
        await ensure_partitions(db.pool)

        async def empty() -> None:
            async with db.pool.connection() as conn:
                await conn.execute("TRUNCATE history, history_minute, history_hour")
                await conn.execute("CHECKPOINT")  # each run starts from the same state

        for run in range(args.runs):  # alternately first, so neither always runs on a warmer machine
            for first in (True, False) if run % 2 == 0 else (False, True):
                await empty()
                if first:
                    copy_rates.append(
                        await raw_copy(db.pool, copy_rows(device_ids, args.messages), Settings().history_batch_rows)
                    )
                else:
                    rate, published, acknowledged = await pipeline(db, device_ids, args.messages)
                    rates.append(rate)
        async with db.pool.connection() as conn:
            stored = (await (await conn.execute("SELECT count(*) FROM history")).fetchone())[0]  # type: ignore[index]
            minutes = (await (await conn.execute("SELECT sum(count) FROM history_minute")).fetchone())[0]  # type: ignore[index]
    kept = "rollups only" if args.rollups_only else "raw points and rollups"
    copy_rate, rate = statistics.median(copy_rates), statistics.median(rates)
    print(
        f"\ningest benchmark, {args.messages:,} QoS 1 messages from {args.devices} devices ({kept}), same database, "
        f"batches of {Settings().history_batch_rows:,} rows, {args.runs} run(s) of each, median (lowest-highest)"
    )
    print(
        f"  raw binary COPY of the same rows     {copy_rate:>12,.0f} rows/s   "
        f"({min(copy_rates):,.0f}-{max(copy_rates):,.0f})"
    )
    print(f"  ingest pipeline (message -> commit)  {rate:>12,.0f} rows/s   ({min(rates):,.0f}-{max(rates):,.0f})")
    ratios = [r / c for r, c in zip(rates, copy_rates, strict=True)]
    print(
        f"  pipeline / raw COPY                  {rate / copy_rate:>12.0%}        "
        f"(run by run: {', '.join(f'{r:.0%}' for r in ratios)})"
    )
    print(
        f"  last run: history rows stored {stored:,}, points in minute rollups {minutes:,}, "
        f"acknowledged {acknowledged:,}, downlinks published {published}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3, help="runs of each, alternating (the median is reported)")
    parser.add_argument(
        "--rollups-only", action="store_true", help="the datastream does not keep raw data (Blynk's default)"
    )
    options = parser.parse_args()
    with scratch_database("bench-ingest") as url:
        asyncio.run(main(options, url))
