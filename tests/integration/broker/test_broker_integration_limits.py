"""Integration clients' limits (issue #14): each organization's namespace holds at most
``namespace_retained_messages`` retained messages of at most ``namespace_retained_bytes``, and
each client has its own publish rate limit (``integration_rate_limit``), so a flooding client
neither costs another client a message nor keeps its connection.

Clients are ``_broker_harness.INTEGRATIONS`` (``int-a`` and ``int-a2`` of organization 1,
``int-b`` of organization 2).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from _broker_harness import INTEGRATION_PASSWORD, ManualClock, Paho, eventually, running


async def integration(paho: Callable[..., Paho], name: str, client_id: str) -> Paho:
    return await paho(client_id=client_id, username=name, password=INTEGRATION_PASSWORD).connect()


def retained(client: Paho) -> dict[str, bytes]:
    return {m.topic: m.payload for m in list(client.messages) if m.retain}


async def retained_seen(paho: Callable[..., Paho], name: str, client_id: str) -> dict[str, bytes]:
    """The retained messages a new subscriber to ``#`` of ``name``'s namespace gets."""
    reader = await integration(paho, name, client_id)
    assert await reader.subscribe("#", qos=1) == [1]
    await reader.publish("end", "", qos=1)  # not retained: marks the end of what came at subscribe time
    await reader.received("end")
    return retained(reader)


async def test_a_full_namespace_delivers_but_does_not_keep_a_new_retained_message(
    clients: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    async with running(clients, namespace_retained_messages=3, namespace_retained_bytes=200) as (harness, paho):
        writer = await integration(paho, "int-a", "writer")
        live = await integration(paho, "int-a2", "live")
        assert await live.subscribe("state/#", qos=1) == [1]
        for n in (1, 2, 3):
            await writer.publish(f"state/{n}", f"v{n}", qos=1, retain=True)
        with caplog.at_level(logging.WARNING, logger="broker._namespace"):
            await writer.publish("state/4", "v4", qos=1, retain=True)  # a fourth: delivered, not kept
            await live.received("state/4")
        assert "organization 1: retained message on 'state/4' not kept" in caplog.text
        assert await retained_seen(paho, "int-a2", "reader-1") == {f"state/{n}": f"v{n}".encode() for n in (1, 2, 3)}
        await writer.publish("state/1", "v1 again", qos=1, retain=True)  # replacing one always works
        await writer.publish("state/2", "", qos=1, retain=True)  # clearing one makes room
        await writer.publish("state/4", "v4", qos=1, retain=True)
        assert await retained_seen(paho, "int-a2", "reader-2") == {
            "state/1": b"v1 again",
            "state/3": b"v3",
            "state/4": b"v4",
        }
        await writer.publish("state/3", "x" * 200, qos=1, retain=True)  # growing past the byte cap: not kept
        other = await integration(paho, "int-b", "other-org")  # another organization has its own room
        for n in (1, 2, 3):
            await other.publish(f"state/{n}", "b", qos=1, retain=True)
        assert await retained_seen(paho, "int-b", "reader-b") == {f"state/{n}": b"b" for n in (1, 2, 3)}
        assert (await retained_seen(paho, "int-a2", "reader-3"))["state/3"] == b"v3"
        assert harness.broker._core.namespace_retained == {1: (3, 3 * len("o/1/state/1") + 8 + 2 + 2), 2: (3, 36)}
        assert harness.broker._core.retained_refused == 2


async def test_a_flooding_client_is_throttled_and_then_closed_and_costs_others_nothing(
    clients: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock()  # moves only below: the counts do not depend on the machine's speed
    async with running(clients, rate_clock=clock, integration_rate_limit=10.0, rate_abuse_seconds=2.0) as (_, paho):
        watcher = await integration(paho, "int-a2", "watcher")
        assert await watcher.subscribe("flood", "work/#", qos=1) == [1, 1]
        flooder = await integration(paho, "int-a", "flooder")
        steady = await integration(paho, "int-a2", "steady")  # the same organization, its own limit
        other = await integration(paho, "int-b", "other")
        assert await other.subscribe("work/#", qos=1) == [1]
        for n in range(100):  # the clock stands still: a burst of 10 passes, the rest is dropped
            await flooder.publish("flood", str(n), qos=1)  # each still acknowledged
        clock.now += 1.0  # the others' buckets (a subscribe took a token) fill again; the flood is over
        for n in range(10):
            await steady.publish(f"work/{n}", str(n), qos=1)
            await other.publish(f"work/{n}", str(n), qos=1)
        await eventually(lambda: watcher.topics().count("work/9") == 1, message="steady's last")
        await eventually(lambda: other.topics().count("work/9") == 1, message="other's last")
        assert [m.payload for m in watcher.messages if m.topic == "flood"] == [str(n).encode() for n in range(10)]
        assert [m.topic for m in watcher.messages if m.topic.startswith("work/")] == [f"work/{n}" for n in range(10)]
        assert [m.topic for m in other.messages] == [f"work/{n}" for n in range(10)]
        with caplog.at_level(logging.WARNING, logger="broker._core"):
            for _ in range(6):  # over the limit without a break for longer than rate_abuse_seconds
                clock.now += 0.5
                for n in range(30):
                    flooder.client.publish("flood", str(n), qos=0)
                if not flooder.disconnected:  # its PUBACK: the broker has screened this step's packets
                    await flooder.publish("flood", "step", qos=1)
            await eventually(lambda: flooder.disconnected, message="the flooder disconnected")
        assert "over the rate limit for too long" in caplog.text
        assert not (steady.disconnected or other.disconnected or watcher.disconnected)
        await steady.publish("work/after", "1", qos=1)
        await watcher.received("work/after")
