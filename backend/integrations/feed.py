"""The read-only device feed of each organization's MQTT namespace.

Broker-side topics (an integration client sees them without ``o/<org>/``)::

    o/<org>/dev/<device id>/ds/<datastream name>   the value as stored (text), QoS 0
    o/<org>/dev/<device id>/event/<event code>     {"name","type","description","ts"}, QoS 0
    o/<org>/dev/<device id>/online                 "1" or "0", QoS 0

Only devices of organizations with a working OAuth client that "may use MQTT" are fed, each
into its own organization's namespace (a device of a sub-organization is in the sub-
organization's feed). Which devices those are is read from PostgreSQL at start and again after
a change notice of a device, template, organization or OAuth client; a device made since (no
notice tells of a new device) is looked up in the registry's cache when it first comes online.
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

_FED_ORGS_SQL = "SELECT DISTINCT org_id FROM oauth_client WHERE mqtt_enabled AND revoked_at IS NULL"
_FED_SQL = f"SELECT d.id, d.org_id, d.template_id FROM device d WHERE d.org_id IN ({_FED_ORGS_SQL})"
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
        self.orgs: dict[int, int] = {}
        """Fed device id -> its organization."""
        self.fed_orgs: frozenset[int] = frozenset()
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
            rows = await (await conn.execute(_FED_SQL)).fetchall()
        self.fed_orgs = frozenset(int(r[0]) for r in orgs)
        self.orgs = {int(r[0]): int(r[1]) for r in rows}
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
        if info is None or info.org_id not in self.fed_orgs:
            return
        self.orgs[info.id] = info.org_id
        if info.template_id not in self._templates:
            self._templates.add(info.template_id)
            self.signals.watch_all(info.template_id)
        self.presence(signal)

    def values(self, stored: Sequence[StoredValue]) -> None:
        """Values listener: each value of a fed device goes to ``dev/<id>/ds/<name>``."""
        orgs, publish = self.orgs, self.publisher.publish
        if isinstance(stored, StoredValues):  # plain rows: items are made only for fed devices
            for device_id, _, _, name, shown, _, _ in stored.rows:
                org = orgs.get(device_id)
                if org is not None:
                    publish(feed_topic(org, device_id, f"ds/{name}"), shown_text(shown).encode())
            return
        for value in stored:
            org = orgs.get(value.device_id)
            if org is not None:
                publish(feed_topic(org, value.device_id, f"ds/{value.name}"), value.text.encode())

    def event(self, signal: DeviceEventSignal) -> None:
        """Event listener: ``dev/<id>/event/<code>``."""
        org = self.orgs.get(signal.device_id)
        if org is not None:
            body = {
                "name": signal.name,
                "type": signal.type,
                "description": signal.description,
                "ts": int(signal.at.timestamp() * 1000),
            }
            self.publisher.publish(feed_topic(org, signal.device_id, f"event/{signal.code}"), json.dumps(body))

    def presence(self, signal: PresenceSignal) -> None:
        """Presence listener: ``dev/<id>/online``."""
        org = self.orgs.get(signal.device_id)
        if org is None:
            if signal.online:
                self._adopt_later(signal)
            return
        self.publisher.publish(feed_topic(org, signal.device_id, "online"), b"1" if signal.online else b"0")
