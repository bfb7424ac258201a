"""History queries: N buckets with min/max/avg from the right table, raw pages, streaming."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from backend.db.engine import Database
from backend.errors import ValidationError
from backend.history.partitions import ensure_partitions
from backend.history.queries import choose_source, raw_page, series, stream_raw
from backend.history.writer import HistoryRow, HistoryWriter


def test_source_choice() -> None:
    assert choose_source(timedelta(seconds=1), save_raw=True) == "history"
    assert choose_source(timedelta(seconds=1), save_raw=False) == "history_minute"
    assert choose_source(timedelta(minutes=5), save_raw=True) == "history_minute"
    assert choose_source(timedelta(hours=2), save_raw=True) == "history_hour"


async def test_buckets_keep_spikes_and_come_from_the_right_table(fresh_db: str) -> None:
    async with Database(fresh_db) as db:
        await ensure_partitions(db.pool, days_back=2, days_ahead=1)
        writer = HistoryWriter(db.pool)
        start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=24)
        rows = [HistoryRow(1, 0, start + timedelta(seconds=30 * i), math.sin(i / 50), None) for i in range(2880)]
        rows[1000] = HistoryRow(1, 0, rows[1000].ts, 1000.0, None)  # a one-sample spike
        await writer.write(rows)
        end = start + timedelta(hours=24)
        for points, source in ((10, "history_hour"), (200, "history_minute"), (2000, "history")):
            result = await series(db.pool, 1, 0, start, end, points)
            assert result.source == source
            assert len(result.buckets) <= points
            assert sum(b.count for b in result.buckets) == 2880
            assert max(b.max for b in result.buckets) == 1000.0  # the spike survives aggregation
        hourly = await series(db.pool, 1, 0, start, end, 24)
        assert len(hourly.buckets) == 24 and all(b.count == 120 for b in hourly.buckets)


async def test_raw_pages_never_drop_or_repeat_equal_timestamps(fresh_db: str) -> None:
    async with Database(fresh_db) as db:
        await ensure_partitions(db.pool)
        now = datetime.now(UTC).replace(microsecond=0)
        stamps = [now] * 5 + [now + timedelta(seconds=1)] * 4 + [now + timedelta(seconds=2)]
        await HistoryWriter(db.pool).write([HistoryRow(2, 1, ts, float(i), None) for i, ts in enumerate(stamps)])
        seen, cursor = [], None
        while True:
            page, cursor = await raw_page(db.pool, 2, 1, now, now + timedelta(minutes=1), limit=3, cursor=cursor)
            seen += [p.value for p in page]
            if cursor is None:
                break
        assert sorted(seen) == [float(i) for i in range(10)]
        streamed = [p.value async for p in stream_raw(db.pool, 2, 1, now, now + timedelta(minutes=1), chunk=2)]
        assert sorted(streamed) == sorted(seen)


@pytest.mark.parametrize(("start_delta", "points"), [(0, 10), (10, 0), (10, 10_001)])
async def test_bad_ranges_are_refused(fresh_db: str, start_delta: int, points: int) -> None:
    now = datetime.now(UTC)
    async with Database(fresh_db) as db:
        with pytest.raises(ValidationError):
            await series(db.pool, 1, 0, now, now + timedelta(seconds=start_delta), points)
