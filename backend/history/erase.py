"""Erasing a device's stored history: raw rows, packed segments and both rollups.

Used when a device is cleared (Blynk's "clear device data") or deleted. The caller first waits
for the history writer to settle what it already accepted (:meth:`HistoryWriter.settled_now`),
so rows on their way to the database do not come back after the erase.
"""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from backend.db.sql import execute

TABLES = ("history", "history_packed", "history_minute", "history_hour")


async def erase_device_history(session: AsyncSession, device_id: int) -> int:
    """Delete every stored point and rollup of ``device_id`` (in the caller's transaction);
    the number of rows removed."""
    removed = 0
    for table in TABLES:
        removed += await execute(session, f"DELETE FROM {table} WHERE device_id = :device", device=device_id)
    return removed
