"""PUBLISH properties carried from an MQTT 5 publisher to MQTT 5 receivers (issue #18): user
properties, payload format, content type, response topic, correlation data and the message
expiry interval (counted down while the message waits), on live, queued and retained messages
and on wills; MQTT 3.1.1 receivers get the same packets as before."""

from __future__ import annotations

import asyncio
import queue
from collections.abc import AsyncIterator, Callable
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from _broker_harness import (
    SERVICE_PASSWORD,
    SERVICE_USER,
    Harness,
    Paho,
    Raw,
    connect_packet,
    publish_packet,
    subscribe_packet,
    token,
)
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


class Client:
    """A paho MQTT 5 client (service login) keeping every message with its properties."""

    def __init__(self, port: int, client_id: str, **login: str) -> None:
        self.port = port
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.username_pw_set(login.get("username", SERVICE_USER), login.get("password", SERVICE_PASSWORD))
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.connected: queue.Queue[int] = queue.Queue()
        self.subscribed: queue.Queue[int] = queue.Queue()
        self.client.on_connect = lambda _c, _u, _f, reason, _p: self.connected.put(reason.value)
        self.client.on_message = lambda _c, _u, message: self.messages.put(message)
        self.client.on_subscribe = lambda *_args: self.subscribed.put(1)

    async def connect(
        self, clean_start: bool = True, expiry: int = 0, will: tuple[str, Properties] | None = None
    ) -> None:
        properties = Properties(PacketTypes.CONNECT)
        if expiry:
            properties.SessionExpiryInterval = expiry
        if will is not None:
            self.client.will_set(will[0], b"gone", qos=1, properties=will[1])
        self.client.connect_async("127.0.0.1", self.port, keepalive=30, clean_start=clean_start, properties=properties)
        self.client.loop_start()
        assert await asyncio.to_thread(self.connected.get, True, 5) == 0

    async def subscribe(self, topic_filter: str, qos: int = 1) -> None:
        self.client.subscribe(topic_filter, qos=qos)
        await asyncio.to_thread(self.subscribed.get, True, 5)

    async def publish(self, topic: str, payload: bytes, qos: int, properties: Properties, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        await asyncio.to_thread(info.wait_for_publish, 5)

    async def next(self) -> mqtt.MQTTMessage:
        return await asyncio.to_thread(self.messages.get, True, 5)

    async def close(self) -> None:
        self.client.disconnect()
        await asyncio.to_thread(self.client.loop_stop)


@pytest.fixture
async def v5(harness: Harness) -> AsyncIterator[Callable[..., Client]]:
    made: list[Client] = []

    def build(client_id: str, **login: str) -> Client:
        made.append(Client(harness.port, client_id, **login))
        return made[-1]

    yield build
    for client in made:
        client.client.disconnect()
        client.client.loop_stop()


def publish_properties(**extra: Any) -> Properties:
    properties = Properties(PacketTypes.PUBLISH)
    properties.UserProperty = ("a", "2")
    properties.UserProperty = ("c", "3")
    properties.PayloadFormatIndicator = 1
    properties.ContentType = "text/plain"
    properties.ResponseTopic = "replies/1"
    properties.CorrelationData = b"\x00334"
    for name, value in extra.items():
        setattr(properties, name, value)
    return properties


def assert_carried(message: mqtt.MQTTMessage) -> None:
    properties = message.properties
    assert properties is not None
    assert properties.UserProperty == [("a", "2"), ("c", "3")]
    assert properties.PayloadFormatIndicator == 1
    assert properties.ContentType == "text/plain"
    assert properties.ResponseTopic == "replies/1"
    assert properties.CorrelationData == b"\x00334"


async def test_properties_reach_a_v5_receiver_at_every_qos(v5: Callable[..., Client]) -> None:
    receiver = v5("receiver")
    await receiver.connect()
    await receiver.subscribe("t/#", qos=2)
    sender = v5("sender")
    await sender.connect()
    for qos in (0, 1, 2):
        await sender.publish(f"t/{qos}", f"{qos}".encode(), qos, publish_properties())
        message = await receiver.next()
        assert (message.topic, message.qos) == (f"t/{qos}", qos)
        assert_carried(message)
        assert not hasattr(message.properties, "MessageExpiryInterval")
    await sender.publish("t/plain", b"x", 1, Properties(PacketTypes.PUBLISH))
    message = await receiver.next()
    assert message.topic == "t/plain" and not hasattr(message.properties, "UserProperty")


async def test_a_retained_message_keeps_its_properties(v5: Callable[..., Client]) -> None:
    sender = v5("sender")
    await sender.connect()
    await sender.publish("r/1", b"kept", 1, publish_properties(), retain=True)
    receiver = v5("receiver")
    await receiver.connect()
    await receiver.subscribe("r/#")
    message = await receiver.next()
    assert (message.topic, message.payload, message.retain) == ("r/1", b"kept", True)
    assert_carried(message)


async def test_a_will_keeps_its_properties(v5: Callable[..., Client]) -> None:
    receiver = v5("receiver")
    await receiver.connect()
    await receiver.subscribe("wills/#")
    will = Properties(PacketTypes.WILLMESSAGE)
    will.UserProperty = ("why", "lost")
    will.ContentType = "text/plain"
    leaving = v5("leaving")
    await leaving.connect(will=("wills/leaving", will))
    leaving.client.loop_stop()
    leaving.client.socket().close()  # the connection breaks: the will is published
    message = await receiver.next()
    assert message.topic == "wills/leaving" and message.payload == b"gone"
    assert message.properties.UserProperty == [("why", "lost")]
    assert message.properties.ContentType == "text/plain"


async def test_message_expiry_counts_down_and_an_expired_message_is_not_delivered(
    v5: Callable[..., Client],
) -> None:
    receiver = v5("receiver")
    await receiver.connect(expiry=3600)
    await receiver.subscribe("e/#", qos=2)
    await receiver.close()  # its session keeps the messages
    sender = v5("sender")
    await sender.connect()
    await sender.publish("e/short", b"expires", 1, publish_properties(MessageExpiryInterval=1))
    await sender.publish("e/long", b"stays", 2, publish_properties(MessageExpiryInterval=60))
    await sender.publish("e/none", b"forever", 1, publish_properties())
    await asyncio.sleep(2.2)  # e/short's interval passes while it waits
    again = v5("receiver")
    await again.connect(clean_start=False, expiry=3600)
    first, second = sorted([await again.next(), await again.next()], key=lambda m: m.topic)
    assert [first.topic, second.topic] == ["e/long", "e/none"]
    assert 1 <= first.properties.MessageExpiryInterval <= 58  # 60 less the time it waited
    assert_carried(first)
    assert not hasattr(second.properties, "MessageExpiryInterval")
    await sender.publish("e/marker", b"after", 1, publish_properties())
    assert (await again.next()).topic == "e/marker"  # e/short never came before it


async def test_a_3_1_1_receiver_gets_the_same_bytes(raw: Callable[[], Any], v5: Callable[..., Client]) -> None:
    receiver: Raw = await raw()
    await receiver.send(connect_packet("old", SERVICE_USER, SERVICE_PASSWORD))
    assert await receiver.read_packet() == b"\x20\x02\x00\x00"
    await receiver.send(subscribe_packet(1, "t/#"))
    assert await receiver.read_packet() == b"\x90\x03\x00\x01\x00"
    sender = v5("sender")
    await sender.connect()
    await sender.publish("t/1", b"payload", 0, publish_properties(MessageExpiryInterval=60))
    assert await receiver.read_packet() == publish_packet("t/1", b"payload")


async def test_a_device_publishing_with_properties_still_reaches_the_app(
    v5: Callable[..., Client], paho: Callable[..., Paho]
) -> None:
    ingest = await paho(
        client_id="ingest", username=SERVICE_USER, password=SERVICE_PASSWORD, clean_session=False
    ).connect()
    assert await ingest.subscribe("d/#", qos=1) == [1]
    watcher = v5("watcher")
    await watcher.connect()
    await watcher.subscribe("d/1/ds/#")
    device = v5("fw", username="device", password=token(1))
    await device.connect()
    await device.publish("ds/Temperature", b"21.5", 1, publish_properties())
    assert (await ingest.received("d/1/ds/Temperature")).payload == b"21.5"
    message = await watcher.next()
    assert message.topic == "d/1/ds/Temperature" and message.payload == b"21.5"
    assert_carried(message)
    assert [m.payload for m in ingest.messages] == [b"21.5"]
