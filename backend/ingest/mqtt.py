"""The app's MQTT connection to the broker, as a trusted service client.

paho-mqtt runs its network loop in its own thread; received messages cross into asyncio
through a bounded queue. When the queue is full the paho thread waits, so it stops reading the
socket and the broker holds the rest: backpressure instead of unbounded memory.

The app's session is persistent (clean_session=False; short-lived CLI clients use a clean one)
with QoS 1 subscriptions, and it acknowledges a QoS 1 message only when the consumer says its
effects are stored (:meth:`ServiceClient.done`), in the order the messages came
([MQTT-4.6.0-2]). Until then the broker keeps the message and sends it again after a
reconnect, so neither a restart nor a crash of the app loses what a device sent at QoS 1. A
crash can repeat a message whose effects were stored but not yet acknowledged: delivery is at
least once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections import deque
from dataclasses import dataclass, field

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Message:
    """A message received from the broker."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    receipt: int | None = None
    """For :meth:`ServiceClient.done` (QoS 1/2 on a manually acknowledging client), else None."""


@dataclass(slots=True)
class _Unacked:
    receipt: int
    mid: int
    qos: int
    done: bool = False


@dataclass(slots=True)
class _Acks:
    """Messages taken from the broker and not yet acknowledged, in the order they came."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    pending: deque[_Unacked] = field(default_factory=deque)
    by_receipt: dict[int, _Unacked] = field(default_factory=dict)
    next_receipt: int = 0


class ServiceClient:
    """An async façade over a paho client that logs in as a platform service."""

    def __init__(self, host: str, port: int, username: str, password: str, client_id: str,
                 subscriptions: list[str], queue_size: int = 10_000, clean_session: bool = False) -> None:
        self.subscriptions = subscriptions
        self._host, self._port = host, port
        self._queue: asyncio.Queue[Message | None] = asyncio.Queue(maxsize=queue_size)  # None: the end
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connected = threading.Event()
        self.subscribed = threading.Event()
        """Set once the broker acknowledged the subscriptions of the current connection."""
        self._stopping = False
        self._paused = False
        self._manual_ack = not clean_session
        self._acks = _Acks()
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session,
                                   manual_ack=self._manual_ack)
        self._client.username_pw_set(username, password)
        self._client.reconnect_delay_set(min_delay=1, max_delay=10)
        self._client.max_queued_messages_set(100_000)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_subscribe = lambda *_args: self.subscribed.set()

    @property
    def connected(self) -> bool:
        """True while the broker connection is up."""
        return self._connected.is_set()

    async def start(self, timeout: float = 30.0) -> None:
        """Connect (retrying until ``timeout``) and start the network thread."""
        self._loop = asyncio.get_running_loop()
        self._client.connect_async(self._host, self._port, keepalive=30)
        self._client.loop_start()
        ok = await asyncio.to_thread(self._connected.wait, timeout)
        if not ok:
            await self.stop()
            raise ConnectionError(f"cannot reach the MQTT broker at {self._host}:{self._port} within {timeout:.0f} s; "
                                  "is `openblynk broker` running?")

    def pause(self) -> None:
        """Take no more messages (before a clean stop). The broker keeps what arrives from now
        on, unacknowledged, and sends it again after the next connection."""
        self._paused = True

    def done(self, receipt: int | None) -> None:
        """The message ``receipt`` is fully handled: acknowledge it, once every message that
        came before it is handled too (thread-safe; unknown or stale receipts are ignored)."""
        if receipt is None:
            return
        acks = self._acks
        with acks.lock:
            entry = acks.by_receipt.pop(receipt, None)
            if entry is None:  # taken on an earlier connection: the broker sends it again
                return
            entry.done = True
            while acks.pending and acks.pending[0].done:
                first = acks.pending.popleft()
                self._client.ack(first.mid, first.qos)

    @property
    def unacknowledged(self) -> int:
        """Messages taken and not yet acknowledged on the current connection."""
        return len(self._acks.pending)

    async def stop(self) -> None:
        """Disconnect and stop the network thread."""
        self._stopping = True
        self._client.disconnect()
        await asyncio.to_thread(self._client.loop_stop)

    def publish(self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False) -> paho.MQTTMessageInfo:
        """Queue a message for the broker (thread-safe, never blocks); ``wait_for_publish`` on
        the result waits until it is sent."""
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc not in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN):
            log.warning("publish to %s failed: %s", topic, paho.error_string(info.rc))
        return info

    async def messages(self) -> Message | None:
        """The next received message; None once :meth:`end_of_messages` was called and every
        message received before it has been taken."""
        return await self._queue.get()

    async def end_of_messages(self) -> None:
        """Mark the end of the stream (after :meth:`stop`), so the consumer can drain it."""
        await self._queue.put(None)

    # -- paho callbacks (paho's thread) ---------------------------------------------------
    def _on_connect(self, client: paho.Client, _ud: object, _flags: object, rc: ReasonCode,
                    _props: object = None) -> None:
        if rc.is_failure:
            log.error("broker refused the service connection: %s", rc)
            return
        self.subscribed.clear()
        with self._acks.lock:  # packet ids of the old connection mean nothing now
            self._acks.pending.clear()
            self._acks.by_receipt.clear()
        if self.subscriptions:
            client.subscribe([(topic, 1) for topic in self.subscriptions])
        else:
            self.subscribed.set()
        self._connected.set()
        log.info("connected to the broker at %s:%s", self._host, self._port)

    def _on_disconnect(self, _c: paho.Client, _ud: object, _flags: object, rc: ReasonCode,
                       _props: object = None) -> None:
        self._connected.clear()
        if not self._stopping:
            log.warning("lost the broker connection (%s); reconnecting", rc)

    def _on_message(self, _c: paho.Client, _ud: object, msg: paho.MQTTMessage) -> None:
        loop = self._loop
        if loop is None or loop.is_closed() or self._paused:
            return  # not acknowledged: the broker keeps it
        receipt = self._take(msg)
        item = Message(msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain), receipt)
        future = asyncio.run_coroutine_threadsafe(self._queue.put(item), loop)
        while True:  # wait for room in the queue: this is the backpressure
            try:
                future.result(timeout=1.0)
                return
            except concurrent.futures.TimeoutError:
                if self._stopping or self._paused or loop.is_closed():
                    future.cancel()
                    self._forget(receipt)
                    return
            except Exception:  # the loop is shutting down
                log.debug("left %s to the broker during shutdown", msg.topic)
                self._forget(receipt)
                return

    def _take(self, msg: paho.MQTTMessage) -> int | None:
        """Record a received message that needs an acknowledgement; its receipt."""
        if not self._manual_ack or msg.qos == 0:
            return None
        acks = self._acks
        with acks.lock:
            acks.next_receipt += 1
            entry = _Unacked(acks.next_receipt, msg.mid, msg.qos)
            acks.pending.append(entry)
            acks.by_receipt[entry.receipt] = entry
            return entry.receipt

    def _forget(self, receipt: int | None) -> None:
        """A message not handed to the consumer: it must never be acknowledged, nor anything
        after it on this connection (acknowledgements go in order); the broker resends them."""
        if receipt is None:
            return
        with self._acks.lock:
            self._acks.by_receipt.pop(receipt, None)  # stays first-not-done in ``pending`` for good
