"""Routing of downlinks and connection events to user handlers and queues."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from ._downlinks import Downlink, DownlinkQueue
from ._exceptions import DeviceError, PublishRefusedError

logger = logging.getLogger("device_sdk")

WriteHandler = Callable[[str], object]
AnyWriteHandler = Callable[[str, str], object]
SimpleHandler = Callable[[], object]
TextHandler = Callable[[str], object]
DisconnectHandler = Callable[[DeviceError | None], object]
DownlinkHandler = Callable[[Downlink], object]
RefusedHandler = Callable[[PublishRefusedError], object]


def _call(what: str, handler: Callable[..., object], *args: object) -> None:
    """Run a user handler; an exception is logged and never reaches the network loop."""
    try:
        handler(*args)
    except Exception:
        logger.exception("%s handler %r raised", what, handler)


class Dispatcher:
    """Holds the handlers and open queues; its callbacks run on the network thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.writes: dict[str, list[WriteHandler]] = {}  # exact datastream name -> handlers
        self.any_writes: list[AnyWriteHandler] = []
        self.reboots: list[SimpleHandler] = []
        self.reconfigures: list[SimpleHandler] = []
        self.diags: list[TextHandler] = []
        self.connects: list[SimpleHandler] = []
        self.disconnects: list[DisconnectHandler] = []
        self.downlinks: list[DownlinkHandler] = []
        self.refusals: list[RefusedHandler] = []
        self._queues: list[DownlinkQueue] = []
        self.last_ping: datetime | None = None

    def add(self, handlers: list[Callable[..., object]], handler: Callable[..., object]) -> None:
        """Register ``handler`` in one of the lists above."""
        if not callable(handler):
            raise TypeError(f"handler must be callable, not {type(handler).__name__}")
        with self._lock:
            handlers.append(handler)

    def add_write(self, name: str, handler: WriteHandler) -> None:
        """Register a handler for ``downlink/ds/<name>``."""
        if not callable(handler):
            raise TypeError(f"handler must be callable, not {type(handler).__name__}")
        with self._lock:
            self.writes.setdefault(name, []).append(handler)

    def open_queue(self, maxsize: int) -> DownlinkQueue:
        """A new queue that receives every later downlink."""
        downlink_queue = DownlinkQueue(maxsize, self._forget_queue)
        with self._lock:
            self._queues.append(downlink_queue)
        return downlink_queue

    def close_queues(self) -> None:
        """Close every open queue (the device was disconnected)."""
        with self._lock:
            queues = list(self._queues)
        for downlink_queue in queues:
            downlink_queue.close()

    def _forget_queue(self, downlink_queue: DownlinkQueue) -> None:
        with self._lock:
            if downlink_queue in self._queues:
                self._queues.remove(downlink_queue)

    # -- link.Session ---------------------------------------------------------------------------

    def connected(self) -> None:
        """Run ``on_connect`` handlers."""
        for handler in self._snapshot(self.connects):
            _call("on_connect", handler)

    def disconnected(self, error: DeviceError | None) -> None:
        """Run ``on_disconnect`` handlers."""
        if error is not None:
            logger.warning("%s", error)
        for handler in self._snapshot(self.disconnects):
            _call("on_disconnect", handler, error)

    def refused(self, error: PublishRefusedError) -> None:
        """Run ``on_refused`` handlers (MQTT 5: the server refused a value)."""
        for handler in self._snapshot(self.refusals):
            _call("on_refused", handler, error)

    def message(self, topic: str, payload: bytes, qos: int = 0) -> None:
        """Route one incoming message."""
        downlink = Downlink(topic, payload, qos)
        name, kind, text = downlink.datastream, downlink.kind, downlink.text
        if name is not None:
            with self._lock:
                handlers = list(self.writes.get(name, ()))
                any_handlers = list(self.any_writes)
            for handler in handlers:
                _call(f"on_write({name!r})", handler, text)
            for any_handler in any_handlers:
                _call("on_any_write", any_handler, name, text)
        elif kind == "ping":
            self.last_ping = downlink.received_at  # paho has already sent the PUBACK
        elif kind in ("reboot", "reconfigure"):
            handlers_ = self._snapshot(self.reboots if kind == "reboot" else self.reconfigures)
            if not handlers_:
                logger.warning("the server asked to %s, but no on_%s handler is set", kind, kind)
            for simple in handlers_:
                _call(f"on_{kind}", simple)
        elif kind == "diag":
            logger.warning("server diagnostics: %s", text)
            for diag in self._snapshot(self.diags):
                _call("on_diag", diag, text)
        for raw in self._snapshot(self.downlinks):
            _call("on_downlink", raw, downlink)
        with self._lock:
            queues = list(self._queues)
        for downlink_queue in queues:
            downlink_queue.put(downlink)

    def _snapshot(self, handlers: list[Callable[..., object]]) -> list[Callable[..., object]]:
        with self._lock:
            return list(handlers)
