"""Connections to PostgreSQL: a SQLAlchemy async engine for the relational model and a
psycopg pool for the time-series hot path (binary COPY, batched upserts).

The table models belong to the areas; the top's ``backend.server.tables`` registers them all
before sessions are used, so that foreign keys between areas resolve."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
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


class Database:
    """Both access paths to one PostgreSQL database; open with ``await db.open()``."""

    def __init__(self, url: str, *, pool_size: int = 5) -> None:
        self.url = url
        self.engine: AsyncEngine = create_async_engine(
            sqlalchemy_url(url), pool_size=pool_size, max_overflow=5, pool_pre_ping=True
        )
        # check: a connection broken by a database restart is replaced before it is handed out;
        # reconnect_timeout: give up a reconnection round after 5 s so the next request starts a
        # fresh one (psycopg_pool doubles its delay within a round: after a 30 s outage it would
        # otherwise wait about as long again before trying)
        self.pool = AsyncConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            open=False,
            timeout=10,
            reconnect_timeout=5,
            kwargs={"autocommit": True},
            check=AsyncConnectionPool.check_connection,
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
