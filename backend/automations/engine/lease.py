"""The engine process's lease: a PostgreSQL advisory lock held while the process lives.

Each engine process draws a random owner key and holds the advisory lock
``(OWNER_LOCK_CLASS, owner)`` on a connection of its own for as long as it runs. Its running
runs carry that key (``automation_run.owner``). When the process dies, however it dies (SIGKILL,
a crash, the machine gone), PostgreSQL ends its session and frees the lock at once; the leading
scheduler's process then finds the runs of a free key and takes them over
(:meth:`.store.EngineStore.orphans`). No heartbeat to tune: the database's own view of the
session is the test.

If the lease's connection breaks while the process lives (the database restarted, the network
failed), the lock is lost and the leader may take this process's runs; the store's fenced writes
then stop this process's copy of each run at its next step (:class:`.store.RunTaken`). The lease
connects again and takes the same key.
"""

from __future__ import annotations

import asyncio
import logging
import secrets

import psycopg

from backend.automations.engine.store import OWNER_LOCK_CLASS
from backend.tasks import cancel

log = logging.getLogger(__name__)


def new_owner() -> int:
    """A random positive 31-bit owner key (an advisory lock's second key)."""
    return secrets.randbelow(2**31 - 2) + 1


class Lease:
    """Holds ``(OWNER_LOCK_CLASS, owner)`` on a connection of its own (see the module)."""

    def __init__(self, url: str, owner: int, check_seconds: float = 5.0) -> None:
        self.url = url
        self.owner = owner
        self.check_seconds = check_seconds
        self.held = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Take the lock (waiting until the database answers) and keep it in the background."""
        self._task = asyncio.create_task(self._keep(), name="automation-lease")
        await self.held.wait()

    async def stop(self) -> None:
        """Give the lock up (this process's runs become anyone's to resume)."""
        task, self._task = self._task, None
        await cancel(task)
        self.held.clear()

    async def _keep(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as conn:
                    await conn.execute("SELECT pg_advisory_lock(%s, %s)", (OWNER_LOCK_CLASS, self.owner))
                    self.held.set()
                    while True:
                        await asyncio.sleep(self.check_seconds)
                        await conn.execute("SELECT 1")
            except (psycopg.OperationalError, OSError) as exc:
                log.warning("the automation engine's lease lost the database (%s)", exc)
            self.held.clear()
            await asyncio.sleep(1)
