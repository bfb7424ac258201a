"""What the benchmarks share: a throw-away embedded PostgreSQL and a progress line."""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from psycopg_pool import AsyncConnectionPool  # noqa: E402

from backend.db.embedded import EmbeddedPostgres  # noqa: E402
from backend.history.writer import COPY_SQL, COPY_TYPES  # noqa: E402


@contextmanager
def scratch_database(name: str) -> Iterator[str]:
    """A fresh embedded PostgreSQL in .pytest-data/<name>, removed afterwards; yields its URL."""
    pgdir = ROOT / ".pytest-data" / name / "postgres"
    shutil.rmtree(pgdir.parent, ignore_errors=True)
    server = EmbeddedPostgres(pgdir)
    server.start()
    try:
        yield server.url()
    finally:
        server.stop()
        shutil.rmtree(pgdir.parent, ignore_errors=True)


def progress(label: str, done: int, total: int) -> None:
    """Rewrite one status line on stderr; end it when done."""
    print(f"\r  {label}: {min(done, total):>9,} / {total:,}", end="", file=sys.stderr, flush=True)
    if done >= total:
        print(file=sys.stderr)


async def raw_copy(pool: AsyncConnectionPool, rows: Sequence[tuple[object, ...]], batch: int) -> float:
    """The benchmarks' reference: plain binary COPY of ready ``(device_id, pin, ts, value,
    text)`` rows into ``history``, ``batch`` rows a transaction; rows a second."""
    t0 = time.perf_counter()
    for i in range(0, len(rows), batch):
        async with pool.connection() as conn, conn.transaction():
            async with conn.cursor().copy(COPY_SQL) as copy:
                copy.set_types(COPY_TYPES)
                for row in rows[i : i + batch]:
                    await copy.write_row(row)
        progress("raw COPY", i + batch, len(rows))
    return len(rows) / (time.perf_counter() - t0)
