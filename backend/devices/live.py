"""Live fan-out of device changes to open console pages, inside one app process.

The write paths (``DataService`` for values, ``PropertyService`` for widget properties,
``Lifecycle`` for online/offline) call :meth:`LiveFeed.publish` right after they store a
change; each open console WebSocket holds a :class:`Subscription` to the devices it shows.
Publishing never waits: every subscriber has a bounded queue and a slow browser loses its
oldest pending changes (and is told so by a ``gap`` flag), never stalls the ingest.

The feed sees what this process ingests and writes. With several app replicas behind a
load balancer each replica ingests a share of the devices (MQTT shared subscriptions), so a
cross-process feed (PostgreSQL NOTIFY or a broker topic) would be needed there; one app
process, the default deployment, needs nothing more.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

QUEUE_LIMIT = 1000
MAX_DEVICES_PER_SUBSCRIPTION = 1000


class Subscription:
    """The changes of some devices, as JSON-able dicts, in order."""

    def __init__(self, feed: "LiveFeed", device_ids: frozenset[int]) -> None:
        self.feed = feed
        self.device_ids = device_ids
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_LIMIT)
        self.dropped = 0

    def offer(self, event: dict[str, Any]) -> None:
        """Queue an event; when full, drop the oldest one."""
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(event)

    async def next(self) -> dict[str, Any]:
        """The next change (with ``gap: true`` when older ones were dropped since the last)."""
        event = await self.queue.get()
        if self.dropped:
            self.dropped = 0
            return {**event, "gap": True}
        return event

    def close(self) -> None:
        """Stop receiving."""
        self.feed._remove(self)

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LiveFeed:
    """Subscribers by device id; publish is synchronous and O(subscribers of that device)."""

    def __init__(self) -> None:
        self._by_device: dict[int, set[Subscription]] = {}

    def subscribe(self, device_ids: Iterable[int]) -> Subscription:
        """Receive the changes of these devices (at most 1000) until ``close``."""
        ids = frozenset(device_ids)
        if len(ids) > MAX_DEVICES_PER_SUBSCRIPTION:
            raise ValueError(f"at most {MAX_DEVICES_PER_SUBSCRIPTION} devices per subscription")
        sub = Subscription(self, ids)
        for device_id in ids:
            self._by_device.setdefault(device_id, set()).add(sub)
        return sub

    def publish(self, device_id: int, event: dict[str, Any]) -> None:
        """Hand a change of one device to its subscribers (``event`` gets ``device``)."""
        subs = self._by_device.get(device_id)
        if not subs:
            return
        event = {**event, "device": device_id}
        for sub in list(subs):
            sub.offer(event)

    @property
    def watched(self) -> Mapping[int, object]:
        """The devices some subscription watches (a live view: ``device_id in feed.watched``)."""
        return self._by_device

    def subscribers(self, device_id: int) -> int:
        """How many subscriptions watch a device."""
        return len(self._by_device.get(device_id, ()))

    def _remove(self, sub: Subscription) -> None:
        for device_id in sub.device_ids:
            subs = self._by_device.get(device_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._by_device[device_id]
