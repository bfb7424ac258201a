"""HTTPS and WSS on the web port: the console, the APIs and ``wss://…/mqtt`` over TLS 1.2+.

The app process runs two uvicorn listeners on one event loop and one Litestar app: plain HTTP
on ``OPENBLYNK_HTTP_PORT`` (it owns the app's lifespan) and TLS on ``OPENBLYNK_HTTPS_PORT``
with the certificate of MQTT over TLS (``backend.transport.tls``: the configured files, or the
local CA's). :class:`Listeners` starts the TLS listener after the app has started and stops it
before the app's lifespan ends, so both see one runtime.

Over TLS every answer carries ``Strict-Transport-Security`` (``OPENBLYNK_HSTS_SECONDS``;
:func:`hsts_header`, a ``before_send`` hook), and with ``OPENBLYNK_HTTPS_REDIRECT`` the plain
listener answers every request but ``/healthz`` and ``/ca.pem`` with a 308 to the same path
over HTTPS (:class:`RedirectToHttps`; WebSockets are left alone: a browser cannot follow a
redirect there). Behind a reverse proxy that terminates TLS, a request the proxy marks
``X-Forwarded-Proto: https`` (believed from ``OPENBLYNK_TRUSTED_PROXIES`` only) counts as
HTTPS for both.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn
from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Message,
    Receive,
    Scope,
    Send,
)

from backend.settings import Settings
from backend.transport.tls import TlsFiles

PLAIN_PATHS = frozenset({"/healthz", "/ca.pem"})
"""Paths the plain listener keeps serving under ``OPENBLYNK_HTTPS_REDIRECT``: the supervisor's
readiness probe and the CA a device must fetch before it can trust the HTTPS listener."""


def server_context(tls: TlsFiles) -> ssl.SSLContext:
    """The HTTPS listener's TLS context: TLS 1.2 and 1.3 only, the given certificate and key."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(tls.certfile), str(tls.keyfile))
    return context


def https_config_options(tls: TlsFiles) -> dict[str, Any]:
    """``uvicorn.Config`` keyword arguments that make a listener serve TLS with ``tls``."""

    def factory(_config: uvicorn.Config, _default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        return server_context(tls)

    # ssl_certfile is what uvicorn's is_ssl (the "https"/"wss" scheme of its scopes) looks at
    return {"ssl_certfile": str(tls.certfile), "ssl_keyfile": str(tls.keyfile), "ssl_context_factory": factory}


class Listeners(uvicorn.Server):
    """The main listener, which runs the app's lifespan, and companions served on the same loop
    with the same app: started once the app has started, stopped before its lifespan ends."""

    def __init__(self, config: uvicorn.Config, companions: list[uvicorn.Config]) -> None:
        super().__init__(config)
        self.companions = [_Companion(c) for c in companions]
        self._loops: list[asyncio.Task[None]] = []

    async def startup(self, sockets: Any = None) -> None:
        """Start the app and the main listener, then each companion (exits as uvicorn does when
        a port cannot be bound)."""
        await super().startup(sockets)
        if self.should_exit:
            return
        for companion in self.companions:
            await companion.start()
            self._loops.append(asyncio.create_task(companion.main_loop()))

    async def shutdown(self, sockets: Any = None) -> None:
        """Stop the companions, then the main listener and the app."""
        for companion in self.companions:
            companion.should_exit = True
        await asyncio.gather(*self._loops, return_exceptions=True)
        for companion in self.companions:
            if companion.started:
                await companion.shutdown()
        await super().shutdown(sockets)


class _Companion(uvicorn.Server):
    """A listener without a lifespan of its own and without signal handlers (the main one's
    handle Ctrl-C and SIGTERM for both)."""

    async def start(self) -> None:
        if not self.config.loaded:
            self.config.load()
        self.lifespan = self.config.lifespan_class(self.config)
        await self.startup()


def hsts_header(settings: Settings) -> Callable[[Message, Scope], Awaitable[None]]:
    """A ``before_send`` hook adding ``Strict-Transport-Security`` to answers served over HTTPS."""
    value = f"max-age={settings.hsts_seconds}"

    async def hook(message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start" or scope.get("scheme") != "https" or not settings.hsts_seconds:
            return
        MutableScopeHeaders.from_message(message).setdefault("Strict-Transport-Security", value)

    return hook


class RedirectToHttps:
    """ASGI wrapper: plain-HTTP requests are answered 308 to the same URL over HTTPS."""

    def __init__(self, app: ASGIApp, https_port: int) -> None:
        self.app = app
        self.https_port = https_port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Redirect an ``http`` request that is not for a :data:`PLAIN_PATHS` path; pass the rest."""
        if scope["type"] != ScopeType.HTTP or scope.get("scheme") != "http" or scope.get("path") in PLAIN_PATHS:
            await self.app(scope, receive, send)
            return
        location = self.location(scope)
        start: HTTPResponseStartEvent = {
            "type": "http.response.start",
            "status": 308,
            "headers": [(b"location", location.encode()), (b"content-length", b"0")],
        }
        body: HTTPResponseBodyEvent = {"type": "http.response.body", "body": b"", "more_body": False}
        await send(start)
        await send(body)

    def location(self, scope: Scope) -> str:
        """The HTTPS URL of this request: its host (without the plain port), path and query."""
        host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
        if not host:
            server = scope.get("server") or ("localhost", 0)
            host = str(server[0])
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        port = "" if self.https_port == 443 else f":{self.https_port}"
        query = scope.get("query_string", b"").decode("latin-1")
        path = scope.get("raw_path", b"").decode("latin-1") or scope["path"]
        return f"https://{name}{port}{path}" + (f"?{query}" if query else "")


__all__ = ["PLAIN_PATHS", "Listeners", "RedirectToHttps", "hsts_header", "https_config_options", "server_context"]
