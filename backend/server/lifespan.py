"""The app's one lifespan: build the runtime, start its parts in a declared order, stop them in
the reverse order.

The order is the one that loses nothing on the way down: the ingest stops taking messages (the
broker keeps them) and handles everything already taken, the writers flush (which acknowledges
those messages to the broker), and only then the broker connection and the database close. A
part that fails to start stops the parts started before it, in reverse, and the error goes on
(the app does not start); a part that fails to stop is logged and the others still stop.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

from litestar import Litestar

from backend.history.writer import ensure_partitions
from backend.platform_api.runtime import purge_ended_tokens
from backend.server.container import RUNTIME_KEY, Runtime, build_runtime
from backend.settings import Settings

log = logging.getLogger(__name__)


async def _nothing() -> None:
    return None


@dataclass(frozen=True)
class Part:
    """One part of the runtime, as the lifespan starts and stops it."""

    name: str
    start: Callable[[], Awaitable[None]]
    stop: Callable[[], Awaitable[None]] = _nothing


def _started(start: Callable[[], None]) -> Callable[[], Awaitable[None]]:
    """A synchronous start (one that only creates tasks) as an awaitable one."""

    async def run() -> None:
        start()

    return run


def parts(rt: Runtime) -> list[Part]:
    """The parts in the order they start (they stop in the reverse order)."""

    async def open_database() -> None:
        await rt.db.open()
        await ensure_partitions(rt.db.pool)

    pump = rt.pump
    return [
        Part("database", open_database, rt.db.close),
        Part("change notices", _started(rt.changes.start), rt.changes.stop),
        *([Part("live relay", _started(rt.live_relay.start), rt.live_relay.stop)] if rt.live_relay else []),
        Part("broker connection", rt.mqtt.start, rt.mqtt.stop),
        Part("history writer", _started(rt.history.start), rt.history.stop),
        Part("device services", _started(rt.devices.start), rt.devices.stop),
        Part("webhooks", rt.webhooks.start, rt.webhooks.stop),
        Part("integrations", rt.integrations.start, rt.integrations.stop),
        Part("automations", rt.automations.start, rt.automations.stop),
        Part("ingest", pump.start, pump.stop),
        Part("scheduler", _started(rt.scheduler.start), rt.scheduler.stop),
        Part("event notifications", _started(rt.event_notifications.start), rt.event_notifications.stop),
        Part("ended sessions purge", rt.accounts.purge_ended_sessions),
        Part("ended API tokens purge", lambda: purge_ended_tokens(rt.accounts)),
    ]


@asynccontextmanager
async def running(declared: Sequence[Part]) -> AsyncIterator[None]:
    """Start ``declared`` in order; on exit (or when one fails to start) stop the started ones
    in reverse."""
    started: list[Part] = []
    try:
        for part in declared:
            await part.start()
            started.append(part)
        yield
    finally:
        for part in reversed(started):
            try:
                await part.stop()
            except Exception:
                log.exception("stopping the %s failed", part.name)


def app_lifespan(settings: Settings, database_url: str) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    """The lifespan ``create_app`` gives the app: the runtime in its state while it runs."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        rt = build_runtime(settings, database_url)
        async with running(parts(rt)):
            app.state[RUNTIME_KEY] = rt
            try:
                yield
            finally:
                del app.state[RUNTIME_KEY]

    return lifespan
