"""MQTT over WebSocket at ``/mqtt`` on the HTTP port (subprotocol ``mqtt``), as blynk.cloud.

The broker runs in its own process, so the app bridges each WebSocket to the broker's
internal PROXY-protocol listener on 127.0.0.1: it first sends a PROXY v1 line carrying the
browser's or device's real address (the broker uses it for presence and throttling), then
copies MQTT bytes both ways. One port serves the console, the APIs and WebSocket clients.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from contextlib import suppress

from litestar import websocket
from litestar.exceptions import WebSocketDisconnect

from backend.connections import PublicWebSocket

log = logging.getLogger(__name__)
SUBPROTOCOL = "mqtt"
READ_CHUNK = 64 * 1024


def proxy_line(client: tuple[str, int] | None, server: tuple[str, int | None] | None) -> bytes:
    """The PROXY protocol v1 header for a client address (``UNKNOWN`` if not an IP)."""
    try:
        assert client is not None and server is not None
        src, dst = ipaddress.ip_address(client[0]), ipaddress.ip_address(server[0])
    except (AssertionError, ValueError):
        return b"PROXY UNKNOWN\r\n"
    if src.version != dst.version:
        dst = ipaddress.ip_address("127.0.0.1" if src.version == 4 else "::1")
    family = "TCP4" if src.version == 4 else "TCP6"
    return f"PROXY {family} {src} {dst} {client[1]} {server[1]}\r\n".encode()


@websocket("/mqtt", name="mqtt-websocket")
async def mqtt_websocket(socket: PublicWebSocket) -> None:
    """Bridge one MQTT-over-WebSocket client to the broker."""
    offered = socket.scope.get("subprotocols", [])
    if SUBPROTOCOL not in offered:
        await socket.close(code=1002, reason="subprotocol 'mqtt' required")
        return
    port: int = socket.app.state.mqtt_proxy_port
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as exc:
        log.error("MQTT over WebSocket: broker unreachable on 127.0.0.1:%d (%s)", port, exc)
        await socket.close(code=1011, reason="broker unavailable")
        return
    await socket.accept(subprotocols=SUBPROTOCOL)
    writer.write(proxy_line(socket.scope.get("client") or None, socket.scope.get("server") or None))
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
