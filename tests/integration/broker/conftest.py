"""Fixtures for broker integration tests: our broker on a free port, tracked clients (and
``connect``, tracked clients of a module's full ``world`` stack)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # make _broker_harness importable (and by amqtt)

from _broker_harness import Harness, Paho, Raw, ours  # noqa: E402


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    """Our MqttBroker on 127.0.0.1, free port, default settings."""
    async with ours() as running:
        yield running


@pytest.fixture
async def clients() -> AsyncIterator[list[Any]]:
    """Paho and raw clients created by a test; closed afterwards."""
    created: list[Any] = []
    yield created
    await asyncio.gather(*(client.close() for client in created))  # paho's close takes up to 1 s each


@pytest.fixture
def paho(harness: Harness, clients: list[Any]) -> Callable[..., Paho]:
    """Build a tracked paho client for ``harness`` (call ``await c.connect()``)."""

    def build(**kwargs: Any) -> Paho:
        client = Paho(harness.port, **kwargs)
        clients.append(client)
        return client

    return build


@pytest.fixture
def raw(harness: Harness, clients: list[Any]) -> Callable[[], Any]:
    """Open a tracked raw socket to ``harness``."""

    async def open_raw() -> Raw:
        connection = await Raw.open(harness.port)
        clients.append(connection)
        return connection

    return open_raw


@pytest.fixture
async def connect(world: Any) -> AsyncIterator[Any]:
    """``await connect(username, password, expect=..., **paho)``: a tracked paho client of the
    module's ``world`` stack (the real broker at ``world.acc.config.mqtt_port``), closed after
    the test."""
    made: list[Paho] = []

    async def build(username: str, password: str, expect: str = "Success", **kwargs: Any) -> Paho:
        client = Paho(world.acc.config.mqtt_port, username=username, password=password, **kwargs)
        made.append(client)
        return await client.connect(expect=expect)

    yield build
    for client in made:
        await client.close()
