"""The MQTT 5 codec (broker/mqtt5.py) against byte vectors from the specification (OASIS MQTT
Version 5.0, section numbers in the names), against paho-mqtt's own MQTT 5 property packer,
round trips of every packet type, and malformed input (including a seeded fuzz) that must
raise :class:`MalformedPacket` and nothing else."""

from __future__ import annotations

import random

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties as PahoProperties

from broker.mqtt5 import (
    Auth,
    Connack,
    Connect,
    Disconnect,
    MalformedPacket,
    Packet,
    Pingreq,
    Pingresp,
    PubAck,
    Publish,
    Reason,
    Suback,
    Subscribe,
    Subscription,
    Unsuback,
    Unsubscribe,
    decode,
    encode,
    encode_properties,
    encode_varint,
)


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def test_variable_byte_integers_1_5_5() -> None:
    """The table of §1.5.5: the smallest and largest values of one to four bytes."""
    for value, raw in [
        (0, "00"),
        (127, "7f"),
        (128, "80 01"),
        (16_383, "ff 7f"),
        (16_384, "80 80 01"),
        (2_097_151, "ff ff 7f"),
        (2_097_152, "80 80 80 01"),
        (268_435_455, "ff ff ff 7f"),
    ]:
        assert encode_varint(value) == h(raw)
    with pytest.raises(ValueError):
        encode_varint(268_435_456)


def test_connect_variable_header_example_3_1_2_11() -> None:
    """Figure 3-6 (CONNECT variable header example): protocol name MQTT, version 5, flags 0xC2
    (user name, password, clean start), keep alive 10, properties length 5 with a session
    expiry interval of 10; then our payload: client id "c1", user name "u", password "p"."""
    variable = h("00 04 4d 51 54 54 05 c2 00 0a 05 11 00 00 00 0a")
    payload = h("00 02 63 31 00 01 75 00 01 70")
    frame = bytes([0x10, len(variable) + len(payload)]) + variable + payload
    packet = decode(frame)
    assert packet == Connect(
        client_id="c1",
        clean_start=True,
        keep_alive=10,
        username="u",
        password=b"p",
        properties={"session_expiry_interval": 10},
    )
    assert encode(packet) == frame


def test_connect_with_a_will_and_its_properties() -> None:
    packet = Connect(
        client_id="dev",
        keep_alive=45,
        username="device",
        password=b"x" * 32,
        will_topic="ds/Status",
        will_payload=b"offline",
        will_qos=1,
        will_retain=False,
        will_properties={"will_delay_interval": 5, "content_type": "text/plain"},
        properties={"receive_maximum": 10, "topic_alias_maximum": 5, "maximum_packet_size": 1024},
    )
    frame = encode(packet)
    assert frame[9] == 0b1100_1110  # user, password, will QoS 1, will, clean start
    assert decode(frame) == packet


def test_properties_match_paho_mqtts_own_packer() -> None:
    """paho-mqtt's MQTT 5 implementation packs the same properties to the same bytes (both in
    identifier order) and our decoder reads paho's bytes back."""
    paho = PahoProperties(PacketTypes.CONNECT)
    paho.SessionExpiryInterval = 10
    paho.ReceiveMaximum = 20
    paho.UserProperty = ("a", "b")
    paho.UserProperty = ("c", "d")
    ours = {"session_expiry_interval": 10, "receive_maximum": 20, "user_property": [("a", "b"), ("c", "d")]}
    assert encode_properties(ours) == paho.pack()

    paho = PahoProperties(PacketTypes.PUBLISH)
    paho.PayloadFormatIndicator = 1
    paho.MessageExpiryInterval = 60
    paho.ContentType = "text/plain"
    paho.ResponseTopic = "r/t"
    paho.CorrelationData = b"\x01\x02"
    paho.TopicAlias = 3
    # a PUBLISH carrying paho's packed properties
    topic = h("00 0e") + b"ds/Temperature"
    spliced = bytes([0x30]) + encode_varint(len(topic) + len(paho.pack()) + 4) + topic + paho.pack() + b"21.5"
    assert decode(spliced) == Publish(
        "ds/Temperature",
        b"21.5",
        properties={
            "payload_format_indicator": 1,
            "message_expiry_interval": 60,
            "content_type": "text/plain",
            "response_topic": "r/t",
            "correlation_data": b"\x01\x02",
            "topic_alias": 3,
        },
    )
    assert encode(decode(spliced)) == spliced


def test_connack_reason_codes_3_2() -> None:
    assert encode(Connack(Reason.BAD_USER_NAME_OR_PASSWORD)) == h("20 03 00 86 00")
    assert encode(Connack(Reason.UNSUPPORTED_PROTOCOL_VERSION)) == h("20 03 00 84 00")
    assert encode(Connack(Reason.NOT_AUTHORIZED)) == h("20 03 00 87 00")
    accepted = Connack(0, False, {"assigned_client_identifier": "auto-1", "topic_alias_maximum": 10})
    assert encode(accepted) == h("20 0f 00 00 0c 12 00 06") + b"auto-1" + h("22 00 0a")
    assert decode(encode(accepted)) == accepted


def test_puback_forms_3_4_2() -> None:
    """Reason 0 without properties is the two-byte form (as MQTT 3.1.1); a reason alone adds
    one byte; a reason string adds the property length."""
    assert encode(PubAck(1)) == h("40 02 00 01")
    assert decode(h("40 02 00 01")) == PubAck(1)
    assert encode(PubAck(1, Reason.QUOTA_EXCEEDED)) == h("40 03 00 01 97")
    assert decode(h("40 03 00 01 97")) == PubAck(1, 0x97)
    refused = PubAck(7, Reason.NOT_AUTHORIZED, properties={"reason_string": "no"})
    assert encode(refused) == h("40 09 00 07 87 05 1f 00 02 6e 6f")
    assert decode(encode(refused)) == refused
    assert encode(PubAck(9, kind=6)) == h("62 02 00 09")  # PUBREL has flags 0010


def test_subscribe_options_and_identifier_3_8() -> None:
    """Subscription options byte (§3.8.3.1): QoS 1, No Local, Retain As Published, Retain
    Handling 1 = 0x1D; a Subscription Identifier property of 5."""
    frame = h("82 0b 00 0a 02 0b 05 00 03 61 2f 62 1d")
    assert decode(frame) == Subscribe(
        10, [Subscription("a/b", 1, True, True, 1)], properties={"subscription_identifier": [5]}
    )
    assert encode(decode(frame)) == frame


def test_suback_and_unsuback_reason_codes() -> None:
    assert encode(Suback(1, [Reason.GRANTED_QOS_1, Reason.NOT_AUTHORIZED])) == h("90 05 00 01 00 01 87")
    assert encode(Suback(1, [Reason.UNSPECIFIED_ERROR])) == h("90 04 00 01 00 80")
    assert encode(Unsuback(2, [0, Reason.NO_SUBSCRIPTION_EXISTED])) == h("b0 05 00 02 00 00 11")
    assert decode(h("b0 05 00 02 00 00 11")) == Unsuback(2, [0, 0x11])


def test_disconnect_ping_and_auth() -> None:
    assert encode(Disconnect()) == h("e0 00")
    assert decode(h("e0 00")) == Disconnect()
    assert encode(Disconnect(Reason.KEEP_ALIVE_TIMEOUT)) == h("e0 02 8d 00")
    assert decode(h("e0 01 8d")) == Disconnect(0x8D)
    assert decode(h("e0 07 00 05 11 00 00 00 3c")) == Disconnect(0, {"session_expiry_interval": 60})
    assert encode(Pingreq()) == h("c0 00") and decode(h("c0 00")) == Pingreq()
    assert encode(Pingresp()) == h("d0 00") and decode(h("d0 00")) == Pingresp()
    auth = Auth(0x18, {"authentication_method": "SCRAM"})
    assert decode(encode(auth)) == auth


ROUND_TRIPS: list[Packet] = [
    Connect(client_id=""),
    Connack(0, True, {"receive_maximum": 100, "maximum_qos": 1, "retain_available": 0, "user_property": [("k", "v")]}),
    Publish("t", b"", 0),
    Publish("t/\u00e9", b"\x00\xff" * 10, 2, True, True, 65535, {"subscription_identifier": [1, 268_435_455]}),
    PubAck(3, 0x10, 5),
    PubAck(3, 0x92, 7, {"reason_string": "gone"}),
    Subscribe(1, [Subscription("#", 2), Subscription("$share/g/x", 0, retain_handling=2)]),
    Unsubscribe(4, ["a", "b/+"], {"user_property": [("x", "y")]}),
    Suback(5, [0, 1, 2, 0x80], {"reason_string": "r"}),
    Disconnect(0x8E, {"reason_string": "session taken over", "server_reference": "other"}),
]


@pytest.mark.parametrize("packet", ROUND_TRIPS, ids=lambda p: type(p).__name__)
def test_round_trip(packet: Packet) -> None:
    assert decode(encode(packet)) == packet


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("10 10 00 04 4d 51 54 54 05 02 00 0a 03 23 00 01 00 00", Reason.PROTOCOL_ERROR),  # topic alias in CONNECT
        ("30 0a 00 01 74 06 23 00 01 23 00 02", Reason.PROTOCOL_ERROR),  # topic alias twice
        ("30 05 00 01 74 09 23", Reason.MALFORMED_PACKET),  # property length past the end
        ("30 04 00 02 c3 28 00", Reason.MALFORMED_PACKET),  # remaining length does not match
        ("30 04 00 02 c3 28", Reason.MALFORMED_PACKET),  # topic not UTF-8 (then no properties)
        ("30 05 00 02 c3 28 00", Reason.MALFORMED_PACKET),  # topic not UTF-8
        ("30 04 00 01 00 00", Reason.MALFORMED_PACKET),  # topic holds U+0000
        ("36 05 00 01 74 00 01", Reason.MALFORMED_PACKET),  # QoS 3
        ("38 04 00 01 74 00", Reason.MALFORMED_PACKET),  # DUP on QoS 0
        ("32 05 00 01 74 00 00", Reason.MALFORMED_PACKET),  # packet id 0 (and no properties)
        ("41 02 00 01", Reason.MALFORMED_PACKET),  # PUBACK with reserved flags
        ("80 06 00 01 00 00 01 61", Reason.MALFORMED_PACKET),  # SUBSCRIBE without flags 0010
        ("82 03 00 01 00", Reason.PROTOCOL_ERROR),  # SUBSCRIBE without a filter
        ("82 07 00 01 00 00 01 61 c0", Reason.MALFORMED_PACKET),  # reserved option bits
        ("82 07 00 01 00 00 01 61 03", Reason.MALFORMED_PACKET),  # QoS 3 in options
        ("a2 03 00 01 00", Reason.PROTOCOL_ERROR),  # UNSUBSCRIBE without a filter
        ("e0 02 00 05", Reason.MALFORMED_PACKET),  # DISCONNECT properties past the end
        ("e0 07 00 05 ff ff ff ff 7f", Reason.MALFORMED_PACKET),  # property id varint of five bytes
        ("c0 01 00", Reason.MALFORMED_PACKET),  # bytes after PINGREQ
        ("00 00", Reason.MALFORMED_PACKET),  # reserved type 0
        ("10 0a 00 04 4d 51 54 54 04 02 00 0a", Reason.UNSUPPORTED_PROTOCOL_VERSION),  # a 3.1.1 CONNECT
        ("10 0b 00 04 4d 51 54 54 05 01 00 0a 00", Reason.MALFORMED_PACKET),  # reserved CONNECT flag
        ("10 0b 00 04 4d 51 54 54 05 08 00 0a 00", Reason.MALFORMED_PACKET),  # will QoS without a will
    ],
)
def test_malformed_packets_are_refused_with_a_reason(frame: str, reason: Reason) -> None:
    with pytest.raises(MalformedPacket) as refused:
        decode(h(frame))
    assert refused.value.reason == reason


def test_fuzz_decode_raises_nothing_but_malformed() -> None:
    """Random bytes, and valid packets with bytes flipped or cut, either decode or raise
    MalformedPacket (never IndexError, UnicodeDecodeError, ...); what decodes encodes again."""
    rng = random.Random(18)
    seeds = [encode(p) for p in ROUND_TRIPS]
    decoded = 0
    for i in range(20_000):
        if i % 2:
            frame = bytearray(rng.choice(seeds))
            for _ in range(rng.randint(1, 3)):
                frame[rng.randrange(len(frame))] = rng.randrange(256)
            if rng.random() < 0.3:
                frame = frame[: rng.randrange(1, len(frame) + 1)]
        else:
            body = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40)))
            frame = bytearray([rng.randrange(256)]) + encode_varint(len(body)) + body
        try:
            packet = decode(bytes(frame))
        except MalformedPacket:
            continue
        decoded += 1
        assert decode(encode(packet)) == packet
    assert decoded > 100  # the flipped packets often stay valid: the round trip above ran
