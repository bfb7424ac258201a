"""The in-process live feed: fan-out by device, bounded queues that drop the oldest, unsubscribe."""

from __future__ import annotations

import pytest

from backend.devices import live
from backend.devices.live import LiveFeed


async def test_a_change_reaches_only_the_subscribers_of_its_device() -> None:
    feed = LiveFeed()
    with feed.subscribe([1, 2]) as both, feed.subscribe([2]) as two:
        feed.publish(1, {"type": "value", "pin": 0, "value": "1"})
        feed.publish(2, {"type": "presence", "online": True})
        assert await both.next() == {"type": "value", "pin": 0, "value": "1", "device": 1}
        assert (await both.next())["device"] == 2
        assert await two.next() == {"type": "presence", "online": True, "device": 2}
        assert two.queue.empty()
    assert feed.subscribers(1) == 0 and feed.subscribers(2) == 0


async def test_a_slow_subscriber_loses_the_oldest_changes_and_is_told() -> None:
    feed = LiveFeed()
    with feed.subscribe([7]) as sub:
        for i in range(live.QUEUE_LIMIT + 5):
            feed.publish(7, {"type": "value", "value": str(i)})
        first = await sub.next()
        assert first["value"] == "5" and first["gap"] is True
        assert "gap" not in await sub.next()


def test_too_many_devices_in_one_subscription_is_refused() -> None:
    with pytest.raises(ValueError, match="at most"):
        LiveFeed().subscribe(range(live.MAX_DEVICES_PER_SUBSCRIPTION + 1))
