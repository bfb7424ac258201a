"""MQTT over WebSocket at ``/mqtt`` on the HTTP port (subprotocol ``mqtt``), as blynk.cloud.

The broker runs in its own process, so the app bridges each WebSocket to the broker's
internal PROXY-protocol listener on 127.0.0.1: it first sends a PROXY protocol v2 header
carrying the browser's or device's real address (the broker uses it for presence, the device's
recorded IP and the failed-login throttle), signed with a key derived from the secret key so
that no other local process can name an address of its choosing (``broker.proxy_header``),
then copies MQTT bytes both ways. One port serves the console, the APIs and WebSocket clients.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from dataclasses import dataclass, field

from litestar import websocket
from litestar.di import NamedDependency
from litestar.exceptions import WebSocketDisconnect

from backend.connections import PublicWebSocket
from broker import proxy_header

log = logging.getLogger(__name__)
SUBPROTOCOL = "mqtt"
READ_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class MqttBridge:
    """Where the broker's proxy listener is and the key that signs each connection's header."""

    port: int
    """The broker's proxy listener on 127.0.0.1 (``OPENBLYNK_MQTT_PROXY_PORT``)."""
    key: bytes = field(repr=False)
    """``Secrets.mqtt_proxy_key()``, the broker's ``proxy_key``."""


@websocket("/mqtt", name="mqtt-websocket")
async def mqtt_websocket(socket: PublicWebSocket, mqtt_bridge: NamedDependency[MqttBridge]) -> None:
    """Bridge one MQTT-over-WebSocket client to the broker."""
    offered = socket.scope.get("subprotocols", [])
    if SUBPROTOCOL not in offered:
        await socket.close(code=1002, reason="subprotocol 'mqtt' required")
        return
    bridge = mqtt_bridge
    port = bridge.port
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as exc:
        log.error("MQTT over WebSocket: broker unreachable on 127.0.0.1:%d (%s)", port, exc)
        await socket.close(code=1011, reason="broker unavailable")
        return
    await socket.accept(subprotocols=SUBPROTOCOL)
    writer.write(proxy_header(bridge.key, socket.scope.get("client") or None, socket.scope.get("server") or None))
    up = asyncio.create_task(_ws_to_broker(socket, writer))
    down = asyncio.create_task(_broker_to_ws(reader, socket))
    try:
        await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (up, down):
            task.cancel()
        await asyncio.gather(up, down, return_exceptions=True)
        writer.close()
        with suppress(Exception):
            await writer.wait_closed()
        with suppress(Exception):
            await socket.close()


async def _ws_to_broker(socket: PublicWebSocket, writer: asyncio.StreamWriter) -> None:
    with suppress(WebSocketDisconnect):
        while True:
            message = await socket.receive_data(mode="binary")
            data = message if isinstance(message, bytes) else message.encode()
            writer.write(data)
            await writer.drain()


async def _broker_to_ws(reader: asyncio.StreamReader, socket: PublicWebSocket) -> None:
    while True:
        data = await reader.read(READ_CHUNK)
        if not data:
            return
        await socket.send_bytes(data)
