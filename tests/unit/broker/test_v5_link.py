"""broker/_v5.py's translation of one MQTT 5 connection, packet by packet, without a socket:
what the broker (MQTT 3.1.1 inside) reads from a v5 client and what the client gets back."""

from __future__ import annotations

import pytest

from broker import mqtt5
from broker._framing import FrameFailure
from broker._v5 import TOPIC_ALIAS_MAXIMUM, Carried, V5Link, carried, expired
from broker.identity import DeviceIdentity, ServiceIdentity
from broker.mqtt5 import MalformedPacket, Reason
from broker.presence import OfflineReason


class Reader:
    def __init__(self) -> None:
        self.max_packet_size = 1024
        self.translate = None
        self.failure: FrameFailure | None = None


class Writer:
    def __init__(self) -> None:
        self.encode = None
        self.last_words = None
        self.written: list[bytes] = []

    def write(self, data: bytes | bytearray) -> None:
        self.written.append(bytes(self.encode(data) if self.encode is not None else data))


class Session:
    clean_session: bool | None = None


class Ending:
    def __init__(self, reason: OfflineReason | None = None) -> None:
        self.end_reason = reason
        self.session = Session()


def device_link(client_id: str = "fw", **properties: int) -> tuple[V5Link, Reader]:
    connect = mqtt5.Connect(client_id=client_id, username="device", password=b"t", properties=dict(properties))
    link = V5Link.start(connect)
    reader = Reader()
    link.attach(reader, Writer())  # type: ignore[arg-type]
    link.bind(DeviceIdentity(device_id=1))
    return link, reader


def test_a_v5_publish_reaches_the_broker_as_3_1_1_and_its_alias_is_remembered() -> None:
    link, _ = device_link()
    first = mqtt5.encode(mqtt5.Publish("ds/T", b"1", 1, packet_id=7, properties={"topic_alias": 2}))
    assert link.inbound(first) == b"\x32\x09\x00\x04ds/T\x00\x071"
    again = mqtt5.encode(mqtt5.Publish("", b"2", 0, properties={"topic_alias": 2, "user_property": [("a", "b")]}))
    assert link.inbound(again) == b"\x30\x07\x00\x04ds/T2"


@pytest.mark.parametrize(
    ("packet", "reason"),
    [
        (mqtt5.Publish("", b"x", properties={"topic_alias": 3}), Reason.PROTOCOL_ERROR),  # never set
        (mqtt5.Publish("t", b"x", properties={"topic_alias": TOPIC_ALIAS_MAXIMUM + 1}), Reason.TOPIC_ALIAS_INVALID),
        (mqtt5.Publish("", b"x"), Reason.PROTOCOL_ERROR),  # no topic and no alias
        (mqtt5.Auth(0x18), Reason.PROTOCOL_ERROR),  # no enhanced authentication
        (mqtt5.Connect(client_id="again"), Reason.PROTOCOL_ERROR),  # a second CONNECT
    ],
)
def test_what_ends_the_connection_and_the_disconnect_reason_it_gets(packet: mqtt5.Packet, reason: Reason) -> None:
    link, reader = device_link()
    with pytest.raises(MalformedPacket):
        link.inbound(mqtt5.encode(packet))
    reader.failure = FrameFailure.MALFORMED  # what FramedReader records when translate raises
    assert mqtt5.decode(link.last_words()) == mqtt5.Disconnect(reason)


def test_the_broker_ending_a_connection_is_said_with_a_reason() -> None:
    link, reader = device_link()
    assert link.last_words() == b""  # the client left or the socket broke: nothing to say
    reader.failure = FrameFailure.KEEPALIVE_TIMEOUT
    assert mqtt5.decode(link.last_words()) == mqtt5.Disconnect(Reason.KEEP_ALIVE_TIMEOUT)
    link.connection = Ending(OfflineReason.REPLACED)
    assert mqtt5.decode(link.last_words()) == mqtt5.Disconnect(Reason.SESSION_TAKEN_OVER)
    link.connection = Ending(OfflineReason.REVOKED)
    assert mqtt5.decode(link.last_words()) == mqtt5.Disconnect(Reason.NOT_AUTHORIZED)


def test_what_the_broker_writes_gets_its_v5_form_also_several_packets_in_one_write() -> None:
    link, _ = device_link()
    link.inbound(mqtt5.encode(mqtt5.Unsubscribe(5, ["a", "b", "c"])))
    link.inbound(mqtt5.encode(mqtt5.Publish("foo/bar", b"x", 1, packet_id=9)))  # not a Blynk uplink
    publish = b"\x32\x0a\x00\x04ds/T\x00\x03ab"  # QoS 1, id 3, payload "ab"
    written = publish + b"\x40\x02\x00\x09" + b"\x90\x03\x00\x04\x80" + b"\xb0\x02\x00\x05" + b"\xd0\x00"
    out = link.outbound(written)
    packets = []
    while out:
        length = out[1]  # every packet here is short: one length byte
        packets.append(mqtt5.decode(out[: 2 + length]))
        out = out[2 + length :]
    assert packets == [
        mqtt5.Publish("ds/T", b"ab", 1, packet_id=3),
        mqtt5.PubAck(9, Reason.NOT_AUTHORIZED),
        mqtt5.Suback(4, [0x80]),
        mqtt5.Unsuback(5, [0, 0, 0]),
        mqtt5.Pingresp(),
    ]


def test_connack_reasons_and_properties() -> None:
    link, _ = device_link(client_id="")
    assert mqtt5.decode(link.outbound(b"\x20\x02\x00\x04")) == mqtt5.Connack(Reason.BAD_USER_NAME_OR_PASSWORD)
    assert mqtt5.decode(link.outbound(b"\x20\x02\x00\x05")) == mqtt5.Connack(Reason.NOT_AUTHORIZED)
    assert mqtt5.decode(link.outbound(b"\x20\x02\x00\x03")) == mqtt5.Connack(Reason.SERVER_UNAVAILABLE)
    accepted = mqtt5.decode(link.outbound(b"\x20\x02\x00\x00"))
    assert isinstance(accepted, mqtt5.Connack) and accepted.reason == 0
    assert accepted.properties["assigned_client_identifier"] == link.client_id != ""
    assert accepted.properties["maximum_packet_size"] == 1029


def test_session_expiry_is_kept_for_a_service_and_refused_for_a_device() -> None:
    asked = mqtt5.Connect(client_id="app", clean_start=False, properties={"session_expiry_interval": 60})
    service = V5Link.start(asked)
    service.bind(ServiceIdentity(name="app"))
    assert "session_expiry_interval" not in service.connack(0, 0).properties
    device = V5Link.start(asked)
    device.bind(DeviceIdentity(device_id=1))
    assert device.connack(0, 0).properties["session_expiry_interval"] == 0


def test_the_clients_receive_maximum_holds_qos_1_publishes_until_acknowledged() -> None:
    link, _ = device_link(receive_maximum=2)
    writer = link.writer
    assert isinstance(writer, Writer)

    def publish(packet_id: int, qos: int = 1) -> bytes:
        body = b"\x00\x01t" + (packet_id.to_bytes(2, "big") if qos else b"") + b"v"
        return bytes([0x30 | qos << 1, len(body)]) + body

    out = link.outbound(publish(1) + publish(2) + publish(3) + publish(0, qos=0) + publish(4))
    sent = [mqtt5.decode(out[i : i + 9]) for i in range(0, 18, 9)]
    assert [p.packet_id for p in sent if isinstance(p, mqtt5.Publish)] == [1, 2]
    assert out[18:] == b"\x30\x05\x00\x01t\x00v"  # QoS 0 is not counted: it goes at once
    link.inbound(mqtt5.encode(mqtt5.PubAck(2)))
    assert [mqtt5.decode(w) for w in writer.written] == [mqtt5.Publish("t", b"v", 1, packet_id=3)]
    link.inbound(mqtt5.encode(mqtt5.PubAck(1)))
    link.inbound(mqtt5.encode(mqtt5.PubAck(3)))
    assert [mqtt5.decode(w).packet_id for w in writer.written] == [3, 4]  # type: ignore[union-attr]
    assert link.outbound(publish(5)) != b""  # room again


def test_nothing_above_the_clients_maximum_packet_size_is_sent() -> None:
    link, _ = device_link(maximum_packet_size=20)
    small = b"\x30\x09\x00\x01t" + b"x" * 6  # 11 bytes, 12 in its v5 form
    large = b"\x32\x15\x00\x01t\x00\x07" + b"x" * 16  # QoS 1, 23 bytes
    assert link.outbound(large + small) == b"\x30\x0a\x00\x01t\x00" + b"x" * 6
    assert link.in_flight == set()  # the dropped QoS 1 message takes no room


@pytest.mark.parametrize(
    ("clean_start", "expiry", "kept"),
    [(True, 0, False), (True, 60, True), (False, 60, True), (False, 0, False)],
)
def test_the_session_outlives_the_connection_when_its_expiry_says_so(
    clean_start: bool, expiry: int, kept: bool
) -> None:
    """Clean start decides only whether a stored session is resumed (the request's
    clean_session); the expiry decides whether this one is kept after the connection."""
    connect = mqtt5.Connect(client_id="app", clean_start=clean_start, properties={"session_expiry_interval": expiry})
    link = V5Link.start(connect)
    link.bind(ServiceIdentity(name="app"))
    connection = Ending()
    link.adopt(connection)  # type: ignore[arg-type]
    assert connection.session.clean_session is not kept
    link.inbound(mqtt5.encode(mqtt5.Disconnect(0, {"session_expiry_interval": 0})))
    assert connection.session.clean_session is True  # a DISCONNECT with expiry 0 ends it


def test_a_device_session_is_never_kept() -> None:
    connect = mqtt5.Connect(client_id="fw", clean_start=False, properties={"session_expiry_interval": 60})
    link = V5Link.start(connect)
    link.bind(DeviceIdentity(device_id=1))
    connection = Ending()
    link.adopt(connection)  # type: ignore[arg-type]
    assert connection.session.clean_session is True


class Message:
    """amqtt's IncomingApplicationMessage, as V5Link.carry sees it."""

    def __init__(self, topic: str, data: bytes, qos: int = 0, packet_id: int | None = None) -> None:
        self.topic, self.data, self.qos, self.packet_id = topic, data, qos, packet_id


PROPERTIES = {"user_property": [("a", "1")], "content_type": "text/plain", "correlation_data": b"\x00"}


def test_a_publishs_properties_go_with_its_payload_into_the_broker() -> None:
    link, _ = device_link()
    link.inbound(mqtt5.encode(mqtt5.Publish("ds/A", b"dropped", 0, properties=PROPERTIES)))
    link.inbound(mqtt5.encode(mqtt5.Publish("ds/B", b"2", 0, properties={**PROPERTIES, "topic_alias": 1})))
    link.inbound(mqtt5.encode(mqtt5.Publish("ds/C", b"3", 1, packet_id=4, properties=PROPERTIES)))
    link.inbound(mqtt5.encode(mqtt5.Publish("ds/D", b"4", 0)))
    handled = [Message("ds/C", b"3", 1, 4), Message("ds/B", b"2"), Message("ds/D", b"4")]  # ds/A: rate-limited
    for message in handled:
        link.carry(message)
    assert [getattr(m.data, "properties", None) for m in handled] == [PROPERTIES, PROPERTIES, None]
    assert [bytes(m.data) for m in handled] == [b"3", b"2", b"4"]


def test_a_carried_payload_gets_its_properties_out_to_a_v5_receiver_counted_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1000.0]
    monkeypatch.setattr("broker._v5.time.monotonic", lambda: now[0])
    data = carried(b"ab", {**PROPERTIES, "message_expiry_interval": 10, "topic_alias": 3})
    assert isinstance(data, Carried) and data.properties == PROPERTIES
    link, _ = device_link()
    link.sending(b"other")  # queued, then not written (its task failed): passed over
    link.sending(data)
    now[0] += 2.5
    out = link.outbound(b"\x30\x06\x00\x02ds" + b"ab")
    assert mqtt5.decode(out) == mqtt5.Publish("ds", b"ab", properties={**PROPERTIES, "message_expiry_interval": 8})
    assert not expired(data)
    now[0] += 8
    assert expired(data)
    assert link.outbound(b"\x30\x06\x00\x02ds" + b"ab") == b"\x30\x07\x00\x02ds\x00ab"  # nothing queued: none


def test_a_topic_alias_is_set_only_by_a_publish_that_goes_out() -> None:
    link, _ = device_link(receive_maximum=1, topic_alias_maximum=2)
    first = b"\x32\x06\x00\x01a\x00\x01" + b"x"  # QoS 1 to "a", id 1
    held = b"\x32\x06\x00\x01b\x00\x02" + b"y"  # QoS 1 to "b", id 2: no room, it waits
    now = b"\x30\x04\x00\x01b" + b"z"  # QoS 0 to "b": goes first, so it sets b's alias
    out = link.outbound(first + held + now)
    split = 2 + out[1]  # every packet here is short: one length byte
    assert mqtt5.decode(out[:split]) == mqtt5.Publish("a", b"x", 1, packet_id=1, properties={"topic_alias": 1})
    assert mqtt5.decode(out[split:]) == mqtt5.Publish("b", b"z", properties={"topic_alias": 2})
    link.inbound(mqtt5.encode(mqtt5.PubAck(1)))  # room: the held one goes, without its topic
    assert link.writer is not None
    written = link.writer.written[-1]  # type: ignore[attr-defined]
    assert mqtt5.decode(written) == mqtt5.Publish("", b"y", 1, packet_id=2, properties={"topic_alias": 2})
