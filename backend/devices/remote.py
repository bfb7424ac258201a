"""Device Menu commands from the command line (``openblynk device ping|reboot|reconfigure|
redirect``): the CLI connects to the broker as a short-lived service client, publishes the
command, and for ``ping`` waits for the broker's ``sys/ping/<id>`` round trip report.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass

from paho.mqtt.client import MQTTMessageInfo

from backend.devices.auth import SERVICE_USERNAME
from backend.devices.commands import DeviceCommands, RedirectUri
from backend.errors import OpenBlynkError
from backend.transport.mqtt import ServiceClient

PING_WAIT_SECONDS = 12.0  # the broker reports a timeout after 10 s


class BrokerUnreachableError(OpenBlynkError):
    """The CLI cannot reach the MQTT broker."""


class DeviceOfflineError(OpenBlynkError):
    """The device has no connection, so a command would be lost."""


@dataclass(frozen=True, slots=True)
class Target:
    """The device a command is for."""

    id: int
    name: str
    online: bool


@dataclass(frozen=True, slots=True)
class Broker:
    """Where and how the CLI reaches the broker."""

    host: str
    port: int
    password: str
    connect_timeout: float = 3.0


async def send_command(broker: Broker, target: Target, command: str, uri: str | None = None) -> str:
    """Send ``command`` to the device; return the line to print (the round trip for ping)."""
    redirect = RedirectUri(uri or "") if command == "redirect" else None
    if not target.online:
        raise DeviceOfflineError(f"device {target.name!r} is offline: the {command} command would be lost")
    subscriptions = [f"sys/ping/{target.id}"] if command == "ping" else []
    client = ServiceClient(
        broker.host,
        broker.port,
        SERVICE_USERNAME,
        broker.password,
        client_id=f"openblynk-cli-{uuid.uuid4().hex[:8]}",
        subscriptions=subscriptions,
        clean_session=True,
    )
    try:
        await client.start(timeout=broker.connect_timeout)
    except ConnectionError as exc:
        raise BrokerUnreachableError(
            f"cannot reach the MQTT broker at {broker.host}:{broker.port}; "
            "is `openblynk serve` (or `openblynk broker`) running?"
        ) from exc
    try:
        return await _run(client, _Recorder(client), target, command, redirect)
    finally:
        await client.stop()


async def _run(
    client: ServiceClient, recorder: _Recorder, target: Target, command: str, redirect: RedirectUri | None
) -> str:
    commands = DeviceCommands(recorder)
    if command == "ping":
        await asyncio.to_thread(client.subscribed.wait, 5.0)
        commands.ping(target.id)
        return await _ping_answer(client, target)
    if redirect is not None:
        commands.redirect(target.id, redirect)
    else:
        {"reboot": commands.reboot, "reconfigure": commands.reconfigure}[command](target.id)
    await recorder.sent()
    return f"sent {command} to {target.name}"


async def _ping_answer(client: ServiceClient, target: Target) -> str:
    try:
        msg = await asyncio.wait_for(client.messages(), PING_WAIT_SECONDS)
    except TimeoutError:
        raise OpenBlynkError(
            f"no round trip reported for {target.name!r} within {PING_WAIT_SECONDS:.0f} s "
            "(does the broker report sys/ping?)"
        ) from None
    if msg is None:  # the client was stopped meanwhile
        raise OpenBlynkError(f"lost the broker connection while pinging {target.name!r}")
    doc = json.loads(msg.payload)
    rtt = doc.get("rtt_ms") if isinstance(doc, dict) else None
    if not isinstance(rtt, (int, float)):
        why = "is offline" if isinstance(doc, dict) and doc.get("offline") else "did not answer the ping (timeout)"
        raise OpenBlynkError(f"{target.name} {why}")
    return f"{target.name}: {rtt:.1f} ms"


class _Recorder:
    """A publisher that remembers the last message so the CLI can wait until it is sent."""

    def __init__(self, client: ServiceClient) -> None:
        self.client = client
        self.last: object = None

    def publish(self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False) -> object:
        self.last = self.client.publish(topic, payload, qos=qos, retain=retain)
        return self.last

    async def sent(self, timeout: float = 5.0) -> None:
        """Wait until the last message was written to the broker (before disconnecting)."""
        if isinstance(self.last, MQTTMessageInfo):
            await asyncio.to_thread(self.last.wait_for_publish, timeout)
