"""The bell's WebSocket: ``/live/notices`` tells an open console page the signed-in user's
unread notification count, at once when a notification arrives (see
``backend.notifications.live``).

Authenticated by the session cookie (the accounts middleware) and refused for a page of
another origin, like ``/live``. Every count is read in a transaction that checks the session
again, so a signed-out, suspended or deleted user's socket closes (code 4008) instead of
learning anything more; the user's, role's and organization's change notices wake it for the
same check, and so does a backstop every ``RECHECK_SECONDS``. Messages:
``{"type": "unread", "count": n}``.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from urllib.parse import urlsplit

from litestar import WebSocket, websocket
from litestar.di import NamedDependency
from litestar.exceptions import WebSocketDisconnect

from backend.access.guards import client_ip, signed_in
from backend.access.permissions import Principal
from backend.accounts.sessions import SESSION_COOKIE
from backend.notifications.live import NoticeAccess, NoticeSubscription

RECHECK_SECONDS = 30.0
POLICY_VIOLATION = 4008
Socket = WebSocket[Principal, str, Any]


def _same_origin(socket: Socket) -> bool:
    origin = socket.headers.get("origin")
    return origin is None or urlsplit(origin).netloc.lower() == socket.headers.get("host", "").lower()


@websocket("/live/notices", guards=[signed_in])
async def notices_socket(socket: Socket, notice_access: NamedDependency[NoticeAccess]) -> None:
    """Stream ``{"type": "unread", "count": n}`` whenever the user's unread count may have changed."""
    await socket.accept()
    if not _same_origin(socket):
        await socket.close(POLICY_VIOLATION, "cross-site WebSocket refused")
        return
    # Subscribe first, then count: a notification committed meanwhile wakes the subscription.
    with notice_access.feed.subscribe(socket.user) as sub:
        closed = asyncio.create_task(_wait_closed(socket))
        try:
            await _pump(socket, notice_access, sub, closed)
        finally:
            closed.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
                await closed


async def _send_count(socket: Socket, access: NoticeAccess, last: int | None) -> int | None:
    """Check the session and send the count if it changed; None when the socket was closed."""
    found = await access.unread(socket.cookies.get(SESSION_COOKIE, ""), client_ip(socket))
    if found is None or found[0].user_id != socket.user.user_id:
        await socket.close(POLICY_VIOLATION, "session ended or access withdrawn")
        return None
    count = found[1]
    if count != last:
        await socket.send_json({"type": "unread", "count": count})
    return count


async def _pump(socket: Socket, access: NoticeAccess, sub: NoticeSubscription, closed: asyncio.Task[None]) -> None:
    last = await _send_count(socket, access, None)
    while last is not None and not closed.done():
        woken = asyncio.create_task(sub.wait())
        done, _ = await asyncio.wait({woken, closed}, timeout=RECHECK_SECONDS, return_when=asyncio.FIRST_COMPLETED)
        if woken not in done:
            woken.cancel()
        if closed in done:
            return
        last = await _send_count(socket, access, last)


async def _wait_closed(socket: Socket) -> None:
    """Read (and ignore) what the page sends until it goes away."""
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            await socket.receive_data("text")
