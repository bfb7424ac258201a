"""Issue #14 item 5: device-state rule state across app replicas. The broker gives all of one
device's messages to one replica (a shared subscription assigned by device) and moves them when
replicas come or go; the replica that sees a device for the first time loads the device's rule
state (armed or not, last fired) from ``automation_device_state`` and tells the others to forget
theirs. So a crossing fires once across a move (before: each replica decided with the state in
its own memory and fired it again), a device that goes a -> b -> a is judged on b's state (not on
a's stale one), and replicas keep each device's state in a row of its own (before: each saved its
whole view into the one ``automation.state``, overwriting the other's devices).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from broker._shared import member_for
from tests.support.automation_stack import EngineStack, engine_stack
from tests.support.net import wait_for
from tests.support.paho import ConnectDevice

pytestmark = pytest.mark.slow


@pytest.fixture
def world(pg_server: str, template_db: str) -> Iterator[EngineStack]:
    with engine_stack(pg_server, template_db, devices=1, replica="a") as s:
        yield s


def second_replica(device_id: int, keeps: bool = True, other: int | None = None) -> str:
    """A name for another replica with which the broker keeps ``device_id`` on replica ``a``
    (``keeps=False``: moves it to the new one), and gives ``other`` to the new one."""
    for name in "bcdefghijklmnopqrstuvwxyz":
        members = ["svc:openblynk-app-a", f"svc:openblynk-app-{name}"]
        on_a = member_for(f"d/{device_id}/ds/Temperature", members) == members[0]
        if on_a == keeps and (other is None or member_for(f"d/{other}/ds/Temperature", members) == members[1]):
            return name
    raise AssertionError("no name places the devices as asked")


def device_runs(world: EngineStack, automation_id: int) -> list[tuple[int, str | None]]:
    """``(trigger device, trigger value)`` of each run, by device then oldest first."""
    with world.db() as conn:
        rows = conn.execute(
            "SELECT trigger_device_id, trigger_value FROM automation_run WHERE automation_id = %s "
            "ORDER BY trigger_device_id, id",
            (automation_id,),
        ).fetchall()
    return [(int(r[0]), r[1]) for r in rows]


def kept(world: EngineStack, automation_id: int) -> dict[int, bool]:
    """Device -> disarmed, as kept in PostgreSQL."""
    with world.db() as conn:
        rows = conn.execute(
            "SELECT device_id, disarmed FROM automation_device_state WHERE automation_id = %s", (automation_id,)
        ).fetchall()
    return {int(r[0]): bool(r[1]) for r in rows}


def test_a_crossing_fires_once_when_its_device_moves_to_another_replica(
    world: EngineStack, paho_device: ConnectDevice
) -> None:
    first, info = world.apps[0], world.devices[0]
    world.start_app(name="app-b", replica=second_replica(info.id))
    hot = world.add(
        {"type": "device_state", "device_id": info.id, "pin": 0, "op": "gt", "value": 30},
        [{"type": "control", "target": {"device_id": info.id}, "pin": 1, "value": "1"}],
    )
    device = paho_device(world.config, info, subscribe=False)
    device.publish("ds/Temperature", "35", qos=1)  # the crossing, on replica a
    wait_for(lambda: len(world.runs(hot)) == 1, 30, message="the crossing to fire on a")
    first.proc.stop(signal.SIGTERM)  # a clean stop: the device's messages go to b from now on
    device.publish("ds/Temperature", "36", qos=1)  # still above 30: no new crossing
    device.publish("ds/Temperature", "25", qos=1)
    device.publish("ds/Temperature", "45", qos=1)  # a new crossing: fires on b, after 36 was evaluated
    wait_for(lambda: "45.0" in [value for _, _, value in world.runs(hot)], 30, message="the second crossing")
    assert [value for _, _, value in world.runs(hot)] == ["35.0", "45.0"]


def test_a_device_that_comes_back_is_judged_on_the_state_the_other_replica_left(
    world: EngineStack, paho_device: ConnectDevice
) -> None:
    """a fires 35 and disarms; b joins and takes the device (its 25 re-arms the rule, which
    b keeps); b stops and the device is back on a: 45 is a new crossing. Judged on a's memory
    (disarmed since 35) it did not fire."""
    info = world.devices[0]
    hot = world.add(
        {"type": "device_state", "device_id": info.id, "pin": 0, "op": "gt", "value": 30},
        [{"type": "control", "target": {"device_id": info.id}, "pin": 1, "value": "1"}],
    )
    device = paho_device(world.config, info, subscribe=False)
    device.publish("ds/Temperature", "35", qos=1)  # on a: fires, disarms
    wait_for(lambda: len(world.runs(hot)) == 1, 30, message="the crossing to fire on a")
    wait_for(lambda: kept(world, hot) == {info.id: True}, 30, message="a to keep the device disarmed")
    second = world.start_app(name="app-b", replica=second_replica(info.id, keeps=False))
    device.publish("ds/Temperature", "25", qos=1)  # on b: re-arms
    wait_for(lambda: kept(world, hot) == {info.id: False}, 30, message="b to keep the device armed")
    second.proc.stop(signal.SIGTERM)  # the device is back on a
    device.publish("ds/Temperature", "45", qos=1)  # a new crossing
    wait_for(lambda: len(world.runs(hot)) == 2, 30, message="the second crossing to fire on a")
    assert [value for _, _, value in world.runs(hot)] == ["35.0", "45.0"]


@pytest.fixture
def pair(pg_server: str, template_db: str) -> Iterator[EngineStack]:
    with engine_stack(pg_server, template_db, devices=2, replica="a") as s:
        yield s


def test_two_replicas_keep_each_others_devices_state(pair: EngineStack, paho_device: ConnectDevice) -> None:
    """One template rule, one device on each replica: both crossings stay disarmed in what is
    kept, so a third replica that takes both devices over after a and b stopped fires neither
    36 again, and both 45s after 25. Before, the replica that saved last overwrote the other's
    device, which then fired again on 36."""
    one, two = pair.devices
    with pair.db() as conn:
        row = conn.execute("SELECT template_id FROM device WHERE id = %s", (one.id,)).fetchone()
    assert row is not None
    pair.start_app(name="app-b", replica=second_replica(one.id, other=two.id))
    hot = pair.add(
        {"type": "device_state", "template_id": int(row[0]), "pin": 0, "op": "gt", "value": 30},
        [{"type": "control", "target": {"device_id": one.id}, "pin": 1, "value": "1"}],
    )
    devices = [paho_device(pair.config, info, subscribe=False) for info in (one, two)]
    for device in devices:
        device.publish("ds/Temperature", "35", qos=1)  # one on a, two on b: each fires once
    wait_for(lambda: len(pair.runs(hot)) == 2, 30, message="both crossings to fire")
    wait_for(lambda: kept(pair, hot) == {one.id: True, two.id: True}, 30, message="both devices kept disarmed")
    for app in list(pair.apps):
        app.proc.stop(signal.SIGTERM)
    pair.start_app(name="app-c", replica="c")
    for value in ("36", "25", "45"):
        for device in devices:
            device.publish("ds/Temperature", value, qos=1)
    wait_for(lambda: len(pair.runs(hot)) >= 4, 30, message="both second crossings to fire on c")
    assert device_runs(pair, hot) == [(one.id, "35.0"), (one.id, "45.0"), (two.id, "35.0"), (two.id, "45.0")]
