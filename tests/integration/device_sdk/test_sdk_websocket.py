"""MQTT over WebSockets, reached through downlink/redirect to a ws:// endpoint.

The project's broker has no WebSocket listener yet, so the target here is a stock amqtt broker
with a ws listener (no mounts: topics are the device's own). Switch to our broker once it
serves WebSockets at /mqtt.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import paho.mqtt.client as mqtt
import pytest
from amqtt.broker import Broker
from amqtt.plugins.base import BaseAuthPlugin
from paho.mqtt.enums import CallbackAPIVersion
from sdk_harness import DEVICE_ID, FAST, TOKEN, WAIT, BrokerThread, Service, wait_until

from device_sdk import Device


class TokenAuthPlugin(BaseAuthPlugin):
    """amqtt plugin: the test token as user ``device``, anyone as ``observer``."""

    async def authenticate(self, *, session):  # type: ignore[no-untyped-def,override]
        if session.username == "observer":
            return True
        return session.username == "device" and session.password == TOKEN

    @dataclass
    class Config:
        pass


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def ws_broker() -> Iterator[tuple[int, int]]:
    """A stock amqtt broker: (tcp port, ws port)."""
    tcp_port, ws_port = _free_port(), _free_port()
    config = {
        "listeners": {
            "default": {"type": "tcp", "bind": f"127.0.0.1:{tcp_port}"},
            "ws": {"type": "ws", "bind": f"127.0.0.1:{ws_port}"},
        },
        "plugins": {f"{__name__}.TokenAuthPlugin": {}},
    }
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="test-ws-broker", daemon=True)
    thread.start()

    async def start() -> Broker:
        broker = Broker(config)
        await broker.start()
        return broker

    broker = asyncio.run_coroutine_threadsafe(start(), loop).result(WAIT)
    yield tcp_port, ws_port
    asyncio.run_coroutine_threadsafe(broker.shutdown(), loop).result(WAIT)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(WAIT)
    loop.close()


def test_redirect_to_websockets(broker: BrokerThread, service: Service, ws_broker: tuple[int, int]) -> None:
    tcp_port, ws_port = ws_broker
    seen: list[tuple[str, bytes]] = []
    subscribed = threading.Event()
    observer = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="observer")
    observer.username_pw_set("observer")
    observer.on_connect = lambda c, *_: c.subscribe("#")
    observer.on_subscribe = lambda *_: subscribed.set()
    observer.on_message = lambda _c, _u, m: seen.append((m.topic, bytes(m.payload)))
    observer.connect("127.0.0.1", tcp_port)
    observer.loop_start()
    try:
        assert subscribed.wait(WAIT)
        with Device(TOKEN, "127.0.0.1", broker.port, template_id="TMPLws", backoff=FAST) as device:
            service.publish(f"d/{DEVICE_ID}/downlink/redirect", f"ws://127.0.0.1:{ws_port}/mqtt")
            wait_until(lambda: device.connected and device.endpoint.transport == "websockets", what="ws")
            assert device.endpoint.uri == f"ws://127.0.0.1:{ws_port}/mqtt"
            device.write("Temperature", 8)
            wait_until(lambda: ("ds/Temperature", b"8") in seen, what="the write over WebSockets")
        info = next(payload for topic, payload in seen if topic == "info/mcu")
        assert json.loads(info)["tmpl"] == "TMPLws"
    finally:
        observer.disconnect()
        observer.loop_stop()
