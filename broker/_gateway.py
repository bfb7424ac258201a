"""Blynk's MQTT Gateway API: one connection speaking for many devices, each as if direct.

A gateway (:class:`~broker.identity.GatewayIdentity`) publishes ``dev/<token>/<uplink>`` and
subscribes ``dev/<token>/downlink/...`` (or ``dev/<token>/#``, meaning every downlink). Each
token is resolved once per connection through the gateway's scope; inside the broker the
device then lives at ``d/<id>/`` exactly like a directly connected one, so the ingest,
presence, vitals, OTA offers, ``get/ds`` answers, ping and downlinks need nothing new:

* **publish**: the topic is checked against the uplink table, the device's own rate limit
  applies (``device_rate_limit``, diag on its ``downlink/diag``), and the message is routed as
  ``d/<id>/<uplink>``. A token outside the scope (or unknown: the same answer) drops the
  message and tells the gateway on ``dev/<token>/downlink/diag``. Gateways never retain.
* **subscribe**: a wildcard in the token level, a token outside the scope or a filter a device
  could not hold gets SUBACK 0x80.
* **presence**: a device goes online when it first speaks through the gateway (online
  presence with ``"gateway": <key>``) and offline when the gateway's connection ends (with
  the gateway's reason), when the device connects directly or through another gateway
  (``replaced``), is over its rate limit for too long (``rate_limited``) or is revoked.
* **revocation**: :meth:`GatewayBroker.disconnect_gateways` ends every connection of a key;
  :meth:`GatewayBroker.forget_gateway_device` drops a revoked or deleted device from every
  gateway; :meth:`GatewayBroker.recheck_gateways` asks the scopes again after a change.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from amqtt.mqtt.constants import QOS_0
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.session import Session

from broker._gateway_state import GatewayDevice, GatewayState, LookupPace, publish_size
from broker._lifecycle import LifecycleBroker
from broker._limits import PublishRate, RateVerdict
from broker._routing import device_key
from broker._session import BrokerSession, Connection
from broker._transport import Meter
from broker.errors import InvalidTopicError
from broker.identity import GatewayIdentity
from broker.presence import OfflineReason, offline_payload, online_payload, vitals_payload, vitals_topic
from broker.topics import (
    DIAG_TOPIC,
    OTA_TOPIC,
    TopicFilter,
    gateway_device_filter,
    is_uplink_topic,
    presence_topic,
    split_gateway_topic,
    valid_publish_topic,
)

__all__ = ["GatewayBroker", "REFUSED_TOKEN_DIAG"]

logger = logging.getLogger(__name__)

REFUSED_TOKEN_DIAG = "publish refused: no device with this token in this gateway's scope"
LOOKUP_MAX_WAIT = 1.0
"""Seconds a new token may wait for its lookup (see ``BrokerSettings.gateway_lookup_rate``)."""


class GatewayBroker(LifecycleBroker):
    """The lifecycle broker plus gateway connections (see module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gateway_links: dict[int, Connection] = {}
        """Device id -> the gateway connection through which it is online."""

    def _rate_now(self) -> float:
        """The rate limit's clock (the core broker may inject another)."""
        return self._loop.time()

    # ---- tokens -------------------------------------------------------------------------

    async def resolve_token(self, state: GatewayState, token: str) -> GatewayDevice | None:
        """The device ``token`` names in ``state``'s scope (asked once per connection), or None.

        New tokens are looked up at most ``gateway_lookup_rate`` times a second per connection:
        one over it waits its turn for up to :data:`LOOKUP_MAX_WAIT` seconds, and is refused
        without asking (and not remembered) beyond that."""
        known, device = state.cached(token)
        if known:
            return device
        if state.lookups is None:
            state.lookups = LookupPace(self.settings.gateway_lookup_rate, self._rate_now())
        wait = state.lookups.reserve(self._rate_now(), LOOKUP_MAX_WAIT)
        if wait is None:
            logger.info("gateway %s: too many new tokens; refusing one without asking", state.identity.key)
            return None
        if wait:
            await asyncio.sleep(wait)
        try:
            device_id = await state.identity.scope.device_for(token)
        except Exception:
            logger.exception("gateway %s: resolving a token failed; refusing it this time", state.identity.key)
            return None
        if device_id is None:
            return state.remember(token, None)
        settings = self.settings
        rate = PublishRate(settings.device_rate_limit, settings.rate_abuse_seconds, self._rate_now())
        return state.remember(token, GatewayDevice(device_id, token, rate))

    def gateway_filter(self, state: GatewayState, raw_filter: str) -> str | None:
        """The broker-side filter of a gateway's ``dev/<token>/...`` filter (token already
        resolved), or None if it is refused."""
        split = split_gateway_topic(raw_filter)
        if split is None:
            return None
        _, device = state.cached(split[0])
        relative = gateway_device_filter(split[1])
        if device is None or relative is None:
            return None
        return device.mount.mount(relative)

    # ---- publishing ---------------------------------------------------------------------

    async def _handle_message_delivery(
        self, client_session: Session, handler: BrokerProtocolHandler, wait_deliver: asyncio.Future[Any]
    ) -> bool:
        """Override: a gateway's publish goes to ``d/<id>/`` of the device its token names."""
        message = wait_deliver.result()
        state = getattr(client_session, "gateway", None)
        if message is None or not isinstance(state, GatewayState):
            return await super()._handle_message_delivery(client_session, handler, wait_deliver)
        assert isinstance(client_session, BrokerSession)
        connection = client_session.connection
        topic = message.topic
        if not valid_publish_topic(topic) or topic.startswith("$"):
            return await super()._handle_message_delivery(client_session, handler, wait_deliver)  # closes it
        if connection is None:  # never routed as anything but a gateway's
            return True
        split = split_gateway_topic(topic)
        if split is None:
            logger.info("dropped publish of gateway %s to %r: not dev/<token>/...", connection.label, topic)
            return True
        token, relative = split
        device = await self.resolve_token(state, token)
        if device is None:
            logger.info("dropped publish of gateway %s: token outside its scope", connection.label)
            self.send_to(connection, f"dev/{token}/{DIAG_TOPIC}", REFUSED_TOKEN_DIAG.encode(), QOS_0, retain=False)
            return True
        device.meter.msgs_in += 1
        device.meter.bytes_in += publish_size(topic, message.data, message.qos or 0)
        if not is_uplink_topic(relative):
            text = f'publish to "{relative}" refused: not a Blynk uplink topic'
            self.send_to(connection, device.mount.mount(DIAG_TOPIC), text.encode(), QOS_0, retain=False)
            return True
        if not await self._within_rate(connection, device):
            return True
        if not device.online and not connection.closed:  # (a leftover routed after the end: no presence)
            await self._attach(connection, device)
        await self._broadcast_message(client_session, device.mount.mount(relative), message.data)
        return True

    async def _within_rate(self, connection: Connection, device: GatewayDevice) -> bool:
        verdict = device.rate.check(self._rate_now())
        if verdict is RateVerdict.ACCEPT:
            return True
        if verdict is RateVerdict.ABUSE:
            logger.warning("gateway %s: device %d over the rate limit for too long", connection.label, device.device_id)
            await self._detach(connection, device, OfflineReason.RATE_LIMITED)
        elif verdict is RateVerdict.DROP_AND_WARN:
            text = f"rate limit exceeded: {device.rate.rate:g} messages/s; messages are being dropped"
            self.send_to(connection, device.mount.mount(DIAG_TOPIC), text.encode(), QOS_0, retain=False)
        return False

    # ---- presence -----------------------------------------------------------------------

    def device_session(self, device_id: int) -> BrokerSession | None:
        """Override: a device online through a gateway is reached through the gateway's session."""
        direct = super().device_session(device_id)
        if direct is not None and direct.connection is not None and not direct.connection.closed:
            return direct
        link = self.gateway_links.get(device_id)
        return link.session if link is not None and not link.closed else direct

    async def _attach(self, connection: Connection, device: GatewayDevice) -> None:
        """The device spoke through ``connection``: online, vitals, its pending OTA offer."""
        device_id = device.device_id
        await self.release_gateway_device(device_id, OfflineReason.REPLACED)
        direct = self.connections.get(device_key(device_id))
        if direct is not None and not direct.closed:
            await self.end_connection(direct, OfflineReason.REPLACED)
        identity = connection.identity
        assert isinstance(identity, GatewayIdentity)
        device.online, device.meter = True, Meter(bytes_in=device.meter.bytes_in, msgs_in=1)
        self.gateway_links[device_id] = connection
        online = online_payload(
            ip=connection.address,
            port=connection.port,
            client_id=connection.session.client_sent_id,
            keep_alive=connection.keep_alive,
            transport=connection.transport,
            gateway=identity.key,
        )
        await self._publish_internal(presence_topic(device_id), online)
        self._vitals(connection, device, self.settings.vitals_interval, first=True)
        ota = self.retained.get(device.mount.mount(OTA_TOPIC))
        if ota is not None and connection.session not in self.index.match(ota.topic):
            self.send_to(connection, ota.topic, ota.data, QOS_0, retain=True)

    def _vitals(self, connection: Connection, device: GatewayDevice, interval: float, first: bool = False) -> None:
        if not device.online or connection.closed:
            return
        if not first:
            self.publish_nowait(vitals_topic(device.device_id), vitals_payload(device.meter.snapshot()), QOS_0)
        device.vitals_timer = self._loop.call_later(interval, self._vitals, connection, device, interval)

    async def _detach(self, connection: Connection, device: GatewayDevice, reason: OfflineReason) -> None:
        """The device is no longer online through ``connection``."""
        if not device.online:
            return
        device.online = False
        if device.vitals_timer is not None:
            device.vitals_timer.cancel()
            device.vitals_timer = None
        if self.gateway_links.get(device.device_id) is connection:
            del self.gateway_links[device.device_id]
        await self._publish_internal(presence_topic(device.device_id), offline_payload(reason, device.meter.snapshot()))

    async def release_gateway_device(self, device_id: int, reason: OfflineReason) -> None:
        """Take a device off the gateway it is online through (it connected elsewhere)."""
        connection = self.gateway_links.get(device_id)
        state = connection.session.gateway if connection is not None else None
        device = state.devices.get(device_id) if state is not None else None
        if connection is not None and device is not None:
            await self._detach(connection, device, reason)

    async def _end_presence(self, connection: Connection, reason: OfflineReason) -> None:
        """Override: a gateway's end takes each of its online devices offline, with its reason."""
        state = connection.session.gateway
        if state is None:
            await super()._end_presence(connection, reason)
            return
        if connection.offline_sent:
            return
        connection.offline_sent = True
        for device in list(state.devices.values()):
            await self._detach(connection, device, reason)

    # ---- subscriptions ------------------------------------------------------------------

    async def _resolve_filters(self, session: Session, filters: list[str]) -> None:
        state = getattr(session, "gateway", None)
        if isinstance(state, GatewayState):
            for raw_filter in filters:
                split = split_gateway_topic(raw_filter)
                if split is not None:
                    await self.resolve_token(state, split[0])

    async def _handle_subscription(
        self, client_session: Session, handler: BrokerProtocolHandler, subscribe_waiter: asyncio.Future[Any]
    ) -> None:
        """Override: resolve a gateway's tokens first (the grant itself reads the cache)."""
        await self._resolve_filters(client_session, [f for f, _ in subscribe_waiter.result().topics])
        await super()._handle_subscription(client_session, handler, subscribe_waiter)

    async def _handle_unsubscription(
        self, client_session: Session, handler: BrokerProtocolHandler, unsubscribe_waiter: asyncio.Future[Any]
    ) -> None:
        """Override: resolve a gateway's tokens first."""
        await self._resolve_filters(client_session, list(unsubscribe_waiter.result().topics))
        await super()._handle_unsubscription(client_session, handler, unsubscribe_waiter)

    def inside_filter(self, session: BrokerSession, raw_filter: str) -> str:
        """Override: a gateway's filter in its device's namespace."""
        if session.gateway is not None:
            return self.gateway_filter(session.gateway, raw_filter) or raw_filter
        return super().inside_filter(session, raw_filter)

    def _authorize_filter(self, session: BrokerSession, raw_filter: str, qos: int) -> TopicFilter | None:
        """Override: a gateway may hold ``dev/<token>/downlink/...`` of the devices in its scope."""
        if session.gateway is None:
            return super()._authorize_filter(session, raw_filter, qos)
        mapped = self.gateway_filter(session.gateway, raw_filter)
        if mapped is None or qos not in (0, 1, 2):
            logger.info("refused subscribe of gateway %s to %r", session.client_id, raw_filter)
            return None
        try:
            return TopicFilter(mapped)
        except InvalidTopicError:
            return None

    # ---- revocation ---------------------------------------------------------------------

    def _gateway_connections(self) -> list[Connection]:
        return [c for c in self.connections.values() if c.session.gateway is not None and not c.closed]

    async def disconnect_gateways(self, key: str, reason: OfflineReason = OfflineReason.REVOKED) -> int:
        """End every connection of the gateway credentials ``key``; how many there were."""
        ended = 0
        for connection in self._gateway_connections():
            identity = connection.identity
            if isinstance(identity, GatewayIdentity) and identity.key == key:
                await self.end_connection(connection, reason)
                ended += 1
        return ended

    async def forget_gateway_device(self, device_id: int) -> None:
        """A device's token was revoked or the device deleted: no gateway may use it any more."""
        for connection in self._gateway_connections():
            await self._forget(connection, device_id)

    async def _forget(self, connection: Connection, device_id: int) -> None:
        state = connection.session.gateway
        device = state.forget(device_id) if state is not None else None
        if device is None:
            return
        await self._detach(connection, device, OfflineReason.REVOKED)
        session = connection.session
        for held in list(self.index.filters_of(session)):
            if held.startswith(device.mount.prefix):
                self.index.remove(TopicFilter(held), session)

    async def recheck_gateways(self, device_id: int | None = None, key: str | None = None) -> None:
        """Ask the scopes again after a change: gateways whose credentials stopped working are
        ended (``revoked``), devices that left a scope are forgotten. With ``device_id`` only
        that device is checked, and only the credentials of gateways with ``key``."""
        for connection in self._gateway_connections():
            state = connection.session.gateway
            assert state is not None
            check = device_id is None or state.identity.key == key
            try:
                if check and not await state.identity.scope.still_valid():
                    await self.end_connection(connection, OfflineReason.REVOKED)
                    continue
                state.forget_refusals()
                for device in list(state.devices.values()):
                    if device_id is not None and device.device_id != device_id:
                        continue
                    if await state.identity.scope.device_for(device.token) != device.device_id:
                        await self._forget(connection, device.device_id)
            except Exception:
                logger.exception("re-checking gateway %s failed; keeping it as it was", connection.label)
