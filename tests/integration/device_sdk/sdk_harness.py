"""Test harness for device_sdk: the project's broker in a background thread (paho is
synchronous) and a paho client with a service identity as "the server side".

A module with a unique name rather than conftest.py, so test modules can import it without
colliding with other areas' conftest modules.
"""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from backend.transport.tls import TlsFiles, ensure_local_ca
from broker import BrokerSettings, ConnectInfo, DeviceIdentity, MqttBroker, ServiceIdentity
from device_sdk import Backoff

DEVICE_ID = 7
TOKEN = "AbCdEfGhIjKlMnOpQrStUvWxYz012345"
UNKNOWN_TOKEN = "ZyXwVuTsRqPoNmLkJiHgFeDcBa543210"
SERVICE_USER, SERVICE_SECRET = "svc-test", "service-secret"
WAIT = 10.0  # upper bound for every wait on a condition; never reached when things work
FAST = Backoff(initial=0.05, maximum=0.5)


class Authenticator:
    """Tokens -> device ids, one service account; records every attempt.

    ``gate`` holds device logins (not service ones) while cleared, so a test can make sure its
    observer is subscribed before a device's reconnect completes.
    """

    def __init__(self) -> None:
        self.devices = {TOKEN: DEVICE_ID}
        self.attempts: list[ConnectInfo] = []
        self.gate = threading.Event()
        self.gate.set()

    async def authenticate(self, info: ConnectInfo) -> DeviceIdentity | ServiceIdentity | None:
        self.attempts.append(info)
        if info.username == SERVICE_USER:
            return ServiceIdentity("test") if info.password == SERVICE_SECRET else None
        while not self.gate.is_set():
            await asyncio.sleep(0.01)
        if info.username == "device" and info.password in self.devices:
            return DeviceIdentity(self.devices[info.password])
        return None

    def device_attempts(self, token: str) -> int:
        return sum(1 for info in self.attempts if info.password == token)


class BrokerThread:
    """One MqttBroker serving from its own event loop on a background thread."""

    def __init__(
        self,
        authenticator: Authenticator,
        tls: TlsFiles | None = None,
        rate_clock: Callable[[], float] | None = None,
        **settings: Any,
    ) -> None:
        """``settings`` are further :class:`BrokerSettings` fields; ``rate_clock`` the rate
        limit's clock (the event loop's by default)."""
        self.authenticator = authenticator
        self.tls = tls
        self.rate_clock = rate_clock
        self.settings = settings
        self.port = 0
        self.tls_port: int | None = 0 if tls else None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._broker: MqttBroker | None = None

    def start(self) -> None:
        """Start on the same ports as before (free ports the first time)."""
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="test-broker", daemon=True)
        self._thread.start()
        settings = BrokerSettings(
            host="127.0.0.1",
            port=self.port,
            tls_port=self.tls_port,
            certfile=str(self.tls.certfile) if self.tls else None,
            keyfile=str(self.tls.keyfile) if self.tls else None,
            shutdown_grace=0.0,
            **self.settings,
        )
        self._broker = MqttBroker(settings, self.authenticator, rate_clock=self.rate_clock)
        self._run(self._broker.start())
        self.port = self._broker.port
        self.tls_port = self._broker.tls_port

    def stop(self) -> None:
        if self._broker is None or self._loop is None or self._thread is None:
            return
        self._run(self._shutdown(self._broker))
        self._broker = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(WAIT)
        self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        # Connection objects the broker has dropped may sit in reference cycles; finalise them
        # while their loop is open, or they raise ResourceWarning in whichever later test
        # happens to trigger garbage collection.
        gc.collect()
        self._loop.close()

    @staticmethod
    async def _shutdown(broker: MqttBroker) -> None:
        """Stop the broker, then finish what is left as asyncio.run() would."""
        await broker.stop()
        leftovers = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in leftovers:
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)
        for _ in range(3):  # let closed transports run their connection_lost callbacks
            await asyncio.sleep(0)

    def disconnect_device(self, device_id: int) -> None:
        """Drop a device's connection as when its token is revoked."""
        assert self._broker is not None
        self._run(self._broker.disconnect_device(device_id))

    def connected_devices(self) -> set[int]:
        assert self._broker is not None
        return self._broker.connected_devices()

    def _run(self, coro: object) -> None:
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(WAIT)  # type: ignore[arg-type]


class Service:
    """A paho client with the service identity: sees every device's uplinks, sends downlinks."""

    def __init__(self, port: int) -> None:
        self._cond = threading.Condition()
        self._messages: list[mqtt.MQTTMessage] = []
        self._replies: dict[str, tuple[str, bytes]] = {}
        self._subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"svc-{port}")
        self.client.username_pw_set(SERVICE_USER, SERVICE_SECRET)
        self.client.on_connect = lambda c, *_: c.subscribe("d/+/#", qos=1)
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self._subscribed.wait(WAIT), "service client did not subscribe"

    def answer(self, topic: str, reply_topic: str, payload: str | bytes) -> None:
        """From now on, answer every message on ``topic`` by publishing ``payload``."""
        self._replies[topic] = (reply_topic, payload.encode() if isinstance(payload, str) else payload)

    def _on_message(self, client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        reply = self._replies.get(message.topic)
        if reply is not None:
            client.publish(*reply)
        with self._cond:
            self._messages.append(message)
            self._cond.notify_all()

    def expect(self, topic: str, timeout: float = WAIT) -> bytes:
        """Take the oldest unconsumed message on ``topic`` and return its payload."""
        with self._cond:
            found = self._cond.wait_for(lambda: any(m.topic == topic for m in self._messages), timeout)
            if not found:
                seen = sorted({m.topic for m in self._messages})
                pytest.fail(f"no message on {topic!r} within {timeout} s; saw {seen}")
            # by position: paho's MQTTMessage compares equal by message id, which every QoS 0
            # message shares (0), so list.remove() could take another topic's message
            index = next(i for i, m in enumerate(self._messages) if m.topic == topic)
            return bytes(self._messages.pop(index).payload)

    def publish(self, topic: str, payload: str | bytes = b"", qos: int = 0) -> None:
        self.client.publish(topic, payload, qos=qos).wait_for_publish(WAIT)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def make_tls_files(directory: Path) -> TlsFiles:
    """A CA and a server certificate for 127.0.0.1, made as the server makes its own."""
    return ensure_local_ca(directory, ["127.0.0.1", "localhost"])
