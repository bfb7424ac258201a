"""The in-process live feed: fan-out by device, bounded queues that drop the oldest, unsubscribe,
and change notices that make a subscription check its access again before anything else."""

from __future__ import annotations

import pytest

from backend.db.changes import Change
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
        assert two.pending == 0
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


async def test_a_change_notice_marks_stale_only_the_subscriptions_it_concerns() -> None:
    feed = LiveFeed()
    with (
        feed.subscribe([1], [("user", 5), ("role", 2), ("org", 3)]) as mine,
        feed.subscribe([2], [("user", 6)]) as other,
    ):
        feed.publish(1, {"type": "value", "value": "1"})
        for change in (Change("user", 5), Change("role", 2), Change("org", 3), Change("device", 1)):
            await feed.apply(change)
            assert mine.stale and not other.stale
            assert await mine.next() is None  # before the queued value: access is checked first
        assert await mine.next() == {"type": "value", "value": "1", "device": 1}
        for change in (
            Change("user", 7),
            Change("role", 5),
            Change("org", 5),
            Change("device", 5),
            Change("template", 1),
        ):
            await feed.apply(change)
        assert not mine.stale and not other.stale


async def test_narrowing_forgets_the_dropped_devices_and_what_was_queued_for_them() -> None:
    feed = LiveFeed()
    with feed.subscribe([1, 2], [("user", 5)]) as sub:
        feed.publish(2, {"type": "value", "value": "b"})
        feed.publish(1, {"type": "value", "value": "a"})
        sub.narrow([1, 3])  # 3 was never watched: narrowing never widens
        assert sub.device_ids == {1} and feed.subscribers(2) == 0 and 2 not in feed.watched
        feed.publish(2, {"type": "value", "value": "b again"})
        assert await sub.next() == {"type": "value", "value": "a", "device": 1}
        assert sub.pending == 0
        sub.rekey([("user", 5), ("role", 9)])
        await feed.apply(Change("role", 9))
        assert await sub.next() is None
    await feed.apply(Change("user", 5))  # closed: no longer indexed anywhere
    assert not sub.stale and feed.subscribers(1) == 0
