"""Messages the server sends to the device, and a thread-safe queue to consume them."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType

from ._exceptions import DeviceTimeoutError, NotConnectedError

logger = logging.getLogger("device_sdk")

_DOWNLINK = "downlink/"
_DATASTREAM = "downlink/ds/"


@dataclass(frozen=True, slots=True)
class Downlink:
    """One message received from the server on ``downlink/...``.

    Attributes:
        topic: The full topic, e.g. ``downlink/ds/Power`` or ``downlink/reboot``.
        payload: The raw payload.
        qos: The QoS it was delivered with (``downlink/ping`` arrives with 1).
        received_at: When the message arrived (UTC).
    """

    topic: str
    payload: bytes
    qos: int = 0
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def text(self) -> str:
        """The payload decoded as UTF-8 (undecodable bytes replaced)."""
        return self.payload.decode("utf-8", errors="replace")

    @property
    def kind(self) -> str:
        """The topic below ``downlink/``, e.g. ``ds/Power``, ``ping``, ``redirect``."""
        return self.topic[len(_DOWNLINK) :] if self.topic.startswith(_DOWNLINK) else self.topic

    @property
    def datastream(self) -> str | None:
        """The datastream name for ``downlink/ds/<name>``, else ``None``."""
        if self.topic.startswith(_DATASTREAM) and len(self.topic) > len(_DATASTREAM):
            return self.topic[len(_DATASTREAM) :]
        return None

    @property
    def values(self) -> list[str]:
        """The payload split into its NUL-separated items (one item for a single value)."""
        return self.text.split("\0")


_CLOSED = object()


class DownlinkQueue:
    """A thread-safe FIFO of the downlinks received after it was opened.

    Get one from :meth:`Device.downlinks`. Every open queue receives every downlink, so open
    it *before* the action whose answer you wait for::

        with device.downlinks() as inbox:
            device.sync("Power")
            power = inbox.wait_for_write("Power", timeout=5)

    Iterating blocks for the next message and ends when the queue is closed, either by
    :meth:`close` (or leaving the ``with`` block) or because the device was disconnected.
    A full queue drops new messages (with a warning) rather than blocking the network thread.

    Args:
        maxsize: How many unread messages to keep.
        on_close: Called with the queue when it closes (the device forgets it then).
    """

    def __init__(self, maxsize: int, on_close: Callable[[DownlinkQueue], None]) -> None:
        self._queue: queue.Queue[object] = queue.Queue(maxsize=maxsize + 1)  # + room for _CLOSED
        self._maxsize = maxsize
        self._on_close = on_close
        self._closed = threading.Event()
        self._warned_full = False

    def put(self, downlink: Downlink) -> None:
        """Add a message; the device's network thread calls this.

        Args:
            downlink: The message; dropped if the queue is closed or full.
        """
        if self._closed.is_set():
            return
        if self._queue.qsize() >= self._maxsize:
            if not self._warned_full:
                logger.warning("downlink queue full (%d); dropping messages", self._maxsize)
                self._warned_full = True
            return
        try:
            self._queue.put_nowait(downlink)
        except queue.Full:  # only if close() raced us for the reserved slot
            pass

    def get(self, timeout: float | None = None) -> Downlink:
        """Remove and return the oldest message, waiting for one if needed.

        Args:
            timeout: Seconds to wait; ``None`` waits as long as the queue is open.

        Returns:
            The next downlink.

        Raises:
            DeviceTimeoutError: If nothing arrived within ``timeout``.
            NotConnectedError: If the queue is closed and empty.
        """
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            raise DeviceTimeoutError(f"no downlink within {timeout} s") from None
        if item is _CLOSED:
            self._queue.put_nowait(_CLOSED)  # keep later get() calls from blocking
            raise NotConnectedError("the downlink queue is closed")
        assert isinstance(item, Downlink)
        return item

    def wait_for_write(self, name: str, timeout: float | None = 10.0) -> str:
        """Wait for the next ``downlink/ds/<name>`` and return its value.

        Messages for other topics that arrive first are consumed and discarded.

        Args:
            name: The datastream name.
            timeout: Seconds to wait in total; ``None`` waits indefinitely.

        Returns:
            The value as text (multi-value items stay NUL-separated).

        Raises:
            DeviceTimeoutError: If no such write arrived in time.
            NotConnectedError: If the queue was closed first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                downlink = self.get(timeout=remaining)
            except DeviceTimeoutError:
                raise DeviceTimeoutError(f"no write to {name!r} within {timeout} s") from None
            if downlink.datastream == name:
                return downlink.text

    def close(self) -> None:
        """Stop receiving messages; iteration ends once the queued ones are consumed."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._on_close(self)
        self._queue.put(_CLOSED)  # never blocks: one slot is reserved for it

    @property
    def closed(self) -> bool:
        """Whether the queue no longer receives messages."""
        return self._closed.is_set()

    def __iter__(self) -> Iterator[Downlink]:
        while True:
            try:
                yield self.get()
            except NotConnectedError:
                return

    def __enter__(self) -> DownlinkQueue:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
