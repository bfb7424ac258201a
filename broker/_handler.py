"""amqtt protocol handler that hides a device's mount prefix on everything it sends."""

from __future__ import annotations

from typing import TYPE_CHECKING

from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.session import OutgoingApplicationMessage

from broker.errors import InvalidTopicError

if TYPE_CHECKING:
    from broker._session import Connection

__all__ = ["MountedHandler"]


class MountedHandler(BrokerProtocolHandler):
    """``BrokerProtocolHandler`` whose outgoing PUBLISH topics are device-relative.

    Every message to a client, whatever path it took (broadcast, retained, always-delivered,
    diag), goes through :meth:`mqtt_publish`; stripping ``d/<id>/`` here means no code path
    can leak the prefix -- or another device's topic -- to a device.
    """

    connection: Connection | None = None

    async def mqtt_publish(
        self,
        topic: str,
        data: bytes | bytearray,
        qos: int | None,
        retain: bool,
        ack_timeout: int | None = None,
    ) -> OutgoingApplicationMessage:
        """Send PUBLISH; for a device, ``topic`` must be under its mount and loses the prefix."""
        mount = getattr(self.session, "mount", None)
        if mount is not None:
            relative = mount.unmount(topic)
            if relative is None:
                raise InvalidTopicError(f"refusing to send {topic!r} to device {mount.device_id}")
            topic = relative
        return await super().mqtt_publish(topic, data, qos, retain, ack_timeout)
