"""Which app replica holds a device's rule state: notices between engine processes.

With several app replicas the broker gives all of one device's messages to one replica (its
shared subscription is assigned by device), and moves them to another when replicas come or go.
The engine that sees a device for the first time loads the device's rule state from PostgreSQL
and says so on :data:`.store.HOLDER_CHANNEL` (``<owner>:<device>``); every other engine then
forgets what it kept of that device in memory, so a device that comes back to it later (A, then
B, then A again) is judged on the state B left in PostgreSQL, not on A's stale one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import psycopg

from backend.automations.engine.store import HOLDER_CHANNEL
from backend.tasks import cancel

log = logging.getLogger(__name__)


class Holders:
    """Listens for other engines taking devices over and calls ``taken(device)`` for each."""

    def __init__(self, url: str, owner: int, taken: Callable[[int], None], lost: Callable[[], None]) -> None:
        self.url = url
        self.owner = owner
        self.taken = taken
        self.lost = lost
        """Called when listening again after a lost connection (notices may have been missed)."""
        self.ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Listen in the background (waits until listening, so no later notice is missed)."""
        self._task = asyncio.create_task(self._listen(), name="automation-holders")
        await self.ready.wait()

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel(task)
        self.ready.clear()

    async def _listen(self) -> None:
        delay, first = 0.5, True
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {HOLDER_CHANNEL}")
                    if not first:
                        self.lost()
                    first = False
                    self.ready.set()
                    delay = 0.5
                    async for notice in conn.notifies():
                        self.receive(notice.payload)
            except (psycopg.OperationalError, OSError) as exc:
                log.warning("the automation engine's holder notices lost the database (%s)", exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    def receive(self, payload: str) -> None:
        """Handle one notice (this engine's own and malformed ones are ignored)."""
        owner, _, device = payload.partition(":")
        if owner.isdigit() and device.isdigit() and int(owner) != self.owner:
            self.taken(int(device))
