"""History rows into PostgreSQL with binary COPY, in batches flushed by size or age.

Rows wait in a bounded queue; ``add`` waits when it is full, which slows the ingest down
instead of dropping data or growing memory. A failed batch is retried with backoff and kept
(the database may be restarting); it is never silently discarded.

Raw points go straight into ``history``; the numbers are folded into the rollups in the same
transaction (:mod:`backend.history.rollup`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import NamedTuple

import psycopg
from psycopg_pool import AsyncConnectionPool

from backend.history import rollup
from backend.history.partitions import ensure_partitions
from backend.tasks import finish
from backend.templates.values import db_text

__all__ = ["AcksAfterCommit", "HistoryRow", "HistoryWriter", "ensure_partitions"]

log = logging.getLogger(__name__)

COPY_SQL = "COPY history (device_id, pin, ts, value, text_value) FROM STDIN (FORMAT BINARY)"
"""Raw rows straight into ``history`` (HTTP imports, and the benchmarks' reference)."""
COPY_TYPES = ["int4", "int2", "timestamptz", "float8", "text"]
# Errors that a retry cannot cure: the rows themselves are refused.
REFUSED = (psycopg.DataError, psycopg.IntegrityError, UnicodeEncodeError)


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


Row = tuple[int, int, datetime, float | None, str | None, bool]
"""A :class:`HistoryRow` as a plain tuple, the form rows wait in. The garbage collector stops
tracking a plain tuple of numbers, strings and times, so tens of thousands of waiting rows do
not make it scan the whole heap again and again (a named tuple stays tracked)."""


class _RowQueue:
    """A bounded FIFO of rows for one consumer that takes them in batches.

    An ``asyncio.Queue`` costs a few calls and a wake-up check per row on both ends; here a
    row is a ``deque.append`` and the consumer is woken once per batch (when enough rows wait,
    or when its deadline passes). Producers wait only while the queue is full.
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

    def offer(self, row: Row) -> bool:
        """Queue a row unless the queue is full."""
        rows = self.rows
        if len(rows) >= self.limit:
            return False
        rows.append(row)
        if len(rows) == self._wake_at:  # rows come one at a time: they reach it exactly
            self._ready.set()
        return True

    async def put(self, row: Row) -> None:
        """Queue a row, waiting for room."""
        while not self.offer(row):
            self._room.clear()
            await self._room.wait()

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

    def __init__(self, pool: AsyncConnectionPool, *, batch_rows: int = 5000, flush_seconds: float = 0.5,
                 queue_rows: int = 100_000) -> None:
        self.pool = pool
        self.batch_rows = batch_rows
        self.flush_seconds = flush_seconds
        self._queue = _RowQueue(queue_rows)
        self._task: asyncio.Task[None] | None = None
        self.rows_written = 0
        self.accepted = 0
        """Rows taken by :meth:`add` so far."""
        self.settled = 0
        """Rows done with, in the order they were added: committed, or refused by the database
        (a row that can never be written). A batch the writer gave up on at stop is not settled."""
        self._waiting: deque[tuple[int, Callable[[], None]]] = deque()

    async def add(self, row: HistoryRow) -> None:
        """Queue a row (waits when the queue is full)."""
        waiting: Row = (*row,)
        if not self._queue.offer(waiting):
            await self._queue.put(waiting)
        self.accepted += 1

    def has_room(self) -> bool:
        """Whether :meth:`offer` would take a row now."""
        return self._queue.qsize() < self._queue.limit

    def offer(self, row: HistoryRow) -> bool:
        """Queue a row if there is room, without waiting; False if full (then :meth:`add` it)."""
        if self._queue.offer((*row,)):
            self.accepted += 1
            return True
        return False

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
            log.error("history writer did not finish within %.0f s; %d rows not written", timeout,
                      self._queue.qsize())

    async def _run(self) -> None:
        queue = self._queue
        while True:
            await queue.wait(1)
            if not queue.closed:  # a batch: up to ``batch_rows`` rows or what arrives within ``flush_seconds``
                await queue.wait(self.batch_rows, self.flush_seconds)
            closing = queue.closed and queue.qsize() <= self.batch_rows
            batch = queue.take(queue.qsize() if closing else self.batch_rows)
            if not batch:
                return
            try:
                if await self._write_with_retry(batch, attempts=3 if closing else None):
                    self._settle(len(batch))
            except Exception:  # never let the writer die: the next batch must still be written
                log.exception("history batch of %d rows lost", len(batch))
                self._settle(len(batch))
            if closing:
                return

    async def _write_with_retry(self, batch: list[Row], attempts: int | None = None) -> bool:
        """Write ``batch``, retrying while the database is unreachable; False if given up."""
        delay, tried = 0.5, 0
        while True:
            try:
                await self.write(batch)
                return True
            except REFUSED as exc:  # a row the database refuses: keep the others
                log.error("history batch refused (%s); writing its %d rows one by one", exc, len(batch))
                await self._write_each(batch)
                return True
            except (psycopg.OperationalError, OSError) as exc:
                tried += 1
                if attempts is not None and tried >= attempts:
                    log.error("gave up writing %d history rows after %d attempts: %s (their messages stay "
                              "unacknowledged in the broker and come again)", len(batch), tried, exc)
                    return False
                log.warning("history write failed (%s); retrying %d rows in %.1f s", exc, len(batch), delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _write_each(self, batch: list[Row]) -> None:
        for row in batch:
            try:
                await self.write([row])
            except REFUSED as exc:
                log.error("dropped a history row of device %s pin V%s: %s", row[0], row[1], exc)

    async def write(self, batch: Sequence[Row]) -> None:
        """Write one batch (:class:`HistoryRow` s or their tuples) in one transaction: raw rows
        with binary COPY, then the rollups."""
        points: list[rollup.Point] = []
        async with self.pool.connection() as conn:
            async with conn.transaction():
                async with conn.cursor().copy(COPY_SQL) as copy:
                    copy.set_types(COPY_TYPES)
                    for device_id, pin, ts, value, text, raw in batch:
                        if raw:
                            await copy.write_row((device_id, pin, ts, value, None if text is None else db_text(text)))
                        if value is not None:
                            points.append((device_id, pin, ts, value))
                await rollup.merge_rollups(conn, points)
        self.rows_written += len(batch)


class AcksAfterCommit:
    """Hands each message's receipt to ``done`` once the rows added before it are settled, in
    the order the receipts came (what the ingest owes the broker, see ``backend.ingest.mqtt``).

    The same as one :meth:`HistoryWriter.after_commit` per message, at a fraction of the cost:
    a receipt waits as a tuple of two ints (which the garbage collector stops tracking) and at
    most one callback is registered with the writer at a time.
    """

    def __init__(self, writer: HistoryWriter, done: Callable[[int], None]) -> None:
        self._writer = writer
        self._done = done
        self._pending: deque[tuple[int, int]] = deque()  # (rows accepted before it, receipt)
        self._armed = False

    def add(self, receipt: int) -> None:
        """Acknowledge ``receipt`` once every row added so far is settled (at once if they are)."""
        self._pending.append((self._writer.accepted, receipt))
        if not self._armed:
            self._arm()

    def _arm(self) -> None:
        self._armed = True
        self._writer.after_commit(self._settled)

    def _settled(self) -> None:
        self._armed = False
        settled, pending = self._writer.settled, self._pending
        while pending and pending[0][0] <= settled:
            receipt = pending.popleft()[1]
            try:
                self._done(receipt)
            except Exception:  # as for after_commit callbacks: the others are still owed
                log.exception("acknowledging message receipt %s failed", receipt)
        if pending:
            self._arm()
