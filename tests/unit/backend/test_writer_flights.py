"""The history writer's batches in flight: at most ``in_flight`` written at a time, settled in
the order they were taken whatever order they commit in, and nothing settled after a batch
that was given up. ``write`` is replaced by a script, so no database is needed: what is
tested is the scheduling, which the storage tests then run against PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import psycopg

from backend.history.writer import HistoryRow, HistoryWriter, NewestValues, Row

AT = datetime(2026, 1, 1, tzinfo=UTC)


class ScriptedWriter(HistoryWriter):
    """A writer whose batches wait for the test to let them commit (or fail)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(None, **kwargs)  # type: ignore[arg-type]  # no pool: write() is replaced
        self.gates: dict[float, asyncio.Event] = {}  # first value of a batch -> its commit
        self.failing: set[float] = set()  # batches whose database is unreachable
        self.writing = 0
        self.most_writing = 0
        self.committed: list[float] = []

    async def write(self, batch: list[Row], latest: NewestValues | None = None) -> None:  # type: ignore[override]
        first = batch[0][3]
        assert first is not None
        self.writing += 1
        self.most_writing = max(self.most_writing, self.writing)
        try:
            await self.gates.setdefault(first, asyncio.Event()).wait()
            if first in self.failing:
                raise psycopg.OperationalError("the database is down")
            self.committed.append(first)
        finally:
            self.writing -= 1


async def add_batches(writer: ScriptedWriter, batches: int, rows: int, first: int = 0) -> list[list[int]]:
    """Add ``batches`` batches of ``rows`` rows (values ``first``, ``first + 1``...), each
    followed by an after-commit callback; the callbacks record the settled count when they ran."""
    ran: list[list[int]] = []
    for b in range(batches):
        for r in range(rows):
            await writer.add_many([HistoryRow(1, 0, AT, float(first + b * rows + r), None)])
        writer.after_commit(lambda b=b: ran.append([b, writer.settled]))
    return ran


async def until(condition: object, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.001)


async def test_batches_commit_out_of_order_but_settle_in_order() -> None:
    writer = ScriptedWriter(batch_rows=3, flush_seconds=0.01, in_flight=2)
    writer.start()
    ran = await add_batches(writer, 2, 3)
    await until(lambda: writer.writing == 2)  # both batches are being written at once
    writer.gates[3.0].set()  # the second commits first...
    await until(lambda: writer.committed == [3.0])
    await asyncio.sleep(0.02)
    assert writer.settled == 0 and ran == []  # ...but nothing is settled before the first
    writer.gates[0.0].set()
    await until(lambda: len(ran) == 2)
    assert ran == [[0, 3], [1, 6]] and writer.settled == 6  # the first, then the second
    await writer.stop()


async def test_no_more_than_in_flight_batches_are_written_at_once() -> None:
    writer = ScriptedWriter(batch_rows=2, flush_seconds=0.01, in_flight=2)
    writer.start()
    ran = await add_batches(writer, 5, 2)
    await until(lambda: writer.writing == 2)
    await asyncio.sleep(0.05)
    assert writer.writing == 2 and writer._queue.qsize() == 6  # the third batch waits its turn
    for value in (0.0, 2.0, 4.0, 6.0, 8.0):
        writer.gates.setdefault(value, asyncio.Event()).set()
    await until(lambda: len(ran) == 5)
    assert writer.most_writing == 2 and [b for b, _ in ran] == [0, 1, 2, 3, 4]
    await writer.stop()


async def test_after_a_batch_given_up_at_stop_nothing_later_is_settled() -> None:
    """Settling counts rows in order: settling a later batch would settle (and so acknowledge
    to the broker) the rows of the one that was given up."""
    writer = ScriptedWriter(batch_rows=3, flush_seconds=0.01, in_flight=2)
    writer.start()
    ran = await add_batches(writer, 1, 3)
    await until(lambda: writer.writing == 1)
    ran += await add_batches(writer, 1, 2, first=3)  # the last batch, taken when stop() closes the queue
    writer.failing.add(0.0)
    writer.gates[0.0].set()  # the first batch's database is down: it retries until stop gives up
    stopping = asyncio.create_task(writer.stop(timeout=1.0))
    await until(lambda: writer.writing == 1 and 3.0 in writer.gates)
    writer.gates[3.0].set()  # the later batch commits
    await stopping
    assert writer.committed == [3.0]
    assert writer.settled == 0 and ran == []


async def test_keep_pace_waits_while_the_writer_is_behind() -> None:
    """The ingest waits for the writer once more rows are queued than its batches in flight
    take at once, and goes on as soon as the writer takes the next batch."""
    writer = ScriptedWriter(batch_rows=2, flush_seconds=0.01, in_flight=2)
    await asyncio.wait_for(writer.keep_pace(), 1)  # not running: nothing to wait for
    writer.start()
    await add_batches(writer, 2, 2)
    await until(lambda: writer.writing == 2)  # both batches in flight, nothing queued
    await asyncio.wait_for(writer.keep_pace(), 1)
    await add_batches(writer, 2, 2, first=4)
    await add_batches(writer, 1, 1, first=8)  # five queued, more than the four in flight take
    pacing = asyncio.create_task(writer.keep_pace())
    await asyncio.sleep(0.05)
    assert not pacing.done()
    writer.gates[0.0].set()  # a batch is written: the writer takes the next one
    await asyncio.wait_for(pacing, 1)
    assert writer._queue.qsize() == 3
    for value in (2.0, 4.0, 6.0, 8.0):
        writer.gates.setdefault(value, asyncio.Event()).set()
    await writer.stop()
