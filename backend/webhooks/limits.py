"""Blynk's rate limit of a webhook, per app process: at most N requests in any 60 seconds, and
the refusals it causes logged at most once in :data:`REFUSAL_LOG_S`."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

REFUSAL_LOG_S = 10.0
"""Refusals by the rate limit are logged at most once in this many seconds per webhook."""


class MinuteWindow:
    """At most ``limit`` takes per key in any 60 seconds."""

    def __init__(self, limit: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.clock = clock
        self._taken: dict[int, deque[float]] = {}
        self._refusal_logged: dict[int, float] = {}

    def take(self, key: int) -> bool:
        """Count one for ``key``; False (nothing counted) when its minute is full."""
        now = self.clock()
        taken = self._taken.setdefault(key, deque())
        while taken and taken[0] <= now - 60.0:
            taken.popleft()
        if len(taken) >= self.limit:
            return False
        taken.append(now)
        return True

    def refusal_to_log(self, key: int) -> bool:
        """Whether a refusal of ``key`` is to be logged: the first in :data:`REFUSAL_LOG_S`."""
        now = self.clock()
        last = self._refusal_logged.get(key)
        if last is not None and now - last < REFUSAL_LOG_S:
            return False
        self._refusal_logged[key] = now
        return True
