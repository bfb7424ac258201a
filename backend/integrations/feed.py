"""The read-only device feed of each organization's MQTT namespace.

Broker-side topics (an integration client sees them without ``o/<org>/``)::

    o/<org>/dev/<device id>/ds/<datastream name>   the value as stored (text), QoS 0
    o/<org>/dev/<device id>/event/<event code>     {"name","type","description","ts"}, QoS 0
    o/<org>/dev/<device id>/online                 "1" or "0", QoS 0

A device is fed into the namespace of every organization, its own or one above it, that has a
working OAuth client that "may use MQTT": as Blynk's organization hierarchy lets a parent see
its sub-organizations' devices, a parent's integration sees them too, while a sub-
organization's never sees its parent's or a sibling's. Which devices those are is read from
PostgreSQL at start and again after a change notice of a device, template, organization or
OAuth client; a device made since (no notice tells of a new device) is looked up in the
registry's cache when it first comes online.
Their templates are watched through :class:`DeviceSignals` (so other values cost the ingest
nothing). With several app replicas each one publishes what it ingests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence
from typing import Protocol

from psycopg_pool import AsyncConnectionPool

from backend.db.changes import Change
from backend.devices.registry import DeviceInfo
from backend.devices.signals import (
    ALL_PINS,
    DeviceEventSignal,
    DeviceSignals,
    PresenceSignal,
    StoredValue,
    StoredValues,
)
from backend.templates.values import shown_text

log = logging.getLogger(__name__)

_FED_ORGS_SQL = """WITH RECURSIVE fed(root, id) AS (
        SELECT DISTINCT org_id, org_id FROM oauth_client WHERE mqtt_enabled AND revoked_at IS NULL
        UNION SELECT f.root, o.id FROM organization o JOIN fed f ON o.parent_id = f.id)
    SELECT id, array_agg(root ORDER BY root) FROM fed GROUP BY id"""
"""Each organization whose devices are fed, with the fed organizations (itself or above) whose
namespaces they go to."""
_FED_SQL = "SELECT d.id, d.org_id, d.template_id FROM device d WHERE d.org_id = ANY(%s)"
_RELOAD_KINDS = frozenset({"device", "template", "org", "oauth_client"})


class Devices(Protocol):
    """Where a device's organization and template are looked up (the app's device registry)."""

    async def get(self, device_id: int) -> DeviceInfo | None: ...


class Publisher(Protocol):
    """Where the feed goes (the app's MQTT service client)."""

    def publish(self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False) -> object: ...


def feed_topic(org_id: int, device_id: int, relative: str) -> str:
    """The broker-side topic of one device's feed item in its organization's namespace."""
    return f"o/{org_id}/dev/{device_id}/{relative}"


class DeviceFeed:
    """Publishes the fed devices' values, events and presence (see module docstring)."""

    def __init__(
        self, pool: AsyncConnectionPool, signals: DeviceSignals, publisher: Publisher, devices: Devices | None = None
    ) -> None:
        self.pool = pool
        self.signals = signals
        self.publisher = publisher
        self.devices = devices
        self.orgs: dict[int, tuple[int, ...]] = {}
        """Fed device id -> the organizations whose namespaces it goes to (its own and above)."""
        self.fed_orgs: dict[int, tuple[int, ...]] = {}
        """Organization -> the fed organizations (itself or above) its devices go to."""
        self._checked: set[int] = set()
        """Devices found not fed since the last load (looked up once)."""
        self._lookups: set[asyncio.Task[None]] = set()
        self._templates: set[int] = set()
        self._reload: asyncio.Task[None] | None = None
        self._again = False
        signals.on_values(self.values)
        signals.on_event(self.event)
        signals.on_presence(self.presence)

    async def load(self) -> None:
        """Read which devices are fed, and watch their templates."""
        async with self.pool.connection() as conn:
            orgs = await (await conn.execute(_FED_ORGS_SQL)).fetchall()
            fed_orgs = {int(r[0]): tuple(int(root) for root in r[1]) for r in orgs}
            rows = await (await conn.execute(_FED_SQL, (list(fed_orgs),))).fetchall()
        self.fed_orgs = fed_orgs
        self.orgs = {int(r[0]): fed_orgs[int(r[1])] for r in rows}
        self._checked.clear()
        templates = {int(r[2]) for r in rows}
        for template_id in templates - self._templates:
            self.signals.watch_all(template_id)
        for template_id in self._templates - templates:
            self.signals.unwatch(template_id, ALL_PINS)
        self._templates = templates

    async def apply(self, change: Change) -> None:
        """A change notice (``ChangeListener`` handler): read the fed devices again, once at a time."""
        if change.kind not in _RELOAD_KINDS:
            return
        if self._reload is not None and not self._reload.done():
            self._again = True
            return
        self._reload = asyncio.create_task(self._reload_loop())

    async def _reload_loop(self) -> None:
        while True:
            self._again = False
            try:
                await self.load()
            except Exception:
                log.exception("reading the integration feed's devices failed; keeping the last list")
            if not self._again:
                return

    async def stop(self) -> None:
        """Wait for a reload under way to end."""
        for task in [self._reload, *self._lookups]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def _adopt_later(self, signal: PresenceSignal) -> None:
        """A device not known to be fed came online: look it up once (it may be new)."""
        if self.devices is None or signal.device_id in self._checked or not self.fed_orgs:
            return
        self._checked.add(signal.device_id)
        task = asyncio.get_running_loop().create_task(self._adopt(signal))
        self._lookups.add(task)
        task.add_done_callback(self._lookups.discard)

    async def _adopt(self, signal: PresenceSignal) -> None:
        assert self.devices is not None
        try:
            info = await self.devices.get(signal.device_id)
        except Exception:
            log.exception("looking up device %d for the integration feed failed", signal.device_id)
            return
        roots = self.fed_orgs.get(info.org_id) if info is not None else None
        if info is None or roots is None:
            return
        self.orgs[info.id] = roots
        if info.template_id not in self._templates:
            self._templates.add(info.template_id)
            self.signals.watch_all(info.template_id)
        self.presence(signal)

    def values(self, stored: Sequence[StoredValue]) -> None:
        """Values listener: each value of a fed device goes to ``dev/<id>/ds/<name>``."""
        orgs, publish = self.orgs, self.publisher.publish
        if isinstance(stored, StoredValues):  # plain rows: items are made only for fed devices
            for device_id, _, _, name, shown, _, _ in stored.rows:
                roots = orgs.get(device_id)
                if roots is not None:
                    payload = shown_text(shown).encode()
                    for org in roots:
                        publish(feed_topic(org, device_id, f"ds/{name}"), payload)
            return
        for value in stored:
            for org in orgs.get(value.device_id, ()):
                publish(feed_topic(org, value.device_id, f"ds/{value.name}"), value.text.encode())

    def event(self, signal: DeviceEventSignal) -> None:
        """Event listener: ``dev/<id>/event/<code>``."""
        roots = self.orgs.get(signal.device_id, ())
        if roots:
            body = json.dumps(
                {
                    "name": signal.name,
                    "type": signal.type,
                    "description": signal.description,
                    "ts": int(signal.at.timestamp() * 1000),
                }
            )
            for org in roots:
                self.publisher.publish(feed_topic(org, signal.device_id, f"event/{signal.code}"), body)

    def presence(self, signal: PresenceSignal) -> None:
        """Presence listener: ``dev/<id>/online``."""
        roots = self.orgs.get(signal.device_id)
        if roots is None:
            if signal.online:
                self._adopt_later(signal)
            return
        for org in roots:
            self.publisher.publish(feed_topic(org, signal.device_id, "online"), b"1" if signal.online else b"0")
