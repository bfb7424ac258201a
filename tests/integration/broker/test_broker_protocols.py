"""MQTT 3.1.1 and MQTT 5 are served (MQTT 5 in depth: test_broker_mqtt5.py); MQTT 3.1 and
unknown levels get an answer they understand, then EOF."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from _broker_harness import Paho, Raw, connect_packet, eventually, packet, token

from broker import MqttBroker


async def test_mqtt5_connect_without_credentials_gets_v5_connack_0x86_then_eof(raw: Callable[[], Any]) -> None:
    client: Raw = await raw()
    properties = b"\x05\x11\x00\x00\x00\x3c"  # session expiry interval 60: a real v5 property
    body = b"\x00\x04MQTT\x05\x02\x00\x3c" + properties + b"\x00\x02v5"
    await client.send(packet(0x10, body))
    assert await client.read_packet() == b"\x20\x03\x00\x86\x00"  # v5 CONNACK: bad user name or password
    assert await client.closed_by_peer()


async def test_paho_mqtt5_device_is_served(paho: Callable[..., Paho]) -> None:
    client = paho(username="device", password=token(1), protocol=mqtt.MQTTv5)
    await client.connect(expect="Success")
    assert client.connack == "Success"


async def test_mqtt31_connect_gets_connack_1_then_eof(raw: Callable[[], Any]) -> None:
    client: Raw = await raw()
    body = b"\x00\x06MQIsdp\x03\x02\x00\x3c" + b"\x00\x03v31"
    await client.send(packet(0x10, body))
    assert await client.read_packet() == b"\x20\x02\x00\x01"
    assert await client.closed_by_peer()


async def test_unknown_level_gets_connack_1_and_authenticator_is_not_asked(
    harness: Any, raw: Callable[[], Any]
) -> None:
    client: Raw = await raw()
    v311 = connect_packet(username="device", password=token(1))
    await client.send(v311.replace(b"MQTT\x04", b"MQTT\x06", 1))
    assert await client.read_packet() == b"\x20\x02\x00\x01"
    assert harness.authenticator.calls == []
    broker: MqttBroker = harness.broker
    await eventually(lambda: broker.open_connections() == 0, message="connection closed")
