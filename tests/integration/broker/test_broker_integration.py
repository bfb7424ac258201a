"""Integration clients in the broker: each organization's namespace (``o/<org>/``, prefix
hidden) is a whole MQTT 3.1.1 broker of its own, isolated from every other one, from devices
and from the platform's topics.

The test integration clients are ``_broker_harness.INTEGRATIONS`` (``int-a`` and ``int-a2`` of
organization 1, ``int-b`` of organization 2); a service client plays the app.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from _broker_harness import (
    INTEGRATION_PASSWORD,
    SERVICE_PASSWORD,
    SERVICE_USER,
    Harness,
    Paho,
    Raw,
    connect_packet,
    eventually,
    running,
    token,
)

from broker.topics import TopicFilter

REFUSED = 0x80


async def integration(paho: Callable[..., Paho], name: str = "int-a", client_id: str = "", **kwargs: Any) -> Paho:
    return await paho(
        client_id=client_id or f"{name}-client", username=name, password=INTEGRATION_PASSWORD, **kwargs
    ).connect()


async def service(paho: Callable[..., Paho], *filters: str) -> Paho:
    client = await paho(client_id="app", username=SERVICE_USER, password=SERVICE_PASSWORD).connect()
    if filters:
        await client.subscribe(*filters, qos=1)
    return client


async def settle(*clients: Paho) -> None:
    """A round trip through each client's connection, so that what was sent before is handled."""
    for client in clients:
        await client.subscribe(f"settle/{id(client)}", qos=1)


async def test_topics_stay_inside_the_namespace_and_the_prefix_is_hidden(paho: Callable[..., Paho]) -> None:
    app = await service(paho, "#")
    a = await integration(paho)
    a2 = await integration(paho, "int-a2")
    b = await integration(paho, "int-b")
    assert await a2.subscribe("#", "home/+/temp", qos=2) == [2, 2]
    assert await b.subscribe("#", qos=2) == [2]
    await a.publish("home/kitchen/temp", "21", qos=1)
    got = await a2.received("home/kitchen/temp")
    assert got.payload == b"21"
    assert (await app.received("o/1/home/kitchen/temp")).payload == b"21"
    await b.publish("home/kitchen/temp", "5", qos=1)
    assert (await b.received("home/kitchen/temp")).payload == b"5"
    assert (await app.received("o/2/home/kitchen/temp")).payload == b"5"
    await settle(a2)
    assert [m.payload for m in a2.messages if m.topic == "home/kitchen/temp"] == [b"21"]  # once for two filters
    assert all(m.payload != b"5" for m in a2.messages)


async def test_organization_b_cannot_reach_anything_of_a(
    harness: Harness, paho: Callable[..., Paho], raw: Callable[[], Any]
) -> None:
    app = await service(paho)
    a = await integration(paho)
    assert await a.subscribe("#", qos=1) == [1]
    b = await integration(paho, "int-b")
    # filters naming the platform's or another organization's topics are read inside B's own namespace
    codes = await b.subscribe("$SYS/#", "dev/1", "dev/nosubscribe", "$share/g/$SYS/#", qos=1)
    assert codes == [REFUSED] * 4
    # a shared group of the same name in each organization: each its own (``broker._shared``)
    a_shared = await integration(paho, client_id="a-shared")
    assert await a_shared.subscribe("$share/g/#", qos=1) == [1]
    b_shared = await integration(paho, "int-b", client_id="b-shared")
    assert await b_shared.subscribe("$share/g/#", "$share/g/o/1/#", qos=1) == [1, 1]
    assert await b.subscribe("o/1/#", "d/+/#", "sys/#", qos=1) == [1, 1, 1]
    await app.publish("o/1/secret", "for A", qos=1)
    await app.publish("d/1/downlink/ds/Power", "1", qos=1)
    await app.publish("sys/presence/1", '{"online":true}', qos=1)
    await a.received("secret")
    # B writes, retains and wills into what would be A's topics: all stay in B's namespace
    await b.publish("o/1/secret", "forged", qos=1, retain=True)
    await b.publish("$SYS/broker/x", "forged", qos=1)
    await b.publish("dev/1/ds/Temperature", "forged", qos=1)  # the feed is the app's alone
    await b.publish("dev/1/set/Power", "1", qos=1, retain=True)  # a write is never retained
    await settle(a, b)
    assert [m.topic for m in a.messages] == ["secret"]
    assert b.topics() == ["o/1/secret"]
    assert harness.broker._core is not None
    retained = [topic for topic, _ in harness.broker._core.retained.match(TopicFilter("#"))]
    assert retained == ["o/2/o/1/secret"]
    fresh = await integration(paho, client_id="fresh")
    assert await fresh.subscribe("#", qos=1) == [1]
    await settle(fresh)
    assert fresh.topics() == []  # B's retained message is not A's
    wills = [("o/1/secret", b"B's will"), ("$SYS/x", b"B's will"), ("dev/1/ds/Temperature", b"B's will")]
    for n, will in enumerate(wills):
        client = await raw()
        await client.send(connect_packet(client_id=f"w{n}", username="int-b", password=INTEGRATION_PASSWORD, will=will))
        assert await client.read_packet() == b"\x20\x02\x00\x00"
        client.writer.transport.abort()  # connection lost: the will is due
    assert await b.subscribe("marker", qos=1) == [1]
    await app.publish("o/2/marker", b"1", qos=1)  # broadcasts are FIFO: a will would come first
    await b.received("marker")
    await settle(a, fresh, a_shared)
    assert b.topics() == ["o/1/secret", "o/1/secret", "marker"]  # the first will, inside B's namespace
    assert [m.topic for m in a.messages] == ["secret"]
    assert fresh.topics() == []
    assert a_shared.topics() == ["secret"]
    assert "secret" not in b_shared.topics() and "marker" in b_shared.topics()


async def test_device_and_gateway_topics_are_not_reachable(paho: Callable[..., Paho]) -> None:
    device = await paho(client_id="dev1", username="device", password=token(1)).connect()
    assert await device.subscribe("downlink/#", qos=1) == [1]
    a = await integration(paho)
    assert await a.subscribe("#", qos=1) == [1]
    await a.publish("d/1/downlink/ds/Power", "1", qos=1)
    await a.publish(f"dev/{token(1)}/ds/Power", "1", qos=1)
    await device.publish("ds/Temperature", "20", qos=1)
    await settle(device, a)
    assert device.topics() == []
    assert a.topics() == ["d/1/downlink/ds/Power"]  # its own topic of that name, inside its namespace


async def test_retained_qos_and_persistent_sessions_with_queued_messages(paho: Callable[..., Paho]) -> None:
    a = await integration(paho)
    await a.publish("state/door", "open", qos=2, retain=True)
    await a.publish("state/lamp", "on", qos=1, retain=True)
    late = await integration(paho, "int-a2")
    assert await late.subscribe("state/+", qos=2) == [2]
    await eventually(lambda: len(late.messages) == 2, message="the retained messages")
    assert {(m.topic, m.payload, m.retain) for m in late.messages} == {
        ("state/door", b"open", True),
        ("state/lamp", b"on", True),
    }
    await a.publish("state/door", "", qos=1, retain=True)  # cleared
    sleeper = await integration(paho, "int-a2", client_id="sleeper", clean_session=False)
    assert await sleeper.subscribe("queue/#", qos=1) == [1]
    await sleeper.close()
    for n in range(3):
        await a.publish(f"queue/{n}", str(n), qos=1)
    back = await integration(paho, "int-a2", client_id="sleeper", clean_session=False)
    await eventually(lambda: len(back.messages) == 3, message="the queued messages")
    assert [m.payload for m in back.messages] == [b"0", b"1", b"2"]
    again = await integration(paho, "int-a2", client_id="again")
    assert await again.subscribe("state/#", qos=1) == [1]
    await settle(again)
    assert again.topics() == ["state/lamp"]


async def test_the_same_client_id_in_two_organizations_is_two_sessions(paho: Callable[..., Paho]) -> None:
    a = await integration(paho, client_id="same")
    b = await integration(paho, "int-b", client_id="same")
    await settle(a, b)
    assert not a.disconnected and not b.disconnected


async def test_revoked_integration_is_disconnected_and_its_session_forgotten(
    harness: Harness, paho: Callable[..., Paho]
) -> None:
    a = await integration(paho, client_id="persistent", clean_session=False)
    assert await a.subscribe("x/#", qos=1) == [1]
    offline = await integration(paho, client_id="offline", clean_session=False)
    assert await offline.subscribe("x/#", qos=1) == [1]
    await offline.close()
    assert harness.broker._core is not None
    connections = harness.broker._core.connections
    await eventually(lambda: "int:client:int-a:offline" not in connections, message="offline session's end")
    harness.authenticator.revoked_integrations.add("int-a")
    assert await harness.broker.disconnect_gateways("client:int-a") == 1
    await eventually(lambda: a.disconnected, timeout=1.0, message="revoked integration disconnected")
    assert harness.broker._core is not None
    assert not any(key.startswith("int:client:int-a:") for key in harness.broker._core._sessions)
    await paho(client_id="persistent", username="int-a", password=INTEGRATION_PASSWORD).connect(
        expect="Bad user name or password"
    )


async def test_recheck_ends_an_integration_whose_credentials_stopped_working(
    harness: Harness, paho: Callable[..., Paho]
) -> None:
    a = await integration(paho)
    b = await integration(paho, "int-b")
    harness.authenticator.revoked_integrations.add("int-a")
    await harness.broker.recheck_gateways()
    await eventually(lambda: a.disconnected, timeout=1.0, message="integration disconnected")
    await asyncio.sleep(0)
    assert not b.disconnected


async def test_wrong_integration_credentials_get_connack_4_and_count_per_address(clients: list[Any]) -> None:
    async with running(clients, auth_failures_per_minute=3) as (harness, _):
        assert harness.authenticator is not None
        for password in ("wrong", "", INTEGRATION_PASSWORD + "x"):
            client = await Raw.open(harness.port)
            clients.append(client)
            await client.send(connect_packet(client_id="x", username="int-a", password=password))
            assert await client.read_packet() == b"\x20\x02\x00\x04"
        asked = len(harness.authenticator.calls)
        client = await Raw.open(harness.port)
        clients.append(client)
        await client.send(connect_packet(client_id="x", username="int-a", password=INTEGRATION_PASSWORD))
        assert await client.read_packet() == b"\x20\x02\x00\x04"  # the right secret, from a blocked address
        assert len(harness.authenticator.calls) == asked


async def test_a_write_goes_to_the_app_alone_naming_the_credentials(
    paho: Callable[..., Paho], raw: Callable[[], Any]
) -> None:
    app = await service(paho, "sys/integration/write/#")
    watcher = await integration(paho, "int-a2")
    assert await watcher.subscribe("#", qos=1) == [1]
    a = await integration(paho)
    await a.publish("dev/42/set/Power", "1", qos=1)
    assert (await app.received("sys/integration/write/client:int-a/42/Power")).payload == b"1"
    client = await raw()  # a will cannot be a write
    will = ("dev/42/set/Power", b"0")
    await client.send(connect_packet(client_id="w", username="int-a", password=INTEGRATION_PASSWORD, will=will))
    assert await client.read_packet() == b"\x20\x02\x00\x00"
    client.writer.transport.abort()
    await app.publish("o/1/marker", b"1", qos=1)
    await watcher.received("marker")
    assert watcher.topics() == ["marker"]
    assert app.topics() == ["sys/integration/write/client:int-a/42/Power"]
