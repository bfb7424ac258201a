"""MQTT 5 clients on the broker (issue #18): paho-mqtt 2.x with ``protocol=MQTTv5`` as a Blynk
device, and the service login, on the same listener as MQTT 3.1.1 clients.

The device tests of test_broker_routing.py (mount, ACL, isolation from other devices, diag,
always-delivered downlinks, retained OTA, wills) run again at the end of this module with every
client speaking MQTT 5 (its ``paho`` fixture below), so each isolation rule holds for v5 too.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from _broker_harness import (
    SERVICE_PASSWORD,
    SERVICE_USER,
    Harness,
    ManualClock,
    Paho,
    Raw,
    eventually,
    packet,
    running,
    token,
)
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from test_broker_gateway import (  # noqa: F401 (collected again here, with MQTT 5 clients)
    test_a_direct_connection_replaces_the_gateway_for_that_device,
    test_downlinks_come_down_under_the_token_and_wildcard_tokens_are_refused,
    test_ping_and_ota_offer_reach_a_device_through_its_gateway,
    test_publishes_outside_the_scope_are_dropped_with_a_diag_and_nothing_is_retained,
    test_values_go_up_as_the_device_and_presence_follows_the_gateway,
)
from test_broker_integration import (  # noqa: F401 (collected again here, with MQTT 5 clients)
    test_a_write_goes_to_the_app_alone_naming_the_credentials,
    test_device_and_gateway_topics_are_not_reachable,
    test_organization_b_cannot_reach_anything_of_a,
    test_retained_qos_and_persistent_sessions_with_queued_messages,
    test_the_same_client_id_in_two_organizations_is_two_sessions,
    test_topics_stay_inside_the_namespace_and_the_prefix_is_hidden,
)
from test_broker_routing import (  # noqa: F401 (collected again here, with MQTT 5 clients)
    test_always_delivered_downlinks_without_subscription,
    test_always_delivered_not_duplicated_when_subscribed,
    test_foreign_subscribe_gets_0x80_others_granted,
    test_foreign_topic_publish_is_dropped_with_diag,
    test_retained_on_subscribe_only_matching_own_filter,
    test_retained_ota_delivered_on_connect_only_to_its_device,
    test_unsubscribe_stops_delivery,
    test_uplink_is_mounted_and_downlink_unmounted,
)

from broker import mqtt5


@pytest.fixture
def paho(harness: Harness, clients: list[Any]) -> Callable[..., Paho]:
    """Tracked paho clients speaking MQTT 5 (the routing tests imported above use this one)."""

    def build(**kwargs: Any) -> Paho:
        client = Paho(harness.port, **{"protocol": mqtt.MQTTv5, **kwargs})
        clients.append(client)
        return client

    return build


class V5Device:
    """A paho MQTT 5 client that keeps the reason codes and properties the broker sends."""

    def __init__(self, port: int, username: str, password: str, client_id: str = "") -> None:
        self.port = port
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.username_pw_set(username, password)
        self.connack: queue.Queue[tuple[int, Any]] = queue.Queue()
        self.acks: dict[int, int] = {}
        self.disconnects: queue.Queue[int] = queue.Queue()
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.lock = threading.Lock()
        self.client.on_connect = lambda _c, _u, _f, reason, props: self.connack.put((reason.value, props))
        self.client.on_publish = self._on_publish
        self.client.on_disconnect = lambda _c, _u, _f, reason, _p: self.disconnects.put(reason.value)
        self.client.on_message = lambda _c, _u, message: self.messages.put(message)
        self.subacks: queue.Queue[list[int]] = queue.Queue()
        self.client.on_subscribe = lambda _c, _u, _mid, codes, _p: self.subacks.put([c.value for c in codes])

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: Any, _p: Any) -> None:
        with self.lock:
            self.acks[mid] = reason.value

    async def connect(self, properties: Properties | None = None) -> tuple[int, Any]:
        self.client.connect_async("127.0.0.1", self.port, keepalive=30, properties=properties)
        self.client.loop_start()
        return await asyncio.to_thread(self.connack.get, True, 5)

    async def subscribe(self, topic_filter: str) -> list[int]:
        """Subscribe at QoS 1 and return the SUBACK's reason codes."""
        self.client.subscribe(topic_filter, qos=1)
        return await asyncio.to_thread(self.subacks.get, True, 5)

    async def publish(self, topic: str, payload: bytes, properties: Properties | None = None) -> int:
        """Publish at QoS 1 and return the PUBACK's reason code."""
        info = self.client.publish(topic, payload, qos=1, properties=properties)
        await eventually(lambda: info.mid in self.acks, message="PUBACK")
        return self.acks[info.mid]

    async def close(self) -> None:
        self.client.disconnect()
        await asyncio.to_thread(self.client.loop_stop)


@pytest.fixture
async def v5(harness: Harness) -> Any:
    made: list[V5Device] = []

    def build(username: str = "device", password: str = token(1), **kwargs: Any) -> V5Device:
        made.append(V5Device(harness.port, username, password, **kwargs))
        return made[-1]

    yield build
    await asyncio.gather(*(device.close() for device in made))


async def test_a_device_token_connects_publishes_and_gets_a_downlink(
    v5: Callable[..., V5Device], paho: Callable[..., Paho]
) -> None:
    backend = await paho(client_id="backend", username=SERVICE_USER, password=SERVICE_PASSWORD).connect()
    await backend.subscribe("d/#", qos=1)
    device = v5()
    reason, properties = await device.connect()
    assert reason == 0
    assert properties.TopicAliasMaximum == 16
    assert properties.MaximumPacketSize == 1024 + 5
    assert properties.AssignedClientIdentifier.startswith("auto-")  # it sent no client id
    assert not hasattr(properties, "SubscriptionIdentifierAvailable")  # absent: available
    assert await device.subscribe("downlink/#") == [1]
    assert await device.publish("ds/Temperature", b"21.5") == 0
    assert (await backend.received("d/1/ds/Temperature")).payload == b"21.5"
    await backend.publish("d/1/downlink/ds/Power", b"1", qos=1)
    message = await asyncio.to_thread(device.messages.get, True, 5)
    assert (message.topic, message.payload) == ("downlink/ds/Power", b"1")


async def test_a_wrong_token_gets_0x86_and_a_service_password_0x86(v5: Callable[..., V5Device]) -> None:
    reason, _ = await v5(password="wrong-token-" + "x" * 20).connect()
    assert reason == mqtt5.Reason.BAD_USER_NAME_OR_PASSWORD  # what Blynk's paho sample compares
    reason, _ = await v5(username=SERVICE_USER, password="nope").connect()
    assert reason == mqtt5.Reason.BAD_USER_NAME_OR_PASSWORD


async def test_a_publish_outside_blynks_uplinks_gets_puback_0x87(
    v5: Callable[..., V5Device], paho: Callable[..., Paho]
) -> None:
    backend = await paho(client_id="backend", username=SERVICE_USER, password=SERVICE_PASSWORD).connect()
    await backend.subscribe("d/#", qos=1)
    device = v5()
    assert (await device.connect())[0] == 0
    assert await device.publish("d/2/ds/Temperature", b"spoof") == mqtt5.Reason.NOT_AUTHORIZED
    assert await device.publish("ds/Temperature", b"1") == 0
    await backend.received("d/1/ds/Temperature")
    assert "d/2/ds/Temperature" not in backend.topics() and "d/1/d/2/ds/Temperature" not in backend.topics()


async def test_topic_aliases_from_the_client(v5: Callable[..., V5Device], paho: Callable[..., Paho]) -> None:
    backend = await paho(client_id="backend", username=SERVICE_USER, password=SERVICE_PASSWORD).connect()
    await backend.subscribe("d/#", qos=1)
    device = v5()
    assert (await device.connect())[0] == 0
    alias = Properties(PacketTypes.PUBLISH)
    alias.TopicAlias = 3
    assert await device.publish("ds/Temperature", b"1", alias) == 0
    assert await device.publish("", b"2", alias) == 0  # the alias alone names the topic
    await eventually(lambda: backend.topics().count("d/1/ds/Temperature") == 2)
    assert [m.payload for m in backend.messages] == [b"1", b"2"]


async def test_session_expiry_is_answered_0_for_a_device(v5: Callable[..., V5Device]) -> None:
    asked = Properties(PacketTypes.CONNECT)
    asked.SessionExpiryInterval = 3600
    reason, properties = await v5(client_id="fw-1").connect(asked)
    assert reason == 0
    assert properties.SessionExpiryInterval == 0  # a device's session is always clean (Blynk)
    assert not hasattr(properties, "AssignedClientIdentifier")


async def test_an_alias_never_set_is_a_protocol_error_with_a_disconnect(raw: Callable[[], Any]) -> None:
    connection: Raw = await raw()
    connect = mqtt5.Connect(client_id="a", username="device", password=token(1).encode(), keep_alive=30)
    await connection.send(mqtt5.encode(connect))
    assert mqtt5.decode(await connection.read_packet()) == mqtt5.Connack(
        0,
        False,
        {"topic_alias_maximum": 16, "receive_maximum": 100, "maximum_packet_size": 1029},
    )
    await connection.send(mqtt5.encode(mqtt5.Publish("", b"x", properties={"topic_alias": 5})))
    assert mqtt5.decode(await connection.read_packet()) == mqtt5.Disconnect(mqtt5.Reason.PROTOCOL_ERROR)
    assert await connection.closed_by_peer()


async def test_a_malformed_v5_connect_gets_connack_0x81(raw: Callable[[], Any]) -> None:
    connection: Raw = await raw()
    body = bytes.fromhex("0004 4d515454 05 02 000a 03 230001 0000")  # a topic alias in CONNECT
    await connection.send(packet(0x10, body))
    assert mqtt5.decode(await connection.read_packet()) == mqtt5.Connack(mqtt5.Reason.PROTOCOL_ERROR)


async def v5_raw(open_raw: Callable[[], Any], device_id: int = 1, keep_alive: int = 30) -> Raw:
    """A raw-socket MQTT 5 device, connected (CONNACK reason 0 checked)."""
    connection: Raw = await open_raw()
    connect = mqtt5.Connect(client_id=f"raw-{device_id}", username="device", password=token(device_id).encode())
    connect.keep_alive = keep_alive
    await connection.send(mqtt5.encode(connect))
    connack = mqtt5.decode(await connection.read_packet())
    assert isinstance(connack, mqtt5.Connack) and connack.reason == 0, connack
    return connection


async def test_suback_and_unsuback_carry_reason_codes(raw: Callable[[], Any]) -> None:
    device = await v5_raw(raw)
    subscriptions = [mqtt5.Subscription("downlink/#", 1), mqtt5.Subscription("d/2/downlink/#", 1)]
    await device.send(mqtt5.encode(mqtt5.Subscribe(1, subscriptions)))
    assert mqtt5.decode(await device.read_packet()) == mqtt5.Suback(1, [1, 0x80])
    await device.send(mqtt5.encode(mqtt5.Unsubscribe(2, ["downlink/#", "downlink/x"])))
    assert mqtt5.decode(await device.read_packet()) == mqtt5.Unsuback(2, [0, 0])


async def test_the_rate_limit_answers_puback_0x97(clients: list[Any]) -> None:
    async with running(clients, rate_clock=ManualClock(), device_rate_limit=2.0) as (harness, _paho):
        device = await v5_raw(lambda: Raw.open(harness.port))
        clients.append(device)
        for n in range(1, 6):
            await device.send(mqtt5.encode(mqtt5.Publish("ds/Temperature", b"1", 1, packet_id=n)))
        acks = [mqtt5.decode(await device.read_packet()) for _ in range(5)]
        reasons = {ack.packet_id: ack.reason for ack in acks if isinstance(ack, mqtt5.PubAck)}
        assert reasons == {1: 0, 2: 0, 3: 0x97, 4: 0x97, 5: 0x97}, acks


async def test_a_second_connection_takes_the_session_over_with_0x8e(raw: Callable[[], Any]) -> None:
    first = await v5_raw(raw)
    await v5_raw(raw)
    assert mqtt5.decode(await first.read_packet()) == mqtt5.Disconnect(mqtt5.Reason.SESSION_TAKEN_OVER)
    assert await first.closed_by_peer()


async def test_silence_past_keep_alive_gets_0x8d(raw: Callable[[], Any]) -> None:
    device = await v5_raw(raw, keep_alive=1)  # dropped after 1.5 s of silence (keepalive_grace)
    assert mqtt5.decode(await device.read_packet(timeout=5)) == mqtt5.Disconnect(mqtt5.Reason.KEEP_ALIVE_TIMEOUT)
    assert await device.closed_by_peer()


async def test_a_packet_above_the_limit_gets_0x95(raw: Callable[[], Any]) -> None:
    device = await v5_raw(raw)
    await device.send(mqtt5.encode(mqtt5.Publish("ds/Temperature", b"x" * 2000)))
    assert mqtt5.decode(await device.read_packet()) == mqtt5.Disconnect(mqtt5.Reason.PACKET_TOO_LARGE)
    assert await device.closed_by_peer()


@pytest.mark.parametrize("protocol", [mqtt.MQTTv311, mqtt.MQTTv5], ids=["3.1.1", "5"])
async def test_a_device_reaches_another_device_by_no_protocol(paho: Callable[..., Paho], protocol: int) -> None:
    """Isolation across protocols: an MQTT 5 device cannot reach device 2, whichever protocol
    device 2 speaks."""
    watcher = await paho(username="device", password=token(2), protocol=protocol).connect()
    assert await watcher.subscribe("downlink/#") == [0]
    device = await paho(username="device", password=token(1)).connect()
    await device.publish("ds/Temperature", b"1", qos=1)
    await device.publish("d/2/downlink/ds/Power", b"1", qos=1)
    diag = await device.received("downlink/diag")
    assert diag.payload == b'publish to "d/2/downlink/ds/Power" refused: not a Blynk uplink topic'
    assert watcher.topics() == []


async def test_the_clients_receive_maximum_is_kept(raw: Callable[[], Any], paho: Callable[..., Paho]) -> None:
    """A device that takes one unacknowledged QoS 1 message at a time gets the next downlink
    only after it acknowledged the one before."""
    backend = await paho(client_id="backend", username=SERVICE_USER, password=SERVICE_PASSWORD).connect()
    device: Raw = await raw()
    connect = mqtt5.Connect(
        client_id="slow", username="device", password=token(1).encode(), properties={"receive_maximum": 1}
    )
    await device.send(mqtt5.encode(connect))
    assert isinstance(mqtt5.decode(await device.read_packet()), mqtt5.Connack)
    await device.send(mqtt5.encode(mqtt5.Subscribe(1, [mqtt5.Subscription("downlink/#", 1)])))
    assert mqtt5.decode(await device.read_packet()) == mqtt5.Suback(1, [1])
    for n in range(3):
        await backend.publish(f"d/1/downlink/ds/V{n}", str(n), qos=1)
    first = mqtt5.decode(await device.read_packet())
    assert isinstance(first, mqtt5.Publish) and first.topic == "downlink/ds/V0"
    await device.send(mqtt5.encode(mqtt5.Pingreq()))
    assert mqtt5.decode(await device.read_packet()) == mqtt5.Pingresp()  # V1 waits: no room
    for n in range(1, 3):
        assert first.packet_id is not None
        await device.send(mqtt5.encode(mqtt5.PubAck(first.packet_id)))
        first = mqtt5.decode(await device.read_packet())  # type: ignore[assignment]
        assert isinstance(first, mqtt5.Publish) and first.topic == f"downlink/ds/V{n}"
