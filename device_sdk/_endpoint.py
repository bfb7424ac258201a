"""Where the device connects: host, port, TLS and transport, and ``downlink/redirect`` URIs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883, "ws": 80, "wss": 443}
DEFAULT_WEBSOCKET_PATH = "/mqtt"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """An MQTT server address.

    Args:
        host: Host name or IP address.
        port: TCP port (1-65535).
        tls: Whether to use TLS (``mqtts://`` / ``wss://``).
        websocket_path: The HTTP path for MQTT over WebSockets (``ws://`` / ``wss://``), or
            ``None`` for plain MQTT over TCP.

    Raises:
        ValueError: If a field is out of range.
    """

    host: str
    port: int
    tls: bool = False
    websocket_path: str | None = None

    def __post_init__(self) -> None:
        if not self.host or any(c.isspace() or c in "/?#" for c in self.host):
            raise ValueError(f"invalid host {self.host!r}")
        if isinstance(self.port, bool) or not isinstance(self.port, int):
            raise ValueError(f"port must be an int, not {type(self.port).__name__}")
        if not 0 < self.port < 65536:
            raise ValueError(f"port must be in 1..65535, got {self.port}")
        if self.websocket_path is not None and not self.websocket_path.startswith("/"):
            raise ValueError(f"websocket path must start with '/', got {self.websocket_path!r}")

    @classmethod
    def parse(cls, uri: str) -> Endpoint:
        """Parse a server URI as sent on ``downlink/redirect``.

        Schemes are ``mqtt``, ``mqtts`` (TLS), ``ws`` and ``wss`` (WebSockets, TLS). A missing
        port takes the scheme's default (1883, 8883, 80, 443); a WebSocket URI without a path
        uses ``/mqtt``.

        Args:
            uri: For example ``mqtts://fra1.blynk.cloud:8883`` or
                ``wss://fra1.blynk.cloud:443/mqtt``.

        Returns:
            The endpoint the URI names.

        Raises:
            ValueError: If the URI has another scheme, no host or a bad port.

        Example:
            >>> Endpoint.parse("wss://fra1.blynk.cloud/mqtt")
            Endpoint(host='fra1.blynk.cloud', port=443, tls=True, websocket_path='/mqtt')
        """
        parts = urlsplit(uri.strip())
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS:
            raise ValueError(f"unsupported scheme in {uri!r}; expected mqtt, mqtts, ws or wss")
        if not parts.hostname:
            raise ValueError(f"no host in {uri!r}")
        port = parts.port  # raises ValueError for a malformed or out-of-range port
        path: str | None = None
        if scheme in ("ws", "wss"):
            path = parts.path or DEFAULT_WEBSOCKET_PATH
            if parts.query:
                path = f"{path}?{parts.query}"
        return cls(
            host=parts.hostname,
            port=port if port is not None else _DEFAULT_PORTS[scheme],
            tls=scheme in ("mqtts", "wss"),
            websocket_path=path,
        )

    @property
    def transport(self) -> Literal["tcp", "websockets"]:
        """``"websockets"`` for ``ws``/``wss`` endpoints, else ``"tcp"`` (paho's names)."""
        return "tcp" if self.websocket_path is None else "websockets"

    @property
    def uri(self) -> str:
        """The endpoint as a URI, e.g. ``mqtts://blynk.cloud:8883``."""
        if self.websocket_path is None:
            scheme, path = ("mqtts" if self.tls else "mqtt"), ""
        else:
            scheme, path = ("wss" if self.tls else "ws"), self.websocket_path
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}{path}"
