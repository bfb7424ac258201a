"""MQTT 5.0 packets as values: decode a whole packet's bytes, encode a value to bytes.

A pure codec (no I/O, no amqtt): properties (§2.2.2), reason codes (§2.4), and CONNECT,
CONNACK, PUBLISH, PUBACK/PUBREC/PUBREL/PUBCOMP, SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK,
PINGREQ, PINGRESP, DISCONNECT and AUTH (§3). :func:`decode` takes one whole packet (fixed
header included) and raises :class:`MalformedPacket` (carrying reason 0x81 "Malformed
Packet" or 0x82 "Protocol Error") for anything the specification calls malformed: a truncated
field, a property not allowed in that packet, a property given twice that may appear once, a
bad UTF-8 string, reserved flags set. :func:`encode` writes the shortest form (a PUBACK with
reason 0 and no properties is the two bytes 3.1.1 also sends, as §3.4.2.1 allows).

Properties are a :class:`Properties` mapping from the specification's names in snake case
(``session_expiry_interval``, ``topic_alias``...) to values; ``user_property`` is a list of
(name, value) pairs and ``subscription_identifier`` a list of ints, as both may repeat.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

__all__ = [
    "PROPERTIES",
    "Auth",
    "Connack",
    "Connect",
    "Disconnect",
    "MalformedPacket",
    "Packet",
    "Pingreq",
    "Pingresp",
    "Properties",
    "PubAck",
    "Publish",
    "Reason",
    "Suback",
    "Subscribe",
    "Subscription",
    "Unsuback",
    "Unsubscribe",
    "decode",
    "encode",
    "encode_varint",
]

Properties = dict[str, Any]


class Reason(IntEnum):
    """MQTT 5 reason codes (§2.4) the broker uses."""

    SUCCESS = 0x00
    GRANTED_QOS_1 = 0x01
    GRANTED_QOS_2 = 0x02
    DISCONNECT_WITH_WILL = 0x04
    NO_MATCHING_SUBSCRIBERS = 0x10
    NO_SUBSCRIPTION_EXISTED = 0x11
    UNSPECIFIED_ERROR = 0x80
    MALFORMED_PACKET = 0x81
    PROTOCOL_ERROR = 0x82
    IMPLEMENTATION_SPECIFIC_ERROR = 0x83
    UNSUPPORTED_PROTOCOL_VERSION = 0x84
    CLIENT_IDENTIFIER_NOT_VALID = 0x85
    BAD_USER_NAME_OR_PASSWORD = 0x86
    NOT_AUTHORIZED = 0x87
    SERVER_UNAVAILABLE = 0x88
    SERVER_BUSY = 0x89
    BANNED = 0x8A
    SERVER_SHUTTING_DOWN = 0x8B
    BAD_AUTHENTICATION_METHOD = 0x8C
    KEEP_ALIVE_TIMEOUT = 0x8D
    SESSION_TAKEN_OVER = 0x8E
    TOPIC_FILTER_INVALID = 0x8F
    TOPIC_NAME_INVALID = 0x90
    PACKET_IDENTIFIER_IN_USE = 0x91
    PACKET_IDENTIFIER_NOT_FOUND = 0x92
    RECEIVE_MAXIMUM_EXCEEDED = 0x93
    TOPIC_ALIAS_INVALID = 0x94
    PACKET_TOO_LARGE = 0x95
    MESSAGE_RATE_TOO_HIGH = 0x96
    QUOTA_EXCEEDED = 0x97
    ADMINISTRATIVE_ACTION = 0x98
    PAYLOAD_FORMAT_INVALID = 0x99
    RETAIN_NOT_SUPPORTED = 0x9A
    QOS_NOT_SUPPORTED = 0x9B
    USE_ANOTHER_SERVER = 0x9C
    SERVER_MOVED = 0x9D
    SHARED_SUBSCRIPTIONS_NOT_SUPPORTED = 0x9E
    CONNECTION_RATE_EXCEEDED = 0x9F
    MAXIMUM_CONNECT_TIME = 0xA0
    SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED = 0xA1
    WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED = 0xA2


class MalformedPacket(ValueError):
    """A packet the specification says must close the connection, with the reason to give."""

    def __init__(self, message: str, reason: Reason = Reason.MALFORMED_PACKET) -> None:
        super().__init__(message)
        self.reason = reason


# packet types (first byte >> 4)
CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = 8, 9, 10, 11, 12, 13, 14, 15

_BYTE, _U16, _U32, _VARINT, _UTF8, _BINARY, _PAIR = range(7)
PROPERTIES: dict[int, tuple[str, int, frozenset[int]]] = {
    0x01: ("payload_format_indicator", _BYTE, frozenset({PUBLISH, 0})),
    0x02: ("message_expiry_interval", _U32, frozenset({PUBLISH, 0})),
    0x03: ("content_type", _UTF8, frozenset({PUBLISH, 0})),
    0x08: ("response_topic", _UTF8, frozenset({PUBLISH, 0})),
    0x09: ("correlation_data", _BINARY, frozenset({PUBLISH, 0})),
    0x0B: ("subscription_identifier", _VARINT, frozenset({PUBLISH, SUBSCRIBE})),
    0x11: ("session_expiry_interval", _U32, frozenset({CONNECT, CONNACK, DISCONNECT})),
    0x12: ("assigned_client_identifier", _UTF8, frozenset({CONNACK})),
    0x13: ("server_keep_alive", _U16, frozenset({CONNACK})),
    0x15: ("authentication_method", _UTF8, frozenset({CONNECT, CONNACK, AUTH})),
    0x16: ("authentication_data", _BINARY, frozenset({CONNECT, CONNACK, AUTH})),
    0x17: ("request_problem_information", _BYTE, frozenset({CONNECT})),
    0x18: ("will_delay_interval", _U32, frozenset({0})),
    0x19: ("request_response_information", _BYTE, frozenset({CONNECT})),
    0x1A: ("response_information", _UTF8, frozenset({CONNACK})),
    0x1C: ("server_reference", _UTF8, frozenset({CONNACK, DISCONNECT})),
    0x1F: (
        "reason_string",
        _UTF8,
        frozenset({CONNACK, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK, DISCONNECT, AUTH}),
    ),
    0x21: ("receive_maximum", _U16, frozenset({CONNECT, CONNACK})),
    0x22: ("topic_alias_maximum", _U16, frozenset({CONNECT, CONNACK})),
    0x23: ("topic_alias", _U16, frozenset({PUBLISH})),
    0x24: ("maximum_qos", _BYTE, frozenset({CONNACK})),
    0x25: ("retain_available", _BYTE, frozenset({CONNACK})),
    0x26: (
        "user_property",
        _PAIR,
        frozenset(
            {
                CONNECT,
                CONNACK,
                PUBLISH,
                0,
                PUBACK,
                PUBREC,
                PUBREL,
                PUBCOMP,
                SUBSCRIBE,
                SUBACK,
                UNSUBSCRIBE,
                UNSUBACK,
                DISCONNECT,
                AUTH,
            }
        ),
    ),
    0x27: ("maximum_packet_size", _U32, frozenset({CONNECT, CONNACK})),
    0x28: ("wildcard_subscription_available", _BYTE, frozenset({CONNACK})),
    0x29: ("subscription_identifier_available", _BYTE, frozenset({CONNACK})),
    0x2A: ("shared_subscription_available", _BYTE, frozenset({CONNACK})),
}
"""Identifier -> (name, type, packet types it may appear in; 0 = the will properties)."""
_IDS = {name: (ident, kind) for ident, (name, kind, _) in PROPERTIES.items()}
_REPEATABLE = frozenset({"user_property", "subscription_identifier"})
WILL = 0
"""The "packet type" of the will properties in :data:`PROPERTIES`."""


@dataclass(slots=True)
class Connect:
    client_id: str = ""
    clean_start: bool = True
    keep_alive: int = 0
    username: str | None = None
    password: bytes | None = None
    will_topic: str | None = None
    will_payload: bytes = b""
    will_qos: int = 0
    will_retain: bool = False
    will_properties: Properties = field(default_factory=dict)
    properties: Properties = field(default_factory=dict)


@dataclass(slots=True)
class Connack:
    reason: int = 0
    session_present: bool = False
    properties: Properties = field(default_factory=dict)


@dataclass(slots=True)
class Publish:
    topic: str
    payload: bytes = b""
    qos: int = 0
    retain: bool = False
    dup: bool = False
    packet_id: int | None = None
    properties: Properties = field(default_factory=dict)


@dataclass(slots=True)
class PubAck:
    """PUBACK, PUBREC, PUBREL or PUBCOMP (``kind`` is the packet type)."""

    packet_id: int
    reason: int = 0
    kind: int = PUBACK
    properties: Properties = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Subscription:
    topic_filter: str
    qos: int = 0
    no_local: bool = False
    retain_as_published: bool = False
    retain_handling: int = 0


@dataclass(slots=True)
class Subscribe:
    packet_id: int
    subscriptions: list[Subscription]
    properties: Properties = field(default_factory=dict)


@dataclass(slots=True)
class Suback:
    packet_id: int
    reasons: list[int]
    properties: Properties = field(default_factory=dict)


@dataclass(slots=True)
class Unsubscribe:
    packet_id: int
    topic_filters: list[str]
    properties: Properties = field(default_factory=dict)


@dataclass(slots=True)
class Unsuback:
    packet_id: int
    reasons: list[int]
    properties: Properties = field(default_factory=dict)


@dataclass(slots=True)
class Pingreq:
    pass


@dataclass(slots=True)
class Pingresp:
    pass


@dataclass(slots=True)
class Disconnect:
    reason: int = 0
    properties: Properties = field(default_factory=dict)


@dataclass(slots=True)
class Auth:
    reason: int = 0
    properties: Properties = field(default_factory=dict)


Packet = (
    Connect
    | Connack
    | Publish
    | PubAck
    | Subscribe
    | Suback
    | Unsubscribe
    | Unsuback
    | Pingreq
    | Pingresp
    | Disconnect
    | Auth
)


# ---------------------------------------------------------------- reading


class _Reader:
    __slots__ = ("data", "pos", "end")

    def __init__(self, data: bytes, pos: int, end: int) -> None:
        self.data, self.pos, self.end = data, pos, end

    def left(self) -> int:
        return self.end - self.pos

    def take(self, n: int) -> bytes:
        if n > self.left():
            raise MalformedPacket("packet ends inside a field")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return bytes(out)

    def byte(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def u32(self) -> int:
        return int.from_bytes(self.take(4), "big")

    def varint(self) -> int:
        value, shift = 0, 0
        for _ in range(4):
            byte = self.byte()
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
        raise MalformedPacket("variable byte integer longer than four bytes")

    def binary(self) -> bytes:
        return self.take(self.u16())

    def utf8(self) -> str:
        raw = self.binary()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedPacket("string is not UTF-8") from None
        if "\x00" in text:  # [MQTT-1.5.4-2]
            raise MalformedPacket("string holds U+0000")
        return text

    def properties(self, packet_type: int) -> Properties:
        length = self.varint()
        if length > self.left():
            raise MalformedPacket("property length runs past the packet")
        inner = _Reader(self.data, self.pos, self.pos + length)
        self.pos += length
        out: Properties = {}
        while inner.left():
            ident = inner.varint()
            spec = PROPERTIES.get(ident)
            if spec is None or packet_type not in spec[2]:
                raise MalformedPacket(f"property 0x{ident:02x} not allowed here", Reason.PROTOCOL_ERROR)
            name, kind, _ = spec
            value = inner.value(kind)
            if name in _REPEATABLE:
                out.setdefault(name, []).append(value)
            elif name in out:
                raise MalformedPacket(f"property {name} given twice", Reason.PROTOCOL_ERROR)
            else:
                out[name] = value
        return out

    def value(self, kind: int) -> Any:
        if kind == _BYTE:
            return self.byte()
        if kind == _U16:
            return self.u16()
        if kind == _U32:
            return self.u32()
        if kind == _VARINT:
            return self.varint()
        if kind == _UTF8:
            return self.utf8()
        if kind == _BINARY:
            return self.binary()
        return (self.utf8(), self.utf8())


def _split(frame: bytes) -> tuple[int, int, _Reader]:
    """(packet type, flags, a reader over the body) of a whole packet."""
    if len(frame) < 2:
        raise MalformedPacket("packet shorter than a fixed header")
    head = _Reader(frame, 1, len(frame))
    length = head.varint()
    if head.left() != length:
        raise MalformedPacket("remaining length does not match the packet")
    return frame[0] >> 4, frame[0] & 0x0F, head


def decode(frame: bytes) -> Packet:
    """The packet in ``frame`` (one whole MQTT 5 packet), or :class:`MalformedPacket`."""
    kind, flags, r = _split(frame)
    expected_flags = 0b0010 if kind in (PUBREL, SUBSCRIBE, UNSUBSCRIBE) else 0
    if kind != PUBLISH and flags != expected_flags:
        raise MalformedPacket(f"reserved flags 0x{flags:x} of packet type {kind}")
    decoder = _DECODERS.get(kind)
    if decoder is None:
        raise MalformedPacket(f"packet type {kind} is reserved")
    packet: Packet = decoder(r, flags, kind)
    if r.left():
        raise MalformedPacket("bytes after the end of the packet")
    return packet


def _connect(r: _Reader, _flags: int, _kind: int) -> Connect:
    if r.utf8() != "MQTT" or r.byte() != 5:
        raise MalformedPacket("not an MQTT 5 CONNECT", Reason.UNSUPPORTED_PROTOCOL_VERSION)
    bits = r.byte()
    if bits & 0x01:
        raise MalformedPacket("reserved CONNECT flag set")  # [MQTT-3.1.2-3]
    will_flag, will_qos, will_retain = bool(bits & 0x04), (bits >> 3) & 3, bool(bits & 0x20)
    if will_qos == 3 or (not will_flag and (will_qos or will_retain)):
        raise MalformedPacket("will QoS or retain without a will")
    packet = Connect(clean_start=bool(bits & 0x02), keep_alive=r.u16(), properties=r.properties(CONNECT))
    packet.client_id = r.utf8()
    if will_flag:
        packet.will_properties = r.properties(WILL)
        packet.will_topic, packet.will_payload = r.utf8(), r.binary()
        packet.will_qos, packet.will_retain = will_qos, will_retain
    if bits & 0x80:
        packet.username = r.utf8()
    if bits & 0x40:
        packet.password = r.binary()
    return packet


def _connack(r: _Reader, _flags: int, _kind: int) -> Connack:
    ack = r.byte()
    if ack & 0xFE:
        raise MalformedPacket("reserved CONNACK flags set")
    reason = r.byte()
    return Connack(reason, bool(ack & 1), r.properties(CONNACK) if r.left() else {})


def _publish(r: _Reader, flags: int, _kind: int) -> Publish:
    qos = (flags >> 1) & 3
    if qos == 3:
        raise MalformedPacket("PUBLISH with QoS 3")
    if qos == 0 and flags & 0x08:
        raise MalformedPacket("DUP set on a QoS 0 PUBLISH")  # [MQTT-3.3.1-2]
    topic = r.utf8()
    packet_id = r.u16() if qos else None
    if packet_id == 0:
        raise MalformedPacket("packet identifier 0")
    properties = r.properties(PUBLISH)
    return Publish(topic, r.take(r.left()), qos, bool(flags & 1), bool(flags & 8), packet_id, properties)


def _puback(r: _Reader, _flags: int, kind: int) -> PubAck:
    packet_id = r.u16()
    reason = r.byte() if r.left() else 0
    return PubAck(packet_id, reason, kind, r.properties(kind) if r.left() else {})


def _subscribe(r: _Reader, _flags: int, _kind: int) -> Subscribe:
    packet_id, properties = r.u16(), r.properties(SUBSCRIBE)
    subscriptions = []
    while r.left():
        topic_filter, options = r.utf8(), r.byte()
        if options & 0xC0 or (options & 3) == 3 or (options >> 4) & 3 == 3:
            raise MalformedPacket("reserved subscription options")  # [MQTT-3.8.3-5]
        subscriptions.append(
            Subscription(topic_filter, options & 3, bool(options & 4), bool(options & 8), (options >> 4) & 3)
        )
    if not subscriptions:
        raise MalformedPacket("SUBSCRIBE without a topic filter", Reason.PROTOCOL_ERROR)  # [MQTT-3.8.3-2]
    return Subscribe(packet_id, subscriptions, properties)


def _suback(r: _Reader, _flags: int, _kind: int) -> Suback:
    packet_id, properties = r.u16(), r.properties(SUBACK)
    return Suback(packet_id, list(r.take(r.left())), properties)


def _unsubscribe(r: _Reader, _flags: int, _kind: int) -> Unsubscribe:
    packet_id, properties = r.u16(), r.properties(UNSUBSCRIBE)
    filters = []
    while r.left():
        filters.append(r.utf8())
    if not filters:
        raise MalformedPacket("UNSUBSCRIBE without a topic filter", Reason.PROTOCOL_ERROR)  # [MQTT-3.10.3-2]
    return Unsubscribe(packet_id, filters, properties)


def _unsuback(r: _Reader, _flags: int, _kind: int) -> Unsuback:
    packet_id, properties = r.u16(), r.properties(UNSUBACK)
    return Unsuback(packet_id, list(r.take(r.left())), properties)


def _empty(packet: type[Pingreq] | type[Pingresp]) -> Any:
    def decode_empty(_r: _Reader, _flags: int, _kind: int) -> Pingreq | Pingresp:
        return packet()

    return decode_empty


def _disconnect(r: _Reader, _flags: int, _kind: int) -> Disconnect:
    reason = r.byte() if r.left() else 0
    return Disconnect(reason, r.properties(DISCONNECT) if r.left() else {})


def _auth(r: _Reader, _flags: int, _kind: int) -> Auth:
    reason = r.byte() if r.left() else 0
    return Auth(reason, r.properties(AUTH) if r.left() else {})


_DECODERS: dict[int, Any] = {
    CONNECT: _connect,
    CONNACK: _connack,
    PUBLISH: _publish,
    PUBACK: _puback,
    PUBREC: _puback,
    PUBREL: _puback,
    PUBCOMP: _puback,
    SUBSCRIBE: _subscribe,
    SUBACK: _suback,
    UNSUBSCRIBE: _unsubscribe,
    UNSUBACK: _unsuback,
    PINGREQ: _empty(Pingreq),
    PINGRESP: _empty(Pingresp),
    DISCONNECT: _disconnect,
    AUTH: _auth,
}


# ---------------------------------------------------------------- writing


def encode_varint(value: int) -> bytes:
    """MQTT's variable byte integer (§1.5.5), up to 268,435,455."""
    if not 0 <= value <= 268_435_455:
        raise ValueError(f"{value} does not fit a variable byte integer")
    out = bytearray()
    while True:
        value, byte = divmod(value, 128)
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _utf8(text: str) -> bytes:
    return _binary(text.encode("utf-8"))


def _binary(data: bytes) -> bytes:
    if len(data) > 0xFFFF:
        raise ValueError("string or binary data longer than 65,535 bytes")
    return len(data).to_bytes(2, "big") + data


def encode_properties(properties: Properties) -> bytes:
    """The property length and properties (§2.2.2), in the order given."""
    body = bytearray()
    for name, value in properties.items():
        ident, kind = _IDS[name]
        for item in value if name in _REPEATABLE else (value,):
            body += encode_varint(ident) + _value(kind, item)
    return encode_varint(len(body)) + bytes(body)


def _value(kind: int, value: Any) -> bytes:
    if kind == _BYTE:
        return bytes([value])
    if kind == _U16:
        return int(value).to_bytes(2, "big")
    if kind == _U32:
        return int(value).to_bytes(4, "big")
    if kind == _VARINT:
        return encode_varint(value)
    if kind == _UTF8:
        return _utf8(value)
    if kind == _BINARY:
        return _binary(bytes(value))
    return _utf8(value[0]) + _utf8(value[1])


def _packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + encode_varint(len(body)) + body


def encode(packet: Packet) -> bytes:
    """The bytes of ``packet``."""
    match packet:
        case Connect():
            return _encode_connect(packet)
        case Connack():
            body = bytes([int(packet.session_present), packet.reason]) + encode_properties(packet.properties)
            return _packet(0x20, body)
        case Publish():
            first = 0x30 | (packet.dup << 3) | (packet.qos << 1) | int(packet.retain)
            body = _utf8(packet.topic)
            if packet.qos:
                assert packet.packet_id is not None
                body += packet.packet_id.to_bytes(2, "big")
            return _packet(first, body + encode_properties(packet.properties) + packet.payload)
        case PubAck():
            first = (packet.kind << 4) | (0b0010 if packet.kind == PUBREL else 0)
            return _packet(first, _ack_body(packet.packet_id, packet.reason, packet.properties))
        case Subscribe():
            body = packet.packet_id.to_bytes(2, "big") + encode_properties(packet.properties)
            for s in packet.subscriptions:
                options = s.qos | (s.no_local << 2) | (s.retain_as_published << 3) | (s.retain_handling << 4)
                body += _utf8(s.topic_filter) + bytes([options])
            return _packet(0x82, body)
        case Suback() | Unsuback():
            first = 0x90 if isinstance(packet, Suback) else 0xB0
            body = packet.packet_id.to_bytes(2, "big") + encode_properties(packet.properties) + bytes(packet.reasons)
            return _packet(first, body)
        case Unsubscribe():
            body = packet.packet_id.to_bytes(2, "big") + encode_properties(packet.properties)
            return _packet(0xA2, body + b"".join(_utf8(f) for f in packet.topic_filters))
        case Pingreq():
            return b"\xc0\x00"
        case Pingresp():
            return b"\xd0\x00"
        case Disconnect() | Auth():
            first = 0xE0 if isinstance(packet, Disconnect) else 0xF0
            if packet.reason == 0 and not packet.properties:
                return bytes([first, 0])  # §3.14.2.1: reason 0 and no properties may be left out
            return _packet(first, bytes([packet.reason]) + encode_properties(packet.properties))
    raise TypeError(f"not an MQTT 5 packet: {packet!r}")


def _ack_body(packet_id: int, reason: int, properties: Properties) -> bytes:
    body = packet_id.to_bytes(2, "big")
    if reason == 0 and not properties:
        return body  # §3.4.2.1: the shortest form
    if not properties:
        return body + bytes([reason])
    return body + bytes([reason]) + encode_properties(properties)


def _encode_connect(packet: Connect) -> bytes:
    flags = (packet.clean_start << 1) | ((packet.username is not None) << 7) | ((packet.password is not None) << 6)
    if packet.will_topic is not None:
        flags |= 0x04 | (packet.will_qos << 3) | (packet.will_retain << 5)
    body = _utf8("MQTT") + bytes([5, flags]) + packet.keep_alive.to_bytes(2, "big")
    body += encode_properties(packet.properties) + _utf8(packet.client_id)
    if packet.will_topic is not None:
        body += encode_properties(packet.will_properties) + _utf8(packet.will_topic) + _binary(packet.will_payload)
    if packet.username is not None:
        body += _utf8(packet.username)
    if packet.password is not None:
        body += _binary(packet.password)
    return _packet(0x10, body)
