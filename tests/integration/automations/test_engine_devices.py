"""The automation engine in the real app with real devices (paho): a sensor's values switch
another device's datastream (the device receives ``downlink/ds/<name>``), with hysteresis and
Blynk's limit period; a wait survives an app restart.

The app runs one automation worker, so runs execute in the order their triggers came: once a
later automation's downlink arrives, every run triggered before it is in the log.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.automation_stack import EngineStack, engine_stack
from tests.support.net import wait_for
from tests.support.paho import ConnectDevice, PahoDevice

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world(pg_server: str, template_db: str) -> Iterator[EngineStack]:
    with engine_stack(pg_server, template_db, devices=2, automation_workers="1", scheduler_retry_seconds="1") as s:
        yield s


@pytest.fixture(autouse=True)
def no_automations(world: EngineStack) -> None:
    world.clear()


def expect(device: PahoDevice, name: str, value: bytes) -> None:
    topic, payload = device.next(timeout=20, topic_prefix=f"downlink/ds/{name}")
    assert (topic, payload) == (f"downlink/ds/{name}", value)


def test_a_low_reading_switches_the_pump_once_until_it_rises_past_the_hysteresis(
    world: EngineStack, paho_device: ConnectDevice
) -> None:
    sensor_info, pump_info = world.devices
    soil = world.add(
        {"type": "device_state", "device_id": sensor_info.id, "pin": 0, "op": "lt", "value": 20, "hysteresis": 2},
        [{"type": "control", "target": {"device_id": pump_info.id}, "pin": 1, "value": "1"}],
    )
    marker = world.add(  # fires on each new label: shows every earlier run is done
        {"type": "device_state", "device_id": sensor_info.id, "pin": 2, "op": "changed"},
        [{"type": "control", "target": {"device_id": pump_info.id}, "pin": 2, "value": "mark"}],
    )
    pump = paho_device(world.config, pump_info)
    sensor = paho_device(world.config, sensor_info, subscribe=False)
    sensor.publish("ds/Label", "a", qos=1)
    for reading in ("25", "15"):
        sensor.publish("ds/Temperature", reading, qos=1)
    expect(pump, "Power", b"1")
    for reading in ("16", "19.5", "21", "15"):  # 21 is below 20 + 2: not re-armed
        sensor.publish("ds/Temperature", reading, qos=1)
    sensor.publish("ds/Label", "b", qos=1)
    expect(pump, "Label", b"mark")
    assert [value for _, _, value in world.runs(soil)] == ["15.0"]
    for reading in ("22", "14"):  # re-armed at 22, fires at 14
        sensor.publish("ds/Temperature", reading, qos=1)
    expect(pump, "Power", b"1")
    runs = world.runs(soil)
    assert [value for _, _, value in runs] == ["15.0", "14.0"]
    wait_for(lambda: world.runs(soil)[-1][1] == "ok", 20, message="the second run to finish")
    assert world.steps(runs[-1][0]) == [(0, "control", True, "V1=1 on 1 of 1 device(s)")]
    with world.db() as conn:  # the automation is the actor in the pump's actions log
        actors = conn.execute(
            "SELECT count(*) FROM device_action WHERE device_id = %s AND actor_email = %s",
            (pump_info.id, f"automation:{soil}"),
        ).fetchone()
    assert actors == (2,)
    assert len(world.runs(marker)) == 1


def test_the_limit_period_keeps_a_second_fire_out(world: EngineStack, paho_device: ConnectDevice) -> None:
    sensor_info, pump_info = world.devices
    hot = world.add(
        {"type": "device_state", "device_id": sensor_info.id, "pin": 0, "op": "gt", "value": 30},
        [{"type": "control", "target": {"device_id": pump_info.id}, "pin": 1, "value": "0"}],
        limit_period_s=3600,
    )
    marker = world.add(
        {"type": "device_state", "device_id": sensor_info.id, "pin": 2, "op": "changed"},
        [{"type": "control", "target": {"device_id": pump_info.id}, "pin": 2, "value": "limit-mark"}],
    )
    pump = paho_device(world.config, pump_info)
    sensor = paho_device(world.config, sensor_info, subscribe=False)
    sensor.publish("ds/Label", "x", qos=1)
    for reading in ("35", "25", "36", "20", "40"):  # re-armed twice, but inside the hour
        sensor.publish("ds/Temperature", reading, qos=1)
    sensor.publish("ds/Label", "y", qos=1)
    expect(pump, "Power", b"0")
    expect(pump, "Label", b"limit-mark")
    assert [value for _, _, value in world.runs(hot)] == ["35.0"]
    assert len(world.runs(marker)) == 1


def test_a_failed_action_is_logged_and_the_next_ones_still_run(world: EngineStack, paho_device: ConnectDevice) -> None:
    sensor_info, pump_info = world.devices
    auto = world.add(
        {"type": "device_state", "device_id": sensor_info.id, "pin": 0, "op": "eq", "value": -7},
        [
            {"type": "control", "target": {"device_id": pump_info.id}, "pin": 9, "value": "1"},  # no V9
            {"type": "log_event", "code": "nosuch"},  # no such event
            {"type": "control", "target": {"device_id": pump_info.id}, "pin": 2, "value": "after-failures"},
        ],
    )
    pump = paho_device(world.config, pump_info)
    sensor = paho_device(world.config, sensor_info, subscribe=False)
    sensor.publish("ds/Temperature", "-7", qos=1)
    expect(pump, "Label", b"after-failures")
    wait_for(lambda: world.runs(auto) and world.runs(auto)[0][1] != "running", 20, message="the run to end")
    (run,) = world.runs(auto)
    assert run[1] == "failed"
    steps = world.steps(run[0])
    assert [(pos, kind, ok) for pos, kind, ok, _ in steps] == [
        (0, "control", False),
        (1, "log_event", False),
        (2, "control", True),
    ]
    assert "no datastream V9" in steps[0][3] and "nosuch" in steps[1][3]


def test_a_wait_survives_an_app_restart(world: EngineStack, paho_device: ConnectDevice) -> None:
    """Turn on, wait, turn off: the app stops during the wait and starts again; the off still
    comes, from the run stored as waiting."""
    sensor_info, pump_info = world.devices
    auto = world.add(
        {"type": "device_state", "device_id": sensor_info.id, "pin": 0, "op": "ge", "value": 70},
        [
            {"type": "control", "target": {"device_id": pump_info.id}, "pin": 2, "value": "on"},
            {"type": "wait", "seconds": 4},
            {"type": "control", "target": {"device_id": pump_info.id}, "pin": 2, "value": "off"},
        ],
    )
    pump = paho_device(world.config, pump_info)
    sensor = paho_device(world.config, sensor_info, subscribe=False)
    sensor.publish("ds/Temperature", "75", qos=1)
    expect(pump, "Label", b"on")
    wait_for(lambda: [s for _, s, _ in world.runs(auto)] == ["waiting"], 20, message="the run to wait")
    first = world.apps.pop()
    first.proc.stop()
    world.start_app(name="app-restarted")
    expect(pump, "Label", b"off")
    wait_for(lambda: [s for _, s, _ in world.runs(auto)] == ["ok"], 20, message="the run to finish")
    (run,) = world.runs(auto)
    assert [(pos, kind, ok) for pos, kind, ok, _ in world.steps(run[0])] == [
        (0, "control", True),
        (1, "wait", True),
        (2, "control", True),
    ]


def test_a_fired_condition_stays_disarmed_across_an_app_restart(world: EngineStack, paho_device: ConnectDevice) -> None:
    sensor_info, pump_info = world.devices
    dry = world.add(
        {"type": "device_state", "device_id": sensor_info.id, "pin": 0, "op": "lt", "value": -20},
        [{"type": "control", "target": {"device_id": pump_info.id}, "pin": 2, "value": "dry"}],
    )
    pump = paho_device(world.config, pump_info)
    sensor = paho_device(world.config, sensor_info, subscribe=False)
    sensor.publish("ds/Temperature", "-30", qos=1)
    expect(pump, "Label", b"dry")
    with world.db() as conn:  # kept shortly after it changed
        wait_for(
            lambda: (
                conn.execute(
                    "SELECT array_agg(device_id) FROM automation_device_state WHERE automation_id = %s AND disarmed",
                    (dry,),
                ).fetchone()
                == ([sensor_info.id],)
            ),
            20,
            message="the state to be kept",
        )
    world.apps.pop().proc.stop()
    world.start_app(name="app-after-fire")
    marker = world.add(
        {"type": "device_state", "device_id": sensor_info.id, "pin": 2, "op": "changed"},
        [{"type": "control", "target": {"device_id": pump_info.id}, "pin": 2, "value": "state-mark"}],
    )
    sensor.publish("ds/Label", "p", qos=1)
    sensor.publish("ds/Temperature", "-31", qos=1)  # still low: no second run
    sensor.publish("ds/Label", "q", qos=1)
    expect(pump, "Label", b"state-mark")
    assert len(world.runs(dry)) == 1 and len(world.runs(marker)) == 1
    sensor.publish("ds/Temperature", "0", qos=1)  # re-arms
    sensor.publish("ds/Temperature", "-25", qos=1)
    expect(pump, "Label", b"dry")
    assert len(world.runs(dry)) == 2


def test_events_run_automations_of_the_device_and_of_its_template(
    world: EngineStack, paho_device: ConnectDevice
) -> None:
    """The sensor's event runs the template's automation and the sensor's own, which logs an
    event on the pump (with placeholders), which runs the template's automation again."""
    sensor_info, pump_info = world.devices
    with world.db() as conn:
        row = conn.execute("SELECT template_id FROM device WHERE id = %s", (sensor_info.id,)).fetchone()
    assert row is not None
    any_device = world.add(
        {"type": "event", "template_id": row[0], "code": "overheat"},
        [{"type": "control", "target": {"device_id": pump_info.id}, "pin": 2, "value": "event-seen"}],
    )
    sensor_only = world.add(
        {"type": "event", "device_id": sensor_info.id, "code": "overheat"},
        [
            {
                "type": "log_event",
                "device_id": pump_info.id,
                "code": "overheat",
                "description": "{DEVICE_NAME}: {EVENT_CODE}",
            }
        ],
    )
    pump = paho_device(world.config, pump_info)
    sensor = paho_device(world.config, sensor_info, subscribe=False)
    sensor.publish("event/overheat", "", qos=1)
    expect(pump, "Label", b"event-seen")
    expect(pump, "Label", b"event-seen")
    wait_for(lambda: [s for _, s, _ in world.runs(sensor_only)] == ["ok"], 20, message="the log_event run to end")
    wait_for(lambda: [s for _, s, _ in world.runs(any_device)] == ["ok", "ok"], 20, message="both runs to end")
    with world.db() as conn:
        devices = conn.execute(
            "SELECT trigger_device_id FROM automation_run WHERE automation_id = %s ORDER BY trigger_device_id",
            (any_device,),
        ).fetchall()
        logged = conn.execute(
            "SELECT description FROM device_event WHERE device_id = %s AND code = 'overheat'", (pump_info.id,)
        ).fetchall()
    assert devices == sorted([(sensor_info.id,), (pump_info.id,)])
    assert trigger_of(world, sensor_only) == [("event", "overheat")]
    assert logged == [(f"{sensor_info.name}: overheat",)]


def test_a_device_offline_for_a_while_runs_the_presence_automation(
    world: EngineStack, paho_device: ConnectDevice
) -> None:
    sensor_info, pump_info = world.devices
    auto = world.add(
        {"type": "presence", "device_id": sensor_info.id, "online": False, "after_s": 1},
        [{"type": "control", "target": {"device_id": pump_info.id}, "pin": 2, "value": "sensor-gone"}],
    )
    pump = paho_device(world.config, pump_info)
    sensor = paho_device(world.config, sensor_info, subscribe=False)
    sensor.close()
    expect(pump, "Label", b"sensor-gone")
    assert [(trigger, value) for trigger, value in trigger_of(world, auto)] == [("presence", "offline")]


def trigger_of(world: EngineStack, automation_id: int) -> list[tuple[str, str | None]]:
    with world.db() as conn:
        rows = conn.execute(
            "SELECT trigger, trigger_value FROM automation_run WHERE automation_id = %s ORDER BY id", (automation_id,)
        ).fetchall()
    return [(r[0], r[1]) for r in rows]
