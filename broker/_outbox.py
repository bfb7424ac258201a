"""The bounded queue of messages on their way to one connection.

amqtt sends each message to a client as its own task (``handler.mqtt_publish``); the task ends
when the packet is written (QoS 0) or acknowledged (QoS 1). Nothing bounds how many such tasks
pile up for a client that does not read its socket, and stock amqtt keeps them all in one
broker-wide deque. An :class:`Outbox` counts what is on its way to one connection and refuses
more past its limit: QoS 0 messages are then dropped and counted; a QoS 1 message marks the
outbox as :attr:`Outbox.overflowed` and the broker disconnects the client.

What is on its way: QoS 1 PUBLISHes written at once and not yet acknowledged
(:meth:`Outbox.sent`, packet ids: no task, future or packet object a message, see
``MountedHandler.send_now``), and the tasks of the rest (QoS 2 flows, pings).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from amqtt.mqtt.constants import QOS_0

__all__ = ["Outbox"]

logger = logging.getLogger(__name__)

Delivery = Callable[[], Coroutine[Any, Any, Any]]


class Outbox:
    """Delivery tasks of one connection, at most ``limit`` at a time."""

    __slots__ = ("_dropping", "_sent", "_tasks", "dropped", "label", "limit", "overflowed")

    def __init__(self, label: str, limit: int) -> None:
        self.label = label
        self.limit = limit
        self._tasks: set[asyncio.Task[Any]] | None = None  # made when first needed: an empty
        self._sent: set[int] | None = None  # set is 216 bytes, and most outboxes stay empty
        self.dropped = 0
        """QoS 0 messages dropped because the outbox was full."""
        self.overflowed = False
        """Set when a QoS 1/2 message did not fit: the connection must end."""
        self._dropping = False

    def __len__(self) -> int:
        return (len(self._tasks) if self._tasks else 0) + (len(self._sent) if self._sent else 0)

    def sent(self, packet_id: int) -> None:
        """A QoS 1 PUBLISH was written at once (``MountedHandler.send_now``): it is on its way
        until :meth:`acknowledged`."""
        if self._sent is None:
            self._sent = set()
        self._sent.add(packet_id)

    def acknowledged(self, packet_id: int) -> bool:
        """The PUBACK of ``packet_id`` came; True if it answered a PUBLISH of :meth:`sent`."""
        if not self._sent or packet_id not in self._sent:
            return False
        self._sent.discard(packet_id)
        return True

    def room(self, qos: int, writable: bool = True) -> bool:
        """Whether one more message of ``qos`` may go now. When not, a QoS 0 message is
        counted as dropped and a QoS 1/2 one marks the outbox :attr:`overflowed`. A QoS 0
        message also does not go while the connection's socket is above its high-water mark
        (``writable`` False): a client that does not read is not written to without bound."""
        if len(self) < self.limit and (writable or qos != QOS_0):
            self._dropping = False
            return True
        if qos == QOS_0:
            self.dropped += 1
            if not self._dropping:
                self._dropping = True
                logger.warning("%s: %s messages waiting; dropping QoS 0 messages", self.label, self.limit)
        else:
            self.overflowed = True
        return False

    def push(self, qos: int, delivery: Delivery) -> asyncio.Task[Any] | None:
        """Start ``delivery()`` as a task unless the outbox is full; the task, or ``None``."""
        if not self.room(qos):
            return None
        task = asyncio.ensure_future(delivery())
        if self._tasks is None:
            self._tasks = set()
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        if self._tasks is not None:
            self._tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is None or isinstance(error, TimeoutError | ConnectionError):
            return  # amqtt already logged a PUBACK timeout; a broken socket ends the connection
        logger.warning("%s: delivery failed: %r", self.label, error)

    def cancel_all(self) -> None:
        """Cancel every delivery still running (the connection is ending); what was sent and
        not acknowledged stays in the session's ``inflight_out`` to go again after a reconnect."""
        self._sent = None
        for task in list(self._tasks or ()):
            task.cancel()
