"""A read-through cache of what the hot paths need to know of a device: its template's
datastreams by name and by pin, event definitions, metadata fields and connection settings.
Entries expire after a few seconds so template edits made by another process show up without a
restart.

A template's part (datastreams, events, metadata fields: three queries) is cached on its own,
for the same few seconds: the devices of a template share it, so a fleet connecting at once
(each device's token looked up as it connects) costs one query a device, not four (issue #16:
the lookups were about half of the broker's CPU a connect).

Token lookups that miss the cache are made together: those asked for while one query runs
are looked up by the next, in one query (up to :data:`TOKEN_BATCH` tokens), so a fleet
connecting at once costs a query per batch rather than per device and a pool connection (and
its check) per batch too."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from backend.db.changes import Change
from backend.templates.meta import SYSTEM_FIELDS, MetaFieldSpec, custom_spec
from backend.templates.values import DatastreamSpec, DatastreamType

log = logging.getLogger(__name__)

TOKEN_BATCH = 500
"""Token HMACs one query looks up at most (:meth:`DeviceRegistry.by_token_hmac`)."""


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
       l.lat, l.lon, l.time_zone, d.token_hmac
FROM device d JOIN template t ON t.id = d.template_id JOIN organization o ON o.id = d.org_id
LEFT JOIN location l ON l.id = d.location_id
WHERE {where}
"""
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
        self._by_hmac: dict[bytes, tuple[float, int | None]] = {}
        self._templates: dict[int, tuple[float, _TemplatePart]] = {}
        self._wanted: dict[bytes, list[asyncio.Future[DeviceInfo | None]]] = {}
        """Token HMACs to look up, with who waits for each (see module docstring)."""
        self._loading: asyncio.Task[None] | None = None
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
            info = await self._load("d.id = %s", device_id)
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
        hit = self._by_hmac.get(token_hmac)
        if hit and hit[0] > time.monotonic():
            return await self.get(hit[1]) if hit[1] is not None else None
        future: asyncio.Future[DeviceInfo | None] = asyncio.get_running_loop().create_future()
        self._wanted.setdefault(token_hmac, []).append(future)
        if self._loading is None:
            self._loading = asyncio.create_task(self._load_tokens())
        try:
            info = await future
        except (psycopg.OperationalError, PoolTimeout):
            if hit is None or hit[1] is None:
                raise
            return await self.get(hit[1])
        self._by_hmac[token_hmac] = (time.monotonic() + self.ttl, info.id if info else None)
        if info:
            self.remember(info)
        return info

    def invalidate(self, device_id: int | None = None) -> None:
        """Forget one device (or everything)."""
        self.generation += 1
        if device_id is None:
            self._by_id.clear()
            self._by_hmac.clear()
            self._templates.clear()
            return
        self._by_id.pop(device_id, None)
        self._by_hmac = {k: v for k, v in self._by_hmac.items() if v[1] != device_id}

    async def apply(self, change: Change) -> None:
        """Drop what a change notice makes stale (a template change touches all its devices;
        notices about users, roles and organizations touch nothing cached here)."""
        if change.kind == "device":
            self.invalidate(change.id)
        elif change.kind == "template":
            self.invalidate()

    async def _load_tokens(self) -> None:
        """Look up the wanted token HMACs, a batch a query, until none is left."""
        waiters: dict[bytes, list[asyncio.Future[DeviceInfo | None]]] = {}
        try:
            while self._wanted:
                waiters = {token: self._wanted.pop(token) for token in list(self._wanted)[:TOKEN_BATCH]}
                try:
                    found = await self._load_many(list(waiters))
                except Exception as exc:  # each waiter gets it (by_token_hmac's outage rule)
                    for futures in waiters.values():
                        for future in futures:
                            if not future.done():
                                future.set_exception(exc)
                    continue
                for token, futures in waiters.items():
                    for future in futures:
                        if not future.done():
                            future.set_result(found.get(token))
                waiters = {}
        finally:
            self._loading = None
            for futures in (*waiters.values(), *self._wanted.values()):  # cancelled: nobody hangs
                for future in futures:
                    future.cancel()
            self._wanted.clear()

    async def _load_many(self, token_hmacs: list[bytes]) -> dict[bytes, DeviceInfo]:
        """The devices holding these token HMACs, by HMAC (one query)."""
        generation = self.generation
        async with self.pool.connection() as conn:
            rows = await (
                await conn.execute(_DEVICE_SQL.format(where="d.token_hmac = ANY(%s)"), (token_hmacs,))
            ).fetchall()
            return {bytes(row[11]): self._info(row, await self._part(conn, row[3], generation)) for row in rows}

    async def _load(self, where: str, arg: object) -> DeviceInfo | None:
        generation = self.generation
        async with self.pool.connection() as conn:
            row = await (await conn.execute(_DEVICE_SQL.format(where=where), (arg,))).fetchone()
            if row is None:
                return None
            return self._info(row, await self._part(conn, row[3], generation))

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
