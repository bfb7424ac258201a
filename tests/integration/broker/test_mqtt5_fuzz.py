"""Malformed and oversize MQTT 5 properties against the live broker (issue #18 item 5).

Clients connect over MQTT 5 and send PUBLISHes whose property lists are mutated: unknown or
misplaced identifiers, properties given twice, strings that are not UTF-8, declared lengths past
the packet, values far longer than the broker takes, and valid ones (which the broker now
carries to MQTT 5 receivers). Whatever it is sent, the broker answers only with packets that
decode as MQTT 5, ends a broken connection with a DISCONNECT reason, and keeps serving: an MQTT 5
receiver of everything stays connected and, at the end, gets a good message with its properties.
The codec alone is fuzzed in tests/unit/broker/test_mqtt5.py.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

from _broker_harness import SERVICE_PASSWORD, SERVICE_USER, Raw
from test_mqtt5_properties import Client, assert_carried, publish_properties, v5  # noqa: F401 (fixture)

from broker import mqtt5

CONNECTIONS = 60
PACKETS = 4
PUBLISH_PROPERTIES = (0x01, 0x02, 0x03, 0x08, 0x09, 0x0B, 0x23, 0x26)


def _property(rng: random.Random) -> bytes:
    """One property, valid or not: its identifier and a value of the right or wrong shape."""
    ident = rng.choice((*PUBLISH_PROPERTIES, rng.randrange(0x80), 0x11, 0x27))
    shape = rng.randrange(6)
    if shape == 0:  # a string or binary that is long, perhaps not UTF-8
        size = rng.choice((0, 1, 100, 5_000, 40_000))
        value = size.to_bytes(2, "big") + bytes(rng.randrange(256) for _ in range(min(size, 64))) * (size // 64 + 1)
        value = value[: 2 + size]
    elif shape == 1:  # a length past the end
        value = (0xFFFF).to_bytes(2, "big") + b"abc"
    elif shape == 2:  # a user property pair
        value = b"\x00\x01a\x00\x01b"
    else:
        value = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 6)))
    return mqtt5.encode_varint(ident) + value


def valid_properties(rng: random.Random) -> bytes:
    """A valid PUBLISH property list, some of it long (a user property of up to 20,000 bytes)."""
    properties: mqtt5.Properties = {"user_property": [("k", "v" * rng.choice((0, 10, 20_000)))]}
    if rng.random() < 0.5:
        properties["content_type"] = "é" * rng.randrange(0, 300)
        properties["correlation_data"] = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40)))
        properties["message_expiry_interval"] = rng.choice((1, 60, 0xFFFFFFFF))
    return mqtt5.encode_properties(properties)


def fuzzed_publish(rng: random.Random, n: int, valid: bool) -> bytes:
    """A PUBLISH with a valid property list, or a mutated one (or a declared length that lies)."""
    qos = rng.randrange(3)
    body = b"\x00\x04fz/" + bytes([0x61 + n % 26])
    if qos:
        body += (n % 60_000 + 1).to_bytes(2, "big")
    if valid:
        body += valid_properties(rng) + b"payload"
    else:
        properties = b"".join(_property(rng) for _ in range(rng.randrange(0, 4)))
        declared = len(properties) + rng.choice((0, 0, 0, 1, -1, 1000))
        body += mqtt5.encode_varint(max(declared, 0)) + properties + b"payload"
    return bytes([0x30 | (qos << 1)]) + mqtt5.encode_varint(len(body)) + body


async def answers(connection: Raw) -> list[mqtt5.Packet]:
    """Every packet the broker sends up to its PINGRESP (the connection lives) or until it
    closes the connection; each must decode as MQTT 5."""
    out: list[mqtt5.Packet] = []
    try:
        await connection.send(mqtt5.encode(mqtt5.Pingreq()))
        while not isinstance(packet := mqtt5.decode(await connection.read_packet()), mqtt5.Pingresp):
            out.append(packet)
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    return out


async def test_fuzzed_properties_leave_the_broker_serving_and_receivers_connected(
    raw: Callable[[], Raw],
    v5: Callable[..., Client],  # noqa: F811 (the fixture imported above)
) -> None:
    receiver = v5("receiver")
    await receiver.connect()
    await receiver.subscribe("fz/#", qos=2)
    lost: list[int] = []
    receiver.client.on_disconnect = lambda *_args: lost.append(1)
    rng = random.Random(18)
    ended = 0
    for n in range(CONNECTIONS):
        connection: Raw = await raw()
        connect = mqtt5.Connect(f"fz-{n}", username=SERVICE_USER, password=SERVICE_PASSWORD.encode())
        await connection.send(mqtt5.encode(connect))
        connack = mqtt5.decode(await connection.read_packet())
        assert isinstance(connack, mqtt5.Connack) and connack.reason == 0
        valid = rng.random() < 0.4  # a connection sending only valid properties, or one fuzzing
        for i in range(PACKETS):
            try:
                await connection.send(fuzzed_publish(rng, n * PACKETS + i, valid))
            except ConnectionError:
                break
        got = await answers(connection)
        for packet in got:
            assert isinstance(packet, mqtt5.PubAck | mqtt5.Disconnect), packet
            assert not valid or isinstance(packet, mqtt5.PubAck), packet
        disconnects = [p for p in got if isinstance(p, mqtt5.Disconnect)]
        if disconnects:
            ended += 1
            assert disconnects[0].reason in (0x81, 0x82, 0x94, 0x95), disconnects
        await connection.close()
    assert 0 < ended < CONNECTIONS  # both kinds ran: refused ones and carried ones
    sender = v5("sender")
    await sender.connect()
    await sender.publish("fz/good", b"good", 1, publish_properties())
    while (message := await receiver.next()).topic != "fz/good":
        pass
    assert_carried(message)
    assert lost == []
