"""Limits of the HTTP listener that uvicorn does not have: a header-read deadline and a cap on
open connections per client address, plus which peers' forwarding headers are believed.

uvicorn arms no timer on a new connection (its keep-alive timer starts only after a first
response), so a client that connects and sends nothing, or trickles its headers a byte at a
time, holds a socket for ever ("slowloris"). :class:`LimitedHttpProtocol` subclasses uvicorn's
httptools protocol (the one ``http="auto"`` picks; httptools comes with uvicorn[standard]):

- a connection whose request headers are not complete ``header_timeout`` seconds after the
  connection opened, or after the first byte of a later keep-alive request arrived, is closed
  (a response still being written is never cut: the deadline waits for it);
- a client address (an IPv4 address, or the /64 of an IPv6 one) holds at most
  ``per_address`` connections at once; one more is closed as soon as it is accepted. A
  connection upgraded to a WebSocket keeps its slot until it closes (so
  :class:`LimitedWebSocketProtocol` gives it back), and a WebSocket is never subject to the
  header deadline. Trusted reverse proxies are exempt: every client behind them shares their
  address, so the proxy must cap per client itself.

- a request body must keep coming: a connection whose body (once the headers are complete)
  brings less than :data:`BODY_MIN_BYTES` in ``body_timeout`` seconds and is not complete is
  closed, so a client cannot hold a request open by trickling its body either, while a slow
  upload that moves on (a firmware image over a poor link) is never cut. Time the app spends
  not reading (uvicorn pauses reading while the app has not taken what came) does not count.

Idle keep-alive connections are closed by uvicorn's own ``timeout_keep_alive``.

:func:`uvicorn_options` turns :class:`~backend.settings.Settings` into ``uvicorn.Config``
keyword arguments, so ``X-Forwarded-For``/``X-Forwarded-Proto`` are believed only from the
peers listed in ``OPENBLYNK_TRUSTED_PROXIES`` (uvicorn believes 127.0.0.1 by default, which let
any local process choose the address that sign-in throttling, the MQTT-over-WebSocket login
throttle and the audit log see). Every part of the app reads the client address from the ASGI
scope's ``client``, which uvicorn's proxy middleware sets by this one rule.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState

from backend.settings import Settings
from broker import address_key

log = logging.getLogger(__name__)
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
WARN_EVERY_SECONDS = 60.0
BODY_MIN_BYTES = 1024
"""What a request body must bring in each ``body_timeout`` window (or be complete)."""


@dataclass
class AddressSlots:
    """Open connections per client address, at most ``per_address`` each (0: no cap)."""

    per_address: int
    exempt: tuple[Network, ...] = ()
    _open: dict[asyncio.BaseTransport, str] = field(default_factory=dict)
    _counts: dict[str, int] = field(default_factory=dict)
    _refused: int = 0
    _warned_at: float = float("-inf")

    def take(self, transport: asyncio.BaseTransport) -> bool:
        """Count ``transport`` against its address; False (and not counted) if the address is full."""
        peer = transport.get_extra_info("peername")
        host = peer[0] if isinstance(peer, tuple) and peer else None
        if not self.per_address or not isinstance(host, str) or self._is_exempt(host):
            return True
        key = address_key(host) or host  # None only for an empty address
        count = self._counts.get(key, 0)
        if count >= self.per_address:
            self._warn(key)
            return False
        self._counts[key] = count + 1
        self._open[transport] = key
        return True

    def give_back(self, transport: asyncio.BaseTransport) -> None:
        """Release the slot of ``transport`` (once; later calls do nothing)."""
        key = self._open.pop(transport, None)
        if key is None:
            return
        left = self._counts[key] - 1
        if left:
            self._counts[key] = left
        else:
            del self._counts[key]

    def _is_exempt(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.exempt)

    def _warn(self, key: str) -> None:
        self._refused += 1
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY_SECONDS:
            log.warning(
                "refused %d HTTP connection(s) over the cap of %d per address (latest from %s; "
                "OPENBLYNK_HTTP_CONNECTIONS_PER_ADDRESS)",
                self._refused,
                self.per_address,
                key,
            )
            self._warned_at, self._refused = now, 0


@dataclass(frozen=True)
class ListenerLimits:
    """What one HTTP listener enforces."""

    header_timeout: float
    slots: AddressSlots
    body_timeout: float = 30.0


class LimitedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header-read deadline and a per-address cap."""

    limits: ClassVar[ListenerLimits]

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._header_timer: asyncio.TimerHandle | None = None
        self._awaiting_headers = True
        self._refused = False
        self._body_timer: asyncio.TimerHandle | None = None
        self._body_bytes = 0  # of the current body, in the current window

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if not self.limits.slots.take(transport):
            self._refused = True
            transport.abort()
            return
        super().connection_made(transport)
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        self._disarm_body_timer()
        if self._refused:
            return
        self.limits.slots.give_back(self.transport)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._awaiting_headers and self._header_timer is None:
            self._arm_header_timer()  # the first byte of a keep-alive request starts its deadline
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._awaiting_headers = False
        self._disarm_header_timer()
        super().on_headers_complete()
        self._body_bytes = 0
        self._body_timer = self.loop.call_later(self.limits.body_timeout, self._body_late)  # until the message ends

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._disarm_body_timer()
        super().on_message_complete()
        self._awaiting_headers = True  # what arrives next is the next request's head

    def _arm_header_timer(self) -> None:
        self._disarm_header_timer()
        self._header_timer = self.loop.call_later(self.limits.header_timeout, self._headers_late)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _disarm_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _body_late(self) -> None:
        self._body_timer = None
        if self.transport.is_closing() or self.transport.get_protocol() is not self:
            return  # closed already, or upgraded to a WebSocket
        if self._body_bytes >= BODY_MIN_BYTES or self.flow.read_paused:  # moving on, or waiting for the app
            self._body_bytes = 0
            self._body_timer = self.loop.call_later(self.limits.body_timeout, self._body_late)
            return
        log.debug(
            "closing HTTP connection from %s: request body brought %d bytes in %.0f s",
            self.client,
            self._body_bytes,
            self.limits.body_timeout,
        )
        self.transport.abort()

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or self.transport.get_protocol() is not self:
            return  # closed already, or upgraded to a WebSocket
        if self.cycle is not None and not self.cycle.response_complete:
            self._arm_header_timer()  # a (pipelined) response is still being written: let it finish
            return
        log.debug(
            "closing HTTP connection from %s: request headers not complete within %.0f s",
            self.client,
            self.limits.header_timeout,
        )
        self.transport.abort()


class LimitedWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol that gives back the connection's per-address slot when it closes."""

    limits: ClassVar[ListenerLimits]

    def connection_lost(self, exc: Exception | None) -> None:
        self.limits.slots.give_back(self.transport)
        super().connection_lost(exc)


def listener_protocols(limits: ListenerLimits) -> tuple[type[LimitedHttpProtocol], type[LimitedWebSocketProtocol]]:
    """The HTTP and WebSocket protocol classes of one listener, sharing ``limits``."""

    class Http(LimitedHttpProtocol):
        pass

    class WebSocket(LimitedWebSocketProtocol):
        pass

    Http.limits = WebSocket.limits = limits
    return Http, WebSocket


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """``uvicorn.Config`` keyword arguments for the app's HTTP listener."""
    trusted = settings.trusted_proxy_networks
    limits = ListenerLimits(
        settings.http_header_timeout_seconds,
        AddressSlots(settings.http_connections_per_address, trusted),
        settings.http_body_timeout_seconds,
    )
    http, ws = listener_protocols(limits)
    return {
        "http": http,
        "ws": ws,
        "timeout_keep_alive": settings.http_keepalive_seconds,
        "proxy_headers": bool(trusted),
        "forwarded_allow_ips": [str(net) for net in trusted],
    }
