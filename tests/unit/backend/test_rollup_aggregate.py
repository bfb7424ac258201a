"""The rollup aggregate, written for speed, against a plain reading of its rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from backend.history.rollup import Row, aggregate, bucket_of

T0 = datetime(2026, 11, 26, 10, 0, 0, tzinfo=UTC)


def plain(rows: list[Row], width: int) -> dict[tuple[int, int, int], tuple[float, float, float, int, float]]:
    """min, max, sum, count and last (a later row winning a tie on time) per bucket."""
    out: dict[tuple[int, int, int], list[tuple[datetime, float]]] = {}
    for device_id, pin, ts, value, _text, _raw in rows:
        if value is not None:
            key = (device_id, pin, int(bucket_of(ts, width).timestamp()))
            out.setdefault(key, []).append((ts, value))
    result = {}
    for key, points in out.items():
        values = [v for _, v in points]
        last_ts = max(ts for ts, _ in points)
        last = [v for ts, v in points if ts == last_ts][-1]
        result[key] = (min(values), max(values), sum(values), len(values), last)
    return result


rows = st.lists(
    st.tuples(
        st.integers(1, 3),
        st.integers(0, 1),
        st.one_of(
            st.integers(-200, 200).map(lambda s: T0 + timedelta(seconds=s)),  # on bucket edges too
            st.integers(-200_000, 200_000).map(lambda ms: T0 + timedelta(milliseconds=ms)),
        ),
        st.one_of(st.none(), st.integers(-50, 50).map(float)),
    ),
    max_size=60,
)


@given(rows, st.sampled_from([60, 3600]))
def test_aggregate_follows_the_rule_whatever_the_order(
    points: list[tuple[int, int, datetime, float | None]], width: int
) -> None:
    batch: list[Row] = [(d, p, ts, v, None if v is not None else "text", True) for d, p, ts, v in points]
    got = {key: (a.min, a.max, a.sum, a.count, a.last) for key, a in aggregate(batch, width).items()}
    assert got == plain(batch, width)


def test_points_before_1970_keep_their_buckets() -> None:
    early = datetime(1969, 12, 31, 23, 59, 30, 500000, tzinfo=UTC)  # -29.5 s
    batch: list[Row] = [
        (1, 0, early, 1.0, None, True),
        (1, 0, early + timedelta(seconds=1), 2.0, None, True),
        (1, 0, T0, 3.0, None, True),
    ]
    got = {key: (a.min, a.max, a.sum, a.count, a.last) for key, a in aggregate(batch, 60).items()}
    assert got == plain(batch, 60)
