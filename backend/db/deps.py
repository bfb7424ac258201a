"""The request's database transaction, as a dependency (the top provides ``db``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from litestar.di import NamedDependency
from sqlmodel.ext.asyncio.session import AsyncSession

from backend.db.engine import Database


async def provide_db_session(db: NamedDependency[Database]) -> AsyncIterator[AsyncSession]:
    """``db_session``: one transaction per request, shared by every service of the request;
    committed when the handler returns, rolled back when it raises."""
    async with db.session() as session:
        yield session
