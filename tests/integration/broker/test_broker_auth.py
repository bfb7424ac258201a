"""Authentication, session keys and one connection per device."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from _broker_harness import SERVICE_PASSWORD, SERVICE_USER, Harness, Paho, connect_packet, eventually, ours, token

from broker import BrokerSettings, MqttBroker
from broker.errors import BrokerStateError, ListenerError


async def test_unknown_token_gets_connack_4_on_the_wire(raw: Callable[[], Any]) -> None:
    client = await raw()
    await client.send(connect_packet("x", username="device", password="wrong-token"))
    assert await client.read_packet() == b"\x20\x02\x00\x04"
    assert await client.closed_by_peer()


async def test_device_token_with_other_user_name_is_refused(paho: Callable[..., Paho]) -> None:
    client = await paho(username="admin", password=token(1)).connect(expect="Bad user name or password")
    assert client.connack == "Bad user name or password"


async def test_no_credentials_is_refused_never_anonymous(raw: Callable[[], Any]) -> None:
    client = await raw()
    await client.send(connect_packet("anon"))
    assert await client.read_packet() == b"\x20\x02\x00\x04"


async def test_authenticator_failure_gets_connack_3(harness: Harness, raw: Callable[[], Any]) -> None:
    assert harness.authenticator is not None
    harness.authenticator.fail = True
    client = await raw()
    await client.send(connect_packet("x", username="device", password=token(1)))
    assert await client.read_packet() == b"\x20\x02\x00\x03"
    harness.authenticator.fail = False
    again = await raw()
    await again.send(connect_packet("x", username="device", password=token(1)))
    assert await again.read_packet() == b"\x20\x02\x00\x00"  # the broker survived


async def test_authenticator_sees_client_sent_id_and_address(harness: Harness, paho: Callable[..., Paho]) -> None:
    await paho(username="device", password=token(1)).connect()
    assert harness.authenticator is not None
    info = harness.authenticator.calls[-1]
    assert (info.username, info.client_id, info.remote_address) == ("device", "", "127.0.0.1")


async def test_service_connects_with_any_user_name(paho: Callable[..., Paho]) -> None:
    backend = await paho(client_id="ingest", username=SERVICE_USER, password=SERVICE_PASSWORD).connect()
    assert await backend.subscribe("#", "d/+/ds/#", qos=1) == [1, 1]


async def test_new_connection_of_same_device_replaces_old(harness: Harness, paho: Callable[..., Paho]) -> None:
    backend = await paho(client_id="b", username=SERVICE_USER, password=SERVICE_PASSWORD).connect()
    await backend.subscribe("sys/presence/#", qos=1)
    first = await paho(client_id="same", username="device", password=token(1)).connect()
    await eventually(lambda: len(backend.messages) == 1)
    await paho(client_id="other", username="device", password=token(1)).connect()
    await eventually(lambda: first.disconnected, message="old connection closed")
    await eventually(lambda: len(backend.messages) == 3)
    states = [json.loads(m.payload) for m in backend.messages]
    assert [s["online"] for s in states] == [True, False, True]
    assert states[1]["reason"] == "replaced" and states[2]["client_id"] == "other"
    assert harness.broker.connected_devices() == {1}


async def test_devices_sharing_a_client_id_do_not_collide(harness: Harness, paho: Callable[..., Paho]) -> None:
    backend = await paho(client_id="b", username=SERVICE_USER, password=SERVICE_PASSWORD).connect()
    one = await paho(client_id="ESP32", username="device", password=token(1)).connect()
    two = await paho(client_id="ESP32", username="device", password=token(2)).connect()
    await one.subscribe("downlink/#")
    await two.subscribe("downlink/#")
    assert harness.broker.connected_devices() == {1, 2}
    await backend.publish("d/1/downlink/ds/A", b"1")
    await backend.publish("d/2/downlink/ds/A", b"2")
    assert (await one.received("downlink/ds/A")).payload == b"1"
    assert (await two.received("downlink/ds/A")).payload == b"2"
    assert not one.disconnected and not two.disconnected


async def test_persistent_service_session_queues_qos1_while_away(harness: Harness, paho: Callable[..., Paho]) -> None:
    ingest = await paho(
        client_id="ingest", username=SERVICE_USER, password=SERVICE_PASSWORD, clean_session=False
    ).connect()
    await ingest.subscribe("d/+/ds/#", qos=1)
    await ingest.close()
    device = await paho(username="device", password=token(3)).connect()
    await device.publish("ds/Temp", b"21", qos=1)
    back = await paho(
        client_id="ingest", username=SERVICE_USER, password=SERVICE_PASSWORD, clean_session=False
    ).connect()
    assert (await back.received("d/3/ds/Temp")).payload == b"21"


async def test_broker_lifecycle_errors() -> None:
    broker = MqttBroker(BrokerSettings(port=0), object())  # type: ignore[arg-type]  # built outside a loop
    with pytest.raises(BrokerStateError):
        _ = broker.port
    async with ours() as running:
        busy = MqttBroker(BrokerSettings(port=running.port), running.authenticator)  # type: ignore[arg-type]
        with pytest.raises(ListenerError):
            await busy.start()
        with pytest.raises(BrokerStateError):
            await running.broker.start()
    await broker.stop()  # stopping a never-started broker is a no-op
