"""Cross-process change notices over PostgreSQL LISTEN/NOTIFY.

The broker and the app each cache device and template lookups. When a process changes a
device or a template (the CLI rotating a token, an import editing datastreams), it sends a
notice in the same transaction; every listening process drops the stale entries at once, and
the broker drops the live connection of a device whose token was revoked.

Open console WebSockets (the ``/live`` feed) use the same notices to check their access
again: a user's sessions, role or organization changed (``user:<id>``), a custom role's
permissions changed (``role:<id>``), an organization moved away from below these
(``org:<id>``: sent for each organization it left), or a device moved, changed owner or was
deleted (``device:<id>``).

Payloads on channel ``openblynk_changes``: ``device:<id>``, ``device:<id>:revoked``,
``oauth_client:<id>:revoked`` (a client was revoked: the broker ends its gateway logins),
``template:<id>``, ``automation:<id>`` (an automation changed: every process's engine reloads it),
``automation_run:<id>`` (a run waits: the scheduler's leader schedules its resumption), ``user:<id>``, ``role:<id>``, ``org:<id>``, and ``notice:<user id>`` (a new
in-app notification for that user: the console's bell, ``backend.notifications``), and
``activated:<device id>`` (the broker process made a device for a Wi-Fi provisioning token: the
app tells its ``DeviceSignals``, ``backend.inject.activation``).

This is a bottom module: the areas that change things (devices, templates, accounts, orgs,
platform_api) send notices with :func:`notify`, and the processes hand :class:`ChangeListener`
the handlers of the areas that keep caches (the device registry, the live feed).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import psycopg
from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from backend.numbers import is_digits
from backend.tasks import cancel

log = logging.getLogger(__name__)
CHANNEL = "openblynk_changes"
KINDS = frozenset(
    {
        "device",
        "template",
        "user",
        "role",
        "org",
        "notice",
        "automation",
        "automation_run",
        "automation_timer",
        "webhook",
        "oauth_client",
        "activated",
    }
)


@dataclass(frozen=True, slots=True)
class Change:
    """One change notice."""

    kind: str  # one of KINDS
    id: int
    revoked: bool = False

    @property
    def key(self) -> tuple[str, int]:
        """What changed, without the ``revoked`` flag."""
        return self.kind, self.id

    def encode(self) -> str:
        """The NOTIFY payload."""
        return f"{self.kind}:{self.id}" + (":revoked" if self.revoked else "")

    @classmethod
    def decode(cls, payload: str) -> Change | None:
        """Parse a payload; None if it is not one of ours."""
        parts = payload.split(":")
        if len(parts) not in (2, 3) or parts[0] not in KINDS or not is_digits(parts[1]):
            return None
        return cls(parts[0], int(parts[1]), revoked=parts[2:] == ["revoked"])


async def notify(session: AsyncSession, change: Change) -> None:
    """Send a notice; it is delivered when the session's transaction commits."""
    await session.exec(
        text("SELECT pg_notify(:channel, :payload)").bindparams(  # type: ignore[call-overload]
            channel=CHANNEL, payload=change.encode()
        )
    )


class ChangeListener:
    """Calls every handler, in order, for every notice; reconnects after losing the database."""

    def __init__(self, url: str, *handlers: Callable[[Change], Awaitable[None]]) -> None:
        self.url = url
        self.handlers = handlers
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    def start(self) -> None:
        """Start listening in the background."""
        self._task = asyncio.create_task(self._run(), name="change-listener")

    async def stop(self) -> None:
        """Stop listening."""
        task, self._task = self._task, None
        await cancel(task)

    async def _run(self) -> None:
        delay = 0.5
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.ready.set()
                    delay = 0.5
                    async for notice in conn.notifies():
                        await self._dispatch(notice.payload)
            except (psycopg.OperationalError, OSError) as exc:
                self.ready.clear()
                log.warning("change listener lost the database (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _dispatch(self, payload: str) -> None:
        change = Change.decode(payload)
        if change is None:
            return
        for handler in self.handlers:  # one failing handler does not keep the notice from the others
            try:
                await handler(change)
            except Exception:
                log.exception("handling change %s failed", payload)
