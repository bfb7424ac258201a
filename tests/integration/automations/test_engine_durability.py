"""Automation runs survive the death of their process (issue #13's reliability leftovers), with
real app processes, PostgreSQL, the broker and paho devices:

- a scheduled run fires exactly once when the leader is killed (SIGKILL, by the app itself at a
  test-only crash point: ``OPENBLYNK_TEST_CRASH_AT``) right after recording the firing, right
  after claiming the run's slot, or right after committing its first action; the other app takes
  over and the device receives the downlink once;
- a run mid-way at a graceful stop ends its action in flight, is left ``running`` at its next
  action and is resumed (and says so in the log) by the next start; orphaned runs of a process
  that ended too often are marked ``interrupted`` with the reason, runs of a live process are
  left alone;
- an "offline for N seconds" timer survives an app restart and fires once, after N.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from backend.automations.engine.store import MAX_RESUMES, OWNER_LOCK_CLASS, EngineStore, RunTaken
from tests.support.accounts import Api
from tests.support.automation_stack import EngineStack, engine_stack
from tests.support.net import free_port, wait_for
from tests.support.paho import ConnectDevice, PahoDevice

pytestmark = pytest.mark.slow
ADMIN = ("admin@test.local", "admin-password-123")  # the root administrator tests/support/provision.py makes


def downlinks(device: PahoDevice, until: bytes) -> list[tuple[str, bytes]]:
    """The device's downlinks up to the first ``until`` payload (included)."""
    seen: list[tuple[str, bytes]] = []
    while not seen or seen[-1][1] != until:
        seen.append(device.next(timeout=30, topic_prefix="downlink/ds/"))
    return seen


def once_at(seconds: float) -> dict[str, str]:
    return {"type": "once", "at": (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()}


def run_row(world: EngineStack, run_id: int) -> tuple[str, int, int, int | None, str]:
    """``(status, next_action, resumes, owner, note)`` of a run."""
    with world.db() as conn:
        row = conn.execute(
            "SELECT status, next_action, resumes, owner, note FROM automation_run WHERE id = %s", (run_id,)
        ).fetchone()
    assert row is not None
    return row[0], row[1], row[2], row[3], row[4]


def events_logged(world: EngineStack, device_id: int, description: str) -> int:
    with world.db() as conn:
        row = conn.execute(
            "SELECT count(*) FROM device_event WHERE device_id = %s AND code = 'overheat' AND description = %s",
            (device_id, description),
        ).fetchone()
    return int(row[0]) if row else -1


# -- exactly once across a leader killed while a job fires ----------------------------------------
@pytest.mark.parametrize(
    ("crash_at", "resumes"),
    [("fire-recorded", 0), ("fire-claimed", 1), ("step-done", 1)],
)
def test_a_scheduled_run_happens_once_when_the_leader_dies_as_it_fires(
    pg_server: str, template_db: str, paho_device: ConnectDevice, crash_at: str, resumes: int
) -> None:
    """The leader kills itself at ``crash_at`` while a one-off automation fires; the second app
    takes over: one run (resumed once if it had been claimed), its first action (an event logged
    on the pump) done once, and the pump receives the second action's downlink once."""
    with engine_stack(pg_server, template_db, devices=2, scheduler_retry_seconds="1", test_crash_at=crash_at) as world:
        first = world.apps[0]
        wait_for(lambda: first.health()["scheduler_leader"], 30, message="the first app to lead")
        second = world.start_app(name="app-2", mqtt_client_id="openblynk-app-2", test_crash_at="")
        pump_info = world.devices[1]
        pump = paho_device(world.config, pump_info)
        auto = world.add(
            once_at(4),
            [
                {"type": "log_event", "device_id": pump_info.id, "code": "overheat", "description": "fired"},
                {"type": "control", "target": {"device_id": pump_info.id}, "pin": 1, "value": "1"},
            ],
        )
        wait_for(lambda: not first.proc.alive(), 60, message="the leader to kill itself as the automation fires")
        assert first.proc.proc.returncode == -signal.SIGKILL
        world.apps.remove(first)
        first.proc.stop()
        wait_for(lambda: second.health()["scheduler_leader"], 30, message="the second app to take over")
        wait_for(lambda: [s for _, s, _ in world.runs(auto)] == ["ok"], 60, message="the run to end, once")
        marker = world.add(
            once_at(1), [{"type": "control", "target": {"device_id": pump_info.id}, "pin": 2, "value": "end"}]
        )
        assert downlinks(pump, until=b"end") == [("downlink/ds/Power", b"1"), ("downlink/ds/Label", b"end")]
        wait_for(lambda: [s for _, s, _ in world.runs(marker)] == ["ok"], 30, message="the marker run to end")
        ((run_id, _, _),) = world.runs(auto)
        status, next_action, resumed, owner, _ = run_row(world, run_id)
        assert (status, next_action, resumed, owner) == ("ok", 2, resumes, None)
        assert [(kind, ok) for _, kind, ok, _ in world.steps(run_id)] == [("log_event", True), ("control", True)]
        assert events_logged(world, pump_info.id, "fired") == 1
        with world.db() as conn:
            assert conn.execute("SELECT count(*) FROM scheduler_firing").fetchone() == (0,)
        assert len(world.runs(auto)) == 1


# -- graceful stop and orphans -----------------------------------------------------------------
class Gate:
    """A webhook target that holds each request until :meth:`open` (a slow action in flight)."""

    def __init__(self) -> None:
        self.arrived = threading.Event()
        self.opened = threading.Event()
        self.count = 0
        gate = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the stdlib's name)
                return

            def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                gate.count += 1
                gate.arrived.set()
                gate.opened.wait(60)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/slow"

    def open(self) -> None:
        self.opened.set()


@contextmanager
def gate() -> Iterator[Gate]:
    found = Gate()
    found.thread.start()
    try:
        yield found
    finally:
        found.open()
        found.server.shutdown()
        found.server.server_close()


@pytest.fixture(scope="module")
def world(pg_server: str, template_db: str) -> Iterator[EngineStack]:
    settings = {"webhook_allowed_hosts": "127.0.0.1", "scheduler_retry_seconds": "1", "automation_workers": "1"}
    with engine_stack(pg_server, template_db, devices=2, **settings) as stack:
        yield stack


@pytest.fixture(autouse=True)
def no_automations(world: EngineStack) -> None:
    world.clear()


def test_a_run_mid_way_at_a_graceful_stop_is_resumed_by_the_next_start(
    world: EngineStack, paho_device: ConnectDevice
) -> None:
    pump_info = world.devices[1]
    pump = paho_device(world.config, pump_info)
    with gate() as slow:
        with Api(world.config.base_url) as admin:
            admin.login(*ADMIN)
            made = admin.post(
                "/api/console/webhooks",
                json={"name": "slow", "trigger": "manual", "url": slow.url, "method": "POST", "body_kind": "json"},
            )
            assert made.status_code == 201, made.text
        auto = world.add(
            once_at(2),
            [
                {"type": "webhook", "webhook_id": made.json()["id"]},
                {"type": "control", "target": {"device_id": pump_info.id}, "pin": 2, "value": "after-restart"},
            ],
        )
        assert slow.arrived.wait(30), "the webhook action to start"
        app = world.apps[0]
        app.proc.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: "automation engine stopping: 1 run(s) in flight" in app.proc.log(), 30, message="the stop")
        slow.open()  # the action in flight ends during the stop; the next one waits for the next start
        app.proc.proc.wait(60)
        app.proc.stop()
        assert "Application shutdown complete" in app.proc.log(), app.proc.log()[-2000:]
        ((run_id, _, _),) = world.runs(auto)
        status, next_action, resumes, owner, note = run_row(world, run_id)
        assert (status, next_action, resumes, owner) == ("running", 1, 0, None)
        assert note == "stopped before action 2 by a shutdown of its process"
        assert pump.drain() == []
        world.apps.pop()
        world.start_app()
        assert downlinks(pump, until=b"after-restart") == [("downlink/ds/Label", b"after-restart")]
        wait_for(lambda: [s for _, s, _ in world.runs(auto)] == ["ok"], 30, message="the resumed run to end")
        status, next_action, resumes, owner, note = run_row(world, run_id)
        assert (status, next_action, resumes, owner) == ("ok", 2, 1, None)
        assert note == (
            "resumed at action 2 after its process ended (stopped before action 2 by a shutdown of its process)"
        )
        assert [(kind, ok) for _, kind, ok, _ in world.steps(run_id)] == [("webhook", True), ("control", True)]
        assert slow.count == 1
        with Api(world.config.base_url) as admin:  # the console's log says it was resumed, and why
            admin.login(*ADMIN)
            answer = admin.get("/api/console/automations/log", params={"automation_id": auto})
            assert answer.status_code == 200, answer.text
        ((status, resumes, note),) = [(r["status"], r["resumes"], r["note"]) for r in answer.json()["content"]]
        assert (status, resumes) == ("ok", 1) and note.startswith("resumed at action 2 after its process ended")


def test_orphans_are_resumed_or_interrupted_and_a_live_owners_runs_are_left_alone(
    world: EngineStack, paho_device: ConnectDevice
) -> None:
    """Runs left ``running`` as by dead processes (no one holds their owner's lock) are taken
    over by the leader: resumed at their next action, or ``interrupted`` with the reason when
    their process already ended too often; a run whose owner's lock is held stays as it is."""
    pump_info = world.devices[1]
    pump = paho_device(world.config, pump_info)
    auto = world.add(
        {"type": "scene"},
        [
            {"type": "control", "target": {"device_id": pump_info.id}, "pin": 2, "value": "never-again"},
            {"type": "control", "target": {"device_id": pump_info.id}, "pin": 2, "value": "orphan-resumed"},
        ],
    )
    with psycopg.connect(world.config.database_url, autocommit=True) as live:
        live.execute("SELECT pg_advisory_lock(%s, %s)", (OWNER_LOCK_CLASS, 424242))

        def orphan(owner: int, resumes: int) -> int:
            row = live.execute(
                "INSERT INTO automation_run (automation_id, org_id, trigger, next_action, owner, resumes) "
                "VALUES (%s, %s, 'scene', 1, %s, %s) RETURNING id",
                (auto, world.org_id, owner, resumes),
            ).fetchone()
            assert row is not None
            return int(row[0])

        alive = orphan(424242, 0)
        dead = orphan(171717, 0)
        too_often = orphan(181818, MAX_RESUMES - 1)
        assert downlinks(pump, until=b"orphan-resumed") == [("downlink/ds/Label", b"orphan-resumed")]
        wait_for(lambda: run_row(world, dead)[0] == "ok", 30, message="the orphan to be resumed")
        assert run_row(world, dead)[1:4] == (2, 1, None)
        status, _, resumes, _, note = run_row(world, too_often)
        assert (status, resumes) == ("interrupted", MAX_RESUMES)
        assert note == f"its process ended {MAX_RESUMES} times during the run; not resumed again"
        assert run_row(world, alive)[:4] == ("running", 1, 0, 424242)
        assert [(kind, ok) for _, kind, ok, _ in world.steps(dead)] == [("control", True)]
        live.execute("DELETE FROM automation_run WHERE id = %s", (alive,))  # before its owner's lock goes


# -- presence timers across a restart ------------------------------------------------------------
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["stopped", "killed"])
def test_an_offline_timer_survives_a_restart_and_fires_once_after_its_time(
    world: EngineStack, paho_device: ConnectDevice, sig: int
) -> None:
    sensor_info, pump_info = world.devices
    pump = paho_device(world.config, pump_info)
    sensor = paho_device(world.config, sensor_info, subscribe=False)
    auto = world.add(
        {"type": "presence", "device_id": sensor_info.id, "online": False, "after_s": 15},
        [{"type": "control", "target": {"device_id": pump_info.id}, "pin": 2, "value": "sensor-gone"}],
    )
    sensor.close()
    with world.db() as conn:

        def due() -> datetime | None:
            row = conn.execute("SELECT due_at FROM automation_timer WHERE automation_id = %s", (auto,)).fetchone()
            return row[0] if row else None

        due_at = wait_for(due, 20, message="the timer to be stored")
        assert due_at is not None
        world.apps.pop().proc.stop(sig)
        assert datetime.now(UTC) < due_at, "the app was stopped only after the timer's time (too slow a machine)"
        world.start_app()
        assert downlinks(pump, until=b"sensor-gone") == [("downlink/ds/Label", b"sensor-gone")]
        wait_for(lambda: [s for _, s, _ in world.runs(auto)] == ["ok"], 30, message="the run to end")
        started = conn.execute("SELECT started_at FROM automation_run WHERE automation_id = %s", (auto,)).fetchone()
        assert started is not None and started[0] >= due_at
        assert due() is None
        wait_for(
            lambda: (
                conn.execute("SELECT count(*) FROM apscheduler_jobs WHERE id LIKE 'automation-timer:%'").fetchone()
                == (0,)
            ),
            20,
            message="the timer's job to be done",
        )
    assert [value for _, _, value in world.runs(auto)] == ["offline"]


def test_a_wait_and_a_timer_stored_by_a_process_that_died_before_telling_the_leader_still_run(
    world: EngineStack, paho_device: ConnectDevice
) -> None:
    """A waiting run and a presence timer written to the database without the change notice (as
    by a process killed between the two) are scheduled by the leader's periodic catch-up."""
    sensor_info, pump_info = world.devices
    pump = paho_device(world.config, pump_info)
    waited = world.add(
        {"type": "scene"},
        [
            {"type": "wait", "seconds": 1},
            {"type": "control", "target": {"device_id": pump_info.id}, "pin": 2, "value": "wait-over"},
        ],
    )
    timed = world.add(
        {"type": "presence", "device_id": sensor_info.id, "online": False, "after_s": 5},
        [{"type": "control", "target": {"device_id": pump_info.id}, "pin": 2, "value": "timer-due"}],
    )
    soon = datetime.now(UTC) + timedelta(seconds=2)
    with world.db() as conn:
        conn.execute(
            "INSERT INTO automation_run (automation_id, org_id, trigger, status, next_action, resume_at) "
            "VALUES (%s, %s, 'scene', 'waiting', 1, %s)",
            (waited, world.org_id, soon),
        )
        conn.execute(
            "INSERT INTO automation_timer (automation_id, device_id, due_at) VALUES (%s, %s, %s)",
            (timed, sensor_info.id, soon + timedelta(seconds=2)),
        )
    assert downlinks(pump, until=b"timer-due") == [
        ("downlink/ds/Label", b"wait-over"),
        ("downlink/ds/Label", b"timer-due"),
    ]
    wait_for(lambda: [s for _, s, _ in world.runs(timed)] == ["ok"], 30, message="the timer's run to end")
    assert [s for _, s, _ in world.runs(waited)] == ["ok"]


async def test_a_process_whose_run_was_taken_over_cannot_carry_it_on(world: EngineStack) -> None:
    """Fencing: once a run's owner lost its lock (as when its database connection broke) and the
    leader took the run over, the old owner's next write of the run's progress is refused."""
    auto = world.add({"type": "scene"}, [{"type": "log_event", "code": "overheat"}] * 2)
    url = world.config.database_url
    async with AsyncConnectionPool(url, kwargs={"autocommit": True}, open=False) as pool:
        old = EngineStore(pool, 515151)
        automation = await old.get(auto)
        assert automation is not None
        with psycopg.connect(url, autocommit=True) as lease:
            lease.execute("SELECT pg_advisory_lock(%s, %s)", (OWNER_LOCK_CLASS, old.owner))
            run_id = await old.start(automation, "scene", None, None)
            assert run_id is not None
            await old.step(run_id, 0, "log_event", False, "no device", datetime.now(UTC), 0)
        wait_for(lambda: run_row(world, run_id)[2] == 1, 30, message="the leader to take it over")
        with pytest.raises(RunTaken):
            await old.step(run_id, 1, "log_event", False, "no device", datetime.now(UTC), 0)
        with pytest.raises(RunTaken):
            await old.finish(run_id, 2)
        wait_for(lambda: run_row(world, run_id)[0] == "failed", 30, message="the new owner to end the run")
        assert run_row(world, run_id)[1:3] == (2, 1)
