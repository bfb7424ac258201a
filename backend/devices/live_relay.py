"""The live feed across app replicas: a value one replica stores reaches open console pages on
the others, for the devices those pages watch and no others.

Only with ``OPENBLYNK_REPLICA`` set (one app process builds no relay and its value path is
unchanged). Replicas talk over PostgreSQL ``NOTIFY`` on channel :data:`CHANNEL`, JSON payloads
naming their sender (``r``):

- ``watch`` / ``unwatch``: devices this replica's pages started or stopped watching (a ``full``
  watch list replaces what the others knew; sent at start and every :data:`REFRESH_SECONDS`, so
  the list of a replica that died expires after :data:`EXPIRE_SECONDS`); ``hello`` at start
  asks the others for their full lists;
- ``v``: value events of devices another replica watches.

A device another replica watches gets a stand-in subscription (:class:`_Remote`) in this
replica's :class:`~backend.devices.live.LiveFeed`: the value path's existing check (``device_id
in live.watched``, one dict lookup) and ``LiveFeed.publish`` reach it like a page, and it only
appends the event to the outgoing list; a flush task sends the list every :data:`FLUSH_SECONDS`
in as few NOTIFYs as fit :data:`MAX_PAYLOAD` bytes. A device nobody else watches costs nothing
more than on one process. Received events go to this replica's pages only
(:meth:`LiveFeed.deliver`), never relayed again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import psycopg

from backend.devices.live import LiveFeed, Subscription
from backend.tasks import cancel

log = logging.getLogger(__name__)

CHANNEL = "openblynk_live"
REFRESH_SECONDS = 30.0
EXPIRE_SECONDS = 90.0
FLUSH_SECONDS = 0.05
MAX_PAYLOAD = 7000
"""Bytes of JSON per NOTIFY (PostgreSQL refuses payloads of 8000 bytes or more)."""
MAX_OUTGOING = 10_000
"""Events waiting to be sent at most; older ones are dropped (the pages show a gap)."""


class _Remote(Subscription):
    """Stands in a feed's index for the other replicas watching one device."""

    local = False

    def __init__(self, relay: LiveRelay, device_id: int) -> None:
        super().__init__(relay.feed, frozenset({device_id}), frozenset())
        self.relay = relay

    def offer(self, event: dict[str, Any]) -> None:
        outgoing = self.relay.outgoing
        if len(outgoing) >= MAX_OUTGOING:
            outgoing.pop(0)
        outgoing.append(event)


class LiveRelay:
    """One per app replica: tells the others what its pages watch and relays their values."""

    def __init__(self, url: str, feed: LiveFeed, name: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self.feed = feed
        self.name = name
        self._clock = clock
        self.outgoing: list[dict[str, Any]] = []
        self.remote: dict[int, dict[str, float]] = {}
        """Device -> the other replicas watching it, with when each said so last."""
        self._stand_ins: dict[int, _Remote] = {}
        self._announced: frozenset[int] = frozenset()
        self._full_due = True
        self._tasks: list[asyncio.Task[None]] = []
        self.ready = asyncio.Event()
        self.relayed = 0
        """Value events sent to the other replicas."""

    def start(self) -> None:
        """Listen and send in the background."""
        self._tasks = [
            asyncio.create_task(self._listen(), name="live-relay-listen"),
            asyncio.create_task(self._send(), name="live-relay-send"),
        ]

    async def stop(self) -> None:
        """Stop both tasks (the others forget this replica's list when it expires)."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            await cancel(task)

    # -- receiving ------------------------------------------------------------------------
    async def _listen(self) -> None:
        delay = 0.5
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self._full_due = True
                    await self._notify(conn, {"hello": 1})
                    self.ready.set()
                    delay = 0.5
                    async for notice in conn.notifies():
                        self.receive(notice.payload)
            except (psycopg.OperationalError, OSError) as exc:
                self.ready.clear()
                log.warning("live relay lost the database (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    def receive(self, payload: str) -> None:
        """Handle one notice of the channel (ignores this replica's own and malformed ones)."""
        try:
            message = json.loads(payload)
            sender = message["r"]
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a malformed live relay notice")
            return
        if sender == self.name:
            return
        if "hello" in message:
            self._full_due = True
        for event in message.get("v", ()):
            device = event.get("device")
            if isinstance(device, int):
                self.feed.deliver(device, event)
        now = self._clock()
        if message.get("full"):
            for device in [d for d, who in self.remote.items() if sender in who]:
                self._forget(device, sender)
        for device in message.get("watch", ()):
            self.remote.setdefault(int(device), {})[sender] = now
            if device not in self._stand_ins:
                self._stand_ins[device] = _Remote(self, device)
                self.feed.attach(self._stand_ins[device])
        for device in message.get("unwatch", ()):
            self._forget(int(device), sender)

    def _forget(self, device: int, sender: str) -> None:
        who = self.remote.get(device)
        if who is None:
            return
        who.pop(sender, None)
        if not who:
            del self.remote[device]
            stand_in = self._stand_ins.pop(device, None)
            if stand_in is not None:
                stand_in.close()

    def expire(self) -> None:
        """Forget the lists of replicas not heard of for :data:`EXPIRE_SECONDS`."""
        cutoff = self._clock() - EXPIRE_SECONDS
        for device, who in list(self.remote.items()):
            for sender, seen in list(who.items()):
                if seen < cutoff:
                    self._forget(device, sender)

    # -- sending --------------------------------------------------------------------------
    def local_devices(self) -> frozenset[int]:
        """The devices this replica's own pages watch."""
        return self.feed.locally_watched()

    def pending_messages(self) -> list[dict[str, Any]]:
        """What to send now: watch-list changes (or the full list), then the queued values."""
        messages: list[dict[str, Any]] = []
        local = self.local_devices()
        if self._full_due:
            self._full_due = False
            messages.append({"watch": sorted(local), "full": True})
        else:
            added, removed = local - self._announced, self._announced - local
            if added or removed:
                messages.append({"watch": sorted(added), "unwatch": sorted(removed)})
        self._announced = local
        events, self.outgoing = self.outgoing, []
        batch: list[dict[str, Any]] = []
        size = 0
        for event in events:
            length = len(json.dumps(event, separators=(",", ":"))) + 1
            if batch and size + length > MAX_PAYLOAD:
                messages.append({"v": batch})
                batch, size = [], 0
            batch.append(event)
            size += length
        if batch:
            messages.append({"v": batch})
            self.relayed += len(events)
        return messages

    async def _send(self) -> None:
        last_refresh = self._clock()
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as conn:
                    while True:
                        await asyncio.sleep(FLUSH_SECONDS)
                        if self._clock() - last_refresh >= REFRESH_SECONDS:
                            last_refresh = self._clock()
                            self._full_due = True
                            self.expire()
                        for message in self.pending_messages():
                            await self._notify(conn, message)
            except (psycopg.OperationalError, OSError) as exc:
                log.warning("live relay cannot send (%s); retrying in 1 s", exc)
                self._full_due = True
                await asyncio.sleep(1.0)

    async def _notify(self, conn: psycopg.AsyncConnection[Any], message: dict[str, Any]) -> None:
        payload = json.dumps({"r": self.name, **message}, separators=(",", ":"))
        await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))
