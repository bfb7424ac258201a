"""Two app processes (real uvicorn) on one database: every scheduled automation runs exactly
once; after the leader is killed the other takes over and catches up the runs missed meanwhile
(within the misfire grace time).

The second app has its own MQTT client id (``OPENBLYNK_MQTT_CLIENT_ID``): two apps with the same
persistent session would knock each other off the broker. The second app is held stopped while
the first is killed, so one-off automations fall due while no process leads.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.automation_stack import EngineStack, engine_stack
from tests.support.net import wait_for

pytestmark = pytest.mark.slow
COUNT = 8
SPACING_S = 2
GAP_S = 3
"""How long no process leads: the second app is stopped (SIGSTOP) while the first is killed."""


@pytest.fixture
def world(pg_server: str, template_db: str) -> Iterator[EngineStack]:
    with engine_stack(pg_server, template_db, devices=1, scheduler_retry_seconds="1") as s:
        yield s


def test_each_scheduled_automation_runs_once_across_a_leader_kill(world: EngineStack) -> None:
    first = world.apps[0]
    wait_for(lambda: first.health()["scheduler_leader"], 30, message="the first app to lead")
    second = world.start_app(name="app-2", mqtt_client_id="openblynk-app-2")
    assert second.health()["scheduler_leader"] is False
    device = world.devices[0].id
    start = datetime.now(UTC) + timedelta(seconds=3)
    ids = [
        world.add(
            {"type": "once", "at": (start + timedelta(seconds=SPACING_S * n)).isoformat()},
            [{"type": "control", "target": {"device_id": device}, "pin": 2, "value": f"once-{n}"}],
        )
        for n in range(COUNT)
    ]
    wait_for(lambda: all(world.runs(i) for i in ids[:2]), 30, message="the first runs, in the first app")
    second.proc.proc.send_signal(signal.SIGSTOP)  # no process leads for a while, whatever the timing
    first.proc.stop(signal.SIGKILL)
    time.sleep(GAP_S)  # one-off automations fall due meanwhile
    second.proc.proc.send_signal(signal.SIGCONT)
    wait_for(lambda: second.health()["scheduler_leader"], 30, message="the second app to take over")
    wait_for(lambda: all(world.runs(i) for i in ids), 60, message="every automation to run")
    with world.db() as conn:  # nothing is left to fire: no run can come twice later
        wait_for(
            lambda: (
                conn.execute("SELECT count(*) FROM apscheduler_jobs WHERE id LIKE 'automation:%'").fetchone() == (0,)
            ),
            30,
            message="the one-off jobs to be done",
        )
        late = conn.execute(
            "SELECT count(*) FROM automation_run r JOIN automation a ON a.id = r.automation_id "
            "WHERE r.started_at > (a.condition->>'at')::timestamptz + interval '1 second'"
        ).fetchone()
    assert {i: len(world.runs(i)) for i in ids} == dict.fromkeys(ids, 1)
    assert late is not None and late[0] >= 1  # some ran late: caught up by the second app
