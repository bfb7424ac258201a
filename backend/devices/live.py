"""Live fan-out of device changes to open console pages, inside one app process.

The write paths (``DataService`` for values, ``PropertyService`` for widget properties,
``Lifecycle`` for online/offline) call :meth:`LiveFeed.publish` right after they store a
change; each open console WebSocket holds a :class:`Subscription` to the devices it shows.
Publishing never waits: every subscriber has a bounded queue and a slow browser loses its
oldest pending changes (and is told so by a ``gap`` flag), never stalls the ingest.

Access can end while a page is open (sign-out, suspension, a new role, a move to another
organization, a device moved away or deleted). Every process hears of such changes through
the PostgreSQL change notices (``backend.db.changes``), which the app hands to
:meth:`LiveFeed.apply`: the subscriptions they concern are marked *stale*, and their next
:meth:`Subscription.next` answers ``None`` before any further change, so the socket checks
its session and devices again (one query per change notice and socket, never per value) and
ends or narrows the subscription. Which notices concern a subscription: those of the devices
it watches and the keys it was given (its user, role and organization).

The feed sees what this process ingests and writes. With several app replicas each ingests
a share of the devices (the broker's shared subscription ``$share/openblynk-app/...`` gives
all of one device's messages to one replica); ``backend.devices.live_relay`` then carries the
events of the devices other replicas' pages watch (:meth:`LiveFeed.attach` of a stand-in,
:meth:`LiveFeed.deliver` on the receiving side). One app process, the default deployment,
needs nothing more. Access changes already reach every replica.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from backend.db.changes import Change

QUEUE_LIMIT = 1000
MAX_DEVICES_PER_SUBSCRIPTION = 1000
T = TypeVar("T")
Key = tuple[str, int]
"""A change notice's ``kind`` and ``id`` (``("user", 7)``) that concerns a subscription."""


class Subscription:
    """The changes of some devices, as JSON-able dicts, in order."""

    local = True
    """False for the live relay's stand-ins for other replicas."""

    def __init__(self, feed: LiveFeed, device_ids: frozenset[int], keys: frozenset[Key]) -> None:
        self.feed = feed
        self.device_ids = device_ids
        self.keys = keys
        self._pending: deque[dict[str, Any]] = deque()
        self._wake = asyncio.Event()
        self.dropped = 0
        self.stale = False

    def offer(self, event: dict[str, Any]) -> None:
        """Queue an event; when full, drop the oldest one."""
        pending = self._pending
        if len(pending) >= QUEUE_LIMIT:
            pending.popleft()
            self.dropped += 1
        pending.append(event)
        self._wake.set()

    @property
    def pending(self) -> int:
        """How many changes wait to be taken."""
        return len(self._pending)

    def mark_stale(self) -> None:
        """Ask the subscriber to check its access again before it takes any further change."""
        self.stale = True
        self._wake.set()

    async def next(self) -> dict[str, Any] | None:
        """The next change (with ``gap: true`` when older ones were dropped since the last), or
        None once the subscription is stale (which it then no longer is)."""
        while not self.stale and not self._pending:
            self._wake.clear()
            await self._wake.wait()
        if self.stale:
            self.stale = False
            return None
        event = self._pending.popleft()
        if self.dropped:
            self.dropped = 0
            return {**event, "gap": True}
        return event

    def narrow(self, device_ids: Iterable[int]) -> None:
        """Keep only these of the watched devices; their changes still queued are forgotten."""
        keep = self.device_ids & frozenset(device_ids)
        gone = self.device_ids - keep
        if not gone:
            return
        self.feed._unindex(self, gone, frozenset())
        self.device_ids = keep
        self._pending = deque(e for e in self._pending if e.get("device") not in gone)

    def rekey(self, keys: Iterable[Key]) -> None:
        """Be concerned by the notices of these keys from now on (a user's new role)."""
        keys = frozenset(keys)
        self.feed._unindex(self, frozenset(), self.keys - keys)
        self.feed._index(self, frozenset(), keys - self.keys)
        self.keys = keys

    def close(self) -> None:
        """Stop receiving."""
        self.feed._unindex(self, self.device_ids, self.keys)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LiveFeed:
    """Subscribers by device id; publish is synchronous and O(subscribers of that device)."""

    def __init__(self) -> None:
        self._by_device: dict[int, set[Subscription]] = {}
        self._by_key: dict[Key, set[Subscription]] = {}

    def subscribe(self, device_ids: Iterable[int], keys: Iterable[Key] = ()) -> Subscription:
        """Receive the changes of these devices (at most 1000) until ``close``; the change
        notices of ``keys`` (and of these devices) make the subscription stale."""
        ids = frozenset(device_ids)
        if len(ids) > MAX_DEVICES_PER_SUBSCRIPTION:
            raise ValueError(f"at most {MAX_DEVICES_PER_SUBSCRIPTION} devices per subscription")
        sub = Subscription(self, ids, frozenset(keys))
        self._index(sub, sub.device_ids, sub.keys)
        return sub

    def publish(self, device_id: int, event: dict[str, Any]) -> None:
        """Hand a change of one device to its subscribers (``event`` gets ``device``)."""
        subs = self._by_device.get(device_id)
        if not subs:
            return
        event = {**event, "device": device_id}
        for sub in list(subs):
            sub.offer(event)

    def deliver(self, device_id: int, event: dict[str, Any]) -> None:
        """Hand a change another replica relayed to this process's own subscribers only
        (``backend.devices.live_relay``: never relayed again)."""
        for sub in list(self._by_device.get(device_id, ())):
            if sub.local:
                sub.offer(event)

    def attach(self, sub: Subscription) -> None:
        """Index a subscription made elsewhere (the relay's stand-ins for other replicas)."""
        self._index(sub, sub.device_ids, sub.keys)

    def locally_watched(self) -> frozenset[int]:
        """The devices this process's own subscriptions watch (stand-ins left out)."""
        return frozenset(d for d, subs in self._by_device.items() if any(sub.local for sub in subs))

    async def apply(self, change: Change) -> None:
        """Mark stale the subscriptions a change notice concerns (a ``ChangeListener`` handler)."""
        subs = self._by_device.get(change.id) if change.kind == "device" else self._by_key.get(change.key)
        for sub in list(subs or ()):
            sub.mark_stale()

    @property
    def watched(self) -> Mapping[int, object]:
        """The devices some subscription watches (a live view: ``device_id in feed.watched``)."""
        return self._by_device

    def subscribers(self, device_id: int) -> int:
        """How many subscriptions watch a device."""
        return len(self._by_device.get(device_id, ()))

    def _index(self, sub: Subscription, device_ids: frozenset[int], keys: frozenset[Key]) -> None:
        for device_id in device_ids:
            self._by_device.setdefault(device_id, set()).add(sub)
        for key in keys:
            self._by_key.setdefault(key, set()).add(sub)

    def _unindex(self, sub: Subscription, device_ids: frozenset[int], keys: frozenset[Key]) -> None:
        _discard(self._by_device, device_ids, sub)
        _discard(self._by_key, keys, sub)


def _discard(index: dict[T, set[Subscription]], items: Iterable[T], sub: Subscription) -> None:
    """Take ``sub`` out of the sets of ``items``; an empty set leaves the index."""
    for item in items:
        subs = index.get(item)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del index[item]
