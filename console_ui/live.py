"""The console's WebSocket: live values, widget properties and online/offline of the devices
a page shows, from the app's in-process ``LiveFeed`` (see ``backend.devices.live``).

``/live?devices=1,2,3``: authenticated by the session cookie (the accounts middleware), refused
for a page of another origin (cross-site WebSocket hijacking), limited to devices the user may
see.

Access is checked again (the session, then which of the devices the user may see now) whenever
a change notice concerns the socket: its user's sessions, role or organization, its role's
permissions, an organization its user's organization lost, or one of its devices (see
``backend.db.changes``). Notices reach every app process within milliseconds of the
change's commit, so a signed-out, suspended, deleted or transferred user's socket closes, and
a device moved away or deleted leaves it, well within a second. The socket is closed (code
4008) when the session has ended, the role sees no device, or no device is left; when some
are left it is told ``{"type": "devices", "devices": [...]}`` and gets only theirs from then on.
As a backstop for anything no notice covers (a session expiring) the check also runs every
``RECHECK_SECONDS``, with a ``ping``.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from urllib.parse import urlsplit

from litestar import WebSocket, websocket
from litestar.di import NamedDependency
from litestar.exceptions import WebSocketDisconnect

from backend.access.guards import client_ip, requires_any
from backend.access.permissions import Principal
from backend.accounts.sessions import SESSION_COOKIE
from backend.console.live_access import VIEW, LiveAccess
from backend.devices.live import MAX_DEVICES_PER_SUBSCRIPTION, Key, Subscription

RECHECK_SECONDS = 30.0
POLICY_VIOLATION = 4008
Socket = WebSocket[Principal, str, Any]


def _device_ids(text: str) -> list[int] | None:
    parts = [p for p in text.split(",") if p]
    if not parts or len(parts) > MAX_DEVICES_PER_SUBSCRIPTION or not all(p.isdigit() for p in parts):
        return None
    return sorted({int(p) for p in parts})


def _same_origin(socket: Socket) -> bool:
    origin = socket.headers.get("origin")
    return origin is None or urlsplit(origin).netloc.lower() == socket.headers.get("host", "").lower()


def _keys(principal: Principal) -> list[Key]:
    """The change notices, besides those of its devices, that concern a user's socket."""
    return [("user", principal.user_id), ("role", principal.role_id), ("org", principal.org_id)]


async def _access(socket: Socket, live: LiveAccess, ids: list[int]) -> tuple[Principal, list[int]] | None:
    """The session's principal now and which of ``ids`` it may see (see ``LiveAccess.check``)."""
    return await live.check(socket.cookies.get(SESSION_COOKIE, ""), client_ip(socket), ids)


async def _recheck(socket: Socket, live: LiveAccess, sub: Subscription) -> bool:
    """Check the socket's access again: narrow the subscription to what the user may still see,
    or close the socket (False) when nothing is left."""
    access = await _access(socket, live, sorted(sub.device_ids))
    if access is None:
        await socket.close(POLICY_VIOLATION, "session ended or access withdrawn")
        return False
    principal, visible = access
    sub.rekey(_keys(principal))
    if len(visible) < len(sub.device_ids):
        sub.narrow(visible)
        if not visible:
            await socket.close(POLICY_VIOLATION, "none of these devices may be seen any more")
            return False
        await socket.send_json({"type": "devices", "devices": visible})
    return True


@websocket("/live", guards=[requires_any(*VIEW)])
async def live_socket(socket: Socket, live_access: NamedDependency[LiveAccess]) -> None:
    """Stream ``{"type": "value"|"property"|"presence", "device": id, ...}`` messages as JSON,
    after ``{"type": "hello", "devices": [visible ids], "online": [those online now]}``."""
    await socket.accept()
    ids = _device_ids(socket.query_params.get("devices", ""))
    if not _same_origin(socket):
        await socket.close(POLICY_VIOLATION, "cross-site WebSocket refused")
        return
    if ids is None:
        await socket.close(POLICY_VIOLATION, f"devices must be 1 to {MAX_DEVICES_PER_SUBSCRIPTION} device ids")
        return
    # Subscribe first, then check: a change committed meanwhile marks the subscription stale,
    # so nothing falls between the check and the subscription. Nothing is sent before the check
    # narrows the subscription to the visible devices (which drops what was queued for others).
    with live_access.feed.subscribe(ids, _keys(socket.user)) as sub:
        access = await _access(socket, live_access, ids)
        if access is None:
            await socket.close(POLICY_VIOLATION, "session ended or access withdrawn")
            return
        principal, visible = access
        sub.rekey(_keys(principal))
        sub.narrow(visible)
        # which are online now: read after subscribing, so a change after the page was drawn is
        # either in this answer or comes through the subscription
        online = await live_access.online(visible)
        await socket.send_json({"type": "hello", "devices": visible, "online": online})
        closed = asyncio.create_task(_wait_closed(socket))
        try:
            await _pump(socket, live_access, sub, closed)
        finally:
            closed.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
                await closed


async def _pump(socket: Socket, live: LiveAccess, sub: Subscription, closed: asyncio.Task[None]) -> None:
    loop = asyncio.get_running_loop()
    due = loop.time() + RECHECK_SECONDS
    while not closed.done():
        nxt = asyncio.create_task(sub.next())
        done, _ = await asyncio.wait(
            {nxt, closed}, timeout=max(0.0, due - loop.time()), return_when=asyncio.FIRST_COMPLETED
        )
        if nxt in done:
            event = nxt.result()
            if event is not None:
                await socket.send_json(event)
                continue
        else:
            nxt.cancel()
            if closed in done:
                return
        # a change notice made the subscription stale (event None), or the backstop is due
        if not await _recheck(socket, live, sub):
            return
        if nxt not in done:
            await socket.send_json({"type": "ping"})
        due = loop.time() + RECHECK_SECONDS


async def _wait_closed(socket: Socket) -> None:
    """Read (and ignore) what the page sends until it goes away."""
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            await socket.receive_data("text")
