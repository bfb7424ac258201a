"""Online/offline conditions: a timer per automation and device, cancelled when the device flips
back before it ends; ``after_s`` 0 queues at once. The engine is given no database: nothing
here reaches it (runs stay in the engine's queue)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from backend.automations.engine import AutomationEngine
from backend.automations.engine.store import Automation
from backend.automations.schemas import Control, Presence, Target
from backend.devices.registry import DeviceInfo
from backend.devices.signals import DeviceSignals, PresenceSignal
from backend.scheduler import Scheduler

NOW = datetime(2026, 6, 1, tzinfo=UTC)


class Devices:
    async def get(self, device_id: int) -> DeviceInfo | None:
        return DeviceInfo(device_id, f"dev {device_id}", 1, 9, "Thermostat")


def engine_with(*conditions: Presence) -> tuple[AutomationEngine, DeviceSignals]:
    signals = DeviceSignals()
    engine = AutomationEngine(None, Scheduler("postgresql://unused/none", []), signals, Devices(), None, None)  # type: ignore[arg-type]
    for n, condition in enumerate(conditions, start=1):
        engine._put(
            Automation(
                n, 1, "Org", "UTC", f"a{n}", True, condition,
                [Control(target=Target(device_id=2), pin=1, value="1")], 0, NOW, None, None, {},
            )
        )  # fmt: skip
    engine._reindex()
    return engine, signals


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_offline_then_back_online_before_the_time_cancels_the_run() -> None:
    engine, signals = engine_with(Presence(device_id=5, online=False, after_s=30))
    signals.presence(PresenceSignal(5, False, NOW))
    await settle()
    assert list(engine._timers) == [(1, 5)]
    signals.presence(PresenceSignal(5, True, NOW))
    await settle()
    assert engine._timers == {} and engine._queue.empty()
    await engine.stop()


async def test_a_template_condition_starts_a_timer_per_device_and_zero_seconds_queues_at_once() -> None:
    engine, signals = engine_with(
        Presence(template_id=9, online=False, after_s=60), Presence(device_id=5, online=True, after_s=0)
    )
    signals.presence(PresenceSignal(5, False, NOW))
    signals.presence(PresenceSignal(6, False, NOW))
    await settle()
    assert sorted(engine._timers) == [(1, 5), (1, 6)]
    signals.presence(PresenceSignal(5, True, NOW))
    await settle()
    assert sorted(engine._timers) == [(1, 6)]
    queued = engine._queue.get_nowait()
    assert (queued.automation.id, queued.trigger.kind, queued.trigger.device_id, queued.trigger.value) == (
        2,
        "presence",
        5,
        "online",
    )
    await engine.stop()
