"""KeyedLocks: one holder a key at a time, first come first served, cancellation-safe, and
nothing left behind once a key is let go."""

from __future__ import annotations

import asyncio

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


async def test_a_cancelled_waiter_neither_holds_nor_blocks_the_key() -> None:
    locks = KeyedLocks()
    entered: list[str] = []

    async def holder(name: str) -> None:
        async with locks.hold("k"):
            entered.append(name)

    async with locks.hold("k"):
        gone = asyncio.create_task(holder("gone"))
        later = asyncio.create_task(holder("later"))
        await asyncio.sleep(0)
        gone.cancel()
        await asyncio.sleep(0)
    await asyncio.wait_for(later, 1)
    assert gone.cancelled() and entered == ["later"]
    assert locks._held == {}


async def test_a_waiter_cancelled_as_it_is_handed_the_key_passes_it_on() -> None:
    locks = KeyedLocks()
    entered: list[str] = []

    async def holder(name: str) -> None:
        async with locks.hold("k"):
            entered.append(name)

    async with locks.hold("k"):
        handed = asyncio.create_task(holder("handed"))
        after = asyncio.create_task(holder("after"))
        await asyncio.sleep(0)
    handed.cancel()  # the key was just handed to it; it has not run yet
    await asyncio.wait_for(after, 1)
    assert handed.cancelled() and entered == ["after"]
    assert locks._held == {}
