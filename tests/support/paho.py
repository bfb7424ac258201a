"""A device as Blynk firmware is: a plain paho client with the token as password, connected to
a test stack over TCP, TLS or WebSocket (the ``paho_device`` fixture of tests/conftest.py
disconnects every one it made after the test)."""

from __future__ import annotations

import queue
import uuid
from dataclasses import dataclass, field
from typing import Protocol

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from backend.transfer.schemas import DeviceOut
from tests.support.stack import StackConfig


@dataclass
class PahoDevice:
    """A device as Blynk firmware is: a plain paho client with the token as password."""

    info: DeviceOut
    client: paho.Client
    received: queue.Queue[tuple[str, bytes]] = field(default_factory=queue.Queue)

    def publish(self, topic: str, payload: str | bytes, qos: int = 0) -> None:
        self.client.publish(topic, payload, qos=qos).wait_for_publish(5)

    def next(self, timeout: float = 10.0, topic_prefix: str = "") -> tuple[str, bytes]:
        """The next received message (optionally the next whose topic starts with a prefix)."""
        while True:
            topic, payload = self.received.get(timeout=timeout)
            if topic.startswith(topic_prefix):
                return topic, payload

    def close(self) -> None:
        """Disconnect and stop paho's network thread (again is harmless)."""
        self.client.disconnect()
        self.client.loop_stop()

    def drain(self) -> list[tuple[str, bytes]]:
        out = []
        while not self.received.empty():
            out.append(self.received.get_nowait())
        return out


TRANSPORTS = ("tcp", "tls", "ws")
"""How a device reaches the broker: plain MQTT, MQTT over TLS, MQTT over WebSocket at /mqtt
(``connect_device`` also takes ``"wss"``: that WebSocket on the HTTPS port, pinning the local CA)."""


def connect_device(stack: StackConfig, info: DeviceOut, subscribe: bool = True, transport: str = "tcp") -> PahoDevice:
    """Connect a paho client as the device (over ``transport``) and subscribe to ``downlink/#``."""
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"fw-{uuid.uuid4().hex[:6]}",
        transport="websockets" if transport in ("ws", "wss") else "tcp",
    )
    client.username_pw_set("device", info.token)
    dev = PahoDevice(info, client)
    connected: queue.Queue[object] = queue.Queue()
    client.on_connect = lambda c, u, f, rc, p=None: connected.put(rc)
    client.on_message = lambda c, u, m: dev.received.put((m.topic, bytes(m.payload)))
    host, port = "127.0.0.1", stack.mqtt_port
    if transport == "tls":
        client.tls_set(ca_certs=str(stack.data_dir / "tls" / "ca.pem"))
        host, port = "localhost", stack.mqtts_port
    elif transport == "ws":
        client.ws_set_options(path="/mqtt")
        port = stack.http_port
    elif transport == "wss":  # MQTT over WebSocket over TLS on the HTTPS port, pinning the local CA
        client.ws_set_options(path="/mqtt")
        client.tls_set(ca_certs=str(stack.data_dir / "tls" / "ca.pem"))
        host, port = "localhost", stack.https_port
    client.connect(host, port, keepalive=30)
    client.loop_start()
    rc = connected.get(timeout=10)
    assert not rc.is_failure, rc  # type: ignore[attr-defined]
    if subscribe:
        result: queue.Queue[object] = queue.Queue()
        client.on_subscribe = lambda c, u, mid, rcs, p=None: result.put(rcs)
        client.subscribe("downlink/#", qos=1)
        result.get(timeout=10)
    return dev


class ConnectDevice(Protocol):
    """The ``paho_device`` fixture: :func:`connect_device`, with every device disconnected after the test."""

    def __call__(
        self, stack: StackConfig, info: DeviceOut, subscribe: bool = True, transport: str = "tcp"
    ) -> PahoDevice: ...
