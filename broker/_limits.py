"""Per-device publish rate limiting and per-address login throttling (pure, clock-driven).

Both take their clock as an argument so unit tests drive time by hand; the broker passes
``loop.time()`` / ``time.monotonic()``.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

__all__ = ["AuthThrottle", "PublishRate", "RateVerdict", "throttle_key"]

_DIAG_EVERY = 1.0  # seconds between two rate-limit diag warnings to one device
_STREAK_GAP = 1.0  # a pause in drops longer than this ends an over-limit streak
_WINDOW = 60.0  # seconds of one login-failure window
_MAX_TRACKED = 100_000  # hard cap: past it the oldest windows are forgotten (bounded memory)


class RateVerdict(Enum):
    """What to do with one PUBLISH of a rate-limited device."""

    ACCEPT = "accept"
    DROP = "drop"
    DROP_AND_WARN = "drop_and_warn"
    """Drop, and tell the device on ``downlink/diag`` (at most once a second)."""
    ABUSE = "abuse"
    """Over the limit for ``abuse_seconds`` without a break: disconnect."""


class PublishRate:
    """A token bucket (``rate`` per second, burst of one second's worth) plus abuse tracking.

    "Over the limit continuously" means: drops keep coming with no gap longer than a second.
    A device sending at twice the limit has half its messages accepted, yet is over the
    limit the whole time; a short burst that stops ends the streak.
    """

    __slots__ = (
        "_last_drop",
        "_last_warning",
        "_streak_start",
        "_tokens",
        "_updated",
        "abuse_seconds",
        "dropped",
        "rate",
    )

    def __init__(self, rate: float, abuse_seconds: float, now: float) -> None:
        self.rate = rate
        self.abuse_seconds = abuse_seconds
        self._tokens = rate
        self._updated = now
        self._streak_start: float | None = None
        self._last_drop = now
        self._last_warning: float | None = None
        self.dropped = 0

    def check(self, now: float) -> RateVerdict:
        """Account one PUBLISH arriving at ``now``."""
        self._tokens = min(self.rate, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        if self._streak_start is not None and now - self._last_drop > _STREAK_GAP:
            self._streak_start = None
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return RateVerdict.ACCEPT
        self.dropped += 1
        if self._streak_start is None:
            self._streak_start = now
        self._last_drop = now
        if now - self._streak_start >= self.abuse_seconds:
            return RateVerdict.ABUSE
        if self._last_warning is None or now - self._last_warning >= _DIAG_EVERY:
            self._last_warning = now
            return RateVerdict.DROP_AND_WARN
        return RateVerdict.DROP


def throttle_key(address: str | None) -> str | None:
    """The key failures are counted under: the IPv4 address, or the /64 of an IPv6 one."""
    if not address:
        return None
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed)


@dataclass
class _Window:
    start: float
    failures: int = 0


class AuthThrottle:
    """Counts refused logins per address in fixed one-minute windows.

    Once an address has ``limit`` failures in its window, :meth:`blocked` is true until the
    window (which started at its first failure) is over. ``limit == 0`` disables it.
    """

    def __init__(self, limit: int, clock: Callable[[], float]) -> None:
        self.limit = limit
        self.clock = clock
        # Windows are created in time order and never moved, so the oldest is always first:
        # sweeping expired ones and evicting past the cap are O(1) per window.
        self._windows: OrderedDict[str, _Window] = OrderedDict()

    def blocked(self, address: str | None) -> bool:
        """Whether logins from ``address`` must be refused without asking the authenticator."""
        if not self._windows:  # no failure anywhere: spare the address parsing of every connect
            return False
        window = self._current(address)
        return window is not None and window.failures >= self.limit

    def failed(self, address: str | None) -> bool:
        """Record a refused login; True exactly when this failure starts a block (log it)."""
        key = throttle_key(address)
        if key is None or self.limit <= 0:
            return False
        window = self._current(address)
        if window is None:
            self._prune()
            window = self._windows[key] = _Window(self.clock())
        window.failures += 1
        return window.failures == self.limit

    def retry_after(self, address: str | None) -> float:
        """Seconds until the window of ``address`` is over (0 if there is none)."""
        window = self._current(address)
        return max(0.0, window.start + _WINDOW - self.clock()) if window is not None else 0.0

    def __len__(self) -> int:
        return len(self._windows)

    def _current(self, address: str | None) -> _Window | None:
        key = throttle_key(address)
        if key is None or self.limit <= 0:
            return None
        window = self._windows.get(key)
        if window is not None and self.clock() - window.start >= _WINDOW:
            del self._windows[key]
            return None
        return window

    def _prune(self) -> None:
        """Forget expired windows, and the oldest ones past :data:`_MAX_TRACKED`."""
        now = self.clock()
        while self._windows:
            window = next(iter(self._windows.values()))
            if now - window.start < _WINDOW and len(self._windows) < _MAX_TRACKED:
                return
            self._windows.popitem(last=False)
