"""Fixtures for tests against the running stack: provisioned devices and paho clients."""

from __future__ import annotations

import queue
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from backend.transfer.schemas import DeviceOut
from tests.support.net import wait_for
from tests.support.provision import provision, thermostat_doc
from tests.support.stack import StackConfig


@dataclass
class PahoDevice:
    """A device as Blynk firmware is: a plain paho client with the token as password."""

    info: DeviceOut
    client: paho.Client
    received: "queue.Queue[tuple[str, bytes]]" = field(default_factory=queue.Queue)

    def publish(self, topic: str, payload: str | bytes, qos: int = 0) -> None:
        self.client.publish(topic, payload, qos=qos).wait_for_publish(5)

    def next(self, timeout: float = 10.0, topic_prefix: str = "") -> tuple[str, bytes]:
        """The next received message (optionally the next whose topic starts with a prefix)."""
        while True:
            topic, payload = self.received.get(timeout=timeout)
            if topic.startswith(topic_prefix):
                return topic, payload

    def drain(self) -> list[tuple[str, bytes]]:
        out = []
        while not self.received.empty():
            out.append(self.received.get_nowait())
        return out


TRANSPORTS = ("tcp", "tls", "ws")
"""How a device reaches the broker: plain MQTT, MQTT over TLS, MQTT over WebSocket at /mqtt."""


def connect_device(stack: StackConfig, info: DeviceOut, subscribe: bool = True,
                   transport: str = "tcp") -> PahoDevice:
    """Connect a paho client as the device (over ``transport``) and subscribe to ``downlink/#``."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"fw-{uuid.uuid4().hex[:6]}",
                         transport="websockets" if transport == "ws" else "tcp")
    client.username_pw_set("device", info.token)
    dev = PahoDevice(info, client)
    connected: "queue.Queue[object]" = queue.Queue()
    client.on_connect = lambda c, u, f, rc, p=None: connected.put(rc)
    client.on_message = lambda c, u, m: dev.received.put((m.topic, bytes(m.payload)))
    host, port = "127.0.0.1", stack.mqtt_port
    if transport == "tls":
        client.tls_set(ca_certs=str(stack.data_dir / "tls" / "ca.pem"))
        host, port = "localhost", stack.mqtts_port
    elif transport == "ws":
        client.ws_set_options(path="/mqtt")
        port = stack.http_port
    client.connect(host, port, keepalive=30)
    client.loop_start()
    rc = connected.get(timeout=10)
    assert not rc.is_failure, rc  # type: ignore[attr-defined]
    if subscribe:
        result: "queue.Queue[object]" = queue.Queue()
        client.on_subscribe = lambda c, u, mid, rcs, p=None: result.put(rcs)
        client.subscribe("downlink/#", qos=1)
        result.get(timeout=10)
    return dev


@pytest.fixture
def devices(stack: StackConfig) -> Iterator[list[DeviceOut]]:
    """Two fresh devices of a fresh Thermostat template in the stack's database."""
    yield provision(stack.database_url, thermostat_doc(devices=2)).devices


@pytest.fixture
def transport() -> str:
    """The transport devices connect over; plain MQTT unless the module asks for more."""
    return "tcp"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "transports(*names): of the module's TRANSPORTS_UNDER_TEST, run only these")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A module that sets ``TRANSPORTS_UNDER_TEST = (...)`` runs each of its tests that use a
    device (through the ``transport`` fixture) once per transport; a test marked
    ``@pytest.mark.transports("tcp", "tls")`` runs over those only."""
    transports = getattr(metafunc.module, "TRANSPORTS_UNDER_TEST", None)
    if transports and "transport" in metafunc.fixturenames:
        only = metafunc.definition.get_closest_marker("transports")
        metafunc.parametrize("transport", [t for t in transports if only is None or t in only.args])


@pytest.fixture
def device(stack: StackConfig, devices: list[DeviceOut], transport: str) -> Iterator[PahoDevice]:
    """The first device, connected over ``transport`` and subscribed to ``downlink/#``."""
    dev = connect_device(stack, devices[0], transport=transport)
    wait_for(lambda: is_connected(stack, devices[0].token), message="presence to reach the app")
    yield dev
    dev.client.disconnect()
    dev.client.loop_stop()


@pytest.fixture
def http(stack: StackConfig) -> Iterator[httpx.Client]:
    """An HTTP client for the app."""
    with httpx.Client(base_url=stack.base_url, timeout=10) as client:
        yield client


def is_connected(stack: StackConfig, token: str) -> bool:
    r = httpx.get(f"{stack.base_url}/external/api/isHardwareConnected", params={"token": token}, timeout=5)
    return r.text == "true"
