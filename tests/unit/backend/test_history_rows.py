"""Which history row a value becomes under Blynk's "Save Raw Data" (``history_row``, pure)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from backend.devices.data import history_row
from backend.history.writer import HistoryRow
from backend.templates.values import DatastreamSpec, DatastreamType, parse_value

AT = datetime(2024, 5, 1, 12, 0, 30, tzinfo=timezone.utc)


def row(type_: DatastreamType, save_raw: bool, raw: str) -> HistoryRow | None:
    spec = DatastreamSpec(4, "X", type_, save_raw=save_raw)
    return history_row(9, spec, AT, parse_value(spec, raw))


@pytest.mark.parametrize(("type_", "raw", "number"), [
    (DatastreamType.DOUBLE, "21.5", 21.5), (DatastreamType.INTEGER, "3", 3.0), (DatastreamType.ENUM, "2", 2.0)])
def test_numbers_always_reach_the_rollups_and_are_raw_only_with_save_raw(type_: DatastreamType, raw: str,
                                                                         number: float) -> None:
    assert row(type_, True, raw) == HistoryRow(9, 4, AT, number, None, raw=True)
    assert row(type_, False, raw) == HistoryRow(9, 4, AT, number, None, raw=False)


def test_strings_and_locations_are_history_only_with_save_raw() -> None:
    assert row(DatastreamType.STRING, True, "door open") == HistoryRow(9, 4, AT, None, "door open", raw=True)
    assert row(DatastreamType.LOCATION, True, "24.1\x0056.9") == HistoryRow(9, 4, AT, None, "24.1\x0056.9", raw=True)
    assert row(DatastreamType.STRING, False, "door open") is None  # cannot be averaged into a rollup
    assert row(DatastreamType.LOCATION, False, "24.1\x0056.9") is None
