"""KeyedLocks: one holder a key at a time, first come first served, cancellation-safe, and
nothing left behind once a key is let go."""

from __future__ import annotations

import asyncio

import pytest

from broker._session import KeyedLocks


async def test_one_holder_a_key_in_arrival_order_and_other_keys_never_wait() -> None:
    locks, order = KeyedLocks(), []
    inside = 0

    async def holder(key: str, name: str) -> None:
        nonlocal inside
        async with locks.hold(key):
            inside += 1
            assert inside == 1, "two holders of one key at once"
            order.append(name)
            await asyncio.sleep(0.01)
            inside -= 1

    first = asyncio.create_task(holder("dev:1", "a"))
    await asyncio.sleep(0)  # a holds dev:1
    others = [asyncio.create_task(holder("dev:1", n)) for n in "bcd"]
    async with locks.hold("dev:2"):  # another key: at once, while dev:1 is held
        order.append("other")
    await asyncio.gather(first, *others)
    assert order == ["a", "other", "b", "c", "d"]
    assert locks._held == {}


@pytest.mark.parametrize("handed", [False, True], ids=["while-waiting", "as-it-is-handed-the-key"])
async def test_a_cancelled_waiter_neither_holds_nor_blocks_the_key(handed: bool) -> None:
    """Cancelled while it waits, it leaves the queue; cancelled just after the holder handed
    it the key (before it ran), it passes the key on. Either way the next waiter gets it."""
    locks = KeyedLocks()
    entered: list[str] = []

    async def holder(name: str) -> None:
        async with locks.hold("k"):
            entered.append(name)

    async with locks.hold("k"):
        cancelled = asyncio.create_task(holder("cancelled"))
        later = asyncio.create_task(holder("later"))
        await asyncio.sleep(0)
        if not handed:
            cancelled.cancel()
            await asyncio.sleep(0)
    if handed:
        cancelled.cancel()  # the key was just handed to it; it has not run yet
    await asyncio.wait_for(later, 1)
    assert cancelled.cancelled() and entered == ["later"]
    assert locks._held == {}
