"""MQTT 5 subscription options and identifiers on the broker (issue #18): no local, retain as
published, retain handling 0/1/2 (§3.8.3.1) and subscription identifiers (§3.8.2.1.2), with
real paho-mqtt MQTT 5 clients (service login) against the real broker."""

from __future__ import annotations

import asyncio
import queue
from collections.abc import AsyncIterator, Callable

import paho.mqtt.client as mqtt
import pytest
from _broker_harness import SERVICE_PASSWORD, SERVICE_USER, Harness, Paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions


class Client:
    """A paho MQTT 5 client keeping every message it gets."""

    def __init__(self, port: int, client_id: str) -> None:
        self.port = port
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.username_pw_set(SERVICE_USER, SERVICE_PASSWORD)
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.connected: queue.Queue[tuple[int, Properties]] = queue.Queue()
        self.subscribed: queue.Queue[list[int]] = queue.Queue()
        self.client.on_connect = lambda _c, _u, _f, reason, props: self.connected.put((reason.value, props))
        self.client.on_message = lambda _c, _u, message: self.messages.put(message)
        self.client.on_subscribe = lambda _c, _u, _m, codes, _p: self.subscribed.put([c.value for c in codes])

    async def connect(self) -> Properties:
        self.client.connect_async("127.0.0.1", self.port, keepalive=30)
        self.client.loop_start()
        reason, properties = await asyncio.to_thread(self.connected.get, True, 5)
        assert reason == 0
        return properties

    async def subscribe(self, topic_filter: str, options: SubscribeOptions, identifier: int | None = None) -> None:
        properties = None
        if identifier is not None:
            properties = Properties(PacketTypes.SUBSCRIBE)
            properties.SubscriptionIdentifier = identifier
        self.client.subscribe(topic_filter, options=options, properties=properties)
        assert await asyncio.to_thread(self.subscribed.get, True, 5) == [options.QoS]

    async def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        await asyncio.to_thread(info.wait_for_publish, 5)

    async def next(self) -> mqtt.MQTTMessage:
        return await asyncio.to_thread(self.messages.get, True, 5)

    async def marker(self, sender: Client, topic: str) -> list[mqtt.MQTTMessage]:
        """What came before a marker message ``sender`` publishes on ``topic`` (which this
        client must receive): a check that something did *not* come, without waiting on a clock."""
        await sender.publish(topic, b"marker")
        before = []
        while (message := await self.next()).payload != b"marker":
            before.append(message)
        return before


@pytest.fixture
async def v5(harness: Harness) -> AsyncIterator[Callable[[str], Client]]:
    made: list[Client] = []

    def build(client_id: str) -> Client:
        made.append(Client(harness.port, client_id))
        return made[-1]

    yield build
    for client in made:
        client.client.disconnect()
        client.client.loop_stop()


async def test_no_local_keeps_a_clients_own_publishes_from_it(v5: Callable[[str], Client]) -> None:
    a, b = v5("a"), v5("b")
    await a.connect()
    await b.connect()
    await a.subscribe("chat/#", SubscribeOptions(qos=1, noLocal=True))
    await a.subscribe("marks", SubscribeOptions(qos=1))
    await b.subscribe("chat/#", SubscribeOptions(qos=1, noLocal=True))
    await a.publish("chat/1", b"from a")
    assert (await b.next()).payload == b"from a"
    assert await a.marker(b, "marks") == []  # a did not get its own message
    await b.publish("chat/1", b"from b")
    assert (await a.next()).payload == b"from b"


async def test_retain_as_published_keeps_the_flag_on_live_messages(v5: Callable[[str], Client]) -> None:
    a, plain = v5("a"), v5("plain")
    await a.connect()
    await plain.connect()
    await a.subscribe("r/#", SubscribeOptions(qos=1, retainAsPublished=True))
    await plain.subscribe("r/#", SubscribeOptions(qos=1))
    await a.publish("r/1", b"not retained")
    await a.publish("r/2", b"retained", retain=True)
    assert [(m.payload, m.retain) for m in (await a.next(), await a.next())] == [
        (b"not retained", False),
        (b"retained", True),
    ]
    assert [(m.payload, m.retain) for m in (await plain.next(), await plain.next())] == [
        (b"not retained", False),
        (b"retained", False),  # MQTT 5's default, as 3.1.1: a live message is not marked retained
    ]
    await a.publish("r/2", b"", retain=True)


async def test_retain_handling_0_1_2(v5: Callable[[str], Client]) -> None:
    a = v5("a")
    await a.connect()
    await a.publish("kept/1", b"one", retain=True)
    await a.subscribe("kept/#", SubscribeOptions(qos=1, retainHandling=1))
    assert (await a.next()).payload == b"one"  # 1: a new subscription gets them
    await a.subscribe("kept/#", SubscribeOptions(qos=1, retainHandling=1))
    assert await a.marker(a, "kept/marker") == []  # ... and one that existed does not
    b = v5("b")
    await b.connect()
    await b.subscribe("kept/#", SubscribeOptions(qos=1, retainHandling=2))
    await b.subscribe("marks", SubscribeOptions(qos=1))
    assert await b.marker(a, "marks") == []  # 2: never
    await b.subscribe("kept/#", SubscribeOptions(qos=1, retainHandling=0))
    assert (await b.next()).payload == b"one"  # 0: always, as 3.1.1
    await b.subscribe("kept/#", SubscribeOptions(qos=1, retainHandling=0))
    assert (await b.next()).payload == b"one"
    await a.publish("kept/1", b"", retain=True)


async def test_subscription_identifiers_come_with_the_messages_they_matched(v5: Callable[[str], Client]) -> None:
    b = v5("b")
    connack = await b.connect()
    assert not hasattr(connack, "SubscriptionIdentifierAvailable")  # absent: available (§3.2.2.3.12)
    await b.subscribe("ids/1", SubscribeOptions(qos=1), identifier=2)
    await b.subscribe("ids/#", SubscribeOptions(qos=1), identifier=268_435_455)
    await b.subscribe("ids/+/x", SubscribeOptions(qos=1))
    await b.publish("ids/1", b"both")
    message = await b.next()
    assert sorted(message.properties.SubscriptionIdentifier) == [2, 268_435_455]
    await b.publish("ids/2/x", b"one and a plain one")
    assert (await b.next()).properties.SubscriptionIdentifier == [268_435_455]
    b.client.unsubscribe("ids/#")
    await b.publish("ids/2/x", b"plain only")
    assert not hasattr((await b.next()).properties, "SubscriptionIdentifier")


async def test_a_3_1_1_subscriber_is_unaffected(v5: Callable[[str], Client], paho: Callable[..., Paho]) -> None:
    """Options of an MQTT 5 subscription change nothing for a 3.1.1 client on the same topic."""
    old = await paho(client_id="old", username=SERVICE_USER, password=SERVICE_PASSWORD).connect()
    assert await old.subscribe("o/#", qos=1) == [1]
    a = v5("a")
    await a.connect()
    await a.subscribe("o/#", SubscribeOptions(qos=1, noLocal=True, retainAsPublished=True), identifier=7)
    await a.publish("o/1", b"x", retain=True)
    received = await old.received("o/1")
    assert (received.payload, received.qos, received.retain) == (b"x", 1, False)
    await a.publish("o/1", b"", retain=True)
