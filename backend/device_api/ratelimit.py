"""Blynk's per-device request limit on the HTTP device API (``OPENBLYNK_DEVICE_RATE_LIMIT``).

Blynk allows a device 50 requests a second whichever way it talks; the broker enforces it on
MQTT, and this bucket on ``/external/api``: every request that names a device by its token takes
one unit from that device's bucket, which holds one second's worth (at least one request) and
refills at the limit;
an empty bucket answers 429 with Blynk's error body and ``Retry-After: 1``, before any work is
done. Another device's bucket is never touched, so a flooding device slows only itself.

The buckets live in the app process (no database round trip per request): with several app
processes behind one address, each process keeps its own, so a device spreading its requests
over N processes gets up to N times the limit. The broker's MQTT budget is separate too (it is
another process): a device may use the limit on each path.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from backend.errors import RateLimitedError

_SWEEP_SECONDS = 10.0


@dataclass
class _Bucket:
    units: float
    updated: float


class DeviceRateLimit:
    """A token bucket per device id: ``rate`` requests a second, a burst of one second's worth."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        self.rate = rate
        self.burst = max(1.0, rate)
        self._clock = clock
        self._buckets: dict[int, _Bucket] = {}
        self._swept = clock()

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
            raise RateLimitedError(
                f"Request rate limit has been reached. Maximum is {self.rate:g} requests per second per device.",
                retry_after=1,
            )
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
