"""Blynk's per-device request limit on the HTTP device API (``OPENBLYNK_DEVICE_RATE_LIMIT``).

Blynk allows a device 50 requests a second whichever way it talks; the broker enforces it on
MQTT, and this bucket on ``/external/api``: every request that names a device by its token takes
one unit from that device's bucket, which holds one second's worth (at least one request) and
refills at the limit;
an empty bucket answers 429 with Blynk's error body and ``Retry-After: 1``, before any work is
done. Another device's bucket is never touched, so a flooding device slows only itself.

Each app process keeps its own buckets (no database round trip per request). With several app
replicas (``OPENBLYNK_REPLICA`` set) a request also needs a unit of the device's bucket shared
by every replica, :class:`SharedDeviceRate`: one row a device in PostgreSQL
(``device_rate_bucket``), with the same size and rate, from which a process reserves units a
few at a time. Reserved units are good for :data:`LEASE_SECONDS` (unused ones are dropped), so
together the replicas admit at most ``rate * (t + 1 + LEASE_SECONDS)`` requests of one device
in any ``t`` seconds, where one process alone admits ``rate * (t + 1)``. A reservation is one
upsert; its size follows the device's demand (one unit at first, twice as many while the
previous ran out early, at most what the rate brings in a lease), so a device sending once a
second costs one statement a request, and one at the limit a few a second. If the database
cannot be reached, the shared bucket admits (each process's own still limits) and says so in
the log. The broker's MQTT budget is separate (it is another process): a device may use the
limit on each path.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
from psycopg_pool import AsyncConnectionPool

from backend.errors import RateLimitedError

log = logging.getLogger(__name__)
LEASE_SECONDS = 0.25
"""How long units reserved from the shared bucket may be used."""
WARN_EVERY_SECONDS = 60.0

_SWEEP_SECONDS = 10.0


@dataclass
class _Bucket:
    units: float
    updated: float


class DeviceRateLimit:
    """A token bucket per device id: ``rate`` requests a second, a burst of one second's worth."""

    def __init__(
        self, rate: float, clock: Callable[[], float] = time.monotonic, shared: SharedDeviceRate | None = None
    ) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        self.rate = rate
        self.burst = max(1.0, rate)
        self.shared = shared
        """The bucket shared by the app replicas (None: one app process)."""
        self._clock = clock
        self._buckets: dict[int, _Bucket] = {}
        self._swept = clock()

    async def admit(self, device_id: int) -> None:
        """Count one request of the device in this process's bucket and, with replicas, in the
        shared one; RateLimitedError if either is empty."""
        self.take(device_id)
        if self.shared is not None and not await self.shared.take(device_id):
            raise self._refusal()

    def _refusal(self) -> RateLimitedError:
        return RateLimitedError(
            f"Request rate limit has been reached. Maximum is {self.rate:g} requests per second per device.",
            retry_after=1,
        )

    def take(self, device_id: int) -> None:
        """Count one request of the device; RateLimitedError if its bucket is empty."""
        now = self._clock()
        self._sweep(now)
        bucket = self._buckets.get(device_id)
        if bucket is None:
            bucket = self._buckets[device_id] = _Bucket(self.burst, now)
        else:
            bucket.units = min(self.burst, bucket.units + (now - bucket.updated) * self.rate)
            bucket.updated = now
        if bucket.units < 1.0:
            raise self._refusal()
        bucket.units -= 1.0

    def _sweep(self, now: float) -> None:
        """Forget full buckets (a new one starts full), every few seconds, so memory follows the
        devices active right now."""
        if now - self._swept < _SWEEP_SECONDS:
            return
        self._swept = now
        idle = [key for key, b in self._buckets.items() if b.units + (now - b.updated) * self.rate >= self.burst]
        for key in idle:
            del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)


_RESERVE_SQL = """
INSERT INTO device_rate_bucket AS b (device_id, units, updated, granted)
VALUES (%(id)s, %(burst)s - %(first)s, now(), %(first)s)
ON CONFLICT (device_id) DO UPDATE SET
    granted = CAST(least(%(want)s, floor(least(%(burst)s,
        b.units + greatest(0, CAST(extract(epoch FROM now() - b.updated) AS float8)) * %(rate)s))) AS integer),
    units = least(%(burst)s, b.units + greatest(0, CAST(extract(epoch FROM now() - b.updated) AS float8)) * %(rate)s)
        - least(%(want)s, floor(least(%(burst)s,
        b.units + greatest(0, CAST(extract(epoch FROM now() - b.updated) AS float8)) * %(rate)s))),
    updated = greatest(b.updated, now())
RETURNING granted
"""


@dataclass
class _Lease:
    left: int
    used: int
    size: int
    until: float


class SharedDeviceRate:
    """Each device's bucket in PostgreSQL, shared by the app replicas, from which this process
    reserves units for :data:`LEASE_SECONDS` (see the module's docstring)."""

    def __init__(self, pool: AsyncConnectionPool, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.pool = pool
        self.rate = float(rate)
        self.burst = max(1.0, self.rate)
        self.max_slice = max(1, math.floor(self.rate * LEASE_SECONDS))
        self._clock = clock
        self._leases: dict[int, _Lease] = {}
        self._swept = clock()
        self._warned_at = -math.inf

    async def take(self, device_id: int) -> bool:
        """One unit of the device's shared bucket: from this process's lease, else from a new
        reservation; False if the bucket is empty."""
        now = self._clock()
        lease = self._leases.get(device_id)
        if lease is not None and lease.left > 0 and now < lease.until:
            lease.left -= 1
            lease.used += 1
            return True
        self._sweep(now)
        want = self._next_size(lease, now)
        granted = await self._reserve(device_id, want)
        if granted < 1:
            self._leases.pop(device_id, None)
            return False
        self._leases[device_id] = _Lease(granted - 1, 1, want, now + LEASE_SECONDS)
        return True

    def _next_size(self, lease: _Lease | None, now: float) -> int:
        """One unit at first; twice the last while it ran out before its time; else what the
        last one used."""
        if lease is None:
            return 1
        if lease.left == 0 and now < lease.until:
            return min(self.max_slice, lease.size * 2)
        return min(self.max_slice, max(1, lease.used))

    async def _reserve(self, device_id: int, want: int) -> int:
        first = min(want, math.floor(self.burst))
        params = {"id": device_id, "burst": self.burst, "rate": self.rate, "want": want, "first": first}
        try:
            async with self.pool.connection() as conn:
                row = await (await conn.execute(_RESERVE_SQL, params)).fetchone()
        except psycopg.Error as exc:
            now = self._clock()
            if now - self._warned_at >= WARN_EVERY_SECONDS:
                self._warned_at = now
                log.warning("the shared device rate limit is not counted (the database failed: %s)", exc)
            return want
        assert row is not None
        return int(row[0])

    def _sweep(self, now: float) -> None:
        """Forget ended leases every few seconds, so memory follows the devices active now."""
        if now - self._swept < _SWEEP_SECONDS:
            return
        self._swept = now
        for key in [key for key, lease in self._leases.items() if lease.until <= now]:
            del self._leases[key]
