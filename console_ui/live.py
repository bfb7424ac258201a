"""The console's WebSocket: live values, widget properties and online/offline of the devices
a page shows, from the app's in-process ``LiveFeed`` (see ``backend.devices.live``).

``/live?devices=1,2,3``: authenticated by the session cookie (the accounts middleware), refused
for a page of another origin (cross-site WebSocket hijacking), limited to devices the user may
see. Every 30 s without traffic the session is checked again and a ``ping`` is sent, so a
signed-out or suspended user's socket closes.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit

from litestar import WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect

from backend.accounts.auth import Visitor
from backend.accounts.context import AccountsRuntime, ApiServices
from backend.accounts.guards import client_ip, requires_any
from backend.accounts.permissions import Permission as P
from backend.accounts.permissions import Principal
from backend.accounts.sessions import SESSION_COOKIE, SessionService
from backend.console.context import ConsoleServices
from backend.devices.live import MAX_DEVICES_PER_SUBSCRIPTION, Subscription

RECHECK_SECONDS = 30.0
POLICY_VIOLATION = 4008


def _device_ids(text: str) -> list[int] | None:
    parts = [p for p in text.split(",") if p]
    if not parts or len(parts) > MAX_DEVICES_PER_SUBSCRIPTION or not all(p.isdigit() for p in parts):
        return None
    return sorted({int(p) for p in parts})


def _same_origin(socket: WebSocket) -> bool:  # type: ignore[type-arg]
    origin = socket.headers.get("origin")
    return origin is None or urlsplit(origin).netloc.lower() == socket.headers.get("host", "").lower()


async def _session_alive(runtime: AccountsRuntime, token: str, ip: str | None) -> bool:
    async with runtime.db.session() as session:
        return await SessionService(session, runtime.session_lifetime).authenticate(token, ip) is not None


@websocket("/live", guards=[requires_any(P.DEVICES_VIEW, P.DEVICES_VIEW_OWN)])
async def live_socket(socket: WebSocket) -> None:  # type: ignore[type-arg]
    """Stream ``{"type": "value"|"property"|"presence", "device": id, ...}`` messages as JSON."""
    await socket.accept()
    ids = _device_ids(socket.query_params.get("devices", ""))
    if not _same_origin(socket):
        await socket.close(POLICY_VIOLATION, "cross-site WebSocket refused")
        return
    if ids is None:
        await socket.close(POLICY_VIOLATION, f"devices must be 1 to {MAX_DEVICES_PER_SUBSCRIPTION} device ids")
        return
    runtime: AccountsRuntime = socket.app.state.accounts
    principal: Principal = socket.user
    async with runtime.db.session() as session:
        api = ApiServices(runtime, session, principal, Visitor(client_ip(socket)))
        visible = await ConsoleServices(api, socket.app.state.console).devices.visible(ids)
    with socket.app.state.console.live.subscribe(visible) as sub:
        await socket.send_json({"type": "hello", "devices": visible})
        closed = asyncio.create_task(_wait_closed(socket))
        try:
            await _pump(socket, sub, closed, runtime, socket.cookies.get(SESSION_COOKIE, ""))
        finally:
            closed.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
                await closed


async def _pump(socket: WebSocket, sub: Subscription, closed: asyncio.Task[None], runtime: AccountsRuntime,  # type: ignore[type-arg]
                token: str) -> None:
    while not closed.done():
        nxt = asyncio.create_task(sub.next())
        done, _ = await asyncio.wait({nxt, closed}, timeout=RECHECK_SECONDS, return_when=asyncio.FIRST_COMPLETED)
        if nxt in done:
            await socket.send_json(nxt.result())
            continue
        nxt.cancel()
        if closed in done:
            return
        if not await _session_alive(runtime, token, client_ip(socket)):
            await socket.close(POLICY_VIOLATION, "session ended")
            return
        await socket.send_json({"type": "ping"})


async def _wait_closed(socket: WebSocket) -> None:  # type: ignore[type-arg]
    """Read (and ignore) what the page sends until it goes away."""
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            await socket.receive_data("text")
