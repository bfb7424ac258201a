"""When a device-state condition fires: edge, hysteresis re-arming, limit period, time window."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from backend.automations.engine.states import StateRule, band_of
from backend.automations.schemas import DeviceState, Window
from backend.devices.signals import StoredValue

NOON = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def value(number: float | None, device: int = 1, at: datetime = NOON, text: str | None = None) -> StoredValue:
    shown = text if text is not None else (f"{number:g}" if number is not None else "")
    return StoredValue(device, 9, 0, "Moisture", shown, number, at, "device")


def fired(rule: StateRule, numbers: list[float], clock: float = 0.0) -> list[bool]:
    return [rule.check(value(n), clock) for n in numbers]


def test_below_a_threshold_fires_once_until_it_rises_past_the_hysteresis() -> None:
    rule = StateRule(1, DeviceState(device_id=1, pin=0, op="lt", value=20.0, hysteresis=2.0), 0, "UTC")
    assert fired(rule, [25, 19, 18, 19.5, 21, 19, 22, 19]) == [False, True, False, False, False, False, False, True]


def test_without_hysteresis_it_rearms_as_soon_as_the_condition_is_false() -> None:
    rule = StateRule(1, DeviceState(device_id=1, pin=0, op="gt", value=30.0), 0, "UTC")
    assert fired(rule, [31, 32, 30, 31]) == [True, False, False, True]


def test_each_device_of_a_template_has_its_own_state() -> None:
    rule = StateRule(1, DeviceState(template_id=9, pin=0, op="ge", value=1.0), 0, "UTC")
    assert [rule.check(value(1, device=d), 0.0) for d in (1, 2, 1, 2)] == [True, True, False, False]


def test_the_limit_period_skips_fires_inside_it_and_keeps_the_rule_armed() -> None:
    rule = StateRule(1, DeviceState(device_id=1, pin=0, op="lt", value=20.0), 60, "UTC")
    assert rule.check(value(10), 0.0)
    assert not rule.check(value(25), 10.0)  # re-armed
    assert not rule.check(value(10), 20.0)  # inside the 60 s
    assert not rule.check(value(11), 59.0)
    assert rule.check(value(12), 61.0)  # still armed: fires after the period


def test_between_and_equality_and_on_off() -> None:
    between = StateRule(1, DeviceState(device_id=1, pin=0, op="between", value=10.0, value2=20.0, hysteresis=1), 0, "")
    assert fired(between, [5, 15, 20.5, 9.5, 21.5, 10]) == [False, True, False, False, False, True]
    on = StateRule(2, DeviceState(device_id=1, pin=0, op="on"), 0, "UTC")
    assert fired(on, [0, 1, 1, 0, 1]) == [False, True, False, False, True]
    text = StateRule(3, DeviceState(device_id=1, pin=0, op="eq", value="open"), 0, "UTC")
    assert [text.check(value(None, text=t), 0.0) for t in ("closed", "open", "open", "shut", "open")] == [
        False,
        True,
        False,
        False,
        True,
    ]


def test_changed_fires_on_every_new_value_after_the_first_seen() -> None:
    rule = StateRule(1, DeviceState(device_id=1, pin=0, op="changed"), 0, "UTC")
    assert fired(rule, [1, 1, 2, 2, 1]) == [False, False, True, False, True]


def test_the_time_window_spanning_midnight_in_its_zone() -> None:
    window = Window(from_="22:00", to="06:00", days=[0], tz="Europe/Berlin")  # Monday night
    rule = StateRule(1, DeviceState(device_id=1, pin=0, op="gt", value=1.0, window=window), 0, "UTC")

    def at(day: int, hour: int) -> bool:
        return rule.check(value(5, at=datetime(2026, 6, day, hour, 30, tzinfo=UTC)), 0.0)

    assert not at(1, 12)  # Monday 14:30 in Berlin: outside, stays armed
    assert not at(1, 19)  # Monday 21:30 in Berlin
    assert at(1, 21)  # Monday 23:30 in Berlin
    rule.disarmed.clear()
    assert at(2, 2)  # Tuesday 04:30 in Berlin: still Monday's night
    rule.disarmed.clear()
    assert not at(2, 21)  # Tuesday 23:30: not a Monday night


OPS = ["on", "off", "gt", "ge", "lt", "le", "eq", "ne", "between"]


@given(
    op=st.sampled_from(OPS),
    threshold=st.integers(-5, 5),
    width=st.integers(0, 4),
    hysteresis=st.integers(0, 3),
    numbers=st.lists(st.integers(-12, 12), max_size=40),
)
def test_skipping_values_in_the_band_changes_nothing(
    op: str, threshold: int, width: int, hysteresis: int, numbers: list[int]
) -> None:
    """The engine skips a device's values inside :func:`band_of` its rules: the same values
    fire at the same places whether they are all checked or those are skipped."""

    def condition() -> DeviceState:
        if op in ("on", "off"):
            return DeviceState(device_id=1, pin=0, op=op, hysteresis=float(hysteresis))  # type: ignore[arg-type]
        high = float(threshold + width) if op == "between" else None
        return DeviceState(device_id=1, pin=0, op=op, value=float(threshold), value2=high, hysteresis=float(hysteresis))  # type: ignore[arg-type]

    every, skipping = StateRule(1, condition(), 0, "UTC"), StateRule(1, condition(), 0, "UTC")
    for number in numbers:
        low, high = band_of([skipping], 1)
        fired = every.check(value(float(number)), 0.0)
        if low <= number < high:
            assert not fired and every.disarmed == skipping.disarmed  # nothing would change
        else:
            assert skipping.check(value(float(number)), 0.0) == fired
        assert every.disarmed == skipping.disarmed
