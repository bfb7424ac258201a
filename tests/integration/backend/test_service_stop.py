"""A clean stop of the app's service client leaves nothing it acknowledged for the broker to
send again (backend.transport.mqtt, "A clean stop repeats nothing").

paho closes its socket the moment DISCONNECT is written; the broker, still sending to the app,
may then lose what the app wrote last (its write to the closed socket fails first, or a reset
discards it on the way). Here a relay between the client and the real broker makes that loss
certain: it passes what the client writes on a little late and drops whatever it still holds
when the client closes. A PUBACK lost so would have the broker send the message again.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from backend.devices.auth import SERVICE_USERNAME
from backend.security import Secrets
from backend.transport.mqtt import Message, ServiceClient
from tests.support.stack import TEST_SECRET, StackConfig

LATE = 0.3
"""Seconds the relay holds what the client writes before passing it on."""


@asynccontextmanager
async def late_relay(broker_port: int) -> AsyncIterator[int]:
    """A loopback relay to the broker (its port) that passes the client's bytes on ``LATE``
    seconds late and, when the client closes, drops what it holds and closes the broker's side
    at once (as a reset does). What the broker writes goes to the client at once."""
    tasks: set[asyncio.Task[None]] = set()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
        with suppress(ConnectionError):
            while data := await reader.read(65_536):
                if delay:
                    await asyncio.sleep(delay)
                writer.write(data)

    async def relay(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            broker_r, broker_w = await asyncio.open_connection("127.0.0.1", broker_port)
            try:
                up = asyncio.create_task(pipe(client_r, broker_w, LATE))
                down = asyncio.create_task(pipe(broker_r, client_w, 0))
                try:
                    await asyncio.wait((up, down), return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for task in (up, down):
                        task.cancel()  # the client went away: what the relay still holds is lost
                    await asyncio.gather(up, down, return_exceptions=True)
            finally:
                broker_w.transport.abort()
                await asyncio.sleep(0)  # the transport closes in the next turn
        finally:
            client_w.transport.abort()
            await asyncio.sleep(0)

    server = await asyncio.start_server(lambda r, w: tasks.add(asyncio.create_task(relay(r, w))), "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def service_client(port: int, client_id: str, topic: str) -> ServiceClient:
    password = Secrets(TEST_SECRET).service_password()
    return ServiceClient("127.0.0.1", port, SERVICE_USERNAME, password, client_id=client_id, subscriptions=[topic])


async def publish(stack: StackConfig, topic: str, payloads: list[str]) -> None:
    """Publish at QoS 1 from a service client of its own, each acknowledged by the broker."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"test-pub-{uuid.uuid4().hex[:6]}")
    client.username_pw_set(SERVICE_USERNAME, Secrets(TEST_SECRET).service_password())
    client.connect("127.0.0.1", stack.mqtt_port)
    client.loop_start()
    try:
        for payload in payloads:
            info = client.publish(topic, payload, qos=1)
            await asyncio.to_thread(info.wait_for_publish, 10)
    finally:
        client.disconnect()
        client.loop_stop()


async def take_until(service: ServiceClient, last: bytes) -> list[Message]:
    taken: list[Message] = []
    while not taken or taken[-1].payload != last:
        batch = await asyncio.wait_for(service.take(), 10)
        assert batch is not None
        taken.extend(batch)
    return taken


async def test_a_clean_stop_leaves_no_acknowledged_message_to_be_sent_again(stack: StackConfig) -> None:
    client_id, topic = f"test-stop-{uuid.uuid4().hex[:8]}", f"test/stop/{uuid.uuid4().hex[:8]}"
    values = [f"v{i}" for i in range(20)]
    async with late_relay(stack.mqtt_port) as port:
        service = service_client(port, client_id, topic)
        await service.start()
        await publish(stack, topic, values)
        taken = await take_until(service, b"v19")
        service.done_all([m.receipt for m in taken if m.receipt is not None])
        await service.stop()
    assert [m.payload.decode() for m in taken] == values

    again = service_client(stack.mqtt_port, client_id, topic)  # the same persistent session
    await again.start()
    try:
        await publish(stack, topic, ["marker"])
        # the broker sends what its session holds unacknowledged first, then the marker
        resent = await take_until(again, b"marker")
        again.done_all([m.receipt for m in resent if m.receipt is not None])
    finally:
        await again.stop()
    assert [m.payload.decode() for m in resent] == ["marker"]
