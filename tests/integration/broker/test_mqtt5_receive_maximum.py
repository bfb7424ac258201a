"""The broker's own receive maximum (§3.2.2.3.3, issue #18): CONNACK tells an MQTT 5 client how
many QoS 1/2 PUBLISHes it may have unacknowledged at once (a connection's ``device_inflight_limit``
with ``sink_acks``, else :data:`broker._v5.RECEIVE_MAXIMUM`), and a client that sends more is
disconnected with 0x93 (Receive Maximum exceeded) [MQTT-3.3.4-9]."""

from __future__ import annotations

import asyncio
import queue
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from _broker_harness import INTEGRATION_PASSWORD, SERVICE_PASSWORD, SERVICE_USER, Raw, ours
from paho.mqtt.enums import CallbackAPIVersion

from broker import mqtt5
from broker._v5 import RECEIVE_MAXIMUM
from broker.mqtt5 import Reason


async def connected(raw: Callable[[], Any], client_id: str) -> tuple[Raw, mqtt5.Connack]:
    client: Raw = await raw()
    connect = mqtt5.Connect(client_id, keep_alive=30, username=SERVICE_USER, password=SERVICE_PASSWORD.encode())
    await client.send(mqtt5.encode(connect))
    connack = mqtt5.decode(await client.read_packet())
    assert isinstance(connack, mqtt5.Connack)
    return client, connack


def publishes(first_id: int, count: int) -> bytes:
    return b"".join(
        mqtt5.encode(mqtt5.Publish("t/x", b"%d" % i, qos=2, packet_id=i)) for i in range(first_id, first_id + count)
    )


async def test_a_client_over_the_receive_maximum_is_disconnected_with_0x93(raw: Callable[[], Any]) -> None:
    client, connack = await connected(raw, "greedy")
    assert connack.properties["receive_maximum"] == RECEIVE_MAXIMUM
    await client.send(publishes(1, RECEIVE_MAXIMUM + 1))  # no PUBREL: all stay unacknowledged
    answers = []
    while not answers or not isinstance(answers[-1], mqtt5.Disconnect):
        answers.append(mqtt5.decode(await client.read_packet()))
        if isinstance(answers[-1], mqtt5.PubAck):  # answered as it comes, as Paho's test does
            await client.send(mqtt5.encode(mqtt5.PubAck(answers[-1].packet_id, kind=mqtt5.PUBREL)))
    assert answers[-1] == mqtt5.Disconnect(Reason.RECEIVE_MAXIMUM_EXCEEDED)
    assert all(isinstance(a, mqtt5.PubAck) and a.kind == mqtt5.PUBREC for a in answers[:-1])
    assert await client.closed_by_peer()


async def test_a_client_within_the_receive_maximum_goes_on(raw: Callable[[], Any]) -> None:
    client, _ = await connected(raw, "patient")
    for first_id in (1, RECEIVE_MAXIMUM + 1):  # twice the window, released in between
        await client.send(publishes(first_id, RECEIVE_MAXIMUM))
        ids = range(first_id, first_id + RECEIVE_MAXIMUM)
        recs = [mqtt5.decode(await client.read_packet()) for _ in ids]
        assert recs == [mqtt5.PubAck(i, kind=mqtt5.PUBREC) for i in ids]
        await client.send(b"".join(mqtt5.encode(mqtt5.PubAck(i, kind=mqtt5.PUBREL)) for i in ids))
        comps = [mqtt5.decode(await client.read_packet()) for _ in ids]
        assert comps == [mqtt5.PubAck(i, kind=mqtt5.PUBCOMP) for i in ids]
    await client.send(mqtt5.encode(mqtt5.Pingreq()))
    assert isinstance(mqtt5.decode(await client.read_packet()), mqtt5.Pingresp)


async def test_with_sink_acks_the_receive_maximum_is_the_inflight_limit() -> None:
    async with ours(sink_acks=True, device_inflight_limit=3) as harness:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="paho5", protocol=mqtt.MQTTv5)
        client.username_pw_set("int-a", INTEGRATION_PASSWORD)
        client.max_inflight_messages_set(3)
        told: queue.Queue[Any] = queue.Queue()
        client.on_connect = lambda _c, _u, _f, reason, properties: told.put((reason.value, properties))
        client.connect_async("127.0.0.1", harness.port, keepalive=30)
        client.loop_start()
        try:
            reason, properties = await asyncio.to_thread(told.get, True, 5)
            assert (reason, properties.ReceiveMaximum) == (0, 3)
            sent = [client.publish("t/x", b"%d" % i, qos=1) for i in range(10)]
            for info in sent:
                await asyncio.to_thread(info.wait_for_publish, 5)
            assert all(info.is_published() for info in sent) and client.is_connected()
        finally:
            client.disconnect()
            await asyncio.to_thread(client.loop_stop)
