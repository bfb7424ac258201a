"""Which history row a value becomes under Blynk's "Save Raw Data" (``DataService.record``,
without a database: the rows wait in the writer's queue)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from backend.devices.data import DataService
from backend.devices.latest import LatestValues
from backend.history.writer import HistoryRow, HistoryWriter
from backend.templates.values import DatastreamSpec, DatastreamType

AT = datetime(2024, 5, 1, 12, 0, 30, tzinfo=UTC)


class Nowhere:
    def publish(self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False) -> None:
        raise AssertionError("storing a value publishes nothing")


async def rows(type_: DatastreamType, save_raw: bool, raw: str) -> list[tuple[object, ...]]:
    history = HistoryWriter(None)  # type: ignore[arg-type]  # not started: rows stay queued
    data = DataService(LatestValues(None), history, Nowhere())  # type: ignore[arg-type]
    spec = DatastreamSpec(4, "X", type_, save_raw=save_raw)
    assert await data.record([((9, spec), raw, AT)]) == []
    return list(history._queue.rows)


@pytest.mark.parametrize(
    ("type_", "raw", "number"),
    [(DatastreamType.DOUBLE, "21.5", 21.5), (DatastreamType.INTEGER, "3", 3.0), (DatastreamType.ENUM, "2", 2.0)],
)
async def test_numbers_always_reach_the_rollups_and_are_raw_only_with_save_raw(
    type_: DatastreamType, raw: str, number: float
) -> None:
    assert await rows(type_, True, raw) == [HistoryRow(9, 4, AT, number, None, raw=True)]
    assert await rows(type_, False, raw) == [HistoryRow(9, 4, AT, number, None, raw=False)]


async def test_strings_and_locations_are_history_only_with_save_raw() -> None:
    assert await rows(DatastreamType.STRING, True, "door open") == [HistoryRow(9, 4, AT, None, "door open", raw=True)]
    assert await rows(DatastreamType.LOCATION, True, "24.1\x0056.9") == [
        HistoryRow(9, 4, AT, None, "24.1\x0056.9", raw=True)
    ]
    # not history (cannot be averaged into a rollup): a marker row, which writes nothing but
    # carries the latest value into the commit its acknowledgement waits for
    assert await rows(DatastreamType.STRING, False, "door open") == [HistoryRow(9, 4, AT, None, None, raw=False)]
    assert await rows(DatastreamType.LOCATION, False, "24.1\x0056.9") == [HistoryRow(9, 4, AT, None, None, raw=False)]


async def test_values_stored_now_get_growing_times_within_and_across_batches_even_if_the_clock_steps_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import backend.devices.data as data_module

    clock = [AT, AT, AT.replace(second=0)]  # the third batch reads a clock that stepped back 30 s

    class Clock(datetime):
        @classmethod
        def now(cls, tz: object = None) -> datetime:  # type: ignore[override]
            return clock.pop(0)

    monkeypatch.setattr(data_module, "datetime", Clock)
    history = HistoryWriter(None)  # type: ignore[arg-type]
    data = DataService(LatestValues(None), history, Nowhere())  # type: ignore[arg-type]
    spec = DatastreamSpec(4, "X", DatastreamType.INTEGER, save_raw=True)
    other = DatastreamSpec(5, "Y", DatastreamType.INTEGER, save_raw=True)
    for _ in range(3):
        await data.record(
            [((9, spec), "1", None), ((9, other), "2", None), ((9, spec), "bad", None), ((9, spec), "3", None)]
        )
    times = [row[2] for row in history._queue.rows]
    assert len(times) == 9 and times == sorted(set(times))  # strictly growing, one clock read a batch
    assert times[0] == AT and times[2] - times[0] == timedelta(microseconds=3)  # value i: the batch's time + i us
    assert times[3] > times[2]  # the second batch read the same clock time
    assert clock == []
    latest = data.latest._values[9]
    assert latest[4] == ("3", times[8]) and latest[5] == ("2", times[7])
