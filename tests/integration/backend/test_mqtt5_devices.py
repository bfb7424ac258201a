"""MQTT 5 devices against the real broker and app (issue #18): gmqtt with ``version=MQTTv50``
over TLS on the MQTTS port pinning the served CA, as Blynk's Python sample (blynk_gmqtt.py)
connects, and paho-mqtt's ``MQTTv5``: values reach the app, downlinks written over the HTTP
API reach the device, and a wrong token is refused with reason 0x86."""

from __future__ import annotations

import asyncio
import queue
import ssl
import uuid
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as paho
import pytest
from gmqtt import Client as GmqttClient
from gmqtt.mqtt.constants import MQTTv50
from gmqtt.mqtt.handler import MQTTConnectError
from paho.mqtt.enums import CallbackAPIVersion

from backend.transfer.schemas import DeviceOut
from tests.support.net import wait_for
from tests.support.stack import StackConfig


def served_ca(stack: StackConfig, tmp_path: Path) -> ssl.SSLContext:
    """What a device pins: the CA served at /ca.pem."""
    path = tmp_path / "ca.pem"
    path.write_bytes(httpx.get(f"{stack.base_url}/ca.pem", timeout=10).content)
    return ssl.create_default_context(cafile=str(path))


class GmqttDevice:
    """A device as Blynk's gmqtt sample writes it: MQTT 5, TLS, user ``device``, the token."""

    def __init__(self, token: str) -> None:
        self.client = GmqttClient(f"blynk-{uuid.uuid4().hex[:8]}")
        self.client.set_auth_credentials("device", token)
        self.received: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self.client.on_message = self._on_message

    def _on_message(self, _client: Any, topic: str, payload: bytes, _qos: int, _properties: Any) -> int:
        self.received.put_nowait((topic, payload))
        return 0

    async def connect(self, stack: StackConfig, context: ssl.SSLContext) -> None:
        await self.client.connect("localhost", stack.mqtts_port, ssl=context, version=MQTTv50, keepalive=45)


async def test_gmqtt_mqtt5_device_over_tls_like_blynks_sample(
    stack: StackConfig, devices: list[DeviceOut], tmp_path: Path
) -> None:
    info = devices[0]
    device = GmqttDevice(info.token)
    await device.connect(stack, served_ca(stack, tmp_path))
    try:
        device.client.subscribe("downlink/#", qos=0)
        await asyncio.sleep(0)  # the sample subscribes and goes on: the SUBACK is not awaited
        device.client.publish("ds/Temperature", "22.5", qos=1)
        async with httpx.AsyncClient(base_url=stack.base_url, timeout=10) as http:
            for _ in range(100):
                if (await http.get("/external/api/get", params={"token": info.token, "v0": ""})).text == "22.5":
                    break
                await asyncio.sleep(0.1)
            assert (await http.get("/external/api/get", params={"token": info.token, "v0": ""})).text == "22.5"
            r = await http.get("/external/api/update", params={"token": info.token, "v1": "1"})
            assert r.status_code == 200, r.text
        async with asyncio.timeout(10):
            while True:
                topic, payload = await device.received.get()
                if topic.startswith("downlink/ds/"):
                    break
        assert (topic, payload) == ("downlink/ds/Power", b"1")
    finally:
        await device.client.disconnect()


async def test_gmqtt_mqtt5_wrong_token_gets_0x86(stack: StackConfig, tmp_path: Path) -> None:
    device = GmqttDevice("w" * 32)
    with pytest.raises(MQTTConnectError) as refused:
        await device.connect(stack, served_ca(stack, tmp_path))
    assert refused.value._code == 0x86  # "Bad User Name or Password"


def test_paho_mqtt5_device_over_tls(
    stack: StackConfig, devices: list[DeviceOut], http: httpx.Client, tmp_path: Path
) -> None:
    info = devices[1]
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"fw-{uuid.uuid4().hex[:6]}", protocol=paho.MQTTv5)
    client.username_pw_set("device", info.token)
    client.tls_set_context(served_ca(stack, tmp_path))
    connected: queue.Queue[str] = queue.Queue()
    messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
    client.on_connect = lambda _c, _u, _f, reason, _p: connected.put(str(reason))
    client.on_message = lambda _c, _u, m: messages.put((m.topic, bytes(m.payload)))
    client.connect("localhost", stack.mqtts_port, keepalive=30)
    client.loop_start()
    try:
        assert connected.get(timeout=10) == "Success"
        client.subscribe("downlink/#", qos=1)
        client.publish("ds/Temperature", "23.5", qos=1).wait_for_publish(5)
        wait_for(lambda: http.get(f"/external/api/get?token={info.token}&v0").text == "23.5")
        assert http.get(f"/external/api/update?token={info.token}&v1=1").status_code == 200
        assert messages.get(timeout=10) == ("downlink/ds/Power", b"1")
    finally:
        client.disconnect()
        client.loop_stop()


def test_paho_mqtt5_wrong_token_is_bad_user_name_or_password(stack: StackConfig) -> None:
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.username_pw_set("device", "w" * 32)
    connected: queue.Queue[str] = queue.Queue()
    client.on_connect = lambda _c, _u, _f, reason, _p: connected.put(str(reason))
    client.connect("127.0.0.1", stack.mqtt_port, keepalive=30)
    client.loop_start()
    try:
        assert connected.get(timeout=10) == "Bad user name or password"  # what Blynk's paho sample compares
    finally:
        client.disconnect()
        client.loop_stop()
