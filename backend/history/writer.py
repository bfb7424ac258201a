"""History rows into PostgreSQL with binary COPY, in batches: at once when no batch is being
written (a device's QoS 1 PUBACK waits for this commit), else by size, age or when the batch
being written lands (group commit).

Rows wait in a bounded queue; ``add_many`` waits when it is full, which slows the ingest down
instead of dropping data or growing memory. A failed batch is retried with backoff and kept
(the database may be restarting); it is never silently discarded.

Raw points go straight into ``history``; the numbers are folded into the rollups in the same
transaction (:mod:`backend.history.rollup`). Two batches are written at a time, on two
connections, so PostgreSQL stores one while the app formats the next; rows are settled (and
the messages they came from acknowledged) in the order they were added all the same.

The latest values (``datastream_value``) go in the same transaction (:func:`write_latest`).
Each :meth:`HistoryWriter.add_many` call may bring the newest value of each datastream its
rows belong to; a batch ends where a call's rows end (unless one call alone has more than
``batch_rows`` rows), and upserts the latest values of the calls whose rows it holds, one
multi-row statement of the batch's distinct keys. So a device's PUBACK (or an HTTP 200),
which waits for the commit of its rows, also waits for its latest value, and any committed
state of the database, after a crash, a power loss or in a backup's snapshot, has latest values
that agree with history. (Measured, README "Performance".) A value that is not history (a
string whose datastream keeps no raw data) is queued as a *marker row* (no number, not raw):
it writes nothing but carries its latest value into a commit like any other row.

The alternative, rebuilding the latest values from history at startup or restore, cannot
work: with "Save Raw Data" off (Blynk's default) history holds only per-minute rollups (an
average, not the value) and strings are not history at all.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import NamedTuple

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from backend.history import rollup
from backend.history.partitions import ensure_partitions
from backend.tasks import finish
from backend.templates.values import db_text, shown_text

__all__ = [
    "AcksAfterCommit",
    "HistoryRow",
    "HistoryWriter",
    "NewestValues",
    "Row",
    "ensure_partitions",
    "write_latest",
    "write_rows",
]

log = logging.getLogger(__name__)

COPY_SQL = "COPY history (device_id, pin, ts, value, text_value) FROM STDIN (FORMAT BINARY)"
"""Raw rows straight into ``history`` (HTTP imports, and the benchmarks' reference)."""
COPY_TYPES = ["int4", "int2", "timestamptz", "float8", "text"]
# Errors that a retry cannot cure: the rows themselves are refused.
REFUSED = (psycopg.DataError, psycopg.IntegrityError, UnicodeEncodeError)

NewestValues = Mapping[tuple[int, int], tuple[str | float, datetime]]
"""The newest ``(value, at)`` of each ``(device_id, pin)`` (a Double's value may be its number)."""

LATEST_SQL = """
INSERT INTO datastream_value AS v (device_id, pin, value, updated_at)
SELECT n.device_id, n.pin, n.value, n.updated_at
FROM unnest(%s::int8[], %s::int2[], %s::text[], %s::timestamptz[]) AS n(device_id, pin, value, updated_at)
JOIN device d ON d.id = n.device_id
ORDER BY n.device_id, n.pin
ON CONFLICT (device_id, pin) DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at
WHERE v.updated_at <= EXCLUDED.updated_at
"""
"""The latest values of a batch in one statement, in key order (two batches in flight lock
the rows they share in the same order). An older value never replaces a newer one (batches
may commit out of order); a device deleted is skipped. (One deleted in the instant between
this statement's snapshot and its insert fails the foreign key: the batch is then written row
by row, :meth:`HistoryWriter._write_each`, and that value dropped. Locking the device rows
``FOR KEY SHARE`` would close that window at the price of a row lock on every device of every
batch; a device is deleted only after the writer settled what it had, so the window is rare.)"""


class HistoryRow(NamedTuple):
    """One point of one datastream (a named tuple: immutable, and made three times faster than
    a frozen dataclass, once per ingested value)."""

    device_id: int
    pin: int
    ts: datetime
    value: float | None
    text_value: str | None
    raw: bool = True
    """Keep the point itself; False keeps it only in the rollups (Blynk's "save raw data" off)."""


Row = rollup.Row
"""A :class:`HistoryRow` as a plain tuple, the form rows wait in. The garbage collector stops
tracking a plain tuple of numbers, strings and times, so tens of thousands of waiting rows do
not make it scan the whole heap again and again (a named tuple stays tracked)."""


class _RowQueue:
    """A bounded FIFO of rows for one consumer that takes them in batches.

    An ``asyncio.Queue`` costs a few calls and a wake-up check per row on both ends; here rows
    are a ``deque.extend`` and the consumer is woken once per batch (when enough rows wait, or
    when its deadline passes). Producers wait only while the queue is full.
    """

    def __init__(self, limit: int) -> None:
        self.rows: deque[Row] = deque()
        self.limit = limit
        self.closed = False
        """Set by :meth:`close`: the consumer takes what is left and ends."""
        self._wake_at = 1  # rows waiting that wake the consumer
        self._ready = asyncio.Event()
        self._room = asyncio.Event()

    def qsize(self) -> int:
        """Rows waiting."""
        return len(self.rows)

    def extend(self, rows: Sequence[Row]) -> None:
        """Queue rows the caller made room for (:meth:`room`)."""
        queued = self.rows
        before = len(queued)
        queued.extend(rows)
        if before < self._wake_at <= len(queued):
            self._ready.set()

    def room(self) -> int:
        """How many more rows fit now."""
        return self.limit - len(self.rows)

    async def taken(self) -> None:
        """Until the consumer next takes rows."""
        self._room.clear()
        await self._room.wait()

    def nudge(self) -> None:
        """Wake a consumer waiting in :meth:`wait` now (a batch in flight landed)."""
        self._ready.set()

    def close(self) -> None:
        """No more waiting for rows: the consumer takes what is queued and ends."""
        self.closed = True
        self._ready.set()

    def reopen(self) -> None:
        """Accept a consumer again (the writer restarted)."""
        self.closed = False

    async def wait(self, rows: int, timeout: float | None = None) -> None:
        """Until ``rows`` rows wait, the queue is closed or ``timeout`` seconds passed."""
        if len(self.rows) >= rows or self.closed:
            return
        self._wake_at = rows
        self._ready.clear()
        timer = None if timeout is None else asyncio.get_running_loop().call_later(timeout, self._ready.set)
        try:
            await self._ready.wait()
        finally:
            self._wake_at = 1
            if timer is not None:
                timer.cancel()

    def take(self, limit: int) -> list[Row]:
        """Up to ``limit`` rows, oldest first."""
        rows = self.rows
        popleft = rows.popleft
        batch = [popleft() for _ in range(min(limit, len(rows)))]
        self._room.set()
        return batch


class HistoryWriter:
    """Batches rows and writes them with binary COPY."""

    def __init__(
        self,
        pool: AsyncConnectionPool,
        *,
        batch_rows: int = 10_000,
        flush_seconds: float = 0.5,
        queue_rows: int = 100_000,
        in_flight: int = 2,
    ) -> None:
        self.pool = pool
        self.batch_rows = batch_rows
        self.flush_seconds = flush_seconds
        self.in_flight = in_flight
        """Batches written at the same time, each on its own pooled connection."""
        self._given_up = False
        self._queue = _RowQueue(queue_rows)
        self._task: asyncio.Task[None] | None = None
        self.rows_written = 0
        self.accepted = 0
        """Rows taken by :meth:`add_many` so far."""
        self.settled = 0
        """Rows done with, in the order they were added: committed, or refused by the database
        (a row that can never be written). A batch the writer gave up on at stop is not settled."""
        self._waiting: deque[tuple[int, Callable[[], None]]] = deque()
        self._calls: deque[tuple[int, NewestValues]] = deque()
        """Where the rows of each :meth:`add_many` call end (a count of rows accepted), with
        the latest values it brought, oldest first: what batches are cut by."""
        self._taken = 0
        """Rows taken into batches so far (counted as :attr:`accepted`)."""

    async def add_many(self, rows: Sequence[Row], latest: NewestValues | None = None) -> None:
        """Queue rows (plain tuples in :class:`HistoryRow` order; a :class:`HistoryRow` is one
        too), in order, and ``latest``, the newest value of datastreams these rows belong to:
        written in the transaction that commits the last of these rows. Waits while the queue
        is full, which slows the producer down instead of dropping data or growing memory;
        when they fit, it does not wait at all."""
        queue, count = self._queue, len(rows)
        if not count:
            return
        if count <= queue.room():  # the common case: all at once
            queue.extend(rows)
            self.accepted += count
            self._calls.append((self.accepted, latest or {}))
            return
        done = 0
        while done < count:
            room = queue.room()
            if room <= 0:
                await queue.taken()
                continue
            part = rows[done : done + room]
            queue.extend(part)
            self.accepted += len(part)
            done += len(part)
        self._calls.append((self.accepted, latest or {}))  # other calls' rows may be among ours

    def _cut(self, most: int) -> tuple[int, NewestValues]:
        """How many of the queued rows the next batch takes, at most ``most``: up to where the
        last call whose rows all fit ends (or ``most`` when one call alone has more), and the
        latest values of the calls it ends (the newer of a datastream's, the later on a tie)."""
        start = self._taken
        end, cut, calls = start + most, start, self._calls
        latest: NewestValues = {}
        merged: dict[tuple[int, int], tuple[str | float, datetime]] | None = None
        while calls and calls[0][0] <= end:
            cut, newest = calls.popleft()
            if not latest:
                latest = newest
                continue
            if merged is None:
                latest = merged = dict(latest)
            for key, value in newest.items():
                current = merged.get(key)
                if current is None or current[1] <= value[1]:
                    merged[key] = value
        if cut == start:  # one call's rows fill more than a batch: its latest go with its last
            cut = end
        self._taken = cut
        return cut - start, latest

    async def keep_pace(self) -> None:
        """For a producer that can outrun the writer (the ingest): wait while more rows are
        queued than the writer's batches in flight take at once (``batch_rows * in_flight``),
        so that the writer has the event loop and the database is kept busy; otherwise only
        let the other tasks have a turn.

        Without it the ingest, which never has to wait for anything, would make rows much
        faster than they are written, and the writer, whose every database round trip lets
        the ingest run again, would fall behind until the queue is full: rows would wait
        longer, and a burst would end with the database alone writing the backlog."""
        queue, ahead = self._queue, self.batch_rows * self.in_flight
        while queue.qsize() > ahead and self._task is not None and not self._task.done():
            await queue.taken()
        await asyncio.sleep(0)

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once every row added so far is settled (at once if they are).

        Callbacks run in the order they were registered. The ingest acknowledges a device's
        message to the broker this way only when the rows it produced are stored.
        """
        if self.settled >= self.accepted and not self._waiting:
            callback()
        else:
            self._waiting.append((self.accepted, callback))

    async def settled_now(self) -> None:
        """Wait until every row added so far is settled (for an erase that must not be undone
        by rows still on their way). Returns at once when the writer is not running."""
        if self._task is None or self._task.done():
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def settled() -> None:
            if not done.done():
                done.set_result(None)

        self.after_commit(settled)
        await done

    def _settle(self, rows: int) -> None:
        self.settled += rows
        while self._waiting and self._waiting[0][0] <= self.settled:
            _, callback = self._waiting.popleft()
            try:
                callback()
            except Exception:  # a callback must not stop the writer
                log.exception("after-commit callback failed")

    def start(self) -> None:
        """Start the background flusher."""
        self._queue.reopen()
        self._given_up = False
        self._task = asyncio.create_task(self._run(), name="history-writer")

    async def stop(self, timeout: float = 30.0) -> None:
        """Write everything queued, including a batch being written, then stop.

        The flusher is asked to finish (never cancelled mid-batch, which would lose it); only
        if the database does not take the rows within ``timeout`` seconds is it cancelled.
        """
        task, self._task = self._task, None
        if task is None or task.done():
            return
        self._queue.close()
        if not await finish(task, timeout):
            log.error("history writer did not finish within %.0f s; %d rows not written", timeout, self._queue.qsize())

    async def _run(self) -> None:
        """Take batches and write each in its own task, at most ``in_flight`` at a time on
        their own connections: while PostgreSQL digests one batch (most of a batch's time),
        the next is formatted and sent. Batches are settled in the order they were taken,
        whatever order they commit in."""
        queue = self._queue
        flights: deque[tuple[asyncio.Task[bool], int]] = deque()  # (its task, its rows), oldest first
        try:
            while True:
                while len(flights) >= self.in_flight:  # rows wait in the queue meanwhile
                    await asyncio.wait([flights[0][0]])
                await queue.wait(1)
                if not queue.qsize() and not queue.closed:
                    continue  # woken by a batch that landed (``nudge``), with nothing queued
                if not queue.closed and flights:  # one is being written: this one fills meanwhile,
                    # up to ``batch_rows`` rows, ``flush_seconds`` or until that one lands
                    await queue.wait(self.batch_rows, self.flush_seconds)
                # else nothing is being written: the rows go now (group commit), so that a
                # device's PUBACK, which waits for this commit, waits one commit when idle
                closing = queue.closed and queue.qsize() <= self.batch_rows
                count, latest = self._cut(queue.qsize() if closing else min(queue.qsize(), self.batch_rows))
                batch = queue.take(count)
                if not batch:
                    break
                flight = asyncio.create_task(self._flight(batch, latest, closing), name="history-batch")
                flights.append((flight, len(batch)))
                flight.add_done_callback(lambda _flight: self._landed(flights))
                if closing:
                    break
            if flights:
                await asyncio.wait([flight for flight, _ in flights])
        finally:  # cancelled by stop() after its timeout: so are the batches still being written
            for flight, _ in flights:
                flight.cancel()

    async def _flight(self, batch: list[Row], latest: NewestValues, closing: bool) -> bool:
        """Write one batch; whether it may be settled (False: given up at stop)."""
        try:
            return await self._write_with_retry(batch, latest, attempts=3 if closing else None)
        except Exception:  # never let the writer die: the next batch must still be written
            log.exception("history batch of %d rows lost", len(batch))
            return True

    def _landed(self, flights: deque[tuple[asyncio.Task[bool], int]]) -> None:
        """Settle the batches at the head of ``flights`` that are done, in order. After a batch
        that was given up or cancelled (at stop), none is: settling counts rows in order, so
        it would settle the rows of that batch instead."""
        self._queue.nudge()  # a batch filling up meanwhile may go now
        while flights and flights[0][0].done():
            flight, rows = flights.popleft()
            if flight.cancelled() or not flight.result():
                self._given_up = True
            if not self._given_up:
                self._settle(rows)

    async def _write_with_retry(self, batch: list[Row], latest: NewestValues, attempts: int | None = None) -> bool:
        """Write ``batch``, retrying while the database is unreachable; False if given up."""
        delay, tried = 0.5, 0
        while True:
            try:
                await self.write(batch, latest)
                return True
            except REFUSED as exc:  # a row the database refuses: keep the others
                log.error("history batch refused (%s); writing its %d rows one by one", exc, len(batch))
                await self._write_each(batch, latest)
                return True
            except (psycopg.OperationalError, OSError) as exc:
                tried += 1
                if attempts is not None and tried >= attempts:
                    log.error(
                        "gave up writing %d history rows after %d attempts: %s (their messages stay "
                        "unacknowledged in the broker and come again)",
                        len(batch),
                        tried,
                        exc,
                    )
                    return False
                log.warning("history write failed (%s); retrying %d rows in %.1f s", exc, len(batch), delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _write_each(self, batch: list[Row], latest: NewestValues) -> None:
        for row in batch:
            try:
                await self.write([row])
            except REFUSED as exc:
                log.error("dropped a history row of device %s pin V%s: %s", row[0], row[1], exc)
        for key, value in latest.items():
            try:
                async with self.pool.connection() as conn:
                    async with conn.transaction():
                        await write_latest(conn, {key: value})
            except REFUSED as exc:
                log.error("dropped the latest value of device %s pin V%s: %s", key[0], key[1], exc)

    async def write(self, batch: Sequence[Row], latest: NewestValues | None = None) -> None:
        """Write one batch (:class:`HistoryRow` s or their tuples) and the latest values it
        brings in one transaction (:func:`write_rows`)."""
        async with self.pool.connection() as conn:
            async with conn.transaction():
                await write_rows(conn, batch, latest)
        self.rows_written += len(batch)


async def write_latest(conn: AsyncConnection, latest: NewestValues) -> None:
    """Upsert latest values in the caller's transaction (:data:`LATEST_SQL`)."""
    if not latest:
        return
    keys = sorted(latest)
    values = [latest[key] for key in keys]
    await conn.execute(
        LATEST_SQL,
        (
            [device_id for device_id, _ in keys],
            [pin for _, pin in keys],
            [db_text(shown_text(value)) for value, _ in values],
            [at for _, at in values],
        ),
    )


async def write_rows(conn: AsyncConnection, batch: Sequence[Row], latest: NewestValues | None = None) -> None:
    """History rows in the caller's transaction: raw ones (the ``raw`` flag, the datastream's
    "Save Raw Data") with binary COPY, then the numbers of all into the rollups. The writer's
    batches and the HTTP device API's imports (``backend.device_api.batch``) both use it.

    The transaction commits synchronously whatever the server's ``synchronous_commit`` says
    (clusters made before 2026-12-06 by ``backend.db.embedded`` have it off): a device's PUBACK
    and an HTTP 200 follow this commit, so it must survive a power loss (README, "What each QoS
    promises"). Group commit keeps that to one WAL flush a batch.

    ``latest`` (the newest values of the batch's datastreams) is upserted last, after the
    rollups, in every transaction in the same order of statements and keys: two batches in
    flight wait for each other instead of deadlocking. A marker row (no number, not raw) writes
    nothing; it only carries a latest value (module docstring)."""
    await conn.execute("SET LOCAL synchronous_commit = on")
    async with conn.cursor().copy(COPY_SQL) as copy:
        copy.set_types(COPY_TYPES)
        write_row = copy.write_row
        for device_id, pin, ts, value, text, raw in batch:
            if raw:
                await write_row((device_id, pin, ts, value, None if text is None else db_text(text)))
        # Still inside the COPY: PostgreSQL is storing the rows sent so far meanwhile.
        try:
            levels = rollup.aggregate_levels(batch)
        except (TypeError, AttributeError):  # a malformed row, which the COPY refuses too:
            levels = None  # let it say so (REFUSED), then the rows go one by one
    await rollup.merge_levels(conn, rollup.aggregate_levels(batch) if levels is None else levels)
    if latest:
        await write_latest(conn, latest)


class AcksAfterCommit:
    """Hands the receipts of messages to ``done`` once the rows added before them are settled,
    in the order the receipts came (what the ingest owes the broker, see
    ``backend.transport.mqtt``).

    The same as one :meth:`HistoryWriter.after_commit` per message, at a fraction of the cost:
    the receipts of a batch of messages wait together, behind one count of rows, and at most
    one callback is registered with the writer at a time.
    """

    def __init__(self, writer: HistoryWriter, done: Callable[[Sequence[int]], None]) -> None:
        self._writer = writer
        self._done = done
        self._pending: deque[tuple[int, Sequence[int]]] = deque()  # (rows accepted before them, receipts)
        self._armed = False

    def add_all(self, receipts: Sequence[int]) -> None:
        """Acknowledge ``receipts`` once every row added so far is settled (at once if they are)."""
        if not receipts:
            return
        self._pending.append((self._writer.accepted, receipts))
        if not self._armed:
            self._arm()

    def _arm(self) -> None:
        self._armed = True
        self._writer.after_commit(self._settled)

    def _settled(self) -> None:
        self._armed = False
        settled, pending = self._writer.settled, self._pending
        while pending and pending[0][0] <= settled:
            receipts = pending.popleft()[1]
            try:
                self._done(receipts)
            except Exception:  # as for after_commit callbacks: the others are still owed
                log.exception("acknowledging %d message receipts from %s failed", len(receipts), receipts[0])
        if pending:
            self._arm()
