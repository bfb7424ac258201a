"""Ending the app's background tasks: cancelled at once, or given time to finish first."""

from __future__ import annotations

import asyncio
from typing import Any


async def cancel(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` (if any) and wait until it has ended; what it raised is dropped."""
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def finish(task: asyncio.Task[Any], timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for ``task`` to end by itself; cancel it after that.
    True if it ended in time."""
    try:
        await asyncio.wait_for(asyncio.shield(task), timeout)
        return True
    except TimeoutError:
        await cancel(task)
        return False
