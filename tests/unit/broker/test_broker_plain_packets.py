"""The broker's own readers of a plain CONNECT and SUBSCRIBE agree with amqtt's codec.

``plain_connect`` and ``subscribe_request`` take the common, plainly well-formed packets
without amqtt's packet classes; anything else must be left (``None``) to amqtt, which reads or
refuses it as before. For every packet they do take, the result must be exactly what amqtt's
codec (and, for CONNECT, the broker's checks) make of it: checked on hand-made packets and on
thousands of seeded mutations of them.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable

import pytest
from amqtt.adapters import BufferReader
from amqtt.mqtt.connect import ConnectPacket
from amqtt.mqtt.subscribe import SubscribePacket

from broker._connect import ConnectRequest, _check, _to_request, plain_connect
from broker._framing import subscribe_request


def mqtt_string(value: bytes) -> bytes:
    return len(value).to_bytes(2, "big") + value


def packet(first: int, body: bytes) -> bytes:
    length, encoded = len(body), bytearray()
    while True:
        length, byte = divmod(length, 128)
        encoded.append(byte | (0x80 if length else 0))
        if not length:
            return bytes([first]) + bytes(encoded) + body


def connect(
    client_id: bytes = b"dev-1",
    *,
    flags: int | None = None,
    keep_alive: int = 45,
    will: tuple[bytes, bytes] | None = None,
    username: bytes | None = b"device",
    password: bytes | None = b"token-1",
    level: int = 4,
    extra: bytes = b"",
) -> bytes:
    if flags is None:
        flags = 0x02 | (0x04 if will else 0) | (0x80 if username is not None else 0)
        flags |= 0x40 if password is not None else 0
    body = mqtt_string(b"MQTT") + bytes([level, flags]) + keep_alive.to_bytes(2, "big") + mqtt_string(client_id)
    if will is not None:
        body += mqtt_string(will[0]) + mqtt_string(will[1])
    body += mqtt_string(username) if username is not None else b""
    body += mqtt_string(password) if password is not None else b""
    return packet(0x10, body + extra)


def subscribe(packet_id: int, *filters: tuple[bytes, int], first: int = 0x82, extra: bytes = b"") -> bytes:
    body = packet_id.to_bytes(2, "big") + b"".join(mqtt_string(f) + bytes([qos]) for f, qos in filters)
    return packet(first, body + extra)


async def amqtt_connect(frame: bytes) -> ConnectRequest | None:
    """What the broker made of the CONNECT through amqtt's codec; None if refused."""
    try:
        decoded = await ConnectPacket.from_stream(BufferReader(frame))
    except Exception:
        return None
    problem, _code = _check(decoded)
    return _to_request(decoded) if problem is None else None


async def amqtt_subscribe(frame: bytes) -> tuple[int, list[tuple[str, int]]] | None:
    try:
        decoded = await SubscribePacket.from_stream(BufferReader(frame))
    except Exception:
        return None
    assert decoded.variable_header is not None and decoded.payload is not None
    return decoded.variable_header.packet_id, decoded.payload.topics


PLAIN_CONNECTS = [
    connect(),
    connect(b""),  # an empty client id with a clean session: allowed [MQTT-3.1.3-6]
    connect(flags=0x00 | 0x80 | 0x40),  # a persistent session asked for
    connect(username=None, password=None),
    connect(password=None),
    connect(password=b""),
    connect(keep_alive=0),
    connect(keep_alive=65535),
    connect("dévice-ü".encode()),
    connect(will=(b"ds/status", b"offline")),
    connect(will=(b"ds/status", b""), flags=0x02 | 0x04 | 0x08 | 0x20 | 0x80 | 0x40),  # QoS 1, retained
    connect(will=(b"ds/status", bytes(range(256))), flags=0x02 | 0x04 | 0x10 | 0x80 | 0x40),  # QoS 2, binary
    connect(password=b"x" * 300),  # a remaining length of two bytes
]

REFUSED_OR_ODD_CONNECTS = [
    connect(flags=0x03 | 0x80 | 0x40),  # reserved flag [MQTT-3.1.2-3]
    connect(username=None, flags=0x02 | 0x40),  # password without user name [MQTT-3.1.2-22]
    connect(b"", flags=0x80 | 0x40),  # empty client id, clean_session=0 [MQTT-3.1.3-8]
    connect(will=(b"t", b"m"), flags=0x02 | 0x04 | 0x18 | 0x80 | 0x40),  # will QoS 3
    connect(flags=0x02 | 0x20 | 0x80 | 0x40),  # will retain without the will flag
    connect(b"\xff\xfe"),  # a client id that is not UTF-8
    connect(password=b"\xc3"),  # nor a password
    connect(extra=b"\x00"),  # a byte left over
    connect(level=3),
    connect(level=5),
    connect()[:-1],  # a byte short
]


async def test_plain_connects_are_read_as_amqtt_reads_them() -> None:
    for frame in PLAIN_CONNECTS:
        ours = plain_connect(frame)
        assert ours is not None, frame
        assert ours == await amqtt_connect(frame), frame


async def test_anything_else_is_left_to_amqtt() -> None:
    for frame in REFUSED_OR_ODD_CONNECTS:
        assert plain_connect(frame) is None, frame
    assert plain_connect(b"") is None and plain_connect(b"\x10") is None


async def never_read_differently(
    rng: random.Random,
    frames: list[bytes],
    mutate: Callable[[bytearray], None],
    ours: Callable[[bytes], object | None],
    theirs: Callable[[bytes], Awaitable[object | None]],
) -> None:
    """Mutate the bodies of ``frames`` 1,500 times: whatever ``ours`` still takes must be what
    ``theirs`` (amqtt's codec) makes of it. The mutations must give both outcomes, or they
    tested nothing."""
    taken = left = 0
    for _ in range(1500):
        frame = bytearray(rng.choice(frames))
        start = 2 if frame[1] < 0x80 else 3
        body = frame[start:]
        mutate(body)
        mutated = packet(frame[0], bytes(body))
        read = ours(mutated)
        if read is None:
            left += 1
            continue
        taken += 1
        assert read == await theirs(mutated), mutated
    assert taken > 50 and left > 50


@pytest.mark.parametrize("seed", range(4))
async def test_mutated_connects_are_never_read_differently(seed: int) -> None:
    """Flip, drop or insert bytes of the body: what plain_connect still takes must be what the
    broker took through amqtt."""
    rng = random.Random(seed)

    def mutate(body: bytearray) -> None:
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(body))
            action = rng.random()
            if action < 0.7:
                body[at] = rng.choice((0, 1, 2, 4, 0x7F, 0x80, 0xC3, 0xFF, rng.randrange(256)))
            elif action < 0.85:
                del body[at]
            else:
                body.insert(at, rng.randrange(256))

    await never_read_differently(rng, PLAIN_CONNECTS + REFUSED_OR_ODD_CONNECTS, mutate, plain_connect, amqtt_connect)


PLAIN_SUBSCRIBES = [
    subscribe(1, (b"downlink/#", 1)),
    subscribe(65535, (b"downlink/ds/+", 0), (b"downlink/ota/json", 2)),
    subscribe(7, ("ü/#".encode(), 1)),
    subscribe(8, (b"", 0)),  # an empty filter: read as amqtt reads it, refused by the grant (0x80)
    subscribe(9, (b"a" * 200, 1)),
]

ODD_SUBSCRIBES = [
    subscribe(1, (b"downlink/#", 1), first=0x80),  # reserved flags [MQTT-3.8.1-1]
    subscribe(0, (b"downlink/#", 1)),  # packet id 0
    subscribe(2),  # no filter [MQTT-3.8.3-3]
    subscribe(3, (b"downlink/#", 3)),  # QoS 3 [MQTT-3-8.3-4]
    subscribe(4, (b"downlink/#", 0x81)),
    subscribe(5, (b"\xff", 1)),  # not UTF-8
    subscribe(6, (b"downlink/#", 1), extra=b"\x00"),  # an incomplete entry at the end
    packet(0x82, b"\x00"),  # no packet id
]


async def test_plain_subscribes_are_read_as_amqtt_reads_them() -> None:
    for frame in PLAIN_SUBSCRIBES:
        ours = subscribe_request(frame)
        assert ours is not None, frame
        assert ours == await amqtt_subscribe(frame), frame
    for frame in ODD_SUBSCRIBES:
        assert subscribe_request(frame) is None, frame


@pytest.mark.parametrize("seed", range(2))
async def test_mutated_subscribes_are_never_read_differently(seed: int) -> None:
    rng = random.Random(seed)

    def mutate(body: bytearray) -> None:
        for _ in range(rng.randint(1, 2)):
            if not body:
                break
            at = rng.randrange(len(body))
            if rng.random() < 0.8:
                body[at] = rng.choice((0, 1, 2, 3, 0x80, 0xFF, rng.randrange(256)))
            else:
                del body[at]

    await never_read_differently(rng, PLAIN_SUBSCRIBES + ODD_SUBSCRIBES, mutate, subscribe_request, amqtt_subscribe)
