"""Typed settings of the embedded broker; the backend builds them from its own configuration."""

from __future__ import annotations

from dataclasses import dataclass, field

from broker._proxy import MIN_KEY_BYTES
from broker.errors import ConfigurationError

__all__ = ["BrokerSettings"]

_MAX_REMAINING_LENGTH = 268_435_455  # largest value MQTT's variable-length integer can carry


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    """Where the broker listens and the limits it enforces on every client."""

    host: str = "127.0.0.1"
    """Address the listeners bind to (``0.0.0.0`` for every IPv4 interface)."""
    port: int = 1883
    """Plain MQTT TCP port; ``0`` picks a free port (read it back from ``MqttBroker.port``)."""
    tls_port: int | None = None
    """MQTT over TLS port (Blynk uses 8883); ``None`` disables TLS, ``0`` picks a free port.
    Only TLS 1.2 and 1.3 are accepted (as Blynk)."""
    certfile: str | None = None
    """PEM certificate chain for the TLS listener; required when ``tls_port`` is set."""
    keyfile: str | None = None
    """PEM private key for the TLS listener; required when ``tls_port`` is set."""
    proxy_port: int | None = None
    """Internal listener for the app's MQTT-over-WebSocket bridge, always on 127.0.0.1 whatever
    ``host`` says; every connection starts with a PROXY protocol v2 header naming the real
    client, signed with ``proxy_key`` (see ``broker.proxy_header``); any other is closed unread.
    ``None`` disables it, ``0`` picks a free port (read it back from ``MqttBroker.proxy_port``)."""
    proxy_key: bytes | None = field(default=None, repr=False)
    """Key (at least 32 bytes) of the HMAC that proves a PROXY header came from the app's
    bridge, not from any other local process; required with ``proxy_port``. Never printed."""
    max_packet_size: int = 1024
    """Largest accepted packet, as its fixed-header remaining length (Blynk: 1024 bytes)."""
    service_max_packet_size: int = 1_048_576
    """Largest packet a trusted service client may send once authenticated (a downlink carries
    a mounted topic plus a value of up to ``max_packet_size``, so services need more room)."""
    keepalive_grace: float = 1.5
    """A client silent for longer than keep-alive x this factor is disconnected (MQTT: 1.5)."""
    presence_retain: bool = True
    """Whether ``sys/presence/<device_id>`` messages are retained."""
    connect_timeout: float = 10.0
    """Seconds a new TCP connection may take to send its CONNECT packet (and, on the proxy
    listener, its PROXY header) before it is closed."""
    shutdown_grace: float = 2.0
    """Seconds ``stop()`` waits for offline presence messages to reach subscribers."""
    device_rate_limit: float = 50.0
    """PUBLISH, SUBSCRIBE and UNSUBSCRIBE packets per second a device may send (Blynk: 50); a
    token bucket holding one second's worth. Packets above it are dropped with a
    ``downlink/diag`` warning at most once a second: a dropped QoS 1 PUBLISH is still
    acknowledged, a dropped SUBSCRIBE gets SUBACK 0x80 for every filter, a dropped UNSUBSCRIBE
    its UNSUBACK (MQTT 3.1.1 has no refusal for it) without unsubscribing."""
    rate_abuse_seconds: float = 5.0
    """A device over ``device_rate_limit`` for this long without a break is disconnected
    (presence reason ``rate_limited``)."""
    max_subscriptions: int = 64
    """Topic filters one device session may hold. A SUBSCRIBE past it gets 0x80 for each new
    filter beyond the cap (re-subscribing a held filter does not count again) and a
    ``downlink/diag`` line; UNSUBSCRIBE frees room."""
    service_max_subscriptions: int = 10_000
    """The same cap for a trusted service session (the app's ingest holds about ten wildcard
    filters; a bridge may hold one per device), refused with 0x80 and a log line."""
    auth_failures_per_minute: int = 20
    """Refused logins one client address may have within a minute; after that its CONNECTs are
    refused (CONNACK 4) without asking the authenticator until the minute is over. IPv6
    addresses count per /64. ``0`` turns throttling off."""
    max_outgoing_queue: int = 1000
    """QoS 1/2 messages that may wait to be acknowledged by one device connection; a QoS 1
    message past it disconnects the device (presence reason ``slow_consumer``). A QoS 0 message
    is written at once, or dropped (counted) while this is full or the connection's socket holds
    more than its high-water mark of unsent bytes (a client that does not read)."""
    service_max_outgoing_queue: int = 20_000
    """The same bound for a trusted service connection (the backend's ingest subscriber takes
    every device's uplink, so bursts are larger)."""
    max_session_backlog: int = 100_000
    """QoS 1/2 messages a persistent service session keeps beyond its outgoing queue: while it
    is offline (the app restarts) or reads slower than messages arrive (the database is slow).
    Past it, new messages for that session are dropped, counted and logged. Held in memory
    (about 200 bytes each), so a broker restart loses them."""
    vitals_interval: float = 60.0
    """Seconds between ``sys/vitals/<device_id>`` reports for each connected device."""
    gateway_lookup_rate: float = 1000.0
    """New device tokens one gateway connection may have looked up a second (after a burst of
    as many): a bridge subscribing for its devices at connect waits its turn for up to a
    second; beyond that a token is refused without asking (0x80, or a dropped publish) and
    asked again next time. Keeps a gateway trying random tokens from loading the database."""

    sink_acks: bool = False
    """Acknowledge a device's, gateway's or integration client's QoS 1 PUBLISH only once every
    durable sink it reached (a trusted service's persistent QoS 1 session: the app's ingest,
    which acknowledges after its commit) has acknowledged it; a device uplink that reaches none
    waits for one to subscribe (``broker._acks``). Off: PUBACK on receipt (stock MQTT)."""
    device_inflight_limit: int = 20
    """With ``sink_acks``: QoS 1 publishes of one device (or integration client) connection
    whose PUBACK is withheld. At the limit the broker keeps reading the socket, answers PINGREQ
    and DISCONNECT at once (the client's keep-alive holds through a long database outage) and
    keeps up to 32 other packets in order (``broker._framing.HELD_PUBLISHES``); only with those
    kept does it stop reading until an acknowledgement frees room (TCP backpressure)."""
    gateway_inflight_limit: int = 1000
    """The same for one gateway connection (it speaks for many devices)."""

    integration_rate_limit: float = 500.0
    """PUBLISH, SUBSCRIBE and UNSUBSCRIBE packets per second one integration client may send,
    dropped above it as a device's are (a dropped QoS 1 PUBLISH is still acknowledged, a dropped
    SUBSCRIBE gets 0x80, logged); over it for ``rate_abuse_seconds`` without a break it is
    disconnected (logged: "over the rate limit for too long")."""
    namespace_retained_messages: int = 10_000
    """Retained messages one organization's namespace may hold (its integration clients'
    publishes and wills). Past it a publish that would add one is delivered but not retained,
    and logged; replacing or clearing a retained topic always works."""
    namespace_retained_bytes: int = 10_485_760
    """The same cap on the bytes of those retained messages (topic plus payload)."""

    def __post_init__(self) -> None:
        for name in ("port", "tls_port", "proxy_port"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 65535:
                raise ConfigurationError(f"{name} must be within 0..65535, got {value}")
        if self.proxy_port is not None and (self.proxy_key is None or len(self.proxy_key) < MIN_KEY_BYTES):
            raise ConfigurationError(f"proxy_port needs a proxy_key of at least {MIN_KEY_BYTES} bytes")
        if self.tls_port is not None and not (self.certfile and self.keyfile):
            raise ConfigurationError("tls_port needs both certfile and keyfile")
        for name in ("max_packet_size", "service_max_packet_size"):
            if not 2 <= getattr(self, name) <= _MAX_REMAINING_LENGTH:
                raise ConfigurationError(f"{name} out of range: {getattr(self, name)}")
        if self.keepalive_grace < 1.0:
            raise ConfigurationError(f"keepalive_grace must be >= 1.0, got {self.keepalive_grace}")
        if self.connect_timeout <= 0 or self.shutdown_grace < 0:
            raise ConfigurationError("connect_timeout must be > 0 and shutdown_grace >= 0")
        self._check_limits()

    def _check_limits(self) -> None:
        rates = ("device_rate_limit", "rate_abuse_seconds", "vitals_interval", "gateway_lookup_rate")
        for name in (*rates, "integration_rate_limit", "namespace_retained_messages", "namespace_retained_bytes"):
            if not getattr(self, name) > 0:
                raise ConfigurationError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.device_inflight_limit < 1 or self.gateway_inflight_limit < 1:
            raise ConfigurationError("device_inflight_limit and gateway_inflight_limit must be >= 1")
        if self.max_session_backlog < 0:
            raise ConfigurationError(f"max_session_backlog must be >= 0, got {self.max_session_backlog}")
        if self.auth_failures_per_minute < 0:
            raise ConfigurationError(f"auth_failures_per_minute must be >= 0, got {self.auth_failures_per_minute}")
        for name in ("max_subscriptions", "service_max_subscriptions"):
            if getattr(self, name) < 1:
                raise ConfigurationError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_outgoing_queue", "service_max_outgoing_queue"):
            if not 1 <= getattr(self, name) <= 60_000:  # below MQTT's 65535 packet ids
                raise ConfigurationError(f"{name} must be within 1..60000, got {getattr(self, name)}")
