"""Message routing on top of amqtt: mount, ACL, indexed matching, retained messages.

:class:`RoutingBroker` replaces the parts of ``amqtt.broker.Broker`` (0.12.1, pinned exactly)
that decide *who gets what*. Each overridden private method says why in its docstring.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from amqtt.broker import RetainedApplicationMessage
from amqtt.mqtt.constants import QOS_0, QOS_1, QOS_2
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.session import OutgoingApplicationMessage, Session

from broker import mqtt5
from broker._acks import Receipt, puback
from broker._delivery import DeliveryBroker
from broker._handler import MountedHandler
from broker._session import BrokerSession, Connection, Pending
from broker._shared import SharedGroup, SharedSubscriptions, split_shared
from broker._suboptions import SubscriptionOptions, keeps_retain, only_local, options_of
from broker._v5 import NEVER_EXPIRES, Carried, expired, link_of, published_will
from broker.errors import InvalidTopicError
from broker.presence import OfflineReason
from broker.topics import (
    DIAG_TOPIC,
    TopicFilter,
    TopicName,
    always_delivered_device,
    is_device_filter_allowed,
    is_ping_topic,
    is_uplink_topic,
    valid_publish_topic,
)
from broker.trie import RetainedTree, SubscriptionIndex

__all__ = ["RoutingBroker", "device_key", "publishing"]

logger = logging.getLogger(__name__)

SUBACK_FAILURE = 0x80
_Tasks = deque[asyncio.Task[OutgoingApplicationMessage]]

_PUBLISHED: ContextVar[tuple[int, bool]] = ContextVar("published", default=(QOS_2, False))
"""The QoS and RETAIN flag of the client PUBLISH being routed now (:func:`publishing`)."""


@contextmanager
def publishing(qos: int | None, retain: bool = False) -> Iterator[None]:
    """Route a client's PUBLISH of ``qos``: its broadcasts are delivered at no more than that
    QoS ([MQTT-3.8.4-6]: the lower of the publish's and the subscription's QoS), and keep
    ``retain`` for MQTT 5 subscriptions that ask for it (retain as published). Wraps the
    whole handling of one PUBLISH (``CoreBroker._handle_message_delivery``), which its
    namespace and gateway forms broadcast from too; a context variable, so the connections
    routing at once (each in its own task) never see each other's."""
    token = _PUBLISHED.set((QOS_0 if qos is None else qos, retain))
    try:
        yield
    finally:
        _PUBLISHED.reset(token)


def device_key(device_id: int) -> str:
    """The internal session key of a device (never derived from the client-sent id)."""
    return f"dev:{device_id}"


class RoutingBroker(DeliveryBroker):
    """amqtt ``Broker`` whose routing is mounted, ACL-checked and index-based."""

    stopping = False
    """Set when the broker stops (``LifecycleBroker``)."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.index: SubscriptionIndex[BrokerSession] = SubscriptionIndex()
        self.retained: RetainedTree[RetainedApplicationMessage] = RetainedTree()
        self.shared = SharedSubscriptions()
        self.delayed_wills: dict[str, list[asyncio.TimerHandle]] = {}
        """Session key -> MQTT 5 wills waiting for their delay (:meth:`_later`)."""
        self.expiring: dict[str, asyncio.TimerHandle] = {}
        """Session key -> the discard of a kept MQTT 5 session, due after its expiry (:meth:`count_down`)."""
        self.unsunk: deque[Pending] = deque()
        """Device uplinks (with their withheld PUBACK) that found no durable sink: they wait
        for the first one that subscribes to them (``broker._acks``)."""
        self._after_suback: list[Callable[[], None]] = []
        """What a grant sends the new subscriber, run once its SUBACK is written (messages are
        written at once, ``broker._delivery``, and a client reads its SUBACK first)."""

    # ---- publishing ---------------------------------------------------------------------

    async def _handle_message_delivery(
        self, client_session: Session, handler: BrokerProtocolHandler, wait_deliver: asyncio.Future[Any]
    ) -> bool:
        """Override: check the device ACL, mount the topic, send diag on refusal.

        Stock amqtt only asks topic plugins yes/no and cannot rewrite topics. Returning False
        ends the connection (MQTT protocol violations), as stock amqtt does.
        """
        message = wait_deliver.result()
        if message is None:
            return True
        assert isinstance(client_session, BrokerSession)
        topic = message.topic
        if not valid_publish_topic(topic) or topic.startswith("$"):
            logger.warning("closing %s: PUBLISH to invalid topic %r", client_session.client_id, topic)
            if client_session.connection is not None:
                client_session.connection.end_reason = OfflineReason.PROTOCOL_ERROR
            return False
        retain = bool(message.publish_packet and message.publish_packet.retain_flag)
        mount = client_session.mount
        if mount is not None:
            if not is_uplink_topic(topic):
                logger.info("dropped publish of %s to %r: not an uplink topic", client_session.client_id, topic)
                await self.send_diag(client_session, f'publish to "{topic}" refused: not a Blynk uplink topic')
                return True
            topic, retain = mount.mount(topic), False  # devices cannot retain (unbounded memory)
        await self._broadcast_message(client_session, topic, message.data)
        if retain:
            await self.retain_message(None, topic, message.data, message.qos)
        return True

    async def _broadcast_message(
        self,
        session: Session | None,
        topic: str | None,
        data: bytes | bytearray | None,
        force_qos: int | None = None,
    ) -> None:
        """Override: a publisher's message takes its withheld PUBACK along (``broker._acks``)
        and its QoS, the most its copies are delivered at (:func:`publishing`). An MQTT 5 will
        is published after its delay (:meth:`_later`)."""
        if isinstance(data, Carried) and data.will:
            if data.delay:
                self._later(data, lambda will: self._broadcast_message(None, topic, will, force_qos))
                return
            data = published_will(data)
        broadcast: dict[str, Any] = {"session": session, "topic": topic, "data": data}
        if force_qos is not None:
            broadcast["qos"] = force_qos
        elif session is not None:
            broadcast["cap"], retain = _PUBLISHED.get()
            if retain and getattr(session, "mount", None) is None:  # devices never retain (Blynk)
                broadcast["retain"] = True
        connection = session.connection if isinstance(session, BrokerSession) else None
        if connection is not None and connection.handler.current is not None:
            broadcast["receipt"], connection.handler.current = connection.handler.current, None
        await self._broadcast_queue.put(broadcast)

    def _later(self, will: Carried, publish: Callable[[Carried], Coroutine[Any, Any, None]]) -> None:
        """``publish`` the will once its delay has passed, unless a new connection to its
        session comes first (:meth:`resume` cancels it)."""
        waiting = self.delayed_wills.setdefault(will.owner or "", [])

        def due() -> None:
            if handle in waiting:
                waiting.remove(handle)
            if not waiting and self.delayed_wills.get(will.owner or "") is waiting:
                del self.delayed_wills[will.owner or ""]
            self.spawn(publish(published_will(will)))

        handle = self._loop.call_later(will.delay, due)
        waiting.append(handle)

    def count_down(self, connection: Connection, discard: Callable[[str, BrokerSession], None]) -> None:
        """The connection of a kept session ended: an MQTT 5 client's session is discarded
        after its session expiry interval, unless a new connection takes it first
        (:meth:`resume` cancels it). A 3.1.1 client's is kept (amqtt's session expiry)."""
        link = link_of(connection.writer)
        if link is None or not link.keeps_session or link.kept_for >= NEVER_EXPIRES:
            return
        key, session = connection.key, connection.session

        def due() -> None:
            if self.expiring.get(key) is handle:
                del self.expiring[key]
            if self._sessions.get(key, (None, None))[0] is session and session.connection is connection:
                discard(key, session)

        previous = self.expiring.pop(key, None)
        if previous is not None:
            previous.cancel()
        handle = self._loop.call_later(link.kept_for, due)
        self.expiring[key] = handle

    async def send_diag(self, session: BrokerSession, text: str) -> None:
        """Tell a device, on ``downlink/diag`` (QoS 0), why something it did was refused."""
        if session.mount is not None:
            await self._broadcast_message(None, session.mount.mount(DIAG_TOPIC), text.encode(), QOS_0)

    async def retain_message(
        self,
        source_session: Session | None,
        topic_name: str | None,
        data: bytes | bytearray | None,
        qos: int | None = None,
    ) -> None:
        """Override: keep retained messages in a topic tree, not amqtt's flat dict."""
        if topic_name is None:
            return
        if isinstance(data, Carried) and data.will:
            if data.delay:
                self._later(data, lambda will: self.retain_message(None, topic_name, will, qos))
                return
            data = published_will(data)
        if data:
            message = RetainedApplicationMessage(None, topic_name, data, qos)
            self.retained.set(TopicName(topic_name), message)
        else:  # [MQTT-3.3.1-10] an empty retained message clears the topic
            self.retained.delete(topic_name)

    # ---- broadcasting -------------------------------------------------------------------

    def route_uplink(
        self, session: BrokerSession, handler: MountedHandler, topic: str, data: bytes, qos: int, packet_id: int | None
    ) -> bool:
        """Route a device's QoS 0/1 PUBLISH of device-relative ``topic`` as its connection reads
        it (``MountedHandler.fast_route``): what ``_handle_message_delivery`` and the broadcast
        loop do with it, without the message and packet objects, the connection's message loop
        and the broadcast queue between them. False, with nothing done, for anything that
        path would refuse or report (it gets the general path), and while older messages wait
        in the broadcast queue (they go first: a device's messages keep their order)."""
        mount = session.mount
        if (
            mount is None
            or not self._broadcast_queue.empty()
            or not valid_publish_topic(topic)
            or not is_uplink_topic(topic)  # refuses "$" topics too
        ):
            return False
        broadcast: dict[str, Any] = {"session": session, "topic": mount.prefix + topic, "data": data, "cap": qos}
        if packet_id is not None:
            if handler.inflight is not None:  # withheld until durable sinks have it (broker._acks)
                broadcast["receipt"] = handler.inflight.receipt(packet_id)
            elif handler.writer is not None:
                handler.writer.write(puback(packet_id))
        try:
            self.route(broadcast)
        except Exception:  # as the broadcast loop: the reader of its connection goes on
            logger.exception("routing a message failed; it is skipped")
        return True

    async def _run_broadcast(self, running_tasks: _Tasks) -> None:
        """Override (stock defect 4): match via the index instead of testing every filter.

        A forced QoS (internal messages, wills) wins, as in amqtt; otherwise a copy goes at the
        lower of the subscription's QoS and the publish's ([MQTT-3.8.4-6]; amqtt used the
        subscription's, so a QoS 0 publish reached a QoS 1 subscriber at QoS 1). Adds Blynk's always-delivered downlinks (QoS 0; ``downlink/ping``
        at QoS 1 and timed), each at most once per device. ``running_tasks`` (amqtt's
        broker-wide deque) stays unused: deliveries live in each connection's outbox.
        """
        self.route(await self._broadcast_queue.get())

    def route(self, broadcast: dict[str, Any]) -> None:
        """Deliver one broadcast (see :meth:`_run_broadcast`) to its subscribers now."""
        topic, forced, cap = broadcast["topic"], broadcast.get("qos"), broadcast.get("cap", QOS_2)
        qos_of = {s: forced if forced is not None else min(q, cap) for s, q in self.index.match(topic).items()}
        device_id = always_delivered_device(topic)
        if device_id is not None:
            device = self.device_session(device_id)
            if is_ping_topic(topic):
                if device is not None:
                    qos_of.pop(device, None)
                self.send_ping(device, device_id, topic, broadcast["data"])
            elif device is not None and device not in qos_of:
                qos_of[device] = QOS_0
        publisher = broadcast["session"]
        if publisher in qos_of:  # MQTT 5's no local: not back to its publisher
            options = options_of(publisher)
            if options and only_local(options, topic):
                del qos_of[publisher]
        receipt: Receipt | None = broadcast.get("receipt")
        for session, qos in qos_of.items():
            self._deliver(session, broadcast, qos, receipt)
        for group in self.shared.match(topic):
            message = Pending(topic, broadcast["data"], -1 if forced is None else forced, group, receipt)
            self._deliver_shared(group, message, fresh=True, cap=cap)
        if receipt is not None and not receipt.seal():
            self._sinkless(Pending(topic, broadcast["data"], QOS_1, None, receipt))

    def _sinkless(self, message: Pending) -> None:
        """A message with a withheld PUBACK that no durable sink took: a device uplink waits for
        one (:attr:`unsunk`); anything else is acknowledged now (nothing will store it)."""
        assert message.receipt is not None
        if not message.topic.startswith("d/"):
            message.receipt.inflight.release(message.receipt)
            return
        if len(self.unsunk) % 1024 == 1023:  # forget those whose publisher left: it resends them
            self.unsunk = deque(p for p in self.unsunk if p.receipt is None or not p.receipt.inflight.closed)
        self.unsunk.append(message)

    def _flush_unsunk(self, topic_filter: TopicFilter, deliver: Any) -> None:
        """A durable sink subscribed to ``topic_filter``: hand it the waiting uplinks it matches
        (``deliver(message)``, which takes the receipt)."""
        if not self.unsunk:
            return
        kept: deque[Pending] = deque()
        for message in self.unsunk:
            if message.receipt is not None and message.receipt.inflight.closed:
                continue  # its publisher left unacknowledged: it sends the message again
            if topic_filter.matches(message.topic):
                deliver(message)
            else:
                kept.append(message)
        self.unsunk = kept

    def device_session(self, device_id: int) -> BrokerSession | None:
        """The session through which a device is reached now (its own; a gateway's, see
        ``broker._gateway``), or ``None``."""
        entry = self._sessions.get(device_key(device_id), (None, None))[0]
        return entry if isinstance(entry, BrokerSession) else None

    def _deliver(
        self, session: BrokerSession, broadcast: dict[str, Any], qos: int, receipt: Receipt | None = None
    ) -> None:
        """Send one broadcast to one session, or queue it for an offline persistent session; a
        durable session's copy holds the publisher's ``receipt`` (``broker._acks``)."""
        if receipt is not None and qos in (QOS_1, QOS_2) and session.durable:
            receipt.taken()
        else:
            receipt = None
        if session.transitions.state != "connected":
            if not session.clean_session and qos in (QOS_1, QOS_2):
                self.to_backlog(session, broadcast["topic"], broadcast["data"], qos, receipt=receipt)
            return
        connection = session.connection
        if connection is not None:
            retain = False
            if broadcast.get("retain"):  # MQTT 5's retain as published
                options = options_of(session)
                retain = options is not None and keeps_retain(options, broadcast["topic"])
            self.send_to(connection, broadcast["topic"], broadcast["data"], qos, retain=retain, receipt=receipt)

    # ---- shared subscriptions (see broker._shared) ------------------------------------------

    def _deliver_shared(self, group: SharedGroup, message: Pending, fresh: bool = False, cap: int = QOS_2) -> bool:
        """Give one message to one member of ``group`` (``message.qos`` -1: the member's QoS,
        at most ``cap``, the publish's), or keep it in the group's queue; False if it was dropped.

        ``message.receipt`` (``broker._acks``) goes with a copy a durable member or a persistent
        group's queue holds; ``fresh``: the message is being routed now (else it moves from
        another holder, which counted it already)."""
        picked = group.pick(message.topic)
        receipt = message.receipt
        if picked is None:
            qos = message.qos if message.qos >= 0 else min(max(group.members.values(), default=QOS_0), cap)
            durable = qos != QOS_0 and group.persistent
            receipt = self._hold(receipt, durable, fresh)
            if qos == QOS_0:
                return False
            return self.shared.queue(group, Pending(message.topic, message.data, qos, group, receipt))
        session, qos = picked
        connection = session.connection
        assert connection is not None
        qos = message.qos if message.qos >= 0 else min(qos, cap)
        receipt = self._hold(receipt, qos != QOS_0 and session.durable, fresh)
        return self.send_to(connection, message.topic, message.data, qos, retain=False, origin=group, receipt=receipt)

    def _hold(self, receipt: Receipt | None, durable: bool, fresh: bool) -> Receipt | None:
        """The receipt a copy takes to a holder (None: not durable, the copy holds none)."""
        if receipt is None:
            return None
        if durable:
            if fresh:
                receipt.taken()
            return receipt
        if not fresh:  # a durable holder's copy moves to one that is not: the promise is lost
            self.lose(receipt)
        return None

    def lose(self, receipt: Receipt) -> None:
        """A durable copy of a withheld message was lost (its sink was discarded): end the
        publisher's connection, so that it sends the message again (``broker._acks``)."""
        receipt.sinks -= 1
        inflight = receipt.inflight
        if not inflight.closed and not self.stopping and isinstance(inflight.connection, Connection):
            logger.warning("%s: a durable copy of its message was lost; disconnecting it to resend", inflight.label)
            self.spawn(self.end_connection(inflight.connection, OfflineReason.CONNECTION_LOST))

    def _flush_shared(self, session: BrokerSession) -> None:
        """A member is (again) connected: its groups' queued messages go out."""
        for group in self.shared.member_groups(session):
            while group.pending and group.pick("") is not None:
                self._deliver_shared(group, group.pending.popleft())

    def hand_over_shared(self, session: BrokerSession) -> int:
        """``session`` lost its connection: give what its shared groups sent it and it did not
        acknowledge (or that waits in its backlog) to other members; how many moved."""
        if not session.shared_ids and not any(p.origin is not None for p in session.backlog):
            return 0
        moved: list[Pending] = []
        for packet_id, message in list(session.inflight_out.items()):
            tag = session.shared_ids.pop(packet_id, None)
            if tag is None or getattr(message, "pubrec_packet", None) is not None:
                continue  # its own subscription's, or a QoS 2 the member already received
            del session.inflight_out[packet_id]
            moved.append(
                Pending(tag[1], message.data, message.qos or QOS_1, tag[0], session.receipts.pop(packet_id, None))
            )
        session.shared_ids.clear()
        if any(p.origin is not None for p in session.backlog):
            moved.extend(p for p in session.backlog if p.origin is not None)
            session.backlog = deque(p for p in session.backlog if p.origin is None)
        for pending in moved:
            if isinstance(pending.origin, SharedGroup) and pending.origin.members:
                self._deliver_shared(pending.origin, pending)
        if moved:
            logger.info("%s left: %d shared message(s) handed to other members", session.client_id, len(moved))
        return len(moved)

    def leave_shared(self, session: BrokerSession) -> None:
        """``session`` is discarded: end its memberships (after :meth:`hand_over_shared`); the
        messages a group it was the last member of kept are lost with the group."""
        for group in self.shared.member_groups(session):
            if len(group.members) == 1:
                for message in group.pending:
                    if message.receipt is not None:
                        self.lose(message.receipt)
        self.shared.remove_session(session)

    def resume(self, connection: Connection) -> None:
        """Override: then the messages its shared groups kept while no member was connected."""
        super().resume(connection)
        self._flush_shared(connection.session)
        for handle in self.delayed_wills.pop(connection.key, []):  # [MQTT-3.1.3-9]: its will is not sent
            handle.cancel()
        expiring = self.expiring.pop(connection.key, None)
        if expiring is not None:  # its session lives on with this connection
            expiring.cancel()

    def forget_receipts(self, session: BrokerSession) -> None:
        """``session`` is discarded: the durable copies it held are lost (:meth:`lose`)."""
        held = [*session.receipts.values(), *(p.receipt for p in session.backlog if p.receipt is not None)]
        session.receipts.clear()
        for receipt in held:
            self.lose(receipt)

    def _grant_shared(self, session: BrokerSession, name: str, inner: str, qos: int) -> TopicFilter | None:
        """Join ``$share/<name>/<inner>``: the ACL of ``inner``; devices and gateways may not."""
        if session.mount is not None or session.gateway is not None:
            logger.info("refused shared subscription of %s: devices and gateways cannot share", session.client_id)
            return None
        topic_filter = self._authorize_filter(session, inner, qos)
        if topic_filter is None:
            return None
        group = self.shared.add(session, name, topic_filter, qos)
        if qos != QOS_0 and group.persistent:
            self._after_suback.append(
                lambda: self._flush_unsunk(
                    topic_filter, lambda message: self._deliver_shared(group, message, fresh=True)
                )
            )
        return topic_filter

    def _granted(self) -> None:
        """Send what the grants just made owe their subscribers (after the SUBACK)."""
        after, self._after_suback = self._after_suback, []
        for send in after:
            send()

    # ---- subscriptions ------------------------------------------------------------------

    async def _handle_subscription(
        self, client_session: Session, handler: BrokerProtocolHandler, subscribe_waiter: asyncio.Future[Any]
    ) -> None:
        """Override: ACL, mount and the per-session cap per filter; retained messages only for
        what was granted."""
        assert isinstance(client_session, BrokerSession)
        request = subscribe_waiter.result()
        codes, granted, capped = self._grant(client_session, request.topics)
        await handler.mqtt_acknowledge_subscription(request.packet_id, codes)
        self._granted()
        if capped:
            await self._report_capped(client_session, capped)
        connection = client_session.connection
        link = link_of(connection.writer) if connection is not None else None
        v5 = link.subscribing.pop(request.packet_id, None) if link is not None else None
        handling = {s.topic_filter: s.retain_handling for s in v5[0]} if v5 is not None else {}
        for raw_filter, topic_filter, qos, new in granted:
            if v5 is not None:
                self._keep_options(client_session, raw_filter, topic_filter, v5)
            retain_handling = handling.get(raw_filter, 0)  # MQTT 5: 1 only if new, 2 never
            if retain_handling == 0 or (retain_handling == 1 and new):
                self.send_retained(client_session, topic_filter, qos)

    @staticmethod
    def _keep_options(
        session: BrokerSession,
        raw_filter: str,
        topic_filter: TopicFilter,
        subscribe: tuple[list[mqtt5.Subscription], int | None],
    ) -> None:
        """Keep an MQTT 5 subscription's options and identifier (``broker._suboptions``)."""
        subscription = next(s for s in subscribe[0] if s.topic_filter == raw_filter)
        options = options_of(session, create=True)
        assert options is not None
        options[topic_filter.value] = SubscriptionOptions(
            topic_filter, TopicFilter(raw_filter), subscription.no_local, subscription.retain_as_published, subscribe[1]
        )

    def _grant(
        self, session: BrokerSession, requested: list[tuple[str, int]]
    ) -> tuple[list[int], list[tuple[str, TopicFilter, int, bool]], int]:
        """SUBACK codes, the filters granted (as written, as held, QoS, whether new), and how
        many new filters the cap refused.

        A filter the session already holds only changes its QoS; a new one beyond
        ``session.subscription_limit`` gets 0x80 before it is even parsed, so a SUBSCRIBE
        with thousands of filters costs a dictionary lookup for each one past the cap.
        """
        codes: list[int] = []
        granted: list[tuple[str, TopicFilter, int, bool]] = []
        held, capped = self.index.count(session) + self.shared.count(session), 0
        joined = False
        for raw_filter, qos in requested:
            try:
                shared = split_shared(raw_filter)
            except InvalidTopicError:
                codes.append(SUBACK_FAILURE)
                continue
            if shared is None:
                new = not self.index.holds(session, self.inside_filter(session, raw_filter))
            else:
                new = not self.shared.holds(session, shared[0], self.inside_filter(session, shared[1]))
            if new and held >= session.subscription_limit:
                capped += 1
                codes.append(SUBACK_FAILURE)
                continue
            if shared is not None:  # no retained messages for a shared subscription (as MQTT 5)
                joined = self._grant_shared(session, shared[0], shared[1], qos) is not None
                held += new and joined
                codes.append(qos if joined else SUBACK_FAILURE)
                continue
            topic_filter = self._authorize_filter(session, raw_filter, qos)
            if topic_filter is None:
                codes.append(SUBACK_FAILURE)
                continue
            self.index.add(topic_filter, session, qos)
            if qos != QOS_0 and session.durable and session.connection is not None:
                connection = session.connection
                self._flush_unsunk(
                    topic_filter,
                    lambda m, c=connection, q=qos: self._deliver_durable(c, m, q),
                )
            held += new
            codes.append(qos)
            granted.append((raw_filter, topic_filter, qos, new))
        if joined:
            self._flush_shared(session)
        return codes, granted, capped

    def _deliver_durable(self, connection: Connection, message: Pending, qos: int) -> None:
        """Give a waiting uplink to a durable session that just subscribed to it."""
        assert message.receipt is not None
        message.receipt.taken()
        qos = min(qos, message.qos)
        self.send_to(connection, message.topic, message.data, qos, retain=False, receipt=message.receipt)

    def inside_filter(self, session: BrokerSession, raw_filter: str) -> str:
        """The broker-side form of a filter the client wrote (``d/<id>/`` for a device)."""
        return session.mount.mount(raw_filter) if session.mount is not None else raw_filter

    async def _report_capped(self, session: BrokerSession, capped: int) -> None:
        limit = session.subscription_limit
        logger.info("refused %d filter(s) of %s: it holds its %d subscriptions", capped, session.client_id, limit)
        await self.send_diag(
            session, f"subscribe refused for {capped} filter(s): at most {limit} subscriptions per device"
        )

    def _authorize_filter(self, session: BrokerSession, raw_filter: str, qos: int) -> TopicFilter | None:
        if qos not in (QOS_0, QOS_1, QOS_2):
            return None
        if session.mount is not None:
            if not is_device_filter_allowed(raw_filter):
                logger.info("refused subscribe of %s to %r", session.client_id, raw_filter)
                return None
            raw_filter = session.mount.mount(raw_filter)
        try:
            return TopicFilter(raw_filter)
        except InvalidTopicError:
            return None

    async def _handle_unsubscription(
        self, client_session: Session, handler: BrokerProtocolHandler, unsubscribe_waiter: asyncio.Future[Any]
    ) -> None:
        """Override: unmount device filters and remove them from the index."""
        assert isinstance(client_session, BrokerSession)
        request = unsubscribe_waiter.result()
        for raw_filter in request.topics:
            try:
                shared = split_shared(raw_filter)
            except InvalidTopicError:
                continue
            topic_filter = self._authorize_filter(client_session, raw_filter if shared is None else shared[1], QOS_0)
            if topic_filter is None:
                continue
            if shared is None:
                self.index.remove(topic_filter, client_session)
                options = options_of(client_session)
                if options:
                    options.pop(topic_filter.value, None)
            else:
                self.shared.remove(client_session, shared[0], topic_filter)
        await handler.mqtt_acknowledge_unsubscription(request.packet_id)

    def send_retained(self, session: BrokerSession, topic_filter: TopicFilter, qos: int) -> None:
        """Send ``session`` the retained messages matching one of *its own* granted filters.

        Stock defect 1: amqtt sends retained messages matching any client's filters, to every
        connecting client, without a RECEIVE check. Here only the subscribing session gets
        them, only for its filter, and a device only ever under its own mount.
        """
        connection = session.connection
        if connection is None:
            return
        for topic, message in self.retained.match(topic_filter):
            if expired(message.data):  # MQTT 5's message expiry: a retained message ends with it
                continue
            if session.mount is not None and session.mount.unmount(topic) is None:
                continue
            if session.gateway is not None and session.gateway.outward(topic) is None:
                continue
            sent_qos = min(qos, message.qos if message.qos is not None else qos)
            self.send_to(connection, topic, message.data, sent_qos, retain=True)

    async def _publish_retained_messages_for_subscription(
        self, subscription: tuple[str, int], session: Session
    ) -> None:
        """Override (stock defect 1): never called by our flow; kept safe for amqtt callers."""
        if isinstance(session, BrokerSession):
            topic_filter = self._authorize_filter(session, subscription[0], subscription[1])
            if topic_filter is not None:
                self.send_retained(session, topic_filter, subscription[1])

    async def add_subscription(self, subscription: tuple[str, int], session: Session) -> int:
        """Override: amqtt's public hook for plugins now writes to the index (no plugins load)."""
        if not isinstance(session, BrokerSession):
            return SUBACK_FAILURE
        codes, _, _ = self._grant(session, [subscription])
        self._granted()
        return codes[0]

    async def _del_all_subscriptions(self, session: Session) -> None:
        """Override: O(own filters) removal instead of amqtt's scan of every filter."""
        if isinstance(session, BrokerSession):
            self.index.remove_subscriber(session)
            self.leave_shared(session)
            options = options_of(session)
            if options:
                options.clear()

    def _del_subscription(self, a_filter: str, session: Session) -> int:
        """Override: remove from the index (``a_filter`` is already a broker-side filter)."""
        if not isinstance(session, BrokerSession):
            return 0
        try:
            return int(self.index.remove(TopicFilter(a_filter), session))
        except InvalidTopicError:
            return 0
