"""The broadcast loop: every queued message routed in one turn of the event loop.

amqtt 0.12.1's ``Broker._broadcast_loop`` routes one message per task: for each message it
creates a task for ``_run_broadcast`` and an ``asyncio.wait`` over it and the shutdown future,
so one message costs several turns of the event loop. Under load a turn is long (every client
socket with data is read in it), so routing fell behind the readers by orders of magnitude:
200 devices publishing QoS 1 had 3,000 messages a second acknowledged while one subscriber
received about one a second, the rest waiting in the unbounded broadcast queue
(``tests/bench/bench_broker_vs_mosquitto.py``, README "Performance").

:class:`BroadcastLoop` replaces the loop: it awaits ``_run_broadcast`` directly, message after
message, until the queue is empty, and yields to the event loop every :data:`BATCH` messages
so that readers and writers keep their turn. What routing does per message is unchanged
(``RoutingBroker._run_broadcast``). Shutdown stays amqtt's: its ``_shutdown_broadcast_loop``
resolves the shutdown future, which cancels this loop between two messages' awaits.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from amqtt.broker import Broker

__all__ = ["BATCH", "BroadcastLoop"]

logger = logging.getLogger(__name__)

BATCH = 256
"""Messages routed before the loop gives other tasks a turn."""


class BroadcastLoop(Broker):
    """amqtt ``Broker`` whose broadcast loop routes queued messages without a task each."""

    async def _broadcast_loop(self) -> None:
        """Override: route messages inline until shutdown (see module docstring)."""
        task = asyncio.current_task()
        assert task is not None
        shutdown = self._broadcast_shutdown_waiter
        stopping = False

        def stop(_future: asyncio.Future[object]) -> None:
            nonlocal stopping
            stopping = True
            task.cancel()

        shutdown.add_done_callback(stop)
        unused: deque[asyncio.Task[object]] = deque()  # amqtt's task deque; routing keeps none
        queue = self._broadcast_queue
        try:
            while True:
                for _ in range(BATCH):
                    try:
                        await self._run_broadcast(unused)  # type: ignore[arg-type]
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        logger.exception("routing a message failed; it is skipped")
                    if queue.empty():
                        break
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            if not stopping:
                raise
        finally:
            shutdown.remove_done_callback(stop)
