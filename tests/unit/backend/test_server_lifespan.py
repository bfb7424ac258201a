"""The app's one lifespan: parts start in their declared order and stop in the reverse order;
a part that fails to start stops those before it; a part that fails to stop does not keep the
others running."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from backend.server.container import build_runtime
from backend.server.lifespan import Part, parts, running
from backend.settings import Settings


def _recording(log: list[str], name: str, fail_start: bool = False, fail_stop: bool = False) -> Part:
    async def start() -> None:
        if fail_start:
            raise RuntimeError(f"{name} cannot start")
        log.append(f"start {name}")

    async def stop() -> None:
        log.append(f"stop {name}")
        if fail_stop:
            raise RuntimeError(f"{name} cannot stop")

    return Part(name, start, stop)


async def test_parts_stop_in_the_reverse_order() -> None:
    log: list[str] = []
    async with running([_recording(log, n) for n in "abc"]):
        log.append("serving")
    assert log == ["start a", "start b", "start c", "serving", "stop c", "stop b", "stop a"]


async def test_a_part_that_fails_to_start_stops_those_started_before_it() -> None:
    log: list[str] = []
    with pytest.raises(RuntimeError, match="b cannot start"):
        async with running([_recording(log, "a"), _recording(log, "b", fail_start=True), _recording(log, "c")]):
            log.append("serving")
    assert log == ["start a", "stop a"]


async def test_a_part_that_fails_to_stop_is_logged_and_the_others_still_stop(caplog: pytest.LogCaptureFixture) -> None:
    log: list[str] = []
    with caplog.at_level(logging.ERROR, logger="backend.server.lifespan"):
        async with running([_recording(log, "a"), _recording(log, "b", fail_stop=True), _recording(log, "c")]):
            pass
    assert log == ["start a", "start b", "start c", "stop c", "stop b", "stop a"]
    assert [r.getMessage() for r in caplog.records] == ["stopping the b failed"]


def test_the_app_stops_its_parts_in_the_order_that_loses_nothing(tmp_path: Path) -> None:
    """The scheduler first, then the ingest drains what it took, the writers flush (which
    acknowledges those messages), and the broker connection and the database close last."""
    rt = build_runtime(Settings(data_dir=tmp_path), "postgresql://localhost/none")  # builds, connects nothing
    stop_order = [p.name for p in reversed(parts(rt))]
    essential = [
        "scheduler",
        "ingest",
        "device services",
        "history writer",  # it stores the latest values too, in the same transactions
        "broker connection",
        "change notices",
        "database",
    ]
    after_scheduler = stop_order[stop_order.index("scheduler") :]
    assert [name for name in after_scheduler if name in essential] == essential
    # the engine stops after the ingest (the last values still reach its queue) and before the database
    assert after_scheduler.index("ingest") < after_scheduler.index("automations") < after_scheduler.index("database")
