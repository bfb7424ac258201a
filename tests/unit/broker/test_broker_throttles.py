"""Publish rate limiting and login throttling, driven by a hand-held clock."""

from __future__ import annotations

import pytest

from broker import _limits
from broker._limits import AuthThrottle, PublishRate, RateVerdict, throttle_key


def verdicts(rate: PublishRate, times: list[float]) -> list[RateVerdict]:
    return [rate.check(t) for t in times]


def test_burst_of_one_second_then_drops_with_one_warning() -> None:
    rate = PublishRate(10.0, abuse_seconds=5.0, now=0.0)
    results = verdicts(rate, [0.0] * 13)
    assert results[:10] == [RateVerdict.ACCEPT] * 10
    assert results[10:] == [RateVerdict.DROP_AND_WARN, RateVerdict.DROP, RateVerdict.DROP]
    assert rate.dropped == 3


def test_tokens_refill_at_the_rate_and_never_above_the_burst() -> None:
    rate = PublishRate(10.0, abuse_seconds=5.0, now=0.0)
    verdicts(rate, [0.0] * 10)
    assert rate.check(0.1) is RateVerdict.ACCEPT  # 0.1 s refills one token
    assert rate.check(0.1) is not RateVerdict.ACCEPT
    assert verdicts(rate, [100.0] * 11).count(RateVerdict.ACCEPT) == 10  # idle long: still one second's worth


def test_warning_at_most_once_per_second() -> None:
    rate = PublishRate(1.0, abuse_seconds=100.0, now=0.0)
    assert rate.check(0.0) is RateVerdict.ACCEPT
    results = verdicts(rate, [0.0, 0.2, 0.5, 0.9, 1.0, 1.01])
    drop, warn = RateVerdict.DROP, RateVerdict.DROP_AND_WARN
    assert results == [warn, drop, drop, drop, RateVerdict.ACCEPT, warn]


def test_continuous_excess_is_abuse_even_when_some_messages_pass() -> None:
    rate = PublishRate(10.0, abuse_seconds=2.0, now=0.0)
    results = [rate.check(i / 20) for i in range(int(3 * 20))]  # 20/s against 10/s for 3 s
    assert RateVerdict.ACCEPT in results[20:]  # half still pass...
    assert RateVerdict.ABUSE in results  # ...yet the device is over the limit the whole time
    first_abuse = results.index(RateVerdict.ABUSE) / 20
    assert first_abuse >= 2.0


def test_a_pause_ends_the_streak() -> None:
    rate = PublishRate(10.0, abuse_seconds=2.0, now=0.0)
    for burst_start in (0.0, 1.5, 3.0, 4.5):  # short bursts over the limit, with pauses between
        results = verdicts(rate, [burst_start] * 15)
        assert RateVerdict.ABUSE not in results


def test_auth_throttle_blocks_after_the_limit_until_the_window_ends() -> None:
    now = [0.0]
    throttle = AuthThrottle(3, lambda: now[0])
    assert [throttle.failed("192.0.2.1") for _ in range(3)] == [False, False, True]  # True once: log it
    assert throttle.blocked("192.0.2.1") and not throttle.blocked("192.0.2.2")
    assert throttle.retry_after("192.0.2.1") == 60.0
    now[0] = 59.9
    assert throttle.blocked("192.0.2.1")
    now[0] = 60.0
    assert not throttle.blocked("192.0.2.1") and len(throttle) == 0


def test_auth_throttle_under_the_limit_and_disabled() -> None:
    throttle = AuthThrottle(3, lambda: 0.0)
    throttle.failed("192.0.2.1")
    throttle.failed("192.0.2.1")
    assert not throttle.blocked("192.0.2.1")
    off = AuthThrottle(0, lambda: 0.0)
    assert not any(off.failed("192.0.2.1") for _ in range(100))
    assert not off.blocked("192.0.2.1") and len(off) == 0
    assert not throttle.blocked(None) and not throttle.failed(None)


def test_auth_throttle_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_limits, "_MAX_TRACKED", 1000)
    now = [0.0]
    throttle = AuthThrottle(5, lambda: now[0])
    for _ in range(5):
        throttle.failed("10.9.9.9")
    assert throttle.blocked("10.9.9.9")
    for n in range(1500):  # many addresses, all within one minute
        now[0] = n / 100
        throttle.failed(f"10.0.{n >> 8}.{n & 255}")
    assert len(throttle) == 1000
    assert not throttle.blocked("10.9.9.9")  # the oldest were forgotten
    now[0] = 1000.0
    throttle.failed("192.0.2.1")
    assert len(throttle) == 1  # expired windows are swept as new ones arrive


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("not-an-ip", "not-an-ip"),
        (None, None),
    ],
)
def test_throttle_key(address: str | None, key: str | None) -> None:
    assert throttle_key(address) == key
