"""Group commit: with no batch being written, rows go at once (a device's QoS 1 PUBACK waits
for this commit, README "What each QoS promises"); while one is written, the next fills up and
goes when it lands. ``flush_seconds`` is an hour here, so no timer can be what flushes."""

from __future__ import annotations

import asyncio

from test_writer_flights import AT, ScriptedWriter, until

from backend.history.writer import HistoryRow


async def test_rows_go_at_once_when_idle_and_the_next_when_the_batch_in_flight_lands() -> None:
    writer = ScriptedWriter(batch_rows=1000, flush_seconds=3600, in_flight=2)
    writer.start()
    try:
        await writer.add_many([HistoryRow(1, 0, AT, 1.0, None)])
        await until(lambda: writer.writing == 1)  # the one row is being written, not waiting an hour
        await writer.add_many([HistoryRow(1, 0, AT, 2.0, None), HistoryRow(1, 0, AT, 3.0, None)])
        await asyncio.sleep(0.05)
        assert writer.writing == 1  # the next batch fills while the first is written
        writer.gates.setdefault(1.0, asyncio.Event()).set()
        await until(lambda: writer.committed == [1.0] and writer.writing == 1)  # 2.0 and 3.0 go now
        writer.gates.setdefault(2.0, asyncio.Event()).set()
        await until(lambda: writer.settled == 3)
        await writer.add_many([HistoryRow(1, 0, AT, 4.0, None)])  # idle again: at once
        writer.gates.setdefault(4.0, asyncio.Event()).set()
        await until(lambda: writer.settled == 4)
    finally:
        for gate in writer.gates.values():
            gate.set()
        await writer.stop(timeout=5)
