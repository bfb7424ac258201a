"""Blynk's MQTT Gateway API in the broker: ``dev/<token>/`` topics mapped to each device's own
``d/<id>/`` namespace, scope, presence, downlinks, OTA offers, ping, wills, limits, revocation.

The test gateways and their scopes are in ``_broker_harness.GATEWAYS`` (``gw-a``: devices 1-3,
``gw-b``: devices 4-5); a service client plays the backend.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from _broker_harness import (
    GATEWAY_PASSWORD,
    RATE_DIAG,
    SERVICE_PASSWORD,
    SERVICE_USER,
    Harness,
    ManualClock,
    Paho,
    connect_packet,
    eventually,
    offline_reason,
    ours,
    presence_watcher,
    token,
)

from broker.presence import ping_topic

REFUSED = 0x80
OUT_OF_SCOPE_DIAG = b"publish refused: no device with this token in this gateway's scope"


async def gateway(paho: Callable[..., Paho], name: str = "gw-a", **kwargs: Any) -> Paho:
    return await paho(client_id=f"bridge-{name}", username=name, password=GATEWAY_PASSWORD, **kwargs).connect()


async def backend(paho: Callable[..., Paho], *filters: str) -> Paho:
    client = await paho(client_id="backend", username=SERVICE_USER, password=SERVICE_PASSWORD).connect()
    await client.subscribe(*filters, qos=1)
    return client


def presences(watcher: Paho, device_id: int) -> list[dict[str, Any]]:
    return [json.loads(m.payload) for m in list(watcher.messages) if m.topic == f"sys/presence/{device_id}"]


async def test_values_go_up_as_the_device_and_presence_follows_the_gateway(
    harness: Harness, paho: Callable[..., Paho]
) -> None:
    watcher = await presence_watcher(paho)
    app = await backend(paho, "d/+/ds/#")
    gw = await gateway(paho)
    await gw.publish(f"dev/{token(1)}/ds/Temperature", "21.5", qos=1)
    received = await app.received("d/1/ds/Temperature")
    assert received.payload == b"21.5"
    await eventually(lambda: presences(watcher, 1), message="online presence")
    online = presences(watcher, 1)[0]
    assert online["online"] is True and online["gateway"] == "client:gw-a" and online["client_id"] == "bridge-gw-a"
    assert harness.broker.connected_devices() == {1}
    assert presences(watcher, 2) == []  # in scope, but it has not spoken: not online
    await gw.close()
    assert await offline_reason(watcher, 1) == "disconnect"
    await eventually(lambda: harness.broker.connected_devices() == set(), message="device 1 offline")


async def test_downlinks_come_down_under_the_token_and_wildcard_tokens_are_refused(paho: Callable[..., Paho]) -> None:
    gw = await gateway(paho)
    codes = await gw.subscribe(
        f"dev/{token(1)}/downlink/#",
        f"dev/{token(2)}/#",
        "dev/+/downlink/#",
        "dev/#",
        "#",
        "+/+/downlink/#",
        f"dev/{token(4)}/downlink/#",  # gw-b's device
        f"dev/{token(1)}/ds/#",  # not a downlink
        "d/1/downlink/#",  # the broker's own namespace
        qos=1,
    )
    assert codes == [1, 1] + [REFUSED] * 7
    app = await backend(paho, "d/#")
    await app.publish("d/1/downlink/ds/Power", "1", qos=1)
    await app.publish("d/2/downlink/ds/Power", "0", qos=1)
    await app.publish("d/4/downlink/ds/Power", "1", qos=1)
    await gw.received(f"dev/{token(1)}/downlink/ds/Power")
    await gw.received(f"dev/{token(2)}/downlink/ds/Power")
    await gw.publish(f"dev/{token(2)}/ds/Temperature", "1", qos=1)
    await app.received("d/2/ds/Temperature")
    await app.publish("d/1/downlink/diag", "marker", qos=1)  # one connection is FIFO: an echo would come first
    await gw.received(f"dev/{token(1)}/downlink/diag")
    assert not any(token(4) in t or t.startswith("d/") for t in gw.topics())
    assert f"dev/{token(2)}/ds/Temperature" not in gw.topics()  # dev/<token>/# never echoes uplinks back


async def test_publishes_outside_the_scope_are_dropped_with_a_diag_and_nothing_is_retained(
    paho: Callable[..., Paho],
) -> None:
    app = await backend(paho, "d/#")
    gw = await gateway(paho)
    await gw.publish(f"dev/{token(4)}/ds/Temperature", "66", qos=1, retain=True)
    assert (await gw.received(f"dev/{token(4)}/downlink/diag")).payload == OUT_OF_SCOPE_DIAG
    unknown = "z" * 32
    await gw.publish(f"dev/{unknown}/ds/Temperature", "66", qos=1)
    assert (await gw.received(f"dev/{unknown}/downlink/diag")).payload == OUT_OF_SCOPE_DIAG
    await gw.publish("d/4/ds/Temperature", "66", qos=1)  # straight into the namespace: dropped
    await gw.publish(f"dev/{token(1)}/downlink/ds/Power", "1", qos=1)  # not an uplink
    diag = await gw.received(f"dev/{token(1)}/downlink/diag")
    assert diag.payload == b'publish to "downlink/ds/Power" refused: not a Blynk uplink topic'
    await gw.publish(f"dev/{token(1)}/ds/Temperature", "5", qos=1, retain=True)
    await app.received("d/1/ds/Temperature")
    assert [t for t in app.topics() if t.startswith("d/")] == ["d/1/ds/Temperature"]
    late = await paho(client_id="late", username=SERVICE_USER, password=SERVICE_PASSWORD).connect()
    await late.subscribe("d/#", qos=1)
    await gw.publish(f"dev/{token(1)}/ds/Label", "marker", qos=1)
    await late.received("d/1/ds/Label")
    assert late.topics() == ["d/1/ds/Label"]  # nothing of a gateway was retained


async def test_a_gateway_will_reaches_only_its_own_devices(paho: Callable[..., Paho], raw: Callable[[], Any]) -> None:
    app = await backend(paho, "d/#")
    wills = [
        (f"dev/{token(4)}/ds/Label", b"outside"),  # gw-b's device
        ("d/4/ds/Label", b"inside"),  # the broker's namespace
        (f"dev/{token(2)}/downlink/ds/Power", b"down"),  # not an uplink
        (f"dev/{token(2)}/ds/Label", b"bye"),  # its own device: published, as device 2
    ]
    for n, will in enumerate(wills):
        client = await raw()
        await client.send(connect_packet(client_id=f"w{n}", username="gw-a", password=GATEWAY_PASSWORD, will=will))
        assert await client.read_packet() == b"\x20\x02\x00\x00"
        client.writer.transport.abort()  # connection lost: the will is due
    assert (await app.received("d/2/ds/Label")).payload == b"bye"
    await app.publish("d/9/ds/Marker", b"1", qos=1)  # broadcasts are FIFO: a will would come first
    await app.received("d/9/ds/Marker")
    assert app.topics() == ["d/2/ds/Label", "d/9/ds/Marker"]


async def test_ping_and_ota_offer_reach_a_device_through_its_gateway(paho: Callable[..., Paho]) -> None:
    app = await backend(paho, "sys/ping/#")
    await app.publish("d/3/downlink/ota/json", b'{"url":"http://x/fw.bin"}', qos=1, retain=True)
    gw = await gateway(paho)
    await gw.publish(f"dev/{token(3)}/ds/Temperature", "1", qos=1)  # speaks: online, gets its offer
    offer = await gw.received(f"dev/{token(3)}/downlink/ota/json")
    assert offer.payload == b'{"url":"http://x/fw.bin"}' and offer.retain
    await app.publish("d/3/downlink/ping", b"", qos=1)
    await gw.received(f"dev/{token(3)}/downlink/ping")
    answer = json.loads((await app.received(ping_topic(3))).payload)
    assert isinstance(answer["rtt_ms"], float)


async def test_each_device_behind_a_gateway_reports_its_own_vitals(clients: list[Any]) -> None:
    async with ours(vitals_interval=0.2) as harness:

        def paho(**kwargs: Any) -> Paho:
            client = Paho(harness.port, **kwargs)
            clients.append(client)
            return client

        app = await backend(paho, "sys/vitals/#")
        gw = await gateway(paho)
        await gw.publish(f"dev/{token(1)}/ds/Temperature", "1", qos=1)
        await gw.publish(f"dev/{token(1)}/ds/Temperature", "2", qos=1)
        await gw.publish(f"dev/{token(2)}/ds/Temperature", "3", qos=1)
        vitals = json.loads((await app.received("sys/vitals/1")).payload)
        assert vitals["msgs_in"] == 2 and vitals["bytes_in"] > 0 and vitals["msgs_out"] == 0
        assert json.loads((await app.received("sys/vitals/2")).payload)["msgs_in"] == 1
        assert "sys/vitals/3" not in app.topics()  # in scope, never spoke: no vitals


async def test_a_direct_connection_replaces_the_gateway_for_that_device(
    harness: Harness, paho: Callable[..., Paho]
) -> None:
    watcher = await presence_watcher(paho)
    gw = await gateway(paho)
    await gw.publish(f"dev/{token(1)}/ds/Temperature", "1", qos=1)
    await eventually(lambda: presences(watcher, 1), message="online through the gateway")
    direct = await paho(client_id="fw", username="device", password=token(1)).connect()
    await eventually(lambda: len(presences(watcher, 1)) == 3, message="offline, then online directly")
    _, replaced, online = presences(watcher, 1)
    assert replaced["reason"] == "replaced" and online["online"] is True and "gateway" not in online
    await gw.publish(f"dev/{token(1)}/ds/Temperature", "2", qos=1)  # and back through the gateway
    await eventually(lambda: direct.disconnected, message="direct connection replaced")
    assert harness.broker.connected_devices() == {1}


async def test_revoked_gateway_is_disconnected_and_revoked_device_leaves_every_gateway(
    harness: Harness, paho: Callable[..., Paho]
) -> None:
    watcher = await presence_watcher(paho)
    app = await backend(paho, "d/+/ds/#")
    gw = await gateway(paho)
    other = await gateway(paho, "gw-b")
    assert await gw.subscribe(f"dev/{token(2)}/downlink/#", qos=1) == [1]
    await gw.publish(f"dev/{token(2)}/ds/Temperature", "1", qos=1)
    await gw.publish(f"dev/{token(3)}/ds/Label", "in", qos=1)
    await other.publish(f"dev/{token(4)}/ds/Temperature", "1", qos=1)
    await app.received("d/4/ds/Temperature")
    assert harness.authenticator is not None
    harness.authenticator.revoked_devices.add(2)
    await harness.broker.disconnect_device(2)
    assert await offline_reason(watcher, 2) == "revoked"
    await app.publish("d/2/downlink/ds/Power", "1", qos=1)
    await gw.publish(f"dev/{token(2)}/ds/Label", "after", qos=1)
    await gw.received(f"dev/{token(2)}/downlink/diag")
    assert f"dev/{token(2)}/downlink/ds/Power" not in gw.topics()
    harness.authenticator.revoked_gateways.add("gw-b")
    assert await harness.broker.disconnect_gateways("client:gw-b") == 1
    await eventually(lambda: other.disconnected, message="revoked gateway disconnected")
    assert await offline_reason(watcher, 4) == "revoked"
    refused = paho(client_id="again", username="gw-b", password=GATEWAY_PASSWORD)
    await refused.connect(expect="Bad user name or password")
    await app.received("d/3/ds/Label")
    harness.authenticator.gateways["gw-a"] = frozenset({1})  # the scope shrank: device 3 left it
    await harness.broker.recheck_gateways()
    assert await offline_reason(watcher, 3) == "revoked"
    assert not gw.disconnected


async def test_each_device_behind_a_gateway_keeps_its_own_rate_limit(clients: list[Any]) -> None:
    clock = ManualClock()  # never moves: the limit's bucket does not refill during the test
    async with ours(clock, device_rate_limit=2, rate_abuse_seconds=60) as harness:

        def paho(**kwargs: Any) -> Paho:
            client = Paho(harness.port, **kwargs)
            clients.append(client)
            return client

        app = await backend(paho, "d/+/ds/#")
        gw = await gateway(paho)
        for n in range(4):
            await gw.publish(f"dev/{token(1)}/ds/Temperature", str(n), qos=1)
        await gw.publish(f"dev/{token(2)}/ds/Temperature", "x", qos=1)  # another device: its own budget
        await app.received("d/2/ds/Temperature")
        diag = await gw.received(f"dev/{token(1)}/downlink/diag")
        assert diag.payload == RATE_DIAG.format(2).encode()
        assert [m.payload for m in app.messages if m.topic == "d/1/ds/Temperature"] == [b"0", b"1"]


async def test_new_tokens_wait_their_turn_for_a_lookup_for_a_second_at_most(clients: list[Any]) -> None:
    clock = ManualClock()  # never moves: a burst of two, then turns 0.5 s and 1 s ahead, then refusals
    async with ours(clock, gateway_lookup_rate=2) as harness:
        gw = Paho(harness.port, client_id="gw", username="gw-a", password=GATEWAY_PASSWORD)
        clients.append(gw)
        await gw.connect()
        assert harness.authenticator is not None
        for n in range(6):
            await gw.publish(f"dev/{'r' * 31}{n}/ds/Temperature", "1", qos=1)
        await gw.publish(f"dev/{'r' * 31}0/ds/Temperature", "1", qos=1)  # remembered: not asked again
        await eventually(lambda: len(gw.topics()) == 7, message="a diag for each refused publish")
        assert harness.authenticator.lookups == 4


@pytest.mark.parametrize("password", ["wrong", ""])
async def test_wrong_gateway_credentials_get_connack_4(
    harness: Harness, paho: Callable[..., Paho], password: str
) -> None:
    client = await paho(client_id="x", username="gw-a", password=password).connect(expect="Bad user name or password")
    assert client.connack == "Bad user name or password" and not harness.broker.connected_devices()
