"""Many deadlines, one timer: what idle connections wait for without a timer each.

A timer of its own cost each idle connection about 460 bytes (the handle, its arguments and its
place in the loop's heap). :class:`Deadlines` keeps each item in the set of its
:data:`DEADLINE_STEP` interval instead, and one timer, set for the earliest interval, serves
all. A deadline is therefore met up to :data:`DEADLINE_STEP` seconds late, never early. The
broker keeps two: parked readers' keep-alive deadlines (``FramedReader.park``) and devices'
``sys/vitals`` reports.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["DEADLINE_STEP", "Deadlines"]

DEADLINE_STEP = 0.25
"""Seconds: deadlines are met at these steps of the loop's clock."""

T = TypeVar("T", bound=Hashable)


class Deadlines(Generic[T]):
    """Items whose deadline calls ``due(item)`` (see module docstring)."""

    __slots__ = ("_due", "_timer", "due")

    def __init__(self, due: Callable[[T], None]) -> None:
        self.due = due
        self._due: dict[int, set[T]] = {}
        self._timer: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return sum(map(len, self._due.values()))

    def add(self, item: T, when: float) -> int:
        """Call ``due(item)`` at ``when`` (loop time) or just after; the slot, for :meth:`discard`."""
        slot = math.ceil(when / DEADLINE_STEP)
        waiting = self._due.get(slot)
        if waiting is None:
            waiting = self._due[slot] = set()
        waiting.add(item)
        self._wake_by(slot)
        return slot

    def discard(self, item: T, slot: int) -> None:
        """Forget ``item``'s deadline."""
        waiting = self._due.get(slot)
        if waiting is not None:
            waiting.discard(item)
            if not waiting:
                del self._due[slot]

    def cancel(self) -> None:
        """Forget every deadline (the broker stops)."""
        self._due.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _wake_by(self, slot: int) -> None:
        """Have the timer fire by ``slot``'s time (moved forward if it was set later)."""
        at = slot * DEADLINE_STEP
        timer = self._timer
        if timer is None or at < timer.when():
            if timer is not None:
                timer.cancel()
            self._timer = asyncio.get_running_loop().call_at(at, self._fire)

    def _fire(self) -> None:
        self._timer = None
        now = asyncio.get_running_loop().time()
        for slot in sorted(slot for slot in self._due if slot * DEADLINE_STEP <= now):
            for item in self._due.pop(slot):
                self.due(item)
        if self._due:  # due() may have set a later timer while an earlier slot waits
            self._wake_by(min(self._due))
