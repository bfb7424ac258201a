"""Security headers of the console's pages, added in one place: a Litestar ``before_send`` hook
the app factory installs, so that every HTML answer carries them (pages, error pages, redirects
to the sign-in page) whichever router or exception handler made it.

The console needs no inline script or style and no ``eval``: its scripts and styles are files
under ``/static``, htmx is told not to inject its indicator style (``htmx-config`` meta in
``base.html``) and never to evaluate expressions, and positions the templates compute are set
through the CSSOM by the page scripts (which a policy does not block), never as ``style=``.
"""

from __future__ import annotations

from litestar.datastructures import MutableScopeHeaders
from litestar.types import Message, Scope

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",  # data: for the empty favicon (``href="data:,"``), which is not script
        "connect-src 'self'",  # fetch and the /live WebSocket ('self' matches ws:/wss: of the same host)
        "worker-src 'self'",  # the app's service worker (/app/sw.js), from this origin only
        "manifest-src 'self'",  # the app's web app manifest
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
"""The console's policy: scripts, styles and connections from its own origin only."""

PAGE_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}
"""Added to every HTML answer (a header the answer sets itself, such as a sandbox policy, wins)."""


async def security_headers(message: Message, scope: Scope) -> None:
    """Add ``X-Content-Type-Options: nosniff`` to every HTTP answer and the console's policy and
    framing, referrer headers to every HTML answer; headers the answer has already are kept."""
    if message["type"] != "http.response.start":
        return
    headers = MutableScopeHeaders.from_message(message)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    if not (headers.get("content-type") or "").startswith("text/html"):
        return
    for name, value in PAGE_HEADERS.items():
        headers.setdefault(name, value)
