"""The pieces of the rule-state handover between app replicas that need no database: a rule's
per-device state taken out and put back, and the holder notices an engine acts on."""

from __future__ import annotations

from datetime import UTC, datetime

from backend.automations.engine.holders import Holders
from backend.automations.engine.states import StateRule
from backend.automations.schemas import condition_of

AT = datetime(2026, 1, 1, 12, tzinfo=UTC)


def rule() -> StateRule:
    condition = condition_of({"type": "device_state", "device_id": 1, "pin": 0, "op": "gt", "value": 30})
    return StateRule(9, condition, 0, "UTC")


def test_a_devices_state_put_back_is_judged_as_before() -> None:
    first = rule()
    assert first.check_row(1, 35.0, 35.0, AT, 100.0)  # fires, disarms device 1
    assert first.state_of(1) == (True, 100.0) and first.state_of(2) == (False, None)
    second = rule()
    second.put(1, *first.state_of(1))
    assert not second.check_row(1, 36.0, 36.0, AT, 101.0)  # still disarmed
    assert not second.check_row(1, 25.0, 25.0, AT, 102.0)  # re-arms
    assert second.check_row(1, 45.0, 45.0, AT, 103.0)


def test_a_forgotten_device_starts_armed() -> None:
    kept = rule()
    assert kept.check_row(1, 35.0, 35.0, AT, 100.0)
    kept.forget(1)
    assert kept.state_of(1) == (False, None)
    assert kept.check_row(1, 36.0, 36.0, AT, 101.0)


def test_only_other_engines_notices_are_taken_over() -> None:
    taken: list[int] = []
    holders = Holders("", 42, taken.append, lambda: None)
    for payload in ("42:7", "43:8", "x:9", "43:", "44:10:1", "45:11"):
        holders.receive(payload)
    assert taken == [8, 11]
