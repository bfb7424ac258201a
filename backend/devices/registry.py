"""A read-through cache of what the hot paths need to know of a device: its template's
datastreams by name and by pin, event definitions, metadata fields and connection settings.
Entries expire after a few seconds so template edits made by another process show up without a
restart.

A template's part (datastreams, events, metadata fields: three queries) is cached on its own,
for the same few seconds: the devices of a template share it, so loading a fleet's devices
costs one query a device, not four (issue #16).

Lookups that miss the cache are made together (:class:`_Batches`): those asked for while one
query runs, or before the next starts, are made by the next, in one query (up to
:data:`BATCH` keys), so a fleet connecting at once costs a query per batch rather than per
device. A token query waits up to :data:`GATHER_TURNS` turns of the event loop for more
lookups to join it, while they keep coming; a query by id starts on the next turn (the ingest
asks for one device at a time). A token's lookup reads only the device's id and organization (:class:`TokenHolder`,
all a broker login needs); the rest is read by id when asked for
(:meth:`DeviceRegistry.by_token_hmac`)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from backend.db.changes import Change
from backend.templates.meta import SYSTEM_FIELDS, MetaFieldSpec, custom_spec
from backend.templates.values import DatastreamSpec, DatastreamType

log = logging.getLogger(__name__)

BATCH = 500
"""Keys (token HMACs, device ids) one query looks up at most."""
GATHER_TURNS = 16
"""Turns of the event loop a token query waits at most for more lookups to join it; two turns
in a row that bring none end the wait. A login alone waits two turns (microseconds on an idle
loop); in a connect storm the batches grow and the broker's CPU a connect fell by a fifth to a
third (README "Performance", issue #16)."""
GATHER_PATIENCE = 2
"""Turns in a row without a new lookup that end a token query's wait."""


@dataclass(frozen=True, slots=True)
class TokenHolder:
    """The device holding a token: what a login needs to know of it."""

    id: int
    org_id: int


@dataclass(frozen=True, slots=True)
class EventSpec:
    """An event definition of the device's template."""

    code: str
    name: str
    type: str
    description: str


@dataclass(frozen=True)
class DeviceInfo:
    """A device and what its template says about it."""

    id: int
    name: str
    org_id: int
    template_id: int
    template_name: str
    by_name: dict[str, DatastreamSpec] = field(default_factory=dict)
    by_pin: dict[int, DatastreamSpec] = field(default_factory=dict)
    events: dict[str, EventSpec] = field(default_factory=dict)
    meta: dict[str, MetaFieldSpec] = field(default_factory=lambda: {f.name: f for f in SYSTEM_FIELDS})
    heartbeat_interval: int = 45
    offline_ignore_seconds: int = 0
    org_tz: str = "UTC"
    location: tuple[float, float] | None = None
    """(lat, lon) of the Location the device is assigned to (``backend/locations``), if any."""
    location_tz: str = ""
    """That Location's time zone (empty: the zone at its coordinates)."""

    def meta_by_id(self, field_id: int) -> MetaFieldSpec | None:
        """The metadata field with this ``metaFieldId``."""
        return next((f for f in self.meta.values() if f.field_id == field_id), None)


_DEVICE_SQL = """
SELECT d.id, d.name, d.org_id, d.template_id, t.name, t.heartbeat_interval, t.offline_ignore_seconds, o.tz,
       l.lat, l.lon, l.time_zone
FROM device d JOIN template t ON t.id = d.template_id JOIN organization o ON o.id = d.org_id
LEFT JOIN location l ON l.id = d.location_id
WHERE d.id = ANY(%s)
"""
_HOLDER_SQL = "SELECT token_hmac, id, org_id FROM device WHERE token_hmac = ANY(string_to_array(%s, ' ')::bytea[])"
"""The HMACs go as one text parameter, ``\\x<hex>`` each, space-separated: psycopg's list
adapter inspects every element on every query (a fifth to a quarter of the CPU a query of 4
tokens costs the broker, a third at 16, half at 64)."""
_DS_SQL = """
SELECT pin, name, type, min, max, default_value, sync, save_raw FROM datastream WHERE template_id = %s
"""
_EVENT_SQL = "SELECT code, name, type, description FROM event_def WHERE template_id = %s"
_META_SQL = "SELECT field_id, name, type, default_value FROM meta_field WHERE template_id = %s ORDER BY field_id"


class DeviceRegistry:
    """Device lookups by id or token HMAC, cached for ``ttl`` seconds."""

    def __init__(self, pool: AsyncConnectionPool, ttl: float = 5.0) -> None:
        self.pool = pool
        self.ttl = ttl
        self._by_id: dict[int, tuple[float, DeviceInfo | None]] = {}
        self._by_hmac: dict[bytes, tuple[float, TokenHolder | None]] = {}
        self._templates: dict[int, tuple[float, _TemplatePart]] = {}
        self._holders = _Batches(self._load_holders, GATHER_TURNS)
        self._devices = _Batches(self._load_devices, 0)
        self.generation = 0
        """Counts :meth:`invalidate` calls: what was derived from cached entries is stale once
        it moves."""

    async def get(self, device_id: int) -> DeviceInfo | None:
        """The device with this id, or None.

        While the database cannot be reached, an expired entry is still used (a device that
        was known a minute ago is still that device): an outage must not drop its data.
        """
        hit = self._by_id.get(device_id)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        try:
            info = await self._devices.get(device_id)
        except (psycopg.OperationalError, PoolTimeout):
            if hit is None:
                raise
            log.warning("database unreachable: using the cached entry of device %s", device_id)
            self._by_id[device_id] = (time.monotonic() + self.ttl, hit[1])  # don't wait on every message
            return hit[1]
        self._by_id[device_id] = (time.monotonic() + self.ttl, info)
        return info

    def remember(self, info: DeviceInfo) -> None:
        """Cache ``info`` as fresh for the registry's time to live (what a load found)."""
        self._by_id[info.id] = (time.monotonic() + self.ttl, info)

    def cached(self, device_id: int) -> DeviceInfo | None:
        """The device if it is in the cache and fresh, else None (then ask :meth:`get`, which
        also knows devices that do not exist)."""
        hit = self._by_id.get(device_id)
        return hit[1] if hit is not None and hit[0] > time.monotonic() else None

    async def by_token_hmac(self, token_hmac: bytes) -> DeviceInfo | None:
        """The device holding the token with this HMAC, or None (stale entries serve while
        the database cannot be reached, as in :meth:`get`)."""
        holder = await self.holder(token_hmac)
        return await self.get(holder.id) if holder is not None else None

    async def holder(self, token_hmac: bytes) -> TokenHolder | None:
        """The id and organization of the device holding the token with this HMAC, or None
        (a stale entry serves while the database cannot be reached, as in :meth:`get`)."""
        hit = self._by_hmac.get(token_hmac)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        try:
            holder = await self._holders.get(token_hmac)
        except (psycopg.OperationalError, PoolTimeout):
            if hit is None or hit[1] is None:
                raise
            log.warning("database unreachable: using the cached holder of a token (device %s)", hit[1].id)
            self._by_hmac[token_hmac] = (time.monotonic() + self.ttl, hit[1])  # as get() does
            return hit[1]
        self._by_hmac[token_hmac] = (time.monotonic() + self.ttl, holder)
        return holder

    def invalidate(self, device_id: int | None = None) -> None:
        """Forget one device (or everything)."""
        self.generation += 1
        if device_id is None:
            self._by_id.clear()
            self._by_hmac.clear()
            self._templates.clear()
            return
        self._by_id.pop(device_id, None)
        self._by_hmac = {k: v for k, v in self._by_hmac.items() if v[1] is None or v[1].id != device_id}

    async def apply(self, change: Change) -> None:
        """Drop what a change notice makes stale (a template change touches all its devices;
        notices about users, roles and organizations touch nothing cached here)."""
        if change.kind == "device":
            self.invalidate(change.id)
        elif change.kind == "template":
            self.invalidate()

    async def _load_holders(self, token_hmacs: list[bytes]) -> dict[bytes, TokenHolder]:
        """The holders of these token HMACs, by HMAC (one query)."""
        listed = " ".join("\\x" + token.hex() for token in token_hmacs)
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(_HOLDER_SQL, (listed,))).fetchall()
        return {bytes(token): TokenHolder(device_id, org_id) for token, device_id, org_id in rows}

    async def _load_devices(self, device_ids: list[int]) -> dict[int, DeviceInfo]:
        """These devices, by id (one query, and one a template part not cached)."""
        generation = self.generation
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(_DEVICE_SQL, (device_ids,))).fetchall()
            return {row[0]: self._info(row, await self._part(conn, row[3], generation)) for row in rows}

    async def _part(self, conn: psycopg.AsyncConnection[Any], template_id: int, generation: int) -> _TemplatePart:
        """A template's part, cached (not kept if read across an invalidation)."""
        hit = self._templates.get(template_id)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        part = await _template_part(conn, template_id)
        if self.generation == generation:
            self._templates[template_id] = (time.monotonic() + self.ttl, part)
        return part

    @staticmethod
    def _info(row: Any, part: _TemplatePart) -> DeviceInfo:
        """A device's row and its template's part as one entry."""
        specs, events, meta = part
        return DeviceInfo(
            id=row[0],
            name=row[1],
            org_id=row[2],
            template_id=row[3],
            template_name=row[4],
            by_name={s.name: s for s in specs},
            by_pin={s.pin: s for s in specs},
            events={e.code: e for e in events},
            meta=dict(meta),
            heartbeat_interval=row[5],
            offline_ignore_seconds=row[6],
            org_tz=row[7],
            location=None if row[8] is None else (float(row[8]), float(row[9])),
            location_tz=row[10] or "",
        )


K = TypeVar("K")
V = TypeVar("V")


class _Batches(Generic[K, V]):
    """Lookups made together: ``load`` answers a batch of keys in one query, made once
    :data:`GATHER_PATIENCE` turns of the event loop in a row bring no more of them, or after
    ``turns`` turns (see the module docstring);
    each caller keeps its own future, so one that gives up leaves the others answered, and a
    failed query fails each of its callers."""

    def __init__(self, load: Callable[[list[K]], Awaitable[dict[K, V]]], turns: int) -> None:
        self._load = load
        self._turns = turns
        self._wanted: dict[K, list[asyncio.Future[V | None]]] = {}
        self._loading: asyncio.Task[None] | None = None

    async def get(self, key: K) -> V | None:
        """What ``load`` finds for ``key`` (None: nothing)."""
        future: asyncio.Future[V | None] = asyncio.get_running_loop().create_future()
        self._wanted.setdefault(key, []).append(future)
        if self._loading is None:
            self._loading = asyncio.create_task(self._run())
        return await future

    async def _run(self) -> None:
        """Load the wanted keys, a batch a query, until none is left."""
        waiters: dict[K, list[asyncio.Future[V | None]]] = {}
        try:
            while self._wanted:
                wanted, idle = len(self._wanted), 0
                for _ in range(self._turns):
                    await asyncio.sleep(0)
                    idle = idle + 1 if len(self._wanted) == wanted else 0
                    if idle == GATHER_PATIENCE:
                        break  # the storm, if any, has paused: ask for what came
                    wanted = len(self._wanted)
                waiters = {key: self._wanted.pop(key) for key in list(self._wanted)[:BATCH]}
                try:
                    found = await self._load(list(waiters))
                except Exception as exc:  # each waiter gets it (the registry's outage rule)
                    for futures in waiters.values():
                        for future in futures:
                            if not future.done():
                                future.set_exception(exc)
                    continue
                for key, futures in waiters.items():
                    for future in futures:
                        if not future.done():
                            future.set_result(found.get(key))
                waiters = {}
        finally:
            self._loading = None
            for futures in (*waiters.values(), *self._wanted.values()):  # cancelled: nobody hangs
                for future in futures:
                    future.cancel()
            self._wanted.clear()


_TemplatePart = tuple[tuple[DatastreamSpec, ...], tuple[EventSpec, ...], dict[str, MetaFieldSpec]]
"""A template's datastreams, event definitions and metadata fields (system fields first)."""


async def _template_part(conn: psycopg.AsyncConnection[Any], template_id: int) -> _TemplatePart:
    specs = tuple(
        DatastreamSpec(
            pin=r[0],
            name=r[1],
            type=DatastreamType(r[2]),
            min=r[3],
            max=r[4],
            default_value=r[5],
            sync=r[6],
            save_raw=r[7],
            template_id=template_id,
        )
        for r in await (await conn.execute(_DS_SQL, (template_id,))).fetchall()
    )
    events = tuple(EventSpec(*r) for r in await (await conn.execute(_EVENT_SQL, (template_id,))).fetchall())
    custom = [custom_spec(*r) for r in await (await conn.execute(_META_SQL, (template_id,))).fetchall()]
    return specs, events, {f.name: f for f in (*SYSTEM_FIELDS, *custom)}
