"""Deadlines: the parked readers' keep-alive deadlines, served by one timer (issue #16)."""

from __future__ import annotations

import asyncio
from typing import Any

from broker._deadlines import DEADLINE_STEP, Deadlines


class Reader:
    """Stands in for a parked FramedReader: notes when its deadline was met."""

    def __init__(
        self, deadlines: Deadlines[Reader], log: list[tuple[str, float]], name: str, again: float = 0.0
    ) -> None:
        self.deadlines, self.log, self.name, self.again = deadlines, log, name, again

    def expire(self) -> None:
        now = asyncio.get_running_loop().time()
        self.log.append((self.name, now))
        if self.again:  # packets came meanwhile: the reader takes a later deadline
            when, self.again = now + self.again, 0.0
            self.deadlines.add(self, when)


def reader(deadlines: Deadlines[Reader], log: list[tuple[str, float]], name: str, **kwargs: Any) -> Any:
    return Reader(deadlines, log, name, **kwargs)


async def test_deadlines_are_met_in_order_and_never_early() -> None:
    loop = asyncio.get_running_loop()
    deadlines, log = Deadlines(Reader.expire), list[tuple[str, float]]()
    start = loop.time()
    # more than a step apart: deadlines within one step are met together, in no set order
    wanted = {"late": start + 0.1 + 4 * DEADLINE_STEP, "early": start + 0.1, "middle": start + 0.1 + 2 * DEADLINE_STEP}
    for name, when in wanted.items():
        deadlines.add(reader(deadlines, log, name), when)
    assert len(deadlines) == 3
    async with asyncio.timeout(5):
        while len(log) < 3:
            await asyncio.sleep(0.05)
    assert [name for name, _ in log] == ["early", "middle", "late"]
    for name, met in log:
        assert wanted[name] <= met, f"{name} met before its deadline"
    assert len(deadlines) == 0


async def test_a_discarded_deadline_is_never_met() -> None:
    loop = asyncio.get_running_loop()
    deadlines, log = Deadlines(Reader.expire), list[tuple[str, float]]()
    kept, dropped = reader(deadlines, log, "kept"), reader(deadlines, log, "dropped")
    when = loop.time() + 0.1
    deadlines.add(kept, when)
    slot = deadlines.add(dropped, when)
    deadlines.discard(dropped, slot)
    await asyncio.sleep(0.1 + 2 * DEADLINE_STEP)
    assert [name for name, _ in log] == ["kept"]


async def test_an_earlier_deadline_added_later_moves_the_timer_forward() -> None:
    """One timer serves all: a reader with a sooner deadline must not wait for a later one's."""
    loop = asyncio.get_running_loop()
    deadlines, log = Deadlines(Reader.expire), list[tuple[str, float]]()
    start = loop.time()
    deadlines.add(reader(deadlines, log, "far"), start + 30)
    deadlines.add(reader(deadlines, log, "near"), start + 0.1)
    async with asyncio.timeout(5):
        while not log:
            await asyncio.sleep(0.02)
    assert log[0][0] == "near"


async def test_a_deadline_taken_again_while_others_wait_keeps_the_earliest_timer() -> None:
    """A reader that got packets meanwhile takes a new, later deadline while the timer fires;
    the one timer must then be set for the deadline between the two, not the later one."""
    loop = asyncio.get_running_loop()
    deadlines, log = Deadlines(Reader.expire), list[tuple[str, float]]()
    now = loop.time()
    deadlines.add(reader(deadlines, log, "busy", again=100.0), now - 1.0)  # due already
    between = deadlines.add(reader(deadlines, log, "between"), now + 10.0)
    deadlines._fire()  # what the timer does: "busy" is met and takes a deadline 100 s on
    try:
        assert [name for name, _ in log] == ["busy"]
        assert len(deadlines) == 2
        assert deadlines._timer is not None
        assert deadlines._timer.when() == between * DEADLINE_STEP
    finally:
        deadlines.cancel()
