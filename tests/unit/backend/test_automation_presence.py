"""Online/offline conditions: a transition arms a timer per automation and device (due at the
transition's time plus ``after_s``), disarms the timers waiting for the opposite (the device
flipped back before their time was up), and ``after_s`` 0 runs at once. The engine stores the
timers and the leader fires them (tests/integration/automations/test_engine_durability.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from backend.automations.engine.store import Automation
from backend.automations.engine.timers import presence_plan
from backend.automations.schemas import Control, Presence, Target
from backend.devices.signals import PresenceSignal

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def automation(n: int, condition: Presence) -> Automation:
    return Automation(
        n, 1, "Org", "UTC", f"a{n}", True, condition,
        [Control(target=Target(device_id=2), pin=1, value="1")], 0, NOW, None, None, {},
    )  # fmt: skip


def test_offline_arms_a_timer_and_back_online_disarms_it() -> None:
    offline = automation(1, Presence(device_id=5, online=False, after_s=30))
    gone = presence_plan([offline], PresenceSignal(5, False, NOW))
    assert (gone.now, gone.arm, gone.disarm) == ([], [(1, 5, NOW + timedelta(seconds=30))], [])
    back = presence_plan([offline], PresenceSignal(5, True, NOW + timedelta(seconds=3)))
    assert (back.now, back.arm, back.disarm) == ([], [], [(1, 5)])


def test_a_template_condition_arms_a_timer_per_device_and_zero_seconds_runs_at_once() -> None:
    per_template = automation(1, Presence(template_id=9, online=False, after_s=60))
    at_once = automation(2, Presence(device_id=5, online=True, after_s=0))
    first = presence_plan([per_template], PresenceSignal(5, False, NOW))
    second = presence_plan([per_template], PresenceSignal(6, False, NOW))
    assert first.arm + second.arm == [(1, 5, NOW + timedelta(seconds=60)), (1, 6, NOW + timedelta(seconds=60))]
    online = presence_plan([per_template, at_once], PresenceSignal(5, True, NOW))
    assert (online.now, online.arm, online.disarm) == ([at_once], [], [(1, 5)])
