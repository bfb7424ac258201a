"""History rows into PostgreSQL with binary COPY, in batches flushed by size or age.

Rows wait in a bounded queue; ``add`` waits when it is full, which slows the ingest down
instead of dropping data or growing memory. A failed batch is retried with backoff and kept
(the database may be restarting); it is never silently discarded.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg_pool import AsyncConnectionPool

from backend.history.partitions import ensure_partitions
from backend.history.rollup import merge_rollups
from backend.templates.values import db_text

__all__ = ["HistoryRow", "HistoryWriter", "ensure_partitions"]

log = logging.getLogger(__name__)

COPY_SQL = "COPY history (device_id, pin, ts, value, text_value) FROM STDIN (FORMAT BINARY)"
COPY_TYPES = ["int4", "int2", "timestamptz", "float8", "text"]
# Errors that a retry cannot cure: the rows themselves are refused.
REFUSED = (psycopg.DataError, psycopg.IntegrityError, UnicodeEncodeError)


@dataclass(frozen=True, slots=True)
class HistoryRow:
    """One point of one datastream."""

    device_id: int
    pin: int
    ts: datetime
    value: float | None
    text_value: str | None
    raw: bool = True
    """Keep the point itself; False keeps it only in the rollups (Blynk's "save raw data" off)."""


class HistoryWriter:
    """Batches rows and writes them with binary COPY."""

    def __init__(self, pool: AsyncConnectionPool, *, batch_rows: int = 5000, flush_seconds: float = 0.5,
                 queue_rows: int = 100_000) -> None:
        self.pool = pool
        self.batch_rows = batch_rows
        self.flush_seconds = flush_seconds
        self._queue: asyncio.Queue[HistoryRow | None] = asyncio.Queue(maxsize=queue_rows)  # None: stop
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
        await self._queue.put(row)
        self.accepted += 1

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
        self._task = asyncio.create_task(self._run(), name="history-writer")

    async def stop(self, timeout: float = 30.0) -> None:
        """Write everything queued, including a batch being written, then stop.

        The flusher is asked to finish (never cancelled mid-batch, which would lose it); only
        if the database does not take the rows within ``timeout`` seconds is it cancelled.
        """
        task, self._task = self._task, None
        if task is None or task.done():
            return
        await self._queue.put(None)
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            log.error("history writer did not finish within %.0f s; %d rows not written", timeout,
                      self._queue.qsize())
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            if first is None:
                return
            batch, closing = await self._collect(first)
            try:
                if await self._write_with_retry(batch, attempts=3 if closing else None):
                    self._settle(len(batch))
            except Exception:  # never let the writer die: the next batch must still be written
                log.exception("history batch of %d rows lost", len(batch))
                self._settle(len(batch))
            if closing:
                return

    async def _collect(self, first: HistoryRow) -> tuple[list[HistoryRow], bool]:
        """A batch: up to ``batch_rows`` rows or what arrives within ``flush_seconds``."""
        batch = [first]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.flush_seconds
        while len(batch) < self.batch_rows:
            more, closing = self._drain(self.batch_rows - len(batch))
            batch.extend(more)
            remaining = deadline - loop.time()
            if closing:
                return batch + self._drain(self._queue.qsize())[0], True
            if len(batch) >= self.batch_rows or remaining <= 0:
                break
            try:
                item = await asyncio.wait_for(self._queue.get(), remaining)
            except TimeoutError:
                break
            if item is None:
                return batch + self._drain(self._queue.qsize())[0], True
            batch.append(item)
        return batch, False

    def _drain(self, limit: int) -> tuple[list[HistoryRow], bool]:
        """Up to ``limit`` queued rows without waiting, and whether the stop marker was seen."""
        out: list[HistoryRow] = []
        while len(out) < limit:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            if item is None:
                return out, True
            out.append(item)
        return out, False

    async def _write_with_retry(self, batch: list[HistoryRow], attempts: int | None = None) -> bool:
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

    async def _write_each(self, batch: list[HistoryRow]) -> None:
        for row in batch:
            try:
                await self.write([row])
            except REFUSED as exc:
                log.error("dropped a history row of device %s pin V%s: %s", row.device_id, row.pin, exc)

    async def write(self, batch: list[HistoryRow]) -> None:
        """Write one batch in one transaction: raw rows with binary COPY, then the rollups."""
        async with self.pool.connection() as conn:
            async with conn.transaction():
                async with conn.cursor().copy(COPY_SQL) as copy:
                    copy.set_types(COPY_TYPES)
                    for r in batch:
                        if r.raw:
                            text = None if r.text_value is None else db_text(r.text_value)
                            await copy.write_row((r.device_id, r.pin, r.ts, r.value, text))
                await merge_rollups(conn, [(r.device_id, r.pin, r.ts, r.value) for r in batch if r.value is not None])
        self.rows_written += len(batch)
