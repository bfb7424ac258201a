"""What makes webhooks fire: device signals matched against the enabled webhooks in memory.

:class:`WebhookTriggers` keeps the enabled webhooks of every organization indexed by what
triggers them, and registers with :class:`~backend.devices.signals.DeviceSignals`:

- datastream updates: it watches exactly the datastreams that webhooks name (``watch``), or
  whole templates for "any datastream" (``watch_all``), so values nobody hooked cost the
  ingest nothing; a device webhook watches its device's template and filters by device;
- a device's first connection and its activation: the webhooks of the device's organization
  and of those above it;
- a user added: the webhooks of that organization.

A webhook fires for devices of its own organization and below only: a template shared by
sibling organizations does not carry one tenant's values to the other's webhook.

Listeners only match in memory and hand the delivery to the sender's bounded queue; the
placeholder values (device, template and organization names) are read when the delivery is
made. The index is reloaded when a ``webhook:<id>`` change notice arrives (any process that
edits webhooks sends one; :meth:`WebhookTriggers.apply` is a ``ChangeListener`` handler).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from backend.db.changes import Change
from backend.devices.signals import ALL_PINS, DeviceSignals, StoredValue, StoredValues
from backend.webhooks.delivery import Planned, WebhookSender

log = logging.getLogger(__name__)

_ENABLED_SQL = """SELECT w.id, w.org_id, w.trigger_kind, w.template_id, w.device_id, w.pin, d.template_id AS device_template
FROM webhook w LEFT JOIN device d ON d.id = w.device_id
WHERE w.enabled AND w.trigger_kind <> 'manual'"""
_DEVICE_SQL = """WITH RECURSIVE up(id, parent_id) AS (
    SELECT o.id, o.parent_id FROM organization o JOIN device d ON d.org_id = o.id WHERE d.id = %(id)s
    UNION ALL SELECT o.id, o.parent_id FROM organization o JOIN up ON o.id = up.parent_id)
SELECT d.id, d.name, d.org_id, t.public_id, t.name AS template_name, o.name AS org_name,
       (SELECT array_agg(id) FROM up) AS orgs
FROM device d JOIN template t ON t.id = d.template_id JOIN organization o ON o.id = d.org_id WHERE d.id = %(id)s"""
"""A device's placeholder values, and its organization with those above it: the organizations
whose webhooks it may fire (never a sibling's, even through a shared template)."""
_USER_SQL = "SELECT id, email, name FROM app_user WHERE id = %s AND org_id = %s"

USER_LOOKUPS = 10
USER_LOOKUP_WAIT_S = 0.5
"""A user added is looked up for up to 5 s (the signal may come before its transaction commits)."""
DATASTREAM_KINDS = frozenset({"template_datastream", "device_datastream"})
DEVICE_KINDS = frozenset({"first_connection", "device_activated"})


@dataclass(frozen=True, slots=True)
class Hook:
    """An enabled webhook, as the index keeps it."""

    id: int
    org_id: int


@dataclass
class Index:
    """The enabled webhooks by what triggers them."""

    by_datastream: dict[tuple[int, int], list[Hook]] = field(default_factory=dict)
    """``(template_id, pin or ALL_PINS)`` → template webhooks."""
    by_device: dict[int, list[tuple[Hook, int]]] = field(default_factory=dict)
    """device id → device webhooks with their pin (``ALL_PINS`` for any)."""
    by_org: dict[tuple[str, int], list[Hook]] = field(default_factory=dict)
    """``(trigger kind, org_id)`` → webhooks of device and user triggers."""
    watches: set[tuple[int, int]] = field(default_factory=set)
    """``(template_id, pin)`` this index needs watched."""

    @classmethod
    def of(cls, rows: Sequence[Mapping[str, Any]]) -> Index:
        """The index of the enabled webhooks' rows."""
        index = cls()
        for row in rows:
            hook, kind = Hook(int(row["id"]), int(row["org_id"])), str(row["trigger_kind"])
            pin = ALL_PINS if row["pin"] is None else int(row["pin"])
            if kind == "template_datastream":
                key = (int(row["template_id"]), pin)
                index.by_datastream.setdefault(key, []).append(hook)
                index.watches.add(key)
            elif kind == "device_datastream" and row["device_template"] is not None:
                index.by_device.setdefault(int(row["device_id"]), []).append((hook, pin))
                index.watches.add((int(row["device_template"]), pin))
            else:
                index.by_org.setdefault((kind, hook.org_id), []).append(hook)
        return index

    def for_value(self, device_id: int, template_id: int, pin: int) -> list[Hook]:
        """The webhooks a stored value of this device, template and pin triggers."""
        found = [*self.by_datastream.get((template_id, pin), ()), *self.by_datastream.get((template_id, ALL_PINS), ())]
        found += [hook for hook, hooked in self.by_device.get(device_id, ()) if hooked in (ALL_PINS, pin)]
        return found


class WebhookTriggers:
    """Fires webhooks on device signals (see the module's docstring)."""

    def __init__(self, pool: AsyncConnectionPool, signals: DeviceSignals, sender: WebhookSender) -> None:
        self.pool = pool
        self.signals = signals
        self.sender = sender
        self.index = Index()
        signals.on_values(self._values)
        signals.on_first_connection(self._first_connection)
        signals.on_activated(self._activated)
        signals.on_user_added(self._user_added)

    async def load(self) -> None:
        """Read the enabled webhooks again and watch what they need (unwatch what they no longer do)."""
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            rows = await (await cur.execute(_ENABLED_SQL)).fetchall()
        index = Index.of(rows)
        for template_id, pin in index.watches - self.index.watches:
            self.signals.watch(template_id, pin)
        for template_id, pin in self.index.watches - index.watches:
            self.signals.unwatch(template_id, pin)
        self.index = index

    async def apply(self, change: Change) -> None:
        """A change notice: reload on any webhook's change."""
        if change.kind == "webhook":
            await self.load()

    async def stop(self) -> None:
        """Unwatch every datastream (the listeners stay registered but match nothing)."""
        for template_id, pin in self.index.watches:
            self.signals.unwatch(template_id, pin)
        self.index = Index()

    # -- listeners (synchronous, cheap: match in memory, queue the delivery) ------------------
    def _values(self, stored: Sequence[StoredValue]) -> None:
        index = self.index
        if not index.watches:
            return
        keys: Iterable[tuple[int, int, int]]  # device, template, pin; from the batch's plain tuples when it has them
        if isinstance(stored, StoredValues):
            keys = ((row[0], row[1], row[2]) for row in stored.rows)
        else:
            keys = ((v.device_id, v.template_id, v.pin) for v in stored)
        for position, (device_id, template_id, pin) in enumerate(keys):
            hooks = index.for_value(device_id, template_id, pin)
            if not hooks:
                continue  # a value of a datastream automations watch, but no webhook: no StoredValue is made
            value = stored[position]
            for hook in hooks:
                values = {
                    "DATASTREAM_NAME": value.name,
                    "DATASTREAM_PIN": str(value.pin),
                    "TRIGGER_VALUE": value.text,
                    "TIMESTAMP": value.at.isoformat(),
                }
                self._queue(hook, value.device_id, values, f"datastream {value.name} of device {value.device_id}")

    def _first_connection(self, device_id: int) -> None:
        self._device_kind("first_connection", device_id)

    def _activated(self, device_id: int) -> None:
        self._device_kind("device_activated", device_id)

    def _device_kind(self, kind: str, device_id: int) -> None:
        if not any(k == kind for k, _ in self.index.by_org):
            return
        self.sender.enqueue_lazy(lambda: self._device_deliveries(kind, device_id))

    async def _device_deliveries(self, kind: str, device_id: int) -> list[Planned]:
        device = await self._device(device_id)
        if device is None:
            return []
        hooks = [hook for org in device["orgs"] for hook in self.index.by_org.get((kind, org), ())]
        trigger = f"{kind.replace('_', ' ')}: device {device_id}"
        return [(hook.id, hook.org_id, _device_values(device), trigger) for hook in hooks]

    def _user_added(self, org_id: int, user_id: int) -> None:
        hooks = self.index.by_org.get(("user_added", org_id))
        if hooks:
            self.sender.enqueue_lazy(lambda: self._user_deliveries(list(hooks), org_id, user_id))

    async def _user_deliveries(self, hooks: list[Hook], org_id: int, user_id: int) -> list[Planned]:
        row = None
        for _ in range(USER_LOOKUPS):  # told before the transaction that added the user commits, it may not show yet
            async with self.pool.connection() as conn:
                row = await (await conn.execute(_USER_SQL, (user_id, org_id))).fetchone()
            if row is not None:
                break
            await asyncio.sleep(USER_LOOKUP_WAIT_S)
        if row is None:
            return []
        values = {"USER_ID": str(row[0]), "USER_EMAIL": row[1], "USER_NAME": row[2]}
        return [(hook.id, hook.org_id, values, f"user added: {user_id}") for hook in hooks]

    def _queue(self, hook: Hook, device_id: int, extra: Mapping[str, str], trigger: str) -> None:
        async def deliveries() -> list[Planned]:
            device = await self._device(device_id)
            if device is None or hook.org_id not in device["orgs"]:
                return []
            return [(hook.id, hook.org_id, {**_device_values(device), **extra}, trigger)]

        self.sender.enqueue_lazy(deliveries)

    async def _device(self, device_id: int) -> Mapping[str, Any] | None:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            return await (await cur.execute(_DEVICE_SQL, {"id": device_id})).fetchone()


def _device_values(device: Mapping[str, Any]) -> dict[str, str]:
    return {
        "DEVICE_ID": str(device["id"]),
        "ORG_ID": str(device["org_id"]),
        "DEVICE_NAME": str(device["name"]),
        "TEMPLATE_ID": str(device["public_id"]),
        "TEMPLATE_NAME": str(device["template_name"]),
        "PRODUCT_NAME": str(device["template_name"]),
        "ORG_NAME": str(device["org_name"]),
    }
