"""Topic aliases from the broker to an MQTT 5 client that takes them (§3.3.2.3.4, issue #18):
the first topics it is sent get an alias (as many as its CONNECT's topic_alias_maximum), set by
the first PUBLISH to each; later PUBLISHes to those topics leave the topic out; the rest go in full."""

from __future__ import annotations

from collections.abc import Callable

from _broker_harness import SERVICE_PASSWORD, SERVICE_USER, Paho, Raw

from broker import mqtt5


async def test_the_broker_sets_and_uses_topic_aliases(raw: Callable[[], Raw], paho: Callable[..., Paho]) -> None:
    receiver: Raw = await raw()
    connect = mqtt5.Connect("aliased", keep_alive=30, username=SERVICE_USER, password=SERVICE_PASSWORD.encode())
    connect.properties["topic_alias_maximum"] = 1
    await receiver.send(mqtt5.encode(connect))
    assert isinstance(mqtt5.decode(await receiver.read_packet()), mqtt5.Connack)
    await receiver.send(mqtt5.encode(mqtt5.Subscribe(1, [mqtt5.Subscription("t/#", 0)])))
    assert mqtt5.decode(await receiver.read_packet()) == mqtt5.Suback(1, [0])
    sender = await paho(client_id="sender", username=SERVICE_USER, password=SERVICE_PASSWORD).connect()
    for topic, payload in (("t/a", b"1"), ("t/a", b"2"), ("t/b", b"3"), ("t/a", b"4")):
        await sender.publish(topic, payload, qos=1)
    received = [mqtt5.decode(await receiver.read_packet()) for _ in range(4)]
    assert received == [
        mqtt5.Publish("t/a", b"1", properties={"topic_alias": 1}),
        mqtt5.Publish("", b"2", properties={"topic_alias": 1}),
        mqtt5.Publish("t/b", b"3"),  # its one alias is taken
        mqtt5.Publish("", b"4", properties={"topic_alias": 1}),
    ]
