"""The broker process's control routes, beside its ``/metrics`` on 127.0.0.1:``OPENBLYNK_BROKER_METRICS_PORT``.

The console lists the connected gateway and integration sessions and can end one (issue #14
item 7), but those live in the broker process. The app asks it over the same loopback port the
metrics are read from (``backend.server.broker_metrics``), with a bearer token both processes
derive from the secret key (``Secrets.broker_control_token``): unlike the metrics, this answer
carries client addresses and ends connections, so another local process must not be able to
read or use it. Routes (JSON):

``GET /bridge-sessions``
    ``[{"id", "kind", "key", "org_id", "client_id", "address", "port", "connected_at",
    "devices", "subscriptions", "msgs_in", "msgs_out", "bytes_in", "bytes_out"}, ...]``
    (:class:`broker.BridgeSession`, every organization's: the app scopes it).
``POST /bridge-sessions/<id>/disconnect``
    ``{"disconnected": true|false}`` (false: no such connection any more).

Why not an internal MQTT topic: a list asked for when a page opens and a "disconnect now" that
must say whether it happened are a request and its answer, which MQTT 3.1.1 does not have, and
the broker would otherwise publish every connection's traffic all the time for a page that is
rarely open. The cost is the metrics' own: in a split deployment (``openblynk broker`` on
another host) the app cannot reach the port and the console says the list is unavailable.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import re

from broker import MqttBroker

PREFIX = b"/bridge-sessions"
_DISCONNECT = re.compile(rb"^/bridge-sessions/([0-9a-f]{1,64})/disconnect$")
Answer = tuple[bytes, bytes, bytes]
"""(status line, content type, body)."""


def _json(status: bytes, body: object) -> Answer:
    return status, b"application/json", json.dumps(body).encode()


async def answer_control(broker: MqttBroker, token: str, method: bytes, path: bytes, authorization: bytes) -> Answer:
    """The answer to one request under :data:`PREFIX`."""
    if not token or not hmac.compare_digest(authorization, f"Bearer {token}".encode()):
        return _json(b"401 Unauthorized", {"error": "send the broker control token as 'Authorization: Bearer'"})
    if method == b"GET" and path == PREFIX:
        return _json(b"200 OK", [dataclasses.asdict(s) for s in broker.bridge_sessions()])
    found = _DISCONNECT.match(path)
    if method == b"POST" and found is not None:
        return _json(b"200 OK", {"disconnected": await broker.disconnect_bridge(found.group(1).decode())})
    return _json(b"404 Not Found", {"error": "no such control route"})
