"""The session expiry interval of an MQTT 5 session, counted down (§3.1.2.11.2, issue #18): a
kept session is discarded that many seconds after its connection ends, unless a new connection
takes it first; the client's DISCONNECT may change the interval, but not from 0 (0x82)."""

from __future__ import annotations

import asyncio
import queue
from collections.abc import AsyncIterator, Callable
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from _broker_harness import SERVICE_PASSWORD, SERVICE_USER, Harness, Raw
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from broker import mqtt5
from broker.mqtt5 import Reason


class Client:
    """A paho MQTT 5 client (service login) that tells whether CONNACK found a session."""

    def __init__(self, port: int, client_id: str) -> None:
        self.port = port
        self.client_id = client_id
        self.client: mqtt.Client | None = None

    async def connect(self, expiry: int, clean_start: bool) -> bool:
        """Connect; whether the broker had the session (CONNACK's session present)."""
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5)
        client.username_pw_set(SERVICE_USER, SERVICE_PASSWORD)
        connected: queue.Queue[tuple[int, bool]] = queue.Queue()
        self.subscribed: queue.Queue[int] = queue.Queue()
        self.gone: queue.Queue[int] = queue.Queue()
        client.on_connect = lambda _c, _u, flags, reason, _p: connected.put((reason.value, flags.session_present))
        client.on_subscribe = lambda *_args: self.subscribed.put(1)
        client.on_disconnect = lambda *_args: self.gone.put(1)
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = expiry
        client.connect_async("127.0.0.1", self.port, keepalive=30, clean_start=clean_start, properties=properties)
        client.loop_start()
        self.client = client
        reason, present = await asyncio.to_thread(connected.get, True, 5)
        assert reason == 0
        return present

    async def subscribe(self, topic_filter: str) -> None:
        assert self.client is not None
        self.client.subscribe(topic_filter, qos=1)
        await asyncio.to_thread(self.subscribed.get, True, 5)

    async def disconnect(self, expiry: int | None = None) -> None:
        """DISCONNECT (with a new session expiry interval if given), and wait until closed."""
        assert self.client is not None
        properties = None
        if expiry is not None:
            properties = Properties(PacketTypes.DISCONNECT)
            properties.SessionExpiryInterval = expiry
        self.client.disconnect(properties=properties)
        await asyncio.to_thread(self.gone.get, True, 5)
        await asyncio.to_thread(self.client.loop_stop)
        self.client = None


@pytest.fixture
async def v5(harness: Harness) -> AsyncIterator[Callable[[str], Client]]:
    made: list[Client] = []

    def build(client_id: str) -> Client:
        made.append(Client(harness.port, client_id))
        return made[-1]

    yield build
    for client in made:
        if client.client is not None:
            client.client.disconnect()
            client.client.loop_stop()


async def test_a_kept_session_is_discarded_after_its_expiry_interval(v5: Callable[[str], Client]) -> None:
    client = v5("expiring")
    assert await client.connect(expiry=2, clean_start=True) is False
    await client.subscribe("t/#")
    await client.disconnect()
    assert await client.connect(expiry=2, clean_start=False) is True  # taken again before it expired
    await client.disconnect()
    await asyncio.sleep(3.5)  # past the interval
    assert await client.connect(expiry=2, clean_start=False) is False


async def test_disconnect_changes_the_expiry_interval(v5: Callable[[str], Client]) -> None:
    client = v5("changing")
    await client.connect(expiry=600, clean_start=True)
    await client.subscribe("t/#")
    await client.disconnect(expiry=1)
    await asyncio.sleep(2.5)  # past the interval DISCONNECT set
    assert await client.connect(expiry=1, clean_start=False) is False
    await client.subscribe("t/#")
    await client.disconnect(expiry=600)
    await asyncio.sleep(2.5)  # past the one CONNECT asked for
    assert await client.connect(expiry=1, clean_start=False) is True
    await client.disconnect(expiry=0)
    assert await client.connect(expiry=1, clean_start=False) is False


async def test_a_session_that_never_expires_is_kept(v5: Callable[[str], Client]) -> None:
    client = v5("forever")
    await client.connect(expiry=0xFFFFFFFF, clean_start=True)
    await client.subscribe("t/#")
    await client.disconnect()
    assert await client.connect(expiry=0xFFFFFFFF, clean_start=False) is True


async def test_disconnect_cannot_keep_a_session_its_connect_did_not(raw: Callable[[], Any]) -> None:
    client: Raw = await raw()
    connect = mqtt5.Connect("unkept", keep_alive=30, username=SERVICE_USER, password=SERVICE_PASSWORD.encode())
    await client.send(mqtt5.encode(connect))
    assert isinstance(mqtt5.decode(await client.read_packet()), mqtt5.Connack)
    await client.send(mqtt5.encode(mqtt5.Disconnect(0, {"session_expiry_interval": 5})))
    assert mqtt5.decode(await client.read_packet()) == mqtt5.Disconnect(Reason.PROTOCOL_ERROR)  # [MQTT-3.14.2-2]
    assert await client.closed_by_peer()
