"""An asyncio queue and event that hold no memory while empty, for the objects of a connection.

amqtt gives every connection four ``asyncio.Queue`` (two in its ``Session``, two in its broker
handler) and several ``asyncio.Event``; each queue allocates three deques and an event, each
event a deque, whether anything ever passes through or not: about half of what an idle
connection cost the broker (tracemalloc during a storm of 3,000 connects, README
"Performance"). :class:`Mailbox` and :class:`LazyEvent` are drop-in subclasses with the same
methods (so amqtt's code and types accept them) that allocate only once used, and a mailbox can
wake the connection's single message loop (``LifecycleBroker._client_message_loop``) instead of
a task waiting on each queue.

:class:`LazyDict` does the same for the dictionaries of a connection that most connections
never write to (amqtt's QoS 2 bookkeeping and plugin attributes, shared-subscription tags):
an empty dict is 64 bytes, and there were nine a connection.

A mailbox has one consumer (the connection's message loop); it is unbounded, as amqtt's queues
are, and has no ``join``/``task_done`` (nothing here uses them).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, Literal, TypeVar

__all__ = ["LazyDict", "LazyEvent", "Mailbox"]

T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")


class LazyDict(Generic[K, V]):
    """A dict attribute made when first used, kept in the ``__slots__`` entry ``<name>_``.

    Reading the attribute makes the dict (callers then write to what they read, as amqtt's code
    does), so only a connection that never touches it is spared. Not for attributes used on the
    per-message path: the descriptor call costs more than an attribute read.
    """

    __slots__ = ("_slot",)

    def __init__(self) -> None:
        self._slot: Any = None

    def __set_name__(self, owner: type, name: str) -> None:
        self._slot = owner.__dict__[f"{name}_"]  # the member descriptor of its slot

    def __get__(self, obj: object, owner: type | None = None) -> dict[K, V]:
        if obj is None:
            return self  # type: ignore[return-value]  # the class attribute itself
        value: dict[K, V] | None = self._slot.__get__(obj, owner)
        if value is None:
            value = {}
            self._slot.__set__(obj, value)
        return value

    def __set__(self, obj: object, value: dict[K, V]) -> None:
        self._slot.__set__(obj, value)


class LazyEvent(asyncio.Event):
    """``asyncio.Event`` whose list of waiters is made by the first :meth:`wait`."""

    _waiters: Any = ()  # iterated by Event.set; replaced by a deque in wait()

    def __init__(self) -> None:  # no super().__init__(): that allocates the deque up front
        self._value = False

    async def wait(self) -> Literal[True]:
        """As ``asyncio.Event.wait``."""
        if self._value:
            return True
        if not isinstance(self._waiters, deque):
            self._waiters = deque()
        try:
            return await super().wait()
        finally:
            if not self._waiters:
                self._waiters = ()  # nobody waits any more: drop the deque


class Mailbox(asyncio.Queue[T], Generic[T]):
    """An unbounded ``asyncio.Queue`` for one consumer that holds nothing while empty.

    :attr:`wake` is called after each put (the connection's message loop, which then takes
    what is there without a task waiting on each mailbox).
    """

    def __init__(self) -> None:  # no super().__init__(): three deques and an Event up front
        self._items: deque[T] | None = None
        self._getter: asyncio.Future[None] | None = None
        self.wake: Callable[[], None] | None = None

    def __repr__(self) -> str:
        return f"<Mailbox {self.qsize()} items>"

    @property
    def maxsize(self) -> int:
        """0: unbounded."""
        return 0

    def qsize(self) -> int:
        """Items waiting."""
        return len(self._items) if self._items else 0

    def empty(self) -> bool:
        """Whether no item waits."""
        return not self._items

    def full(self) -> bool:
        """Never: unbounded."""
        return False

    def put_nowait(self, item: T) -> None:
        """Add ``item``; wake the consumer."""
        if self._items is None:
            self._items = deque()
        self._items.append(item)
        getter = self._getter
        if getter is not None and not getter.done():
            getter.set_result(None)
        if self.wake is not None:
            self.wake()

    async def put(self, item: T) -> None:
        """As :meth:`put_nowait` (never waits)."""
        self.put_nowait(item)

    def get_nowait(self) -> T:
        """The oldest item; ``asyncio.QueueEmpty`` if there is none."""
        items = self._items
        if not items:
            raise asyncio.QueueEmpty
        item = items.popleft()
        if not items:
            self._items = None  # an idle connection keeps no deque
        return item

    async def get(self) -> T:
        """The oldest item, waiting for one if need be."""
        while not self._items:
            self._getter = asyncio.get_running_loop().create_future()
            try:
                await self._getter
            finally:
                self._getter = None
        return self.get_nowait()

    def task_done(self) -> None:
        """Not supported (nothing joins a mailbox)."""
        raise NotImplementedError("Mailbox does not count tasks")

    async def join(self) -> None:
        """Not supported (nothing joins a mailbox)."""
        raise NotImplementedError("Mailbox does not count tasks")
