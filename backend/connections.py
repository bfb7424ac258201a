"""Litestar connection types, named for what the routes know about the caller.

The Blynk device API (a device token in the query), ``/healthz``, ``/ca.pem`` and MQTT over
WebSocket sit outside the session and Bearer middlewares, so their connections carry no
``user`` and no ``auth``; what they need comes as dependencies (``backend.server.routers``).
"""

from __future__ import annotations

from typing import TypeAlias

from litestar import Request, WebSocket
from litestar.datastructures import State

PublicRequest: TypeAlias = Request[None, None, State]
"""An HTTP request on a route without sign-in."""

PublicWebSocket: TypeAlias = WebSocket[None, None, State]
"""A WebSocket on a route without sign-in."""

AnyRequest: TypeAlias = Request[object, object, State]
"""A request on any route, signed in or not (what app-wide exception handlers receive)."""
