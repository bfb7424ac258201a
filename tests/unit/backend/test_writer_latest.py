"""Which batch writes which latest values: a batch ends where an ``add_many`` call's rows end
(unless one call alone has more rows than a batch), and writes the latest values of the calls
whose last rows it holds, so the commit a call's acknowledgement waits for is the one that
stores its latest values, and never an earlier one. ``write`` is replaced by a recorder (no
database); the storage tests run the statement against PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from backend.history.writer import HistoryRow, HistoryWriter, NewestValues, Row

AT = datetime(2026, 1, 1, tzinfo=UTC)


class RecordingWriter(HistoryWriter):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(None, **kwargs)  # type: ignore[arg-type]  # no pool: write() is replaced
        self.batches: list[tuple[list[float | None], dict[tuple[int, int], tuple[str | float, datetime]]]] = []

    async def write(self, batch: list[Row], latest: NewestValues | None = None) -> None:  # type: ignore[override]
        self.batches.append(([row[3] for row in batch], dict(latest or {})))


def call(first: int, rows: int, pin: int = 0) -> tuple[list[Row], NewestValues]:
    """``rows`` rows of device 1 (values ``first``...) and their newest value as the latest."""
    made: list[Row] = [
        HistoryRow(1, pin, AT + timedelta(seconds=first + i), float(first + i), None) for i in range(rows)
    ]
    return made, {(1, pin): (str(first + rows - 1), made[-1][2])}


async def test_batches_end_where_calls_end_and_carry_their_latest_values() -> None:
    writer = RecordingWriter(batch_rows=5, flush_seconds=0.01)
    for first, rows in ((0, 2), (2, 2), (4, 2), (6, 3)):
        await writer.add_many(*call(first, rows))
    writer.start()
    await writer.stop()
    assert writer.batches == [
        ([0.0, 1.0, 2.0, 3.0], {(1, 0): ("3", AT + timedelta(seconds=3))}),  # the third call would not fit
        ([4.0, 5.0, 6.0, 7.0, 8.0], {(1, 0): ("8", AT + timedelta(seconds=8))}),
    ]
    assert writer.settled == 9


async def test_a_call_larger_than_a_batch_writes_its_latest_values_with_its_last_rows() -> None:
    writer = RecordingWriter(batch_rows=4, flush_seconds=0.01)
    await writer.add_many(*call(0, 10))
    writer.start()
    await writer.stop()
    assert writer.batches == [
        ([0.0, 1.0, 2.0, 3.0], {}),
        ([4.0, 5.0, 6.0, 7.0], {}),
        ([8.0, 9.0], {(1, 0): ("9", AT + timedelta(seconds=9))}),
    ]


async def test_the_newer_value_of_a_datastream_wins_when_calls_are_merged_even_if_it_came_first() -> None:
    writer = RecordingWriter(batch_rows=10, flush_seconds=0.01)
    late = AT + timedelta(hours=1)
    await writer.add_many([HistoryRow(1, 0, late, 1.0, None)], {(1, 0): ("1", late)})
    await writer.add_many([HistoryRow(1, 0, AT, 2.0, None)], {(1, 0): ("2", AT)})  # an older timestamped point
    await writer.add_many(*call(5, 1, pin=3))
    writer.start()
    await writer.stop()
    assert writer.batches == [([1.0, 2.0, 5.0], {(1, 0): ("1", late), (1, 3): ("5", AT + timedelta(seconds=5))})]
