"""Integration clients: a whole MQTT 3.1.1 broker inside their organization's namespace.

An :class:`~broker.identity.IntegrationIdentity` session carries a
:class:`~broker.namespace.Namespace` (``o/<org>/``): everything it publishes is routed (and
retained) under that prefix, every filter it holds is mounted there, its will too, and
``broker._handler`` strips the prefix from everything sent to it. The rules of what it may
write and read inside are :mod:`broker.namespace`. Everything else (QoS 0/1/2, retained
messages, persistent sessions with queued messages, wills) is the broker's ordinary routing.
A write (``dev/<id>/set/<name>``) leaves the namespace for the app alone
(:func:`broker.namespace.write_topic`); a will cannot be one.

Revocation: :meth:`disconnect_gateways` ends the integration connections of a key as well (and
forgets their persistent sessions); :meth:`recheck_gateways` asks their scopes again.

Limits (so one organization's clients cannot take the broker from the others): each client has
its own publish rate limit (``integration_rate_limit``, screened before amqtt sees a packet like a
device's, ``broker._core``), and each namespace at most ``namespace_retained_messages`` retained
messages of at most ``namespace_retained_bytes`` in all (:meth:`NamespaceBroker.retain_message`).
A retained publish past the cap is still delivered to the subscribers of the moment, only not
kept, and logged: MQTT 3.1.1 cannot refuse a publish, and closing the connection would lose
that client's other messages; replacing or clearing a retained topic always works.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from amqtt.mqtt.constants import QOS_0, QOS_1, QOS_2
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.session import Session

from broker._gateway import GatewayBroker
from broker._session import BrokerSession, Connection
from broker.errors import InvalidTopicError
from broker.identity import IntegrationIdentity
from broker.namespace import is_namespace_filter_allowed, namespace_publish, parse_write, write_topic
from broker.presence import OfflineReason
from broker.topics import TopicFilter, valid_publish_topic

__all__ = ["NamespaceBroker"]

logger = logging.getLogger(__name__)


def namespace_org(topic: str) -> int | None:
    """The organization of a broker-side namespace topic ``o/<org>/...``, else None."""
    if not topic.startswith("o/"):
        return None
    org, sep, _ = topic[2:].partition("/")
    return int(org) if sep and org.isdigit() else None


class NamespaceBroker(GatewayBroker):
    """The gateway broker plus integration clients (see module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.namespace_retained: dict[int, tuple[int, int]] = {}
        """Organization -> (retained messages, their bytes) held in its namespace."""
        self.retained_refused = 0
        """Retained publishes not kept because their namespace was full."""

    async def retain_message(
        self,
        source_session: Session | None,
        topic_name: str | None,
        data: bytes | bytearray | None,
        qos: int | None = None,
    ) -> None:
        """Override: keep each namespace's retained messages under its caps (module docstring)."""
        org = namespace_org(topic_name) if topic_name else None
        if org is None or topic_name is None:
            await super().retain_message(source_session, topic_name, data, qos)
            return
        old = self.retained.get(topic_name)
        count, size = self.namespace_retained.get(org, (0, 0))
        topic_bytes = len(topic_name.encode())
        new_count = count - (old is not None) + (1 if data else 0)
        new_size = (
            size - (topic_bytes + len(old.data) if old is not None else 0) + (topic_bytes + len(data) if data else 0)
        )
        settings = self.settings
        over = new_count > settings.namespace_retained_messages or new_size > settings.namespace_retained_bytes
        if data and over and (new_count > count or new_size > size):
            self.retained_refused += 1
            logger.warning(
                "organization %d: retained message on %r not kept: its namespace holds %d retained messages "
                "of %d bytes (limits %d and %d); it was delivered to the current subscribers only",
                org,
                topic_name.removeprefix(f"o/{org}/"),
                count,
                size,
                settings.namespace_retained_messages,
                settings.namespace_retained_bytes,
            )
            return
        await super().retain_message(source_session, topic_name, data, qos)
        self.namespace_retained[org] = (new_count, new_size)

    async def _handle_message_delivery(
        self, client_session: Session, handler: BrokerProtocolHandler, wait_deliver: asyncio.Future[Any]
    ) -> bool:
        """Override: an integration client's publish is routed inside its namespace."""
        message = wait_deliver.result()
        namespace = getattr(client_session, "namespace", None)
        if message is None or namespace is None:
            return await super()._handle_message_delivery(client_session, handler, wait_deliver)
        topic = message.topic
        if not valid_publish_topic(topic):
            return await super()._handle_message_delivery(client_session, handler, wait_deliver)  # closes it
        retain = bool(message.publish_packet and message.publish_packet.retain_flag)
        if not namespace_publish(topic, retain):
            logger.info("dropped publish of integration %s to %r", getattr(client_session, "client_id", "?"), topic)
            return True
        write = parse_write(topic)
        connection = getattr(client_session, "connection", None)
        if write is not None:  # to the app alone, naming the credentials it must check
            identity = connection.identity if isinstance(connection, Connection) else None
            if isinstance(identity, IntegrationIdentity):
                await self._broadcast_message(client_session, write_topic(identity.key, *write), message.data)
            return True
        inside = namespace.mount(topic)
        await self._broadcast_message(client_session, inside, message.data)
        if retain:
            await self.retain_message(None, inside, message.data, message.qos)
        return True

    def inside_filter(self, session: BrokerSession, raw_filter: str) -> str:
        """Override: an integration client's filter inside its namespace."""
        if session.namespace is not None:
            return session.namespace.mount(raw_filter)
        return super().inside_filter(session, raw_filter)

    def _authorize_filter(self, session: BrokerSession, raw_filter: str, qos: int) -> TopicFilter | None:
        """Override: an integration client may hold any filter of its namespace but ``$...``
        and ``dev/`` filters that are not the device feed's."""
        if session.namespace is None:
            return super()._authorize_filter(session, raw_filter, qos)
        if qos not in (QOS_0, QOS_1, QOS_2) or not is_namespace_filter_allowed(raw_filter):
            logger.info("refused subscribe of integration %s to %r", session.client_id, raw_filter)
            return None
        try:
            return TopicFilter(session.namespace.mount(raw_filter))
        except InvalidTopicError:
            return None

    # ---- revocation ---------------------------------------------------------------------

    def _integration_connections(self) -> list[Connection]:
        return [c for c in self.connections.values() if isinstance(c.identity, IntegrationIdentity) and not c.closed]

    async def disconnect_gateways(self, key: str, reason: OfflineReason = OfflineReason.REVOKED) -> int:
        """Override: the integration connections of ``key`` end too, and their sessions go."""
        ended = await super().disconnect_gateways(key, reason)
        for connection in self._integration_connections():
            identity = connection.identity
            assert isinstance(identity, IntegrationIdentity)
            if identity.key == key:
                await self._revoke(connection, reason)
                ended += 1
        for stored in [k for k in self._sessions if k.startswith(f"int:{key}:")]:  # offline persistent ones
            self._discard_session(stored, self._sessions[stored][0])
        return ended

    async def _revoke(self, connection: Connection, reason: OfflineReason) -> None:
        await self.end_connection(connection, reason)
        self._discard_session(connection.key, connection.session)

    async def recheck_gateways(self, device_id: int | None = None, key: str | None = None) -> None:
        """Override: integration clients whose credentials stopped working are ended too."""
        await super().recheck_gateways(device_id, key)
        if device_id is not None:
            return  # a device's change never changes an integration's credentials
        for connection in self._integration_connections():
            identity = connection.identity
            assert isinstance(identity, IntegrationIdentity)
            try:
                if not await identity.scope.still_valid():
                    await self._revoke(connection, OfflineReason.REVOKED)
            except Exception:
                logger.exception("re-checking integration %s failed; keeping it", connection.label)
