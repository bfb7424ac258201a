"""The ServiceClient's inbox: paho's thread hands messages to asyncio in batches, in order,
bounded (the paho thread waits for room), and gives up on a message it cannot hand over."""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import paho.mqtt.client as paho
import pytest

from backend.transport.mqtt import Message, ServiceClient
from tests.support.service_acks import note_pubacks

WAIT = 10.0  # seconds: only a guard against hanging, never asserted


class PeakDeque(deque[Message]):
    """An inbox that remembers the most messages it ever held."""

    peak = 0

    def append(self, item: Message) -> None:
        super().append(item)
        self.peak = max(self.peak, len(self))


class NotifiedOnly(threading.Condition):
    """The inbox's condition, with the paho thread's periodic look-again turned off: it then
    goes on only when notified, so a missing notification hangs the test instead of passing
    a second later."""

    def wait(self, timeout: float | None = None) -> bool:
        return super().wait()


class CountingLock:
    """A lock that counts how often it was taken."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.taken = 0

    def __enter__(self) -> None:
        self._lock.acquire()
        self.taken += 1

    def __exit__(self, *_exc: object) -> None:
        self._lock.release()


def recording(queue_size: int = 100) -> tuple[ServiceClient, list[int]]:
    """A client that records the packet ids it acknowledges."""
    service = ServiceClient("127.0.0.1", 1, "svc", "pw", client_id="test", subscriptions=[], queue_size=queue_size)
    return service, note_pubacks(service)


def client(queue_size: int = 100) -> tuple[ServiceClient, list[int], PeakDeque]:
    """A recording client on the running loop, as start() leaves it."""
    service, sent = recording(queue_size)
    inbox = service._inbox = PeakDeque()
    service._room = NotifiedOnly()
    service._loop = asyncio.get_running_loop()
    return service, sent, inbox


def mqtt_message(mid: int) -> paho.MQTTMessage:
    message = paho.MQTTMessage(mid, b"d/%d/ds/T" % mid)
    message.qos = 1
    message.payload = b"%d" % mid
    return message


def feed(service: ServiceClient, mids: Iterable[int]) -> threading.Thread:
    """Deliver messages as paho's network thread does: one after another, from another thread."""
    messages = [mqtt_message(mid) for mid in mids]

    def run() -> None:
        for message in messages:
            service._on_message(service._client, None, message)

    thread = threading.Thread(target=run, name="paho-stand-in", daemon=True)  # a hung one must not hang pytest
    thread.start()
    return thread


async def joined(thread: threading.Thread) -> bool:
    """Whether the thread finished (waiting at most WAIT seconds, without blocking the loop)."""
    await asyncio.to_thread(thread.join, WAIT)
    return not thread.is_alive()


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(int(WAIT / 0.005)):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not reached")


async def waiting(service: ServiceClient) -> None:
    """Let a consumer task run until it waits for a message."""
    await until(lambda: service._waiter is not None)


def mids(batch: list[Message] | None) -> list[int]:
    assert batch  # never None nor an empty list while messages are expected
    return [int(message.payload) for message in batch]


async def test_messages_come_out_in_order_in_batches_up_to_the_limit() -> None:
    service, _, _ = client()
    assert await joined(feed(service, range(1, 26)))
    assert mids(await service.take(limit=10)) == list(range(1, 11))
    assert mids(await service.take(limit=10)) == list(range(11, 21))
    batch = await service.take(limit=10)
    assert mids(batch) == list(range(21, 26))  # what is there, without waiting for a full batch
    assert batch is not None and batch[0] == Message("d/21/ds/T", b"21", 1, False, receipt=21)


async def test_a_waiting_consumer_is_woken_by_the_paho_thread() -> None:
    service, _, _ = client()
    consumer = asyncio.create_task(service.take())
    await waiting(service)
    assert await joined(feed(service, [1]))
    assert mids(await asyncio.wait_for(consumer, WAIT)) == [1]
    assert service._waiter is None


async def test_the_paho_thread_calls_into_the_loop_only_to_wake_a_waiting_consumer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service, _, _ = client()
    loop = asyncio.get_running_loop()
    calls: list[object] = []
    real = loop.call_soon_threadsafe

    def counted(*args: Any, **kwargs: Any) -> asyncio.Handle:
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "call_soon_threadsafe", counted)
    feed(service, range(1, 51)).join()  # no consumer waits: 50 messages, no cross-thread call
    assert calls == []
    assert mids(await service.take()) == list(range(1, 51))
    consumer = asyncio.create_task(service.take())
    await waiting(service)
    feed(service, [51, 52]).join()  # one wake-up for the first; the second finds no one waiting
    assert len(calls) == 1
    assert mids(await asyncio.wait_for(consumer, WAIT)) == [51, 52]


async def test_the_paho_thread_waits_for_room_and_goes_on_when_the_consumer_takes() -> None:
    service, _, inbox = client(queue_size=3)
    thread = feed(service, range(1, 11))
    await until(lambda: len(inbox) == 3)
    await asyncio.to_thread(thread.join, 0.2)
    assert thread.is_alive() and len(inbox) == 3  # it waits with the 4th: the broker keeps the rest
    taken: list[int] = []
    while len(taken) < 10:
        batch = mids(await asyncio.wait_for(service.take(limit=2), WAIT))
        assert len(batch) <= 2
        taken += batch
    assert await joined(thread)
    assert taken == list(range(1, 11))
    assert inbox.peak == 3


async def test_take_returns_none_at_the_end_once_everything_before_it_was_taken() -> None:
    service, _, _ = client()
    assert await joined(feed(service, [1, 2, 3]))
    await service.end_of_messages()
    assert mids(await service.take(limit=2)) == [1, 2]
    last = await service.messages()
    assert last is not None and last.payload == b"3"
    assert await service.take() is None
    assert await service.messages() is None  # and stays at the end


async def test_the_end_wakes_a_waiting_consumer_and_later_messages_are_left_to_the_broker() -> None:
    service, sent, inbox = client()
    consumer = asyncio.create_task(service.take())
    await waiting(service)
    await service.end_of_messages()
    assert await asyncio.wait_for(consumer, WAIT) is None
    assert await joined(feed(service, [1]))  # e.g. it passed the pause check just before pause()
    assert not inbox and await service.take() is None
    service.done(1)
    assert sent == []  # never handed over: never acknowledged


async def test_a_timed_out_wait_loses_nothing_and_leaves_no_stale_waiter() -> None:
    service, _, _ = client()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(service.messages(), 0.01)
    assert service._waiter is None
    consumer = asyncio.create_task(service.messages())
    await waiting(service)
    assert await joined(feed(service, [1]))
    message = await asyncio.wait_for(consumer, WAIT)
    assert message is not None and message.payload == b"1"


async def test_a_consumer_cancelled_after_its_wake_up_leaves_the_message_for_the_next() -> None:
    service, _, _ = client()
    errors: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, context: errors.append(context))
    consumer = asyncio.create_task(service.messages())
    await waiting(service)
    feed(service, [1]).join()  # the wake-up is scheduled on the loop, not yet run
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    assert errors == []  # the late wake-up found the wait cancelled and let it be
    message = await asyncio.wait_for(service.messages(), WAIT)
    assert message is not None and message.payload == b"1"


async def test_one_consumer_waits_at_a_time() -> None:
    service, _, _ = client()
    consumer = asyncio.create_task(service.take())
    await waiting(service)
    with pytest.raises(RuntimeError):
        await service.take()
    assert await joined(feed(service, [1]))
    assert mids(await asyncio.wait_for(consumer, WAIT)) == [1]  # the first one still gets it


async def test_a_paused_or_loopless_client_takes_nothing() -> None:
    service, _, inbox = client()
    service.pause()
    assert await joined(feed(service, [1]))
    unstarted = ServiceClient("127.0.0.1", 1, "svc", "pw", client_id="test", subscriptions=[])
    unstarted._on_message(unstarted._client, None, mqtt_message(2))
    assert not inbox and service.unacknowledged == 0
    assert not unstarted._inbox and unstarted.unacknowledged == 0


async def stop(service: ServiceClient) -> None:
    await service.stop()


async def pause(service: ServiceClient) -> None:
    service.pause()


@pytest.mark.parametrize("give_up", [pause, stop])
async def test_giving_up_while_the_paho_thread_waits_for_room_forgets_the_message(
    give_up: Callable[[ServiceClient], Awaitable[None]],
) -> None:
    service, sent, inbox = client(queue_size=1)
    thread = feed(service, [1, 2])
    await until(lambda: service.unacknowledged == 2)  # 2 was taken from the broker...
    assert len(inbox) == 1 and thread.is_alive()  # ...and waits for room
    await give_up(service)
    assert await joined(thread)
    assert mids(await service.take()) == [1]
    assert not inbox  # 2 was not handed over
    service.done_all([1, 2])
    assert sent == [1]  # 2 is never acknowledged: the broker sends it again
    later = service._take(mqtt_message(3))
    service.done(later)
    assert sent == [1]  # nor anything after it (acknowledgements go in order)


def acknowledged(steps: list[list[int]], all_at_once: bool) -> tuple[list[list[int]], int]:
    """What each step acknowledges, receipt by receipt or as a batch; and the lock's takings."""
    service, sent = recording()
    for mid in range(11, 16):
        service._take(mqtt_message(mid))  # receipts 1..5
    lock = service._acks.lock = CountingLock()  # type: ignore[assignment]
    after: list[list[int]] = []
    for receipts in steps:
        if all_at_once:
            service.done_all(receipts)
        else:
            for receipt in receipts:
                service.done(receipt)
        after.append(list(sent))
    return after, lock.taken


def test_done_all_acknowledges_in_order_like_done_under_one_lock() -> None:
    steps = [[3, 1], [2], [], [5, 99, 4, 4]]  # out of order, unknown and repeated receipts
    batched, takings = acknowledged(steps, all_at_once=True)
    one_by_one, _ = acknowledged(steps, all_at_once=False)
    assert batched == one_by_one == [[11], [11, 12, 13], [11, 12, 13], [11, 12, 13, 14, 15]]
    assert takings == len(steps)
