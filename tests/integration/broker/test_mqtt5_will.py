"""MQTT 5 wills and keep-alive on the broker (issue #18): the will delay interval (§3.1.3.2.2),
a will's message expiry counted from its publication, and the server keep-alive in CONNACK."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from _broker_harness import SERVICE_PASSWORD, SERVICE_USER, Harness, Raw, eventually, token
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from test_mqtt5_properties import Client, v5  # noqa: F401 (fixture)

from broker import mqtt5


def will_properties(delay: int = 0, expiry: int | None = None) -> Properties:
    properties = Properties(PacketTypes.WILLMESSAGE)
    properties.UserProperty = ("why", "lost")
    if delay:
        properties.WillDelayInterval = delay
    if expiry is not None:
        properties.MessageExpiryInterval = expiry
    return properties


async def break_connection(client: Client, harness: Harness) -> None:
    """Close the client's socket and wait until the broker has seen its connection end."""
    before = harness.broker.open_connections()
    client.client.loop_stop()
    client.client.socket().close()
    await eventually(lambda: harness.broker.open_connections() == before - 1, message="connection ended")


async def test_a_delayed_will_is_published_after_the_connection_ends(
    v5: Callable[..., Client],  # noqa: F811
    harness: Harness,
) -> None:
    receiver = v5("receiver")
    await receiver.connect()
    await receiver.subscribe("wills/#")
    leaving = v5("leaving")
    await leaving.connect(expiry=3600, will=("wills/leaving", will_properties(delay=1)))
    await break_connection(leaving, harness)
    message = await receiver.next()
    assert (message.topic, message.payload) == ("wills/leaving", b"gone")
    assert message.properties.UserProperty == [("why", "lost")]
    assert not hasattr(message.properties, "WillDelayInterval")  # not passed on


async def test_a_new_connection_to_the_session_cancels_its_delayed_will(
    v5: Callable[..., Client],  # noqa: F811
    harness: Harness,
) -> None:
    receiver = v5("receiver")
    await receiver.connect()
    await receiver.subscribe("wills/#")
    leaving = v5("leaving")
    await leaving.connect(expiry=3600, will=("wills/leaving", will_properties(delay=2)))
    await break_connection(leaving, harness)
    back = v5("leaving")
    await back.connect(clean_start=False, expiry=3600)  # within the delay: the will is not sent
    await asyncio.sleep(3)  # the delay passes
    await back.publish("wills/marker", b"marker", 1, Properties(PacketTypes.PUBLISH))
    assert (await receiver.next()).topic == "wills/marker"  # no will came before it


async def test_a_will_of_a_session_that_ends_with_its_connection_is_not_delayed(
    v5: Callable[..., Client],  # noqa: F811
    harness: Harness,
) -> None:
    """The will delay is at most the session's expiry ([MQTT-3.1.3-9]): with none, the will
    goes as the connection ends, not 30 s later."""
    receiver = v5("receiver")
    await receiver.connect()
    await receiver.subscribe("wills/#")
    leaving = v5("leaving")
    await leaving.connect(will=("wills/leaving", will_properties(delay=30)))
    await break_connection(leaving, harness)
    assert (await receiver.next()).topic == "wills/leaving"


async def test_a_wills_message_expiry_starts_when_it_is_published(
    v5: Callable[..., Client],  # noqa: F811
    harness: Harness,
) -> None:
    receiver = v5("receiver")
    await receiver.connect()
    await receiver.subscribe("wills/#")
    leaving = v5("leaving")
    await leaving.connect(will=("wills/leaving", will_properties(expiry=1)))
    await asyncio.sleep(1.5)  # longer than the will's expiry interval, before it is published
    await break_connection(leaving, harness)
    message = await receiver.next()
    assert message.topic == "wills/leaving" and message.properties.MessageExpiryInterval == 1


async def connack(raw: Callable[[], Raw], keep_alive: int, username: str = SERVICE_USER) -> mqtt5.Connack:
    connection: Raw = await raw()
    password = (SERVICE_PASSWORD if username == SERVICE_USER else token(1)).encode()
    await connection.send(mqtt5.encode(mqtt5.Connect("k", keep_alive=keep_alive, username=username, password=password)))
    packet = mqtt5.decode(await connection.read_packet())
    assert isinstance(packet, mqtt5.Connack) and packet.reason == 0
    return packet


async def test_a_keep_alive_above_60_s_or_none_gets_the_servers(raw: Callable[[], Raw]) -> None:
    assert (await connack(raw, 120)).properties["server_keep_alive"] == 60
    assert (await connack(raw, 0)).properties["server_keep_alive"] == 60
    assert "server_keep_alive" not in (await connack(raw, 45, username="device")).properties
    assert "server_keep_alive" not in (await connack(raw, 60)).properties
