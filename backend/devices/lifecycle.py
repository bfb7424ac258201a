"""Connection lifecycle of devices: online/offline, last seen, vitals, ping and what a device
reports about itself when it connects (``info/mcu``: firmware and board).

* MQTT devices: ``sys/presence/<id>`` from the broker (online with connection details,
  offline with the reason and the connection's final vitals), ``sys/vitals/<id>`` while
  connected, ``sys/ping/<id>`` after a ``downlink/ping``. Retained presence delivered again
  after an app restart changes nothing: timeline entries are written on transitions only.
* HTTP-only devices (Blynk's "log when device reports any data"): a device that reports data
  over HTTP counts as online for its template's heartbeat interval × 1.5 after each report.
* ``last_seen`` moves on every uplink, in memory; it is written at most once per
  ``flush_seconds`` per device, never once per message.
* "Disconnections today" counts offline transitions of the UTC day ``disconnects_day``; a
  reader shows 0 when that day is not today.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from psycopg_pool import AsyncConnectionPool

from backend.devices.live import LiveFeed
from backend.devices.registry import DeviceInfo
from backend.devices.timeline import Timeline
from backend.tasks import cancel

log = logging.getLogger(__name__)

_ONLINE_SQL = """
WITH old AS (SELECT id, online, connected_at FROM device WHERE id = %(id)s FOR UPDATE)
UPDATE device d SET online = true, online_via = 'mqtt', ip = %(ip)s, client_id = %(client_id)s,
    keep_alive = %(keep_alive)s, connected_at = %(at)s, last_seen = GREATEST(d.last_seen, %(at)s)
FROM old WHERE d.id = old.id AND (d.connected_at IS NULL OR d.connected_at <= %(at)s)
RETURNING old.online, old.connected_at IS NULL
"""
_OFFLINE_SQL = """
WITH old AS (SELECT id, online FROM device WHERE id = %(id)s FOR UPDATE)
UPDATE device d SET online = false, online_via = NULL, disconnected_at = %(at)s,
    last_seen = GREATEST(d.last_seen, %(at)s),
    disconnects_today = CASE WHEN NOT old.online THEN d.disconnects_today
        WHEN d.disconnects_day = %(day)s THEN d.disconnects_today + 1 ELSE 1 END,
    disconnects_day = CASE WHEN old.online THEN %(day)s ELSE d.disconnects_day END,
    msgs_in = COALESCE(%(msgs_in)s, d.msgs_in), msgs_out = COALESCE(%(msgs_out)s, d.msgs_out),
    bytes_in = COALESCE(%(bytes_in)s, d.bytes_in), bytes_out = COALESCE(%(bytes_out)s, d.bytes_out),
    vitals_at = CASE WHEN %(has_vitals)s THEN %(at)s ELSE d.vitals_at END
FROM old WHERE d.id = old.id AND (d.connected_at IS NULL OR d.connected_at <= %(at)s)
RETURNING old.online
"""
_VITALS_SQL = """
UPDATE device SET msgs_in = %(msgs_in)s, msgs_out = %(msgs_out)s, bytes_in = %(bytes_in)s,
    bytes_out = %(bytes_out)s, vitals_at = %(at)s, last_seen = GREATEST(last_seen, %(at)s)
WHERE id = %(id)s AND (vitals_at IS NULL OR vitals_at <= %(at)s)
"""
_VITAL_KEYS = ("msgs_in", "msgs_out", "bytes_in", "bytes_out")


def _ms(value: Any) -> datetime:
    """A broker timestamp (epoch ms) as an aware datetime; raises ValueError/TypeError."""
    return datetime.fromtimestamp(int(value) / 1000, tz=UTC)


def _vitals(doc: Any) -> dict[str, int | None]:
    """The four counters of a vitals document (None where missing or not an integer)."""
    doc = doc if isinstance(doc, dict) else {}
    return {
        k: doc[k] if isinstance(doc.get(k), int) and not isinstance(doc.get(k), bool) else None for k in _VITAL_KEYS
    }


class Lifecycle:
    """Keeps the connection state, last seen, vitals, ping and firmware report of devices."""

    def __init__(
        self,
        pool: AsyncConnectionPool,
        timeline: Timeline,
        flush_seconds: float = 5.0,
        sweep_seconds: float = 0.5,
        live: LiveFeed | None = None,
    ) -> None:
        self.pool = pool
        self.live = live or LiveFeed()
        self.timeline = timeline
        self.flush_seconds = flush_seconds
        self.sweep_seconds = sweep_seconds
        self._seen: dict[int, datetime] = {}
        self._http_until: dict[int, tuple[float, int]] = {}
        self._task: asyncio.Task[None] | None = None

    # -- last seen ------------------------------------------------------------------------
    def seen(self, device_id: int, at: datetime | None = None) -> None:
        """The device sent something (kept in memory, written coalesced)."""
        self.seen_all((device_id,), at or datetime.now(UTC))

    def seen_all(self, device_ids: Iterable[int], at: datetime) -> None:
        """:meth:`seen` for many devices at one time."""
        seen = self._seen
        for device_id in device_ids:
            current = seen.get(device_id)
            if current is None or current < at:
                seen[device_id] = at

    async def flush_seen(self) -> None:
        """Write the pending last-seen times (one statement for all devices)."""
        if not self._seen:
            return
        pending, self._seen = self._seen, {}
        rows = [(at, device_id, at) for device_id, at in pending.items()]
        async with self.pool.connection() as conn:
            async with conn.cursor() as cur:
                await cur.executemany(
                    "UPDATE device SET last_seen = %s WHERE id = %s AND (last_seen IS NULL OR last_seen < %s)", rows
                )

    # -- MQTT presence, vitals, ping ------------------------------------------------------
    async def presence(self, device_id: int, doc: dict[str, Any], ignore_seconds: int = 0) -> None:
        """Apply a ``sys/presence/<id>`` document; raises ValueError/KeyError/TypeError if malformed."""
        online, at = bool(doc["online"]), _ms(doc.get("ts", 0))
        self._http_until.pop(device_id, None)
        async with self.pool.connection() as conn:
            if online:
                params = {
                    "id": device_id,
                    "at": at,
                    "ip": doc.get("ip"),
                    "client_id": doc.get("client_id"),
                    "keep_alive": doc.get("keep_alive"),
                }
                row = await (await conn.execute(_ONLINE_SQL, params)).fetchone()
            else:
                vitals = _vitals(doc.get("vitals"))
                params = {
                    "id": device_id,
                    "at": at,
                    "day": at.date(),
                    **vitals,
                    "has_vitals": any(v is not None for v in vitals.values()),
                }
                row = await (await conn.execute(_OFFLINE_SQL, params)).fetchone()
        was_online = row is not None and bool(row[0])
        if online and row is not None and row[1]:  # never connected before over MQTT
            self.timeline.signals.first_connection(device_id)
        if row is not None and was_online != online:  # a transition, not a repeat
            self.live.publish(device_id, {"type": "presence", "online": online, "ts": int(at.timestamp() * 1000)})
            await self.timeline.connection(device_id, online, at, ignore_seconds)

    async def vitals(self, device_id: int, doc: dict[str, Any]) -> None:
        """Apply a ``sys/vitals/<id>`` document (totals of the current connection)."""
        params = {"id": device_id, "at": _ms(doc["ts"]), **_vitals(doc)}
        async with self.pool.connection() as conn:
            await conn.execute(_VITALS_SQL, params)

    async def ping(self, device_id: int, doc: dict[str, Any]) -> None:
        """Store a ``sys/ping/<id>`` answer as the device's last ping (None after a timeout)."""
        rtt = doc.get("rtt_ms")
        rtt = float(rtt) if isinstance(rtt, (int, float)) and not isinstance(rtt, bool) and rtt >= 0 else None
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE device SET last_ping_ms = %s, last_ping_at = %s WHERE id = %s", (rtt, _ms(doc["ts"]), device_id)
            )

    async def info_mcu(self, device_id: int, info: dict[str, Any]) -> None:
        """Store what the device's ``info/mcu`` report says about its firmware and board
        (``ver``, ``build``, ``type``, ``tmpl``, ``blynk``, ``rxbuff``; a missing field is
        cleared, text is cut to 64 characters, an implausible ``rxbuff`` is dropped), move
        its last-seen time, and tell open pages (a live ``info`` event with what was stored and
        when it arrived: the console's "Request info" waits for it)."""

        def field(key: str, limit: int = 64) -> str | None:
            value = info.get(key)
            return None if value is None else str(value)[:limit]

        rx = info.get("rxbuff")
        stored = {
            "fw_version": field("ver"),
            "fw_build": field("build"),
            "fw_type": field("type"),
            "board_template_id": field("tmpl"),
            "blynk_version": field("blynk"),
            "rx_buffer": rx if isinstance(rx, int) and not isinstance(rx, bool) and 0 < rx < 1 << 20 else None,
        }
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE device SET fw_version = %(fw_version)s, fw_build = %(fw_build)s, fw_type = %(fw_type)s, "
                "board_template_id = %(board_template_id)s, blynk_version = %(blynk_version)s, "
                "rx_buffer = %(rx_buffer)s, last_seen = now() WHERE id = %(id)s",
                {**stored, "id": device_id},
            )
        self.live.publish(device_id, {"type": "info", "ts": int(time.time() * 1000), **stored})

    # -- HTTP-only devices ----------------------------------------------------------------
    async def http_report(self, device: DeviceInfo) -> None:
        """The device reported data over HTTP: online for heartbeat × 1.5 unless on MQTT."""
        self.seen(device.id)
        until = time.monotonic() + device.heartbeat_interval * 1.5
        if device.id in self._http_until:
            self._http_until[device.id] = (until, device.offline_ignore_seconds)
            return
        async with self.pool.connection() as conn:
            row = await (
                await conn.execute(
                    "UPDATE device SET online = true, online_via = 'http' WHERE id = %s AND NOT online RETURNING id",
                    (device.id,),
                )
            ).fetchone()
        if row is not None:
            self._http_until[device.id] = (until, device.offline_ignore_seconds)
            self.live.publish(device.id, {"type": "presence", "online": True, "ts": int(time.time() * 1000)})
            await self.timeline.connection(device.id, True, datetime.now(UTC), device.offline_ignore_seconds)

    async def sweep(self) -> None:
        """Take HTTP-only devices whose time ran out offline."""
        now = time.monotonic()
        for device_id, (until, _ignore) in list(self._http_until.items()):
            if until <= now:
                del self._http_until[device_id]
                await self._http_offline(device_id)

    async def _http_offline(self, device_id: int) -> None:
        at = datetime.now(UTC)
        async with self.pool.connection() as conn:
            row = await (
                await conn.execute(
                    "UPDATE device SET online = false, online_via = NULL, disconnected_at = %s "
                    "WHERE id = %s AND online AND online_via = 'http' RETURNING id",
                    (at, device_id),
                )
            ).fetchone()
        if row is not None:
            self.live.publish(device_id, {"type": "presence", "online": False, "ts": int(at.timestamp() * 1000)})
            await self.timeline.connection(device_id, False, at)

    async def reset_http_online(self) -> None:
        """At start: devices left online over HTTP by a previous run are offline now."""
        async with self.pool.connection() as conn:
            rows = await (
                await conn.execute(
                    "UPDATE device SET online = false, online_via = NULL, disconnected_at = now() "
                    "WHERE online AND online_via = 'http' RETURNING id"
                )
            ).fetchall()
        for (device_id,) in rows:
            await self.timeline.connection(device_id, False, datetime.now(UTC))

    # -- background -----------------------------------------------------------------------
    def start(self) -> None:
        """Start the sweeper and the last-seen flusher."""
        self._task = asyncio.create_task(self._run(), name="lifecycle")

    async def stop(self) -> None:
        """Stop and write what is pending."""
        task, self._task = self._task, None
        await cancel(task)
        await self.flush_seen()

    async def _run(self) -> None:
        await self.reset_http_online()
        next_flush = time.monotonic() + self.flush_seconds
        while True:
            await asyncio.sleep(self.sweep_seconds)
            try:
                await self.sweep()
                if time.monotonic() >= next_flush:
                    next_flush = time.monotonic() + self.flush_seconds
                    await self.flush_seen()
            except Exception:
                log.exception("lifecycle sweep failed")
