"""The live feed across app replicas (``backend.devices.live_relay``): two replicas' feeds and
relays on one real PostgreSQL. A page on one replica gets the values the other stores, for the
devices it watches only; a replica that starts late learns what the others watch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from backend.devices.live import LiveFeed
from backend.devices.live_relay import EXPIRE_SECONDS, LiveRelay
from tests.support.net import eventually

EVENT = {"type": "value", "pin": 0, "value": "21.5", "ts": 1, "origin": "device"}


@pytest.fixture
async def relays(fresh_db: str) -> AsyncIterator[Callable[[str], LiveRelay]]:
    made: list[LiveRelay] = []

    def make(name: str) -> LiveRelay:
        relay = LiveRelay(fresh_db, LiveFeed(), name)
        made.append(relay)
        return relay

    yield make
    for relay in made:
        await relay.stop()


async def test_a_page_on_one_replica_gets_the_values_another_stores(relays: Callable[[str], LiveRelay]) -> None:
    b = relays("b")
    b.start()
    await eventually(b.ready.is_set, message="b listening")
    page = b.feed.subscribe([7])
    a = relays("a")  # starts after the page: learns b's list from its answer to hello
    a.start()
    await eventually(lambda: 7 in a.feed.watched, message="a to know b watches device 7")
    assert 8 not in a.feed.watched  # nobody watches 8: the value path does not even publish it
    a.feed.publish(7, EVENT)
    assert await asyncio.wait_for(page.next(), 10) == {**EVENT, "device": 7}
    assert a.relayed == 1
    assert a.feed.locally_watched() == frozenset()  # a stand-in is not a page of a's own

    page.close()
    await eventually(lambda: 7 not in a.feed.watched, message="a to forget device 7")


async def test_relayed_values_are_not_relayed_again(relays: Callable[[str], LiveRelay]) -> None:
    a, b, c = relays("a"), relays("b"), relays("c")
    for relay in (a, b, c):
        relay.start()
    for relay in (a, b, c):
        await eventually(relay.ready.is_set, message=f"{relay.name} listening")
    page_b, page_c = b.feed.subscribe([5]), c.feed.subscribe([5])
    await eventually(lambda: a.remote.get(5, {}).keys() == {"b", "c"}, message="a to know b and c watch 5")
    await eventually(lambda: set(b.remote.get(5, {})) == {"c"}, message="b to know c watches 5")
    a.feed.publish(5, EVENT)
    assert await asyncio.wait_for(page_b.next(), 10) == {**EVENT, "device": 5}
    assert await asyncio.wait_for(page_c.next(), 10) == {**EVENT, "device": 5}
    await eventually(lambda: a.relayed == 1, message="a relayed once")
    assert (b.relayed, c.relayed) == (0, 0)  # what b and c received went to their pages only
    assert page_b.pending == 0 and page_c.pending == 0


def test_the_list_of_a_silent_replica_expires() -> None:
    now = [0.0]
    relay = LiveRelay("postgresql://unused", LiveFeed(), "a", clock=lambda: now[0])
    relay.receive('{"r":"b","watch":[3],"full":true}')
    assert 3 in relay.feed.watched
    now[0] = EXPIRE_SECONDS + 1
    relay.expire()
    assert 3 not in relay.feed.watched and relay.remote == {}
    relay.receive("not json")  # ignored, logged
    relay.receive('{"r":"a","watch":[4]}')  # its own notice: ignored
    assert 4 not in relay.feed.watched
