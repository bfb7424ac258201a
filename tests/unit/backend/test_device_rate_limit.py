"""The HTTP device API's per-device token bucket (Blynk's 50 requests a second per device)."""

from __future__ import annotations

import pytest

from backend.device_api.ratelimit import DeviceRateLimit
from backend.errors import RateLimitedError


class Clock:
    def __init__(self) -> None:
        self.now = 64.0  # steps below are powers of two: exact in binary

    def __call__(self) -> float:
        return self.now


def test_a_burst_of_one_seconds_worth_then_the_rate() -> None:
    clock = Clock()
    limit = DeviceRateLimit(50, clock)
    for _ in range(50):
        limit.take(1)
    with pytest.raises(RateLimitedError) as refused:
        limit.take(1)
    assert refused.value.retry_after == 1
    assert refused.value.message == "Request rate limit has been reached. Maximum is 50 requests per second per device."
    limit.take(2)  # another device has its own bucket
    clock.now += 0.25  # a quarter of a second: 12.5 more
    for _ in range(12):
        limit.take(1)
    with pytest.raises(RateLimitedError):
        limit.take(1)
    clock.now += 10  # never more than one second's worth
    for _ in range(50):
        limit.take(1)
    with pytest.raises(RateLimitedError):
        limit.take(1)


def test_a_refused_request_takes_nothing() -> None:
    clock = Clock()
    limit = DeviceRateLimit(10, clock)
    for _ in range(10):
        limit.take(7)
    for _ in range(100):
        with pytest.raises(RateLimitedError):
            limit.take(7)
    clock.now += 0.125
    limit.take(7)


def test_a_rate_below_one_still_allows_one_request() -> None:
    clock = Clock()
    limit = DeviceRateLimit(0.5, clock)
    limit.take(1)
    with pytest.raises(RateLimitedError):
        limit.take(1)
    clock.now += 2
    limit.take(1)
    with pytest.raises(ValueError):
        DeviceRateLimit(0, clock)


def test_idle_devices_are_forgotten() -> None:
    clock = Clock()
    limit = DeviceRateLimit(50, clock)
    for device in range(1000):
        limit.take(device)
    clock.now += 11
    limit.take(5000)
    assert len(limit) == 1
