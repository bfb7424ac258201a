"""The four amqtt 0.12.1 defects of stack-findings.md, each as a check run on both brokers.

Every ``check_*`` takes a broker factory. It must pass on :class:`broker.MqttBroker` and it
must *detect the defect* (raise AssertionError) on stock ``amqtt.broker.Broker`` with the
equivalent minimal plugins -- which proves the check really tests the defect.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from _broker_harness import (
    SERVICE_PASSWORD,
    SERVICE_USER,
    Factory,
    Harness,
    Paho,
    Raw,
    connect_packet,
    ours,
    stock,
    token,
)


@contextlib.asynccontextmanager
async def tracked() -> AsyncIterator[list[Any]]:
    created: list[Any] = []
    try:
        yield created
    finally:
        for client in created:
            await client.close()


async def service(h: Harness, created: list[Any], client_id: str = "backend") -> Paho:
    client = Paho(h.port, client_id=client_id, username=SERVICE_USER, password=SERVICE_PASSWORD)
    created.append(client)
    return await client.connect()


async def device(h: Harness, created: list[Any], device_id: int, client_id: str = "") -> Paho:
    client = Paho(h.port, client_id=client_id, username="device", password=token(device_id))
    created.append(client)
    return await client.connect()


# ---- defect 1: retained messages bypass the ACL ------------------------------------------


async def check_retained_reaches_only_allowed_subscriber(factory: Factory) -> None:
    """Device 2 must never get device 1's retained downlink, on connect or otherwise."""
    async with factory() as h, tracked() as created:
        backend = await service(h, created)
        dev1 = await device(h, created, 1)
        await dev1.subscribe(h.dev(1, "downlink/#"))
        await backend.publish("d/1/downlink/ds/Secret", b"SECRET", qos=1, retain=True)
        await dev1.received(h.dev(1, "downlink/ds/Secret"))
        dev2 = await device(h, created, 2)
        assert await dev2.subscribe(h.dev(2, "downlink/ds/Marker")) == [0]
        await backend.publish("d/2/downlink/ds/Marker", b"m", qos=1)
        await dev2.received(h.dev(2, "downlink/ds/Marker"))  # anything leaked came before this
        assert dev2.topics() == [h.dev(2, "downlink/ds/Marker")], f"leak: {dev2.topics()}"


async def test_retained_acl_holds_on_our_broker() -> None:
    await check_retained_reaches_only_allowed_subscriber(ours)


async def test_retained_check_detects_stock_leak() -> None:
    with pytest.raises(AssertionError, match="leak"):
        await check_retained_reaches_only_allowed_subscriber(stock)


# ---- defect 2: unauthenticated CONNECT wipes a victim's session ---------------------------


async def check_unauthenticated_connect_cannot_touch_sessions(factory: Factory) -> None:
    """A refused CONNECT reusing the victim's client id must not stop the victim's downlinks."""
    async with factory() as h, tracked() as created:
        backend = await service(h, created)
        victim = await device(h, created, 1, client_id="victim-id")
        await victim.subscribe(h.dev(1, "downlink/#"))
        attacker = await Raw.open(h.port)
        created.append(attacker)
        await attacker.send(connect_packet("victim-id", username="device", password="not-a-token"))
        connack = await attacker.read_packet()
        assert connack[:3] == b"\x20\x02\x00" and connack[3] != 0, connack
        await backend.publish("d/1/downlink/ds/Power", b"1", qos=1)
        await victim.received(h.dev(1, "downlink/ds/Power"), timeout=2.0)


async def test_auth_before_session_on_our_broker() -> None:
    await check_unauthenticated_connect_cannot_touch_sessions(ours)


async def test_session_wipe_check_detects_stock_defect() -> None:
    with pytest.raises(AssertionError, match="downlink/ds/Power"):
        await check_unauthenticated_connect_cannot_touch_sessions(stock)


# ---- defect 3: keep-alive not enforced -------------------------------------------------------


async def check_silent_client_is_dropped_and_will_published(factory: Factory) -> None:
    """keepalive=1 and then silence: within 1.5 s the broker must drop it and fire its will."""
    async with factory() as h, tracked() as created:
        backend = await service(h, created)
        await backend.subscribe("d/1/ds/#", qos=1)
        silent = await Raw.open(h.port)
        created.append(silent)
        will = (h.dev(1, "ds/Status"), b"gone")
        await silent.send(connect_packet(username="device", password=token(1), keepalive=1, will=will))
        assert await silent.read_packet() == b"\x20\x02\x00\x00"
        message = await backend.received("d/1/ds/Status", timeout=4.0)
        assert message.payload == b"gone"
        assert await silent.closed_by_peer(timeout=2.0)


async def test_keepalive_enforced_on_our_broker() -> None:
    await check_silent_client_is_dropped_and_will_published(ours)


async def test_keepalive_check_detects_stock_defect() -> None:
    with pytest.raises(AssertionError, match="d/1/ds/Status"):
        await check_silent_client_is_dropped_and_will_published(stock)


# ---- defect 4: linear scan of every subscription per message ---------------------------------

SUBSCRIPTIONS = 2000
MATCH_BOUND = 12  # 2 x (levels of "d/7/downlink/ds/Power" + 1): depends on depth only


async def check_matching_work_independent_of_subscription_count(factory: Factory, report: dict[str, int]) -> None:
    """With 2,000 subscriptions, one publish must cost O(topic depth) matching calls."""
    async with factory() as h, tracked() as created:
        backend = await service(h, created)
        filters = [f"d/{n}/downlink/ds/Power" if n % 2 else f"d/{n}/downlink/#" for n in range(SUBSCRIPTIONS)]
        for start in range(0, SUBSCRIPTIONS, 25):
            assert set(await backend.subscribe(*filters[start : start + 25])) == {0}
        with h.matching_calls() as counter:
            await backend.publish("d/7/downlink/ds/Power", b"1")
            await backend.received("d/7/downlink/ds/Power")
        report["calls"] = counter.calls
        assert counter.calls <= MATCH_BOUND, f"{counter.calls} matching calls for one publish"


async def test_matching_is_indexed_on_our_broker() -> None:
    report: dict[str, int] = {}
    await check_matching_work_independent_of_subscription_count(ours, report)
    assert 1 <= report["calls"] <= MATCH_BOUND


async def test_matching_check_detects_stock_linear_scan() -> None:
    report: dict[str, int] = {}
    with pytest.raises(AssertionError, match="matching calls"):
        await check_matching_work_independent_of_subscription_count(stock, report)
    assert report["calls"] >= SUBSCRIPTIONS  # once per subscription (plus none fewer)
