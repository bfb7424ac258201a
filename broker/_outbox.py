"""The bounded queue of messages on their way to one connection.

amqtt sends each message to a client as its own task (``handler.mqtt_publish``); the task ends
when the packet is written (QoS 0) or acknowledged (QoS 1). Nothing bounds how many such tasks
pile up for a client that does not read its socket, and stock amqtt keeps them all in one
broker-wide deque. An :class:`Outbox` holds the tasks of one connection and refuses new ones
past its limit: QoS 0 messages are then dropped and counted; a QoS 1 message marks the outbox
as :attr:`Outbox.overflowed` and the broker disconnects the client.
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

    def __init__(self, label: str, limit: int) -> None:
        self.label = label
        self.limit = limit
        self.tasks: set[asyncio.Task[Any]] = set()
        self.dropped = 0
        """QoS 0 messages dropped because the outbox was full."""
        self.overflowed = False
        """Set when a QoS 1/2 message did not fit: the connection must end."""
        self._dropping = False

    def __len__(self) -> int:
        return len(self.tasks)

    def push(self, qos: int, delivery: Delivery) -> asyncio.Task[Any] | None:
        """Start ``delivery()`` as a task unless the outbox is full; the task, or ``None``."""
        if len(self.tasks) >= self.limit:
            if qos == QOS_0:
                self.dropped += 1
                if not self._dropping:
                    self._dropping = True
                    logger.warning("%s: %s messages waiting; dropping QoS 0 messages", self.label, self.limit)
            else:
                self.overflowed = True
            return None
        self._dropping = False
        task = asyncio.ensure_future(delivery())
        self.tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is None or isinstance(error, TimeoutError | ConnectionError):
            return  # amqtt already logged a PUBACK timeout; a broken socket ends the connection
        logger.warning("%s: delivery failed: %r", self.label, error)

    def cancel_all(self) -> None:
        """Cancel every delivery still running (the connection is ending)."""
        for task in list(self.tasks):
            task.cancel()
