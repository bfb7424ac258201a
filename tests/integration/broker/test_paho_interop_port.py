"""The checks of Eclipse Paho's MQTT 3.1.1 interoperability suite, ported, in a namespace.

``test_paho_interop.py`` runs the suite itself when a checkout is named by
``PAHO_MQTT_TESTING``; this file makes the same checks on every run: one test per case of
``interoperability/client_test.py`` (commit 9d7bb80), with its name, its steps and its
assertions, on paho-mqtt (and raw packets where the suite's own client does what paho-mqtt
cannot: pause acknowledging, a second CONNECT on one socket). Waits are bounded polls and
round trips instead of the suite's sleeps. Every client logs in as integration ``int-a``
(organization 1); the suite's ``test/nosubscribe`` is ``dev/nosubscribe`` here (see there).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from _broker_harness import INTEGRATION_PASSWORD, Paho, Raw, connect_packet, eventually, packet, subscribe_packet

TOPICS = ("TopicA", "TopicA/B", "Topic/C", "TopicA/C", "/TopicA")
WILDTOPICS = ("TopicA/+", "+/C", "#", "/#", "/+", "+/+", "TopicA/#")
NOSUBSCRIBE_TOPICS = ("dev/nosubscribe",)


def client(paho: Callable[..., Paho], client_id: str, **kwargs: Any) -> Paho:
    return paho(client_id=client_id, username="int-a", password=INTEGRATION_PASSWORD, **kwargs)


async def settle(*clients: Paho) -> None:
    """A round trip through each client's connection: what was sent before it is handled."""
    for each in clients:
        await each.subscribe("settle/round-trip", qos=2)
        await each.unsubscribe("settle/round-trip")


async def raw_connect(raw: Callable[[], Any], client_id: str, clean: bool = True) -> tuple[Raw, bytes]:
    connection: Raw = await raw()
    await connection.send(connect_packet(client_id, "int-a", INTEGRATION_PASSWORD, clean=clean))
    return connection, await connection.read_packet()


async def test_basic(paho: Callable[..., Paho], raw: Callable[[], Any]) -> None:
    a = await client(paho, "myclientid").connect()
    await a.close()
    a = await client(paho, "myclientid").connect()
    assert await a.subscribe(TOPICS[0], qos=2) == [2]
    for qos in (0, 1, 2):
        await a.publish(TOPICS[0], f"qos {qos}", qos=qos)
    await eventually(lambda: len(a.messages) == 3, message="the three messages")
    await settle(a)
    assert len(a.messages) == 3
    # a second CONNECT on the socket fails: the connection is closed
    connection, connack = await raw_connect(raw, "myclientid")
    assert connack == b"\x20\x02\x00\x00"
    await connection.send(connect_packet("myclientid", "int-a", INTEGRATION_PASSWORD))
    assert await connection.reader.read() == b""
    # a wrong protocol name fails
    wrong: Raw = await raw()
    body = struct.pack("!H", 2) + b"hj" + bytes([4, 0xC2]) + struct.pack("!H", 0)
    body += b"".join(struct.pack("!H", len(s)) + s for s in (b"myclientid", b"int-a", INTEGRATION_PASSWORD.encode()))
    await wrong.send(packet(0x10, body))
    assert await wrong.reader.read() == b"\x20\x02\x00\x01"  # refused: unacceptable protocol


async def test_retained_messages(paho: Callable[..., Paho]) -> None:
    a = await client(paho, "myclientid").connect()
    await a.publish(TOPICS[1], "qos 0", qos=0, retain=True)
    await a.publish(TOPICS[2], "qos 1", qos=1, retain=True)
    await a.publish(TOPICS[3], "qos 2", qos=2, retain=True)
    await settle(a)
    assert await a.subscribe(WILDTOPICS[5], qos=2) == [2]
    await eventually(lambda: len(a.messages) == 3, message="three retained messages")
    await settle(a)
    assert len(a.messages) == 3
    await a.close()
    a = await client(paho, "myclientid").connect()
    await a.publish(TOPICS[1], "", qos=0, retain=True)
    await a.publish(TOPICS[2], "", qos=1, retain=True)
    await a.publish(TOPICS[3], "", qos=2, retain=True)
    await settle(a)
    assert await a.subscribe(WILDTOPICS[5], qos=2) == [2]
    await settle(a)
    assert len(a.messages) == 0, a.messages


async def test_zero_length_clientid(paho: Callable[..., Paho], raw: Callable[[], Any]) -> None:
    _, connack = await raw_connect(raw, "", clean=False)  # paho-mqtt itself refuses to send it
    assert connack == b"\x20\x02\x00\x02"  # identifier rejected
    zero = await client(paho, "", clean_session=True).connect()
    await zero.close()


async def test_offline_message_queueing(paho: Callable[..., Paho]) -> None:
    a = await client(paho, "myclientid", clean_session=False).connect()
    assert await a.subscribe(WILDTOPICS[5], qos=2) == [2]
    await a.close()
    b = await client(paho, "myclientid2").connect()
    await b.publish(TOPICS[1], "qos 0", qos=0)
    await b.publish(TOPICS[2], "qos 1", qos=1)
    await b.publish(TOPICS[3], "qos 2", qos=2)
    await settle(b)
    await b.close()
    a = await client(paho, "myclientid", clean_session=False).connect()
    assert a.client.is_connected()
    await eventually(lambda: len(a.messages) >= 2, message="the queued messages")
    await settle(a)
    assert len(a.messages) in [2, 3], a.messages


async def test_overlapping_subscriptions(paho: Callable[..., Paho]) -> None:
    a = await client(paho, "myclientid").connect()
    await a.subscribe(WILDTOPICS[6], qos=2)
    await a.subscribe(WILDTOPICS[0], qos=1)
    await a.publish(TOPICS[3], "overlapping topic filters", qos=2)
    await eventually(lambda: len(a.messages) >= 1, message="the message")
    await settle(a)
    assert len(a.messages) in [1, 2]
    if len(a.messages) == 1:
        assert a.messages[0].qos == 2
    else:
        assert sorted(m.qos for m in a.messages) == [1, 2], a.messages


async def test_keepalive(paho: Callable[..., Paho]) -> None:
    b = await client(paho, "myclientid2", keepalive=0).connect()
    assert await b.subscribe(TOPICS[4], qos=2) == [2]
    a = client(paho, "myclientid", keepalive=1, will=(TOPICS[4], b"keepalive expiry"))
    await a.connect()
    a.client.loop_stop()  # no more PINGREQ: the broker ends it after keep-alive x 1.5
    await eventually(lambda: len(b.messages) == 1, message="the will message")
    await settle(b)
    assert len(b.messages) == 1, b.messages


async def test_redelivery_on_reconnect(raw: Callable[[], Any]) -> None:
    b, connack = await raw_connect(raw, "myclientid2", clean=False)
    assert connack == b"\x20\x02\x00\x00"
    await b.send(subscribe_packet(1, WILDTOPICS[6], qos=2))
    assert await b.read_packet() == b"\x90\x03\x00\x01\x02"
    # publish TOPICS[1] at QoS 1 and TOPICS[3] at QoS 2, then acknowledge nothing delivered
    await b.send(packet(0x32, struct.pack("!H", len(TOPICS[1])) + TOPICS[1].encode() + b"\x00\x02"))
    await b.send(packet(0x34, struct.pack("!H", len(TOPICS[3])) + TOPICS[3].encode() + b"\x00\x03"))
    seen = [await b.read_packet() for _ in range(3)]  # PUBACK, PUBREC, the QoS 1 delivery
    await b.send(packet(0x62, b"\x00\x03"))  # PUBREL of our QoS 2 publish: now it is routed
    seen += [await b.read_packet() for _ in range(2)]  # PUBCOMP, the QoS 2 delivery
    kinds = sorted(p[0] >> 4 for p in seen)
    assert kinds == [3, 3, 4, 5, 7], seen
    b.writer.close()
    b, connack = await raw_connect(raw, "myclientid2", clean=False)
    assert connack == b"\x20\x02\x01\x00"  # session present
    again = [await b.read_packet() for _ in range(2)]
    redelivered = [p for p in again if p[0] >> 4 == 3]
    assert len(redelivered) == 2, again
    assert all(p[0] & 0x08 for p in redelivered)  # DUP


async def test_subscribe_failure(paho: Callable[..., Paho]) -> None:
    a = await client(paho, "myclientid").connect()
    assert (await a.subscribe(NOSUBSCRIBE_TOPICS[0], qos=2))[0] == 0x80


async def test_dollar_topics(paho: Callable[..., Paho]) -> None:
    b = await client(paho, "myclientid2", keepalive=0).connect()
    assert await b.subscribe(WILDTOPICS[5], qos=2) == [2]
    await settle(b)
    b.messages.clear()
    await b.publish("$" + TOPICS[1], "", qos=1)
    await settle(b)
    assert len(b.messages) == 0, b.messages


async def test_unsubscribe(paho: Callable[..., Paho]) -> None:
    b = await client(paho, "myclientid2").connect()
    for topic in TOPICS[:3]:
        assert await b.subscribe(topic, qos=2) == [2]
    await b.unsubscribe(TOPICS[0])
    a = await client(paho, "myclientid").connect()
    for topic in TOPICS[:3]:
        await a.publish(topic, "", qos=1)
    await eventually(lambda: len(b.messages) >= 2, message="two messages")
    await settle(b)
    assert len(b.messages) == 2, b.messages
