"""amqtt protocol handler that hides a device's mount prefix and times ``downlink/ping``."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from amqtt.errors import AMQTTError
from amqtt.mqtt.constants import QOS_1
from amqtt.mqtt.disconnect import DisconnectPacket
from amqtt.mqtt.publish import PublishPacket
from amqtt.mqtt.puback import PubackPacket
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.mqtt.protocol.handler import ProtocolHandler
from amqtt.session import OutgoingApplicationMessage

from broker.errors import InvalidTopicError

if TYPE_CHECKING:
    from broker._session import Connection

__all__ = ["MountedHandler"]


class MountedHandler(BrokerProtocolHandler):
    """``BrokerProtocolHandler`` whose outgoing PUBLISH topics are device-relative.

    Every message to a client, whatever path it took (broadcast, retained, always-delivered,
    diag, ping), goes through :meth:`mqtt_publish` or :meth:`ping`; stripping ``d/<id>/`` here
    means no code path can leak the prefix -- or another device's topic -- to a device.
    """

    connection: Connection | None = None
    _busy = 0
    _settled: asyncio.Event | None = None

    async def handle_publish(self, publish_packet: PublishPacket) -> None:
        """Override: count the PUBLISH being handled (see :meth:`settle`)."""
        self._enter()
        try:
            await super().handle_publish(publish_packet)
        finally:
            self._leave()

    async def handle_disconnect(self, disconnect: DisconnectPacket | None) -> None:
        """Override: count the DISCONNECT being handled (see :meth:`settle`)."""
        self._enter()
        try:
            await super().handle_disconnect(disconnect)
        finally:
            self._leave()

    async def settle(self, timeout: float = 2.0) -> None:
        """Let the packets already read finish before the reader reports end-of-stream.

        amqtt's reader loop handles each packet in a task and, at end-of-stream, cancels the
        tasks that have not run yet. Over TLS a client's last PUBLISH, its DISCONNECT and the
        end of the stream arrive together (mosquitto_pub, battery devices that publish and
        hang up), so that PUBLISH was lost and the DISCONNECT turned into a lost connection
        (publishing the Last Will). The framed reader awaits this before reporting the end.
        """
        await asyncio.sleep(0)  # the tasks made for packets read so far start now
        if self._busy and self._settled is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._settled.wait()

    def _enter(self) -> None:
        if self._settled is None:
            self._settled = asyncio.Event()
        self._busy += 1
        self._settled.clear()

    def _leave(self) -> None:
        self._busy -= 1
        if self._busy == 0 and self._settled is not None:
            self._settled.set()

    async def start(self) -> None:
        """Override (stock race): arm the disconnect waiter *before* the reader task starts.

        ``BrokerProtocolHandler.start`` creates it after ``ProtocolHandler.start`` has already
        run the reader; a client whose bytes end the reader at once (CONNECT, then garbage)
        signals "closed" while there is no waiter, then gets a fresh one nobody resolves,
        and its connection is never finished (found by tests/integration/broker/test_fuzz.py).
        """
        if self._disconnect_waiter is None or self._disconnect_waiter.done():
            self._disconnect_waiter = self._loop.create_future()
        await ProtocolHandler.start(self)

    def _relative(self, topic: str) -> str:
        mount = getattr(self.session, "mount", None)
        if mount is None:
            return topic
        relative = mount.unmount(topic)
        if relative is None:
            raise InvalidTopicError(f"refusing to send {topic!r} to device {mount.device_id}")
        return relative

    async def mqtt_publish(
        self,
        topic: str,
        data: bytes | bytearray,
        qos: int | None,
        retain: bool,
        ack_timeout: int | None = None,
    ) -> OutgoingApplicationMessage:
        """Send PUBLISH; for a device, ``topic`` must be under its mount and loses the prefix."""
        return await super().mqtt_publish(self._relative(topic), data, qos, retain, ack_timeout)

    async def ping(self, topic: str, data: bytes | bytearray, timeout: float) -> float | None:
        """Send ``topic`` at QoS 1 and return milliseconds until its PUBACK; ``None`` on timeout.

        amqtt's own QoS 1 flow gives up after a hard-coded 5 s; Blynk's ping waits longer.
        """
        session = self.session
        if session is None:
            raise AMQTTError("handler is not attached")
        packet_id = session.next_packet_id
        message = OutgoingApplicationMessage(packet_id, self._relative(topic), QOS_1, data, False)
        waiter: asyncio.Future[PubackPacket] = self._loop.create_future()
        session.inflight_out[packet_id] = message
        self._puback_waiters[packet_id] = waiter
        started = self._loop.time()
        try:
            message.publish_packet = message.build_publish_packet()
            await self._send_packet(message.publish_packet)
            async with asyncio.timeout(timeout):
                message.puback_packet = await waiter
            return (self._loop.time() - started) * 1000.0
        except TimeoutError:
            return None
        finally:
            self._puback_waiters.pop(packet_id, None)
            session.inflight_out.pop(packet_id, None)
