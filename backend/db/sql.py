"""Plain SQL on a SQLModel session, for the queries the ORM says badly (recursive CTEs, upserts)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import RowMapping, text
from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from backend.errors import ConflictError


async def fetch_all(session: AsyncSession, sql: str, **params: Any) -> list[RowMapping]:
    """Every row of ``sql`` (``:name`` placeholders) as mappings."""
    result = await session.exec(text(sql).bindparams(**params))  # type: ignore[call-overload]
    return list(result.mappings())


async def fetch_one(session: AsyncSession, sql: str, **params: Any) -> RowMapping | None:
    """The first row of ``sql``, or None."""
    rows = await fetch_all(session, sql, **params)
    return rows[0] if rows else None


async def execute(session: AsyncSession, sql: str, **params: Any) -> int:
    """Run a statement; the number of rows it touched."""
    result = await session.exec(text(sql).bindparams(**params))  # type: ignore[call-overload]
    return int(result.rowcount)


async def fetch_unique(session: AsyncSession, sql: str, conflict: str, /, **params: Any) -> RowMapping:
    """The row a write returns, where the write may break a unique constraint: it runs in a
    savepoint, so the violation becomes ``ConflictError(conflict)`` and the caller's transaction
    stays usable."""
    try:
        async with session.begin_nested():
            row = await fetch_one(session, sql, **params)
    except IntegrityError as exc:
        raise ConflictError(conflict) from exc
    assert row is not None, "a write given to fetch_unique must return its row"
    return row
