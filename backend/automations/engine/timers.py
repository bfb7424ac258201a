"""Online/offline conditions: what a presence transition does to the automations listening.

A transition of a device runs at once the automations with ``after_s`` 0 that wait for it, arms a
timer (due at the transition's time plus ``after_s``) for the others that wait for it, and
disarms the timers of those waiting for the opposite (the device flipped back before their time
was up). The engine stores the timers (``automation_timer``) and the leader fires them as stored
scheduler jobs, so they survive restarts and fire once (see ``engine.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from backend.automations.engine.store import Automation
from backend.automations.schemas import Presence
from backend.devices.signals import PresenceSignal


@dataclass
class PresencePlan:
    """What one transition does: automations to run now, timers to arm and to disarm."""

    now: list[Automation] = field(default_factory=list)
    arm: list[tuple[int, int, datetime]] = field(default_factory=list)
    """(automation id, device id, due)"""
    disarm: list[tuple[int, int]] = field(default_factory=list)
    """(automation id, device id)"""


def presence_plan(found: Sequence[Automation], signal: PresenceSignal) -> PresencePlan:
    """The plan of a transition for the presence automations ``found`` for its device."""
    plan = PresencePlan()
    for automation in found:
        condition = automation.condition
        assert isinstance(condition, Presence)
        if condition.online != signal.online:
            plan.disarm.append((automation.id, signal.device_id))
        elif condition.after_s == 0:
            plan.now.append(automation)
        else:
            plan.arm.append((automation.id, signal.device_id, signal.at + timedelta(seconds=condition.after_s)))
    return plan
