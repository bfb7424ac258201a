"""Device-state conditions, evaluated on each stored value (the ingest's hot path: keep it cheap).

A :class:`StateRule` is one ``device_state`` condition; it keeps, per device, whether it is armed
and when it last fired. :meth:`StateRule.check` decides for one value:

- comparisons (``gt ge lt le eq ne between``, and ``on``: a non-zero number, ``off``: zero) fire
  on the value that makes the condition true while the rule is **armed**; firing disarms it for
  that device. It re-arms once a value leaves the condition by at least ``hysteresis`` (a ``lt
  20`` with hysteresis 2 re-arms at 22 or more; ``between`` beyond either bound by it; ``eq``
  farther than it from the value). So a sensor that stays low fires once, and one wobbling
  around the threshold fires again only after really going back;
- ``changed`` fires on every value that differs from that device's previous one (the first
  value a process sees after starting only sets the previous one);
- outside the condition's time window nothing fires and the rule stays armed, so the first
  matching value inside the window fires;
- the automation's *limit period* (Blynk's): after firing for a device, the rule does not fire
  again for that device until the period passed; a matching value inside the period is
  skipped and the rule stays armed.

Whether each device is armed and when it last fired are the rule's state, kept per automation
and device in ``automation_device_state`` (:meth:`StateRule.state_of`, written by the engine
shortly after it changes, :attr:`StateRule.dirty`); an engine reads a device's rows back
(:meth:`StateRule.put`) when it sees the device for the first time, after a restart or when the
device's messages moved to it from another app replica, so neither fires a disarmed condition
again nor a second time inside a limit period. ``changed``'s previous value is not kept.

Values compare as numbers when both sides are numbers; ``eq``/``ne`` with a text value compare
the stored text. A value without a number never matches a numeric comparison.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from backend.automations.engine.triggers import hhmm, zone
from backend.automations.schemas import DeviceState, Window
from backend.devices.signals import StoredValue
from backend.templates.values import shown_text


class TimeWindow:
    """The hours (and weekdays) a device-state condition may fire in."""

    def __init__(self, window: Window, org_tz: str) -> None:
        self.start = hhmm(window.from_)
        self.end = hhmm(window.to)
        self.days = frozenset(window.days)
        self.tz: ZoneInfo = zone(window.tz, org_tz)

    def contains(self, at: datetime) -> bool:
        """Whether ``at`` falls in the window (``from`` after ``to``: it spans midnight, and the
        weekday is the one the window started on)."""
        local = at.astimezone(self.tz)
        now, day = local.time(), local.weekday()
        if self.start < self.end:
            inside = self.start <= now < self.end
        elif now >= self.start:
            inside = True
        elif now < self.end:
            inside, day = True, (day - 1) % 7
        else:
            inside = False
        return inside and (not self.days or day in self.days)


def _matcher(op: str, value: float | str | None, high: float | None) -> Callable[[float | None, str | float], bool]:
    if op == "on":
        return lambda n, _t: n is not None and n != 0
    if op == "off":
        return lambda n, _t: n == 0
    if isinstance(value, str):
        if op == "eq":
            return lambda _n, t: t == value
        return lambda _n, t: t != value
    v = float(value) if value is not None else 0.0
    if op == "between":
        h = float(high if high is not None else v)
        return lambda n, _t: n is not None and v <= n <= h
    tests: dict[str, Callable[[float | None, str | float], bool]] = {
        "gt": lambda n, _t: n is not None and n > v,
        "ge": lambda n, _t: n is not None and n >= v,
        "lt": lambda n, _t: n is not None and n < v,
        "le": lambda n, _t: n is not None and n <= v,
        "eq": lambda n, _t: n is not None and n == v,
        "ne": lambda n, _t: n is not None and n != v,
    }
    return tests[op]


def _rearmer(
    op: str, value: float | str | None, high: float | None, h: float
) -> Callable[[float | None, str | float], bool]:
    """When a disarmed rule arms again: the value left the condition by at least ``h``."""
    if op in ("on", "off") or isinstance(value, str):
        match = _matcher(op, value, high)
        return lambda n, t: not match(n, t)
    v = float(value) if value is not None else 0.0
    top = float(high) if high is not None else v
    tests: dict[str, Callable[[float | None, str | float], bool]] = {
        "gt": lambda n, _t: n is not None and n <= v - h,
        "ge": lambda n, _t: n is not None and n < v - h,
        "lt": lambda n, _t: n is not None and n >= v + h,
        "le": lambda n, _t: n is not None and n > v + h,
        "eq": lambda n, _t: n is not None and abs(n - v) > h,
        "ne": lambda n, _t: n is not None and n == v,
        "between": lambda n, _t: n is not None and (n < v - h or n > top + h),
    }
    return tests[op]


Band = tuple[float, float]
"""Numbers ``[low, high)`` that change nothing for a rule in its current state."""
NO_BAND: Band = (math.inf, -math.inf)
"""No number is known to change nothing: every value is looked at."""


def _bands(op: str, value: float | str | None, high: float | None, h: float) -> tuple[Band, Band]:
    """The band of an armed rule (numbers that do not match) and of a disarmed one (numbers
    that do not re-arm it), where that set is one interval; :data:`NO_BAND` where it is not."""
    if isinstance(value, str) or op == "changed":
        return NO_BAND, NO_BAND
    v = float(value) if value is not None else 0.0
    top = float(high) if high is not None else v
    up, inf = math.nextafter, math.inf
    bands: dict[str, tuple[Band, Band]] = {
        "lt": ((v, inf), (-inf, v + h)),
        "le": ((up(v, inf), inf), (-inf, up(v + h, inf))),
        "gt": ((-inf, up(v, inf)), (up(v - h, inf), inf)),
        "ge": ((-inf, v), (v - h, inf)),
        "between": (NO_BAND, (v - h, up(top + h, inf))),
        "eq": (NO_BAND, (v - h, up(v + h, inf))),
        "ne": ((v, up(v, inf)), NO_BAND),
        "on": ((0.0, up(0.0, inf)), NO_BAND),
        "off": (NO_BAND, (0.0, up(0.0, inf))),
    }
    return bands[op]


def band_of(rules: Sequence[StateRule], device: int) -> Band:
    """The numbers that change nothing for any of ``rules`` on ``device`` (the intersection)."""
    low, high = -math.inf, math.inf
    for rule in rules:
        rule_low, rule_high = rule.disarmed_band if device in rule.disarmed else rule.armed_band
        low, high = max(low, rule_low), min(high, rule_high)
    return (low, high) if low < high else NO_BAND


def _never(_number: float | None, _text: str | float) -> bool:
    return False


class StateRule:
    """One automation's ``device_state`` condition and its per-device state."""

    __slots__ = (
        "armed_band",
        "automation_id",
        "changed",
        "dirty",
        "disarmed",
        "disarmed_band",
        "last",
        "limit",
        "match",
        "previous",
        "rearm",
        "text",
        "window",
    )

    def __init__(self, automation_id: int, condition: DeviceState, limit_period_s: int, org_tz: str) -> None:
        self.automation_id = automation_id
        self.changed = condition.op == "changed"
        self.armed_band, self.disarmed_band = _bands(
            condition.op, condition.value, condition.value2, condition.hysteresis
        )
        """Numbers that change nothing while armed, and while disarmed (:func:`band_of`)."""
        self.text = self.changed or isinstance(condition.value, str)
        """Whether the rule compares text (numeric rules skip making a Double's text)."""
        self.match = _matcher(condition.op, condition.value, condition.value2) if not self.changed else None
        self.rearm: Callable[[float | None, str | float], bool] = (
            _rearmer(condition.op, condition.value, condition.value2, condition.hysteresis)
            if not self.changed
            else _never
        )
        self.window = TimeWindow(condition.window, org_tz) if condition.window is not None else None
        self.limit = float(limit_period_s)
        self.disarmed: set[int] = set()
        self.last: dict[int, float] = {}
        self.previous: dict[int, str | float] = {}
        self.dirty = False
        """The state changed since the engine last saved it."""

    def snapshot(self) -> dict[str, Any]:
        """The state to keep: disarmed devices, and when each device last fired (epoch seconds)."""
        return {"disarmed": sorted(self.disarmed), "last": {str(d): t for d, t in self.last.items()}}

    def restore(self, state: dict[str, Any]) -> None:
        """Take a kept state back (anything unreadable is left out)."""
        try:
            self.disarmed = {int(d) for d in state.get("disarmed", [])}
            self.last = {int(d): float(t) for d, t in state.get("last", {}).items()}
        except (TypeError, ValueError, AttributeError):
            self.disarmed, self.last = set(), {}

    def state_of(self, device: int) -> tuple[bool, float | None]:
        """One device's state to keep: whether it is disarmed, when it last fired (epoch seconds)."""
        return device in self.disarmed, self.last.get(device)

    def put(self, device: int, disarmed: bool, last: float | None) -> None:
        """Take one device's kept state (:meth:`state_of`) back."""
        self.forget(device)
        if disarmed:
            self.disarmed.add(device)
        if last is not None:
            self.last[device] = float(last)

    def forget(self, device: int) -> None:
        """Drop one device's state (another replica holds the device now)."""
        self.disarmed.discard(device)
        self.last.pop(device, None)
        self.previous.pop(device, None)

    def adopt(self, other: StateRule) -> None:
        """Go on with another rule's state (the same condition, reloaded)."""
        self.disarmed, self.last, self.previous = other.disarmed, other.last, other.previous

    def check(self, value: StoredValue, clock: float) -> bool:
        """Whether this value fires the rule (see :meth:`check_row`)."""
        return self.check_row(value.device_id, value.text, value.number, value.at, clock)

    def check_row(self, device: int, shown: str | float, number: float | None, at: datetime, clock: float) -> bool:
        """Whether this value (``shown``: the stored text, or a Double's number) fires the rule,
        and note that it did; ``clock``: now, in epoch seconds. Called for every value of a
        watched datastream: the usual answer (no) takes one set lookup and one comparison."""
        if self.text and not isinstance(shown, str):
            shown = shown_text(shown)
        match = self.match
        if match is None:  # changed
            before = self.previous.get(device)
            self.previous[device] = shown
            if before is None or before == shown:
                return False
        elif device in self.disarmed:
            if self.rearm(number, shown):
                self.disarmed.discard(device)
                self.dirty = True
            return False
        elif not match(number, shown):
            return False
        if self.window is not None and not self.window.contains(at):
            return False
        last = self.last.get(device)
        if self.limit and last is not None and clock - last < self.limit:
            return False
        self.last[device] = clock
        if match is not None:
            self.disarmed.add(device)
        self.dirty = True
        return True
