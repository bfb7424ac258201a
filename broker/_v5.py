"""MQTT 5 clients on the MQTT 3.1.1 broker: one :class:`V5Link` per connection translates.

amqtt 0.12.1 speaks MQTT 3.1.1 only, and the broker's sessions, routing, ACL and limits are
built on it. A v5 client is served by translating at the connection's edge, packet by packet
(the codec is :mod:`broker.mqtt5`):

- inbound (``FramedReader.translate``): each whole v5 packet becomes its 3.1.1 form before the
  broker sees it; topic aliases are resolved here (up to :data:`TOPIC_ALIAS_MAXIMUM`, announced
  in CONNACK); a malformed packet or an alias never set ends the connection, with a
  DISCONNECT carrying the reason (0x81, 0x82, 0x94).
- the broker's receive maximum (CONNACK ``receive_maximum``: :data:`RECEIVE_MAXIMUM`, or the
  connection's inflight limit with ``sink_acks``): a QoS 1/2 PUBLISH read while the client
  already has that many unanswered (no PUBACK or PUBCOMP written yet) ends the connection with
  DISCONNECT 0x93.
- outbound (``MeteredWriter.encode``): each 3.1.1 packet the broker writes gets its v5 form:
  CONNACK with the v5 reason (0x86 bad user name or password, 0x87 not authorized, 0x85,
  0x88, 0x84) and, when accepted, its properties; PUBLISH with an empty property list; SUBACK
  and UNSUBACK with theirs (UNSUBACK also gets one reason per filter); PUBACK of a publish
  the broker refused gets the reason (0x87 a device's topic outside Blynk's uplinks, 0x97 over
  the rate limit) instead of 3.1.1's silent success. QoS 1/2 PUBLISHes beyond the client's
  ``receive_maximum`` unacknowledged wait here, in order, until a PUBACK/PUBCOMP makes room;
  a PUBLISH above the client's ``maximum_packet_size`` is not sent (and, at QoS 1/2, stays
  unacknowledged in the session).
- at close (``MeteredWriter.last_words``): a DISCONNECT with the reason when the broker ends
  the connection (keep-alive, too large, malformed, taken over, rate, revoked, shutdown).

What 3.1.1's sessions cannot carry is said, not faked: a device's (and a gateway's) session is
always clean, so CONNACK answers ``session_expiry_interval`` 0 to a client that asked for
more; for other logins clean start decides whether a stored session is resumed and an expiry
above 0 keeps the session after the connection, see :meth:`V5Link.adopt`: the broker discards
it that many seconds after the connection ends (:data:`NEVER_EXPIRES`: never, while it runs)
unless a new connection takes it first (``RoutingBroker.count_down``); the client's DISCONNECT
may change the interval, but not from 0 (DISCONNECT 0x82). A SUBSCRIBE's options and identifier are kept on the
link until the broker handles it (``RoutingBroker._handle_subscription``, ``broker._suboptions``);
a PUBLISH to the client carries the identifiers of its session's filters that match it.

A PUBLISH's properties for its receivers (user properties, payload format indicator, content
type, response topic, correlation data, message expiry) travel with its payload: the inbound
translation keeps them on the link, keyed by packet id (QoS 1/2) or in arrival order (QoS 0),
and :meth:`V5Link.carry` (called as the broker starts handling the message) swaps the message's
payload for a :class:`Carried`, a ``bytes`` that also holds them. Everything the broker keeps
(broadcasts, backlogs, in-flight records, retained messages, wills) keeps that object, so an
MQTT 5 receiver's outbound translation finds them again (:meth:`V5Link.sending` for QoS 0, the
session's in-flight record for QoS 1/2); MQTT 3.1.1 receivers get the same bytes as before.
The message expiry is a deadline: a copy that has not started on its way to a receiver by then
is dropped (:func:`expired`), and one that goes gets the interval that is left. A will keeps its
properties, its expiry (counted from its publication) and its delay the same way
(:meth:`V5Link.will_payload`); the broker publishes it after the delay unless the session is
connected again first (``RoutingBroker._later``). A client that takes topic aliases gets one for
each of the first topics it is sent (as many as it takes; the rest in full), set by the first
PUBLISH that goes out to that topic. A client asking for a keep-alive above
:data:`SERVER_KEEP_ALIVE` seconds, or for none, is held to that one and told so in CONNACK.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from broker import mqtt5
from broker._framing import FrameFailure
from broker._suboptions import identifiers, options_of
from broker.identity import DeviceIdentity, GatewayIdentity, Identity
from broker.mqtt5 import MalformedPacket, Reason
from broker.presence import OfflineReason
from broker.topics import is_uplink_topic

__all__ = [
    "NEVER_EXPIRES",
    "RECEIVE_MAXIMUM",
    "SERVER_KEEP_ALIVE",
    "TOPIC_ALIAS_MAXIMUM",
    "Carried",
    "V5Link",
    "carried",
    "connect_reason",
    "expired",
    "link_of",
    "published_will",
]

logger = logging.getLogger(__name__)

TOPIC_ALIAS_MAXIMUM = 16
"""Topic aliases a client may set towards the broker (CONNACK ``topic_alias_maximum``)."""
LINGER = 1.0
"""Seconds a connection ended for going over the receive maximum stays open after the DISCONNECT."""
RECEIVE_MAXIMUM = 100
"""QoS 1/2 PUBLISHes a client may have unacknowledged at once (CONNACK ``receive_maximum``), when
its connection has no withheld-acknowledgement limit (``BrokerSettings.sink_acks``, broker._acks)."""
NEVER_EXPIRES = 0xFFFFFFFF
"""The session expiry interval of a session kept for as long as the broker runs (§3.1.2.11.2)."""
SERVER_KEEP_ALIVE = 60
"""The longest keep-alive an MQTT 5 client gets, in seconds: one asking for more, or for none,
is told this one in CONNACK (``server_keep_alive``) and held to it."""

_CONNACK_REASONS = {
    0: Reason.SUCCESS,
    1: Reason.UNSUPPORTED_PROTOCOL_VERSION,
    2: Reason.CLIENT_IDENTIFIER_NOT_VALID,
    3: Reason.SERVER_UNAVAILABLE,
    4: Reason.BAD_USER_NAME_OR_PASSWORD,
    5: Reason.NOT_AUTHORIZED,
}
"""MQTT 3.1.1 CONNACK return code -> MQTT 5 reason code (§3.2.2.2)."""


_END_REASONS = {
    OfflineReason.REPLACED: Reason.SESSION_TAKEN_OVER,
    OfflineReason.RATE_LIMITED: Reason.MESSAGE_RATE_TOO_HIGH,
    OfflineReason.SLOW_CONSUMER: Reason.QUOTA_EXCEEDED,
    OfflineReason.SHUTDOWN: Reason.SERVER_SHUTTING_DOWN,
    OfflineReason.REVOKED: Reason.NOT_AUTHORIZED,
    OfflineReason.KICKED: Reason.ADMINISTRATIVE_ACTION,
    OfflineReason.PROTOCOL_ERROR: Reason.PROTOCOL_ERROR,
}
"""Why the broker ended a connection -> the reason of its DISCONNECT to an MQTT 5 client."""
_FAILURE_REASONS = {
    FrameFailure.KEEPALIVE_TIMEOUT: Reason.KEEP_ALIVE_TIMEOUT,
    FrameFailure.PACKET_TOO_LARGE: Reason.PACKET_TOO_LARGE,
    FrameFailure.MALFORMED: Reason.MALFORMED_PACKET,
}


FORWARDED = (
    "payload_format_indicator",
    "content_type",
    "response_topic",
    "correlation_data",
    "user_property",
)
"""PUBLISH (and will) properties passed on to receivers as they came (§3.3.2.3; the message
expiry interval is passed on counted down; topic aliases and subscription identifiers belong to
one connection)."""


class Carried(bytes):
    """A payload with the MQTT 5 properties its PUBLISH (or will) gave its receivers."""

    properties: mqtt5.Properties
    """The :data:`FORWARDED` properties, in the order they came."""
    expires: float | None
    """``time.monotonic()`` past which the message is not delivered (message expiry), or None."""
    will: bool = False
    """A will, kept with its session until it is published (:func:`published_will`)."""
    expiry: int | None = None
    """A will's message expiry interval: it starts when the will is published."""
    delay: int = 0
    """A will's delay: seconds between the end of the connection and its publication."""
    owner: str | None = None
    """The broker's key of the session a delayed will belongs to (a new connection to it
    cancels the will, [MQTT-3.1.3-9])."""


def carried(payload: bytes | bytearray, properties: Mapping[str, Any]) -> bytes | bytearray:
    """``payload``, as a :class:`Carried` if ``properties`` hold any to pass on."""
    forwarded = {name: properties[name] for name in FORWARDED if name in properties}
    expiry = properties.get("message_expiry_interval")
    if not forwarded and expiry is None:
        return payload
    data = Carried(payload)
    data.properties = forwarded
    data.expires = None if expiry is None else time.monotonic() + expiry
    return data


def published_will(will: Carried) -> Carried:
    """The message a will becomes as it is published: its expiry counted from now."""
    data = Carried(will)
    data.properties = will.properties
    data.expires = None if will.expiry is None else time.monotonic() + will.expiry
    return data


def expired(data: bytes | bytearray) -> bool:
    """Whether a message's expiry interval has passed (it must not start towards a receiver)."""
    return isinstance(data, Carried) and data.expires is not None and data.expires <= time.monotonic()


def _outgoing_properties(data: object) -> mqtt5.Properties:
    """The properties an MQTT 5 receiver gets with ``data`` (the expiry interval still left)."""
    if not isinstance(data, Carried):
        return {}
    if data.expires is None:
        return data.properties
    left = max(1, math.ceil(data.expires - time.monotonic()))
    return {**data.properties, "message_expiry_interval": left}


class _Message(Protocol):
    """amqtt's ``IncomingApplicationMessage``, as :meth:`V5Link.carry` uses it."""

    topic: str
    qos: int | None
    packet_id: int | None
    data: bytes | bytearray


class _Reader(Protocol):
    max_packet_size: int
    translate: Callable[[bytes], bytes | None] | None
    failure: FrameFailure | None


class _Session(Protocol):
    clean_session: bool | None  # amqtt's Session types it so

    @property
    def inflight_out(self) -> Mapping[int, Any]: ...  # packet id -> amqtt's OutgoingApplicationMessage


class _Connection(Protocol):
    end_reason: OfflineReason | None
    key: str

    @property
    def session(self) -> _Session: ...


class _Writer(Protocol):
    encode: Callable[[bytes | bytearray], bytes | bytearray] | None
    last_words: Callable[[], bytes] | None
    linger: float

    def write(self, data: bytes | bytearray) -> None: ...


_LINKS: weakref.WeakKeyDictionary[object, V5Link] = weakref.WeakKeyDictionary()


def link_of(writer: object) -> V5Link | None:
    """The link of the MQTT 5 connection writing to ``writer``; ``None`` for MQTT 3.1.1."""
    return _LINKS.get(writer)


def connect_reason(code: int) -> int:
    """The MQTT 5 CONNACK reason of a 3.1.1 CONNACK return code."""
    return _CONNACK_REASONS.get(code, Reason.UNSPECIFIED_ERROR)


def _varint(frame: bytes, index: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = frame[index]
        value |= (byte & 0x7F) << shift
        index += 1
        if not byte & 0x80:
            return value, index
        shift += 7


def _frame(first: int, body: bytes) -> bytes:
    return bytes([first]) + mqtt5.encode_varint(len(body)) + body


@dataclass(slots=True)
class V5Link:
    """The translation state of one MQTT 5 connection."""

    connect: mqtt5.Connect
    """The client's CONNECT, as decoded."""
    device: bool = False
    """A device login (mounted at ``d/<id>/``): Blynk's uplink ACL applies to its publishes."""
    forced_clean: bool = False
    """A device's or gateway's session is always clean (Blynk), whatever it asked for."""
    reader: _Reader | None = None
    """The connection's reader (its ``max_packet_size`` is CONNACK's ``maximum_packet_size``)."""
    connection: _Connection | None = None
    """The broker's connection, once open (its ``end_reason`` says why the broker ended it)."""
    assigned_id: str | None = None
    asked_keep_alive: int = 0
    """The keep-alive the client asked for (CONNECT; ``connect.keep_alive`` is what it got)."""
    aliases: dict[int, str] = field(default_factory=dict)
    refused: dict[int, int] = field(default_factory=dict)
    """Packet id of a QoS 1/2 PUBLISH the broker refused -> the reason its PUBACK carries."""
    unsubscribes: dict[int, int] = field(default_factory=dict)
    """Packet id of an UNSUBSCRIBE -> how many filters it named (UNSUBACK has a reason each)."""
    failure: Reason | None = None
    """Why the connection is ending, when the client broke the protocol."""
    writer: _Writer | None = None
    in_flight: set[int] = field(default_factory=set)
    """Packet ids of QoS 1/2 PUBLISHes sent and not yet acknowledged (PUBACK, PUBCOMP)."""
    held: deque[bytes] = field(default_factory=deque)
    """QoS 1/2 PUBLISHes (3.1.1 form) waiting for room under the client's receive maximum."""
    releasing: bool = False
    will: Carried | None = None
    """The will's payload, when it carries properties or a delay."""
    arriving: dict[int, mqtt5.Properties] = field(default_factory=dict)
    """Packet id of a QoS 1/2 PUBLISH read and not yet handled by the broker -> its properties."""
    arriving_0: deque[tuple[str, bytes, mqtt5.Properties]] = field(default_factory=deque)
    """QoS 0 PUBLISHes read and not yet handled by the broker, in order: topic, payload, properties."""
    subscribing: dict[int, tuple[list[mqtt5.Subscription], int | None]] = field(default_factory=dict)
    """Packet id of a SUBSCRIBE not yet handled -> its subscriptions' options and identifier."""
    sent_aliases: dict[bytes, int] = field(default_factory=dict)
    """Topic (UTF-8) -> the alias the broker set for it on this connection (server topic aliases)."""
    leaving_0: deque[bytes | bytearray] = field(default_factory=deque)
    """Payloads of the QoS 0 PUBLISHes the broker is sending, in order (:meth:`sending`)."""
    receive_limit: int = RECEIVE_MAXIMUM
    """The broker's receive maximum for this client (CONNACK; the connection's inflight limit
    with ``sink_acks``, set by ``MqttBroker._new_connection``)."""
    receiving: set[int] = field(default_factory=set)
    """Packet ids of the client's QoS 1/2 PUBLISHes not yet answered (PUBACK, PUBCOMP)."""
    expiry_set: int | None = None
    """The session expiry interval the client's DISCONNECT set (None: its CONNECT's holds)."""

    @classmethod
    def start(cls, connect: mqtt5.Connect) -> V5Link:
        """The link of a client whose CONNECT was ``connect`` (a client id is assigned if empty)."""
        link = cls(connect)
        if not connect.client_id:
            link.assigned_id = f"auto-{uuid.uuid4().hex}"
        link.asked_keep_alive = connect.keep_alive
        if not 0 < connect.keep_alive <= SERVER_KEEP_ALIVE:  # the broker holds it to this one
            connect.keep_alive = SERVER_KEEP_ALIVE
        return link

    @property
    def client_id(self) -> str:
        """The client id the session is known by (the assigned one if it sent none)."""
        return self.assigned_id or self.connect.client_id

    @property
    def session_expiry(self) -> int:
        """The session expiry interval the client asked for (0: none)."""
        return int(self.connect.properties.get("session_expiry_interval", 0))

    def attach(self, reader: _Reader, writer: _Writer) -> None:
        """Translate what ``reader`` reads and ``writer`` writes from now on."""
        self.reader, self.writer = reader, writer
        reader.translate = self.inbound
        writer.encode = self.outbound
        writer.last_words = self.last_words
        _LINKS[writer] = self

    def bind(self, identity: Identity) -> None:
        """Who logged in: a device's publishes are checked against Blynk's uplinks, and a
        device's or gateway's session is always clean."""
        self.device = isinstance(identity, DeviceIdentity)
        self.forced_clean = self.device or isinstance(identity, GatewayIdentity)

    @property
    def keeps_session(self) -> bool:
        """Whether the session outlives the connection (a session expiry above 0)."""
        return self.kept_for > 0

    @property
    def kept_for(self) -> int:
        """Seconds the session outlives the connection: the CONNECT's session expiry, or the one
        its DISCONNECT set; 0 for a device or gateway (:data:`NEVER_EXPIRES`: while the broker runs)."""
        if self.forced_clean:
            return 0
        return self.session_expiry if self.expiry_set is None else self.expiry_set

    def adopt(self, connection: _Connection) -> None:
        """The broker's connection is open. MQTT 5 separates what 3.1.1's clean session joins:
        the CONNECT's clean start chose whether the stored session was resumed (the request's
        ``clean_session``); the session expiry chooses whether it is kept after this one."""
        self.connection = connection
        connection.session.clean_session = not self.keeps_session
        if self.will is not None:
            self.will.owner = connection.key

    def last_words(self) -> bytes:
        """What the client is told as the connection closes: a DISCONNECT with the reason when
        the broker ends it (keep-alive, malformed, too large, replaced, rate limited...);
        nothing when the client left, was refused at CONNACK, or the socket broke."""
        end = self.connection.end_reason if self.connection is not None else None
        failure = self.reader.failure if self.reader is not None else None
        reason = _END_REASONS.get(end) if end is not None else None
        if reason is None and failure is not None:
            reason = (
                self.failure if failure is FrameFailure.MALFORMED and self.failure else _FAILURE_REASONS.get(failure)
            )
        if reason == Reason.RECEIVE_MAXIMUM_EXCEEDED and self.writer is not None:
            self.writer.linger = LINGER  # it answers the PUBRECs before the DISCONNECT (Paho's test does)
        return self.goodbye(reason) if reason is not None else b""

    # ---- client -> broker -------------------------------------------------------------

    def inbound(self, frame: bytes) -> bytes | None:
        """The 3.1.1 form of one whole v5 packet; MalformedPacket ends the connection."""
        try:
            packet = mqtt5.decode(frame)
        except MalformedPacket as exc:
            self.failure = exc.reason
            raise
        match packet:
            case mqtt5.Publish():
                return self._publish_in(packet)
            case mqtt5.PubAck():
                if packet.kind in (mqtt5.PUBACK, mqtt5.PUBCOMP) or packet.reason >= 0x80:
                    self._acknowledged(packet.packet_id)
                return _frame(frame[0], packet.packet_id.to_bytes(2, "big"))
            case mqtt5.Subscribe():
                identifier = packet.properties.get("subscription_identifier", [])
                if len(identifier) > 1 or 0 in identifier:  # §3.8.2.1.2
                    self.failure = Reason.PROTOCOL_ERROR
                    raise MalformedPacket("subscription identifier given twice or 0", Reason.PROTOCOL_ERROR)
                self.subscribing[packet.packet_id] = (packet.subscriptions, identifier[0] if identifier else None)
                body = packet.packet_id.to_bytes(2, "big")
                for s in packet.subscriptions:
                    topic = s.topic_filter.encode()
                    body += len(topic).to_bytes(2, "big") + topic + bytes([s.qos])
                return _frame(0x82, body)
            case mqtt5.Unsubscribe():
                self.unsubscribes[packet.packet_id] = len(packet.topic_filters)
                body = packet.packet_id.to_bytes(2, "big")
                for f in packet.topic_filters:
                    topic = f.encode()
                    body += len(topic).to_bytes(2, "big") + topic
                return _frame(0xA2, body)
            case mqtt5.Pingreq():
                return b"\xc0\x00"
            case mqtt5.Disconnect():
                expiry = packet.properties.get("session_expiry_interval")
                if expiry is not None:
                    if expiry and not self.session_expiry:  # [MQTT-3.14.2-2]
                        self.failure = Reason.PROTOCOL_ERROR
                        raise MalformedPacket("session expiry set by DISCONNECT after 0", Reason.PROTOCOL_ERROR)
                    self.expiry_set = expiry
                    if self.connection is not None and not self.forced_clean:
                        self.connection.session.clean_session = expiry == 0  # 0 ends it now
                return b"\xe0\x00"
        self.failure = Reason.PROTOCOL_ERROR  # CONNECT again, AUTH (no enhanced auth), server packets
        raise MalformedPacket(f"{type(packet).__name__} from a client", Reason.PROTOCOL_ERROR)

    def _publish_in(self, packet: mqtt5.Publish) -> bytes:
        if packet.qos:
            assert packet.packet_id is not None
            if packet.packet_id not in self.receiving and len(self.receiving) >= self.receive_limit:
                self.failure = Reason.RECEIVE_MAXIMUM_EXCEEDED  # [MQTT-3.3.4-9]
                raise MalformedPacket(f"over {self.receive_limit} unanswered", Reason.RECEIVE_MAXIMUM_EXCEEDED)
            self.receiving.add(packet.packet_id)
        topic = packet.topic
        alias = packet.properties.get("topic_alias")
        if alias is not None:
            if not 0 < alias <= TOPIC_ALIAS_MAXIMUM:
                self.failure = Reason.TOPIC_ALIAS_INVALID
                raise MalformedPacket(f"topic alias {alias}", Reason.TOPIC_ALIAS_INVALID)
            if topic:
                self.aliases[alias] = topic
            elif alias in self.aliases:
                topic = self.aliases[alias]
            else:
                self.failure = Reason.PROTOCOL_ERROR
                raise MalformedPacket(f"topic alias {alias} was never set", Reason.PROTOCOL_ERROR)  # [MQTT-3.3.4-3]
        elif not topic:
            self.failure = Reason.PROTOCOL_ERROR
            raise MalformedPacket("PUBLISH without a topic or alias", Reason.PROTOCOL_ERROR)
        if packet.qos and self.device and not is_uplink_topic(topic):
            assert packet.packet_id is not None
            self.refused[packet.packet_id] = Reason.NOT_AUTHORIZED
        if packet.qos:
            assert packet.packet_id is not None
            if packet.properties:
                self.arriving[packet.packet_id] = packet.properties
            else:
                self.arriving.pop(packet.packet_id, None)
        else:
            self.arriving_0.append((topic, packet.payload, packet.properties))
        encoded = topic.encode()
        body = len(encoded).to_bytes(2, "big") + encoded
        if packet.qos:
            assert packet.packet_id is not None
            body += packet.packet_id.to_bytes(2, "big")
        first = 0x30 | (packet.dup << 3) | (packet.qos << 1) | int(packet.retain)
        return _frame(first, body + packet.payload)

    @property
    def client_max_packet_size(self) -> int:
        """The largest packet the client accepts (CONNECT ``maximum_packet_size``; no limit if unset)."""
        return int(self.connect.properties.get("maximum_packet_size", 268_435_460))

    @property
    def client_alias_maximum(self) -> int:
        """Topic aliases the client takes from the broker (CONNECT ``topic_alias_maximum``, default 0)."""
        return int(self.connect.properties.get("topic_alias_maximum", 0))

    @property
    def receive_maximum(self) -> int:
        """QoS 1/2 PUBLISHes the client takes unacknowledged at once (CONNECT, default 65,535)."""
        return int(self.connect.properties.get("receive_maximum", 65_535))

    def _acknowledged(self, packet_id: int) -> None:
        """A QoS 1/2 PUBLISH to the client is done: send what waited for its room."""
        self.in_flight.discard(packet_id)
        while self.held and len(self.in_flight) < self.receive_maximum and self.writer is not None:
            self.releasing = True  # it goes ahead of those still held (order is kept)
            try:
                self.writer.write(self.held.popleft())  # translated (and counted) on its way out
            finally:
                self.releasing = False

    def carry(self, message: _Message) -> None:
        """The broker starts handling ``message``, read from this client: its payload becomes a
        :class:`Carried` if its PUBLISH had properties to pass on."""
        properties: mqtt5.Properties | None = None
        if message.qos:
            if message.packet_id is not None:
                properties = self.arriving.pop(message.packet_id, None)
        else:  # in order; one the broker dropped unhandled (rate limit) is passed over
            while self.arriving_0:
                topic, payload, found = self.arriving_0.popleft()
                if topic == message.topic and payload == message.data:
                    properties = found
                    break
        if properties:
            message.data = carried(message.data, properties)

    def will_payload(self) -> bytes | bytearray:
        """The will's payload, carrying its properties, expiry and delay (:func:`published_will`)."""
        properties = self.connect.will_properties
        forwarded = {name: properties[name] for name in FORWARDED if name in properties}
        expiry, delay = properties.get("message_expiry_interval"), self.will_delay
        if not forwarded and expiry is None and not delay:
            return self.connect.will_payload
        will = Carried(self.connect.will_payload)
        will.properties, will.expires, will.will, will.expiry, will.delay = forwarded, None, True, expiry, delay
        self.will = will
        return will

    @property
    def will_delay(self) -> int:
        """Seconds the will waits after the connection ends: the CONNECT's will delay, but no
        longer than the session lives after it (0 for a session that ends with the connection)."""
        asked = int(self.connect.will_properties.get("will_delay_interval", 0))
        return min(asked, self.kept_for) if self.keeps_session else 0

    def sending(self, data: bytes | bytearray) -> None:
        """The broker queued a QoS 0 PUBLISH of ``data`` to this client: its outbound form
        will carry ``data``'s properties (QoS 0 PUBLISHes leave in the order they are queued)."""
        self.leaving_0.append(data)

    def refuse(self, packet_id: int, reason: Reason) -> None:
        """The PUBACK of ``packet_id`` carries ``reason`` (the broker dropped that publish)."""
        self.refused[packet_id] = reason

    # ---- broker -> client -------------------------------------------------------------

    def outbound(self, data: bytes | bytearray) -> bytes:
        """The v5 form of what the broker writes (whole 3.1.1 packets, one or more)."""
        out = bytearray()
        index, data = 0, bytes(data)
        while index < len(data):
            length, body_at = _varint(data, index + 1)
            end = body_at + length
            first = data[index]
            if first >> 4 != mqtt5.PUBLISH:
                out += self._packet_out(first, data[body_at:end])
                index = end
                continue
            packet, alias = self._publish_out(first, data[body_at:end])
            if len(packet) > self.client_max_packet_size:  # [MQTT-3.1.2-24]: never above what it accepts
                logger.info("not sending %d bytes to %s: above its maximum packet size", len(packet), self.client_id)
            elif first & 0x06 and not self._room(data[body_at:end]):
                self.held.append(data[index:end])  # over the client's receive maximum: later
            else:
                out += packet
                if alias is not None:  # set by this packet: later ones to its topic may leave it out
                    self.sent_aliases[alias[0]] = alias[1]
            index = end
        return bytes(out)

    def _publish_out(self, first: int, body: bytes) -> tuple[bytes, tuple[bytes, int] | None]:
        """The v5 PUBLISH of a 3.1.1 one, with the properties its payload carries and a topic
        alias (§3.3.2.3.4) when the client takes them, and the alias it sets if it is sent."""
        topic_end = 2 + int.from_bytes(body[:2], "big")
        payload_at = topic_end + (2 if first & 0x06 else 0)
        payload = body[payload_at:]
        source: object = None
        if first & 0x06:
            session = self.connection.session if self.connection is not None else None
            message = session.inflight_out.get(int.from_bytes(body[topic_end:payload_at], "big")) if session else None
            source = getattr(message, "data", None)
        else:
            while self.leaving_0:
                queued = self.leaving_0.popleft()
                if queued == payload:
                    source = queued
                    break
        properties = _outgoing_properties(source)
        session = self.connection.session if self.connection is not None else None
        options = options_of(session) if session is not None else None
        if options:
            found = identifiers(options, body[2:topic_end].decode())
            if found:
                properties = {**properties, "subscription_identifier": found}
        head, new = body[:payload_at], None
        limit = self.client_alias_maximum
        if limit:
            topic = body[2:topic_end]
            alias = self.sent_aliases.get(topic)
            if alias is not None:  # set before on this connection: the topic is left out
                head = b"\x00\x00" + body[topic_end:payload_at]
            elif len(self.sent_aliases) < limit:  # the first ones get an alias, for the connection's life
                alias = len(self.sent_aliases) + 1
                new = (topic, alias)
            if alias is not None:
                properties = {**properties, "topic_alias": alias}
        return _frame(first, head + mqtt5.encode_properties(properties) + payload), new

    def _room(self, body: bytes) -> bool:
        """Whether a QoS 1/2 PUBLISH (``body``) may go now; if so it counts as in flight."""
        topic_end = 2 + int.from_bytes(body[:2], "big")
        packet_id = int.from_bytes(body[topic_end : topic_end + 2], "big")
        if packet_id in self.in_flight:
            return True  # a resend (DUP) of one already counted
        if len(self.in_flight) >= self.receive_maximum or (self.held and not self.releasing):
            return False
        self.in_flight.add(packet_id)
        return True

    def _packet_out(self, first: int, body: bytes) -> bytes:
        kind = first >> 4
        if kind in (mqtt5.PUBACK, mqtt5.PUBCOMP):  # a PUBLISH from the client is answered
            self.receiving.discard(int.from_bytes(body[:2], "big"))
        if kind == mqtt5.PUBACK and len(body) == 2:
            reason = self.refused.pop(int.from_bytes(body, "big"), 0)
            return _frame(first, body + bytes([reason])) if reason else _frame(first, body)
        if kind == mqtt5.SUBACK:
            return _frame(first, body[:2] + b"\x00" + body[2:])
        if kind == mqtt5.UNSUBACK:
            count = self.unsubscribes.pop(int.from_bytes(body[:2], "big"), 1)
            return _frame(first, body[:2] + b"\x00" + b"\x00" * count)
        if kind == mqtt5.CONNACK:
            return mqtt5.encode(self.connack(body[0] & 1, body[1]))
        return _frame(first, body)

    def connack(self, session_present: int, code: int) -> mqtt5.Connack:
        """The v5 CONNACK of a 3.1.1 CONNACK (``code``), with the properties an accepted client needs."""
        reason = connect_reason(code)
        if reason != Reason.SUCCESS:
            return mqtt5.Connack(reason)
        properties: mqtt5.Properties = {}
        if self.assigned_id is not None:
            properties["assigned_client_identifier"] = self.assigned_id
        if self.connect.keep_alive != self.asked_keep_alive:
            properties["server_keep_alive"] = self.connect.keep_alive
        if self.forced_clean and self.session_expiry:
            properties["session_expiry_interval"] = 0  # the broker keeps no session for it
        properties["topic_alias_maximum"] = TOPIC_ALIAS_MAXIMUM
        properties["receive_maximum"] = self.receive_limit
        if self.reader is not None:  # the limit is on the remaining length; v5's counts the fixed header
            properties["maximum_packet_size"] = self.reader.max_packet_size + 5
        return mqtt5.Connack(0, bool(session_present), properties)

    def goodbye(self, reason: int, text: str = "") -> bytes:
        """A server-sent DISCONNECT with ``reason`` (and a reason string when given)."""
        properties: mqtt5.Properties = {"reason_string": text} if text else {}
        return mqtt5.encode(mqtt5.Disconnect(reason, properties))
