"""Plain SQL on a SQLModel session, for the queries the ORM says badly (recursive CTEs, upserts)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import RowMapping, text
from sqlmodel.ext.asyncio.session import AsyncSession


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
