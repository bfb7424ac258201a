"""Connections to PostgreSQL: a SQLAlchemy async engine for the relational model and a
psycopg pool for the time-series hot path (binary COPY, batched upserts).

The table models belong to the areas; the top's ``backend.server.tables`` registers them all
before sessions are used, so that foreign keys between areas resolve."""

from __future__ import annotations

import select
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg_pool import AsyncConnectionPool
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from backend import errors as e
from backend.errors import ValidationError

REFUSED_ERRORS: tuple[type[Exception], ...] = (psycopg.DataError, DBAPIError)
"""What the driver raises, bare (psycopg pool) or wrapped (SQLAlchemy), when a value is refused."""


def refused_value(exc: BaseException) -> ValidationError | None:
    """The sender's error behind a driver error, or None for any other database error.

    psycopg refuses text holding NUL before sending it (PostgreSQL cannot store the character);
    a request's text reaches queries in many places (search, names, e-mail addresses, event
    descriptions), so the refusal is recognised here once and answered as a ValidationError.
    """
    original = exc.orig if isinstance(exc, DBAPIError) else exc
    if isinstance(original, psycopg.DataError) and "NUL (0x00)" in str(original):
        return ValidationError(e.NUL_IN_TEXT)
    return None


def sqlalchemy_url(url: str) -> str:
    """``postgresql://...`` → ``postgresql+psycopg://...`` (psycopg 3 driver)."""
    parts = urlsplit(url)
    scheme = parts.scheme.split("+")[0]
    if scheme not in ("postgresql", "postgres"):
        raise ValueError(f"not a PostgreSQL URL: {parts.scheme}://…")
    return urlunsplit(("postgresql+psycopg", *parts[1:]))


CHECK_AFTER_IDLE = 2.0
"""Seconds a pooled connection may rest and still be handed out without a round trip."""


class CheckedPool(AsyncConnectionPool[psycopg.AsyncConnection[Any]]):
    """A psycopg pool that replaces a connection broken by a database restart before handing it
    out, without a round trip for one used just now.

    A connection back for less than ``check_after`` seconds is handed out at once if nothing
    arrived on its socket since (a server that restarts or ends a connection sends an error
    message and closes it: either makes the socket readable); any other, one that rested
    longer or was never handed out, is tried with an empty query (``check_connection``), and
    the pool replaces it if that fails. A batch of queries right after another costs no extra
    round trip (issue #16: the check was 6.6 % of the broker's CPU in a connect storm). The
    time of return is noted in ``putconn`` rather than by a ``reset`` callback, with which the
    pool would return every connection through a worker task.
    """

    def __init__(self, conninfo: str, *, check_after: float = CHECK_AFTER_IDLE, **kwargs: Any) -> None:
        self.check_after = check_after
        self._returned_at: weakref.WeakKeyDictionary[psycopg.AsyncConnection[Any], float] = weakref.WeakKeyDictionary()
        super().__init__(conninfo, check=self._check_unless_fresh, **kwargs)

    async def putconn(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Take ``conn`` back, noting when."""
        self._returned_at[conn] = time.monotonic()
        await super().putconn(conn)

    async def _check_unless_fresh(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Return if ``conn`` works, else raise (the pool's ``check`` callback)."""
        since = self._returned_at.pop(conn, None)
        if since is not None and time.monotonic() - since < self.check_after and _quiet(conn):
            return
        await self.check_connection(conn)


def _quiet(conn: psycopg.AsyncConnection[Any]) -> bool:
    """Nothing to read on an open, idle connection's socket (no error, no end from the server)."""
    if conn.closed or conn.broken:
        return False
    poll = select.poll()
    poll.register(conn.pgconn.socket, select.POLLIN)
    return not poll.poll(0)


class Database:
    """Both access paths to one PostgreSQL database; open with ``await db.open()``."""

    def __init__(self, url: str, *, pool_size: int = 5) -> None:
        self.url = url
        self.engine: AsyncEngine = create_async_engine(
            sqlalchemy_url(url), pool_size=pool_size, max_overflow=5, pool_pre_ping=True
        )
        # CheckedPool: a connection broken by a database restart is replaced before it is handed
        # out; reconnect_timeout: give up a reconnection round after 5 s so the next request
        # starts a fresh one (psycopg_pool doubles its delay within a round: after a 30 s outage
        # it would otherwise wait about as long again before trying)
        self.pool = CheckedPool(
            url,
            min_size=1,
            max_size=pool_size,
            open=False,
            timeout=10,
            reconnect_timeout=5,
            kwargs={"autocommit": True},
        )

    async def open(self) -> None:
        """Open the psycopg pool (the engine connects lazily)."""
        await self.pool.open(wait=True, timeout=30)

    async def close(self) -> None:
        """Close both pools."""
        await self.pool.close()
        await self.engine.dispose()

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A SQLModel session; commits on success, rolls back on error."""
        async with AsyncSession(self.engine, expire_on_commit=False) as session:
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise

    async def __aenter__(self) -> Database:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
