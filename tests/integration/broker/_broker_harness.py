"""Shared helpers for the broker integration tests: factories, clients, raw MQTT packets.

Two broker factories with one interface, so each defect check runs against both:

* :func:`ours` -- :class:`broker.MqttBroker` with a dict authenticator;
* :func:`stock` -- a plain ``amqtt.broker.Broker`` with the minimal equivalent plugins
  (token auth + "device only under d/<id>/" topic ACL). Devices talk full topics there
  (no mount), which :meth:`Harness.dev` hides from the checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import paho.mqtt.client as mqtt
from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from broker import (
    BrokerSettings,
    ConnectInfo,
    DeviceIdentity,
    GatewayIdentity,
    IntegrationIdentity,
    MqttBroker,
    ServiceIdentity,
)
from broker.trie import SubscriptionIndex
from tests.support.net import eventually  # the broker tests import it from here

SERVICE_USER = "openblynk-service"
SERVICE_PASSWORD = "svc-secret"
RATE_DIAG = "rate limit exceeded: {} messages/s; messages are being dropped"
"""The ``downlink/diag`` line of a device over the per-device rate limit."""
TOKENS = {f"token-{n:02d}-" + "x" * 23: n for n in range(1, 10)}


def token(device_id: int) -> str:
    """The auth token of test device ``device_id`` (1..9)."""
    return next(t for t, d in TOKENS.items() if d == device_id)


GATEWAY_PASSWORD = "gateway-secret"
GATEWAYS = {"gw-a": frozenset({1, 2, 3}), "gw-b": frozenset({4, 5})}
"""Test gateways (user name -> the devices in its scope); they log in with ``GATEWAY_PASSWORD``."""
INTEGRATION_PASSWORD = "integration-secret"
INTEGRATIONS = {"int-a": 1, "int-a2": 1, "int-b": 2}
"""Test integration clients (user name -> organization); they log in with ``INTEGRATION_PASSWORD``."""


@dataclass
class DictScope:
    """A test gateway's scope: the devices of :data:`GATEWAYS` not revoked since."""

    name: str
    authenticator: DictAuthenticator

    async def device_for(self, token: str) -> int | None:
        self.authenticator.lookups += 1
        device = TOKENS.get(token)
        scope = self.authenticator.gateways.get(self.name, frozenset())
        return device if device in scope and device not in self.authenticator.revoked_devices else None

    async def still_valid(self) -> bool:
        revoked = self.authenticator.revoked_gateways | self.authenticator.revoked_integrations
        return self.name not in revoked


class DictAuthenticator:
    """Token dict -> DeviceIdentity; the service password -> ServiceIdentity; a gateway name of
    :data:`GATEWAYS` and ``GATEWAY_PASSWORD`` -> GatewayIdentity."""

    def __init__(self) -> None:
        self.calls: list[ConnectInfo] = []
        self.fail = False
        self.gateways = dict(GATEWAYS)
        self.revoked_gateways: set[str] = set()
        self.revoked_devices: set[int] = set()
        self.revoked_integrations: set[str] = set()
        self.lookups = 0
        """Tokens the gateways' scopes were asked about."""

    async def authenticate(
        self, info: ConnectInfo
    ) -> DeviceIdentity | ServiceIdentity | GatewayIdentity | IntegrationIdentity | None:
        self.calls.append(info)
        if self.fail:
            raise RuntimeError("database is down")
        if info.password == SERVICE_PASSWORD:
            return ServiceIdentity(info.username or "service")
        if info.password == GATEWAY_PASSWORD and info.username in self.gateways:
            if info.username in self.revoked_gateways:
                return None
            return GatewayIdentity(f"client:{info.username}", DictScope(info.username, self))
        if info.password == INTEGRATION_PASSWORD and info.username in INTEGRATIONS:
            if info.username in self.revoked_integrations:
                return None
            return IntegrationIdentity(
                f"client:{info.username}", INTEGRATIONS[info.username], DictScope(info.username, self)
            )
        device = TOKENS.get(info.password or "")
        return DeviceIdentity(device) if device is not None else None


# ---- stock amqtt with equivalent plugins ------------------------------------------------


class StockTokenAuth(BaseAuthPlugin):
    """Stock-amqtt plugin: same credentials as :class:`DictAuthenticator`."""

    @dataclass
    class Config:
        pass

    async def authenticate(self, *, session: Session) -> bool | None:
        if session.password == SERVICE_PASSWORD:
            session.attributes["test.device"] = "*"
            return True
        device = TOKENS.get(session.password or "")
        if session.username != "device" or device is None:
            return False
        session.attributes["test.device"] = device
        return True


class StockTopicAcl(BaseTopicPlugin):
    """Stock-amqtt plugin: a device may only touch topics under ``d/<id>/``."""

    @dataclass
    class Config:
        pass

    async def topic_filtering(
        self, *, session: Session | None = None, topic: str | None = None, action: Action | None = None
    ) -> bool:
        device = session.attributes.get("test.device") if session else None
        if device == "*":
            return True
        return bool(device and topic and topic.startswith(f"d/{device}/"))


# ---- factories ----------------------------------------------------------------------------


@dataclass
class Harness:
    """A running broker under test."""

    kind: str
    port: int
    broker: Any
    authenticator: DictAuthenticator | None = None

    def dev(self, device_id: int, relative: str) -> str:
        """The topic a device uses for ``relative`` (mounted brokers hide the prefix)."""
        return relative if self.kind == "ours" else f"d/{device_id}/{relative}"

    @contextlib.contextmanager
    def matching_calls(self) -> Iterator[CallCounter]:
        """Count calls of the broker's subscription-matching function while inside.

        Stock: ``Broker._matches`` (called per filter per message), patched on this instance
        only. Ours: ``SubscriptionIndex._collect`` (called per visited trie node).
        """
        counter = CallCounter()
        if self.kind == "stock":
            with mock.patch.object(self.broker, "_matches", counter.wrap(self.broker._matches)):
                yield counter
        else:
            original = SubscriptionIndex._collect
            with mock.patch.object(SubscriptionIndex, "_collect", counter.wrap_method(original)):
                yield counter


@dataclass
class CallCounter:
    """Counts calls of a wrapped function."""

    calls: int = 0

    def wrap(self, function: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return function(*args, **kwargs)

        return counted

    def wrap_method(self, function: Callable[..., Any]) -> Callable[..., Any]:
        def counted(instance: Any, *args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return function(instance, *args, **kwargs)

        return counted


Factory = Callable[[], contextlib.AbstractAsyncContextManager[Harness]]


class ManualClock:
    """A clock that moves only when a test moves it (the broker's rate limit runs on it)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@contextlib.asynccontextmanager
async def ours(rate_clock: Callable[[], float] | None = None, **overrides: Any) -> AsyncIterator[Harness]:
    """Our MqttBroker on a free port of 127.0.0.1 (``rate_clock``: see :class:`ManualClock`)."""
    authenticator = DictAuthenticator()
    settings = BrokerSettings(**{"host": "127.0.0.1", "port": 0, **overrides})
    async with MqttBroker(settings, authenticator, rate_clock) as broker:
        yield Harness("ours", broker.port, broker, authenticator)


@contextlib.asynccontextmanager
async def running(clients: list[Any], **settings: Any) -> AsyncIterator[tuple[Harness, Callable[..., Paho]]]:
    """Our broker with ``settings`` and a factory of tracked paho clients."""
    async with ours(**settings) as harness:

        def build(**kwargs: Any) -> Paho:
            client = Paho(harness.port, **kwargs)
            clients.append(client)
            return client

        yield harness, build


@contextlib.asynccontextmanager
async def stock() -> AsyncIterator[Harness]:
    """Stock amqtt 0.12.1 with token auth + prefix ACL plugins, on a free port."""
    here = __name__
    config = {
        "listeners": {"default": {"type": "tcp", "bind": "127.0.0.1:0"}},
        "plugins": {f"{here}.StockTokenAuth": {}, f"{here}.StockTopicAcl": {}},
    }
    broker = Broker(config)
    await broker.start()
    try:
        port = broker._servers["default"].instance.sockets[0].getsockname()[1]
        yield Harness("stock", port, broker)
    finally:
        await broker.shutdown()


# ---- paho client --------------------------------------------------------------------------


@dataclass
class Received:
    topic: str
    payload: bytes
    qos: int
    retain: bool


@dataclass
class Paho:
    """A paho-mqtt 2.2 client (MQTT 3.1.1, callback API v2) driven from async tests."""

    port: int
    client_id: str = ""
    username: str | None = None
    password: str | None = None
    clean_session: bool = True
    keepalive: int = 60
    will: tuple[str, bytes] | None = None
    protocol: int = mqtt.MQTTv311
    bind: str = ""
    """The local address to connect from (another loopback address is another client address)."""
    messages: list[Received] = field(default_factory=list)
    connack: str | None = None
    disconnected: bool = False
    subacks: dict[int, list[int]] = field(default_factory=dict)
    unsubacks: set[int] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=None if self.protocol == mqtt.MQTTv5 else self.clean_session,
            protocol=self.protocol,
        )
        if self.username is not None:
            client.username_pw_set(self.username, self.password)
        if self.will is not None:
            client.will_set(self.will[0], self.will[1], qos=1)
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_unsubscribe = lambda _c, _u, mid, *_rest: self.unsubacks.add(mid)
        self.client = client

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.connack = str(reason)

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(Received(message.topic, message.payload, message.qos, bool(message.retain)))

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, codes: list[Any], _p: Any) -> None:
        self.subacks[mid] = [code.value for code in codes]

    def _on_disconnect(self, *_args: Any) -> None:
        self.disconnected = True

    async def connect(self, expect: str = "Success") -> Paho:
        """Connect (paho's network thread) and wait for CONNACK."""
        extra: dict[str, Any] = {}
        if self.protocol == mqtt.MQTTv5 and not self.clean_session:  # MQTT 5's persistent session
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = 3600
            extra = {"clean_start": False, "properties": properties}
        self.client.connect_async("127.0.0.1", self.port, keepalive=self.keepalive, bind_address=self.bind, **extra)
        self.client.loop_start()
        await eventually(lambda: self.connack is not None, message="CONNACK")
        assert self.connack == expect, self.connack
        return self

    async def subscribe(self, *filters: str, qos: int = 0) -> list[int]:
        """Subscribe and return the SUBACK codes (0x80 = refused)."""
        _, mid = self.client.subscribe([(f, qos) for f in filters])
        await eventually(lambda: mid in self.subacks, message="SUBACK")
        return self.subacks[mid]

    async def unsubscribe(self, *filters: str) -> None:
        """Unsubscribe and wait for the UNSUBACK."""
        _, mid = self.client.unsubscribe(list(filters))
        await eventually(lambda: mid in self.unsubacks, message="UNSUBACK")

    async def publish(self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False) -> None:
        """Publish; for QoS 1 wait for the PUBACK."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if qos:
            await eventually(info.is_published, message="PUBACK")

    def topics(self) -> list[str]:
        with self._lock:
            return [m.topic for m in self.messages]

    async def received(self, topic: str, timeout: float = 3.0) -> Received:
        """Wait for the first message on ``topic``."""
        await eventually(lambda: topic in self.topics(), timeout, message=f"message on {topic}")
        return next(m for m in list(self.messages) if m.topic == topic)

    async def close(self) -> None:
        self.client.disconnect()
        await asyncio.to_thread(self.client.loop_stop)


# ---- presence -------------------------------------------------------------------------


async def presence_watcher(paho: Callable[..., Paho]) -> Paho:
    """A service client subscribed to every device's presence."""
    backend = await paho(client_id="presence", username=SERVICE_USER, password=SERVICE_PASSWORD).connect()
    await backend.subscribe("sys/presence/#", qos=1)
    return backend


async def offline_reason(watcher: Paho, device_id: int, timeout: float = 3.0) -> str:
    """Wait for an offline presence of ``device_id`` and return the reason of the latest one."""
    topic = f"sys/presence/{device_id}"
    await eventually(
        lambda: any(json.loads(m.payload)["online"] is False for m in list(watcher.messages) if m.topic == topic),
        timeout,
        message=f"offline presence of {device_id}",
    )
    # the last offline one: an online presence of a later connection may already have followed it
    seen = [json.loads(m.payload) for m in list(watcher.messages) if m.topic == topic]
    return str([p for p in seen if p["online"] is False][-1]["reason"])


async def connected_raw(raw: Callable[[], Any], device_id: int = 1, keepalive: int = 60) -> Raw:
    """A raw-socket device that has connected (CONNACK 0 checked)."""
    client: Raw = await raw()
    await client.send(connect_packet(username="device", password=token(device_id), keepalive=keepalive))
    assert await client.read_packet() == b"\x20\x02\x00\x00"
    return client


# ---- raw MQTT 3.1.1 packets -----------------------------------------------------------


def _string(value: str | bytes) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return struct.pack("!H", len(data)) + data


def _remaining_length(length: int) -> bytes:
    out = bytearray()
    while True:
        byte, length = length % 128, length // 128
        out.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(out)


def packet(first_byte: int, body: bytes) -> bytes:
    """A packet with a correct fixed header."""
    return bytes([first_byte]) + _remaining_length(len(body)) + body


def connect_packet(
    client_id: str = "",
    username: str | None = None,
    password: str | None = None,
    keepalive: int = 60,
    clean: bool = True,
    will: tuple[str, bytes] | None = None,
) -> bytes:
    flags = (0x02 if clean else 0) | (0x80 if username is not None else 0) | (0x40 if password is not None else 0)
    payload = _string(client_id)
    if will is not None:
        flags |= 0x04 | 0x08  # will flag, will QoS 1
        payload += _string(will[0]) + _string(will[1])
    if username is not None:
        payload += _string(username)
    if password is not None:
        payload += _string(password)
    return packet(0x10, _string("MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive) + payload)


def publish_packet(topic: str, payload: bytes, qos: int = 0, packet_id: int = 1) -> bytes:
    body = _string(topic) + (struct.pack("!H", packet_id) if qos else b"") + payload
    return packet(0x30 | (qos << 1), body)


def subscribe_packet(packet_id: int, *filters: str, qos: int = 0) -> bytes:
    return packet(0x82, struct.pack("!H", packet_id) + b"".join(_string(f) + bytes([qos]) for f in filters))


@dataclass
class Raw:
    """A raw-socket MQTT connection for byte-exact checks."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    @classmethod
    async def open(cls, port: int) -> Raw:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read_packet(self, timeout: float = 3.0) -> bytes:
        """One whole packet (fixed header included)."""
        async with asyncio.timeout(timeout):
            first = await self.reader.readexactly(1)
            header, length, multiplier = bytearray(first), 0, 1
            while True:
                byte = (await self.reader.readexactly(1))[0]
                header.append(byte)
                length += (byte & 0x7F) * multiplier
                multiplier *= 128
                if not byte & 0x80:
                    break
            return bytes(header) + await self.reader.readexactly(length)

    async def closed_by_peer(self, timeout: float = 3.0) -> bool:
        """True once the broker has closed the connection (EOF or reset)."""
        try:
            async with asyncio.timeout(timeout):
                while await self.reader.read(4096):
                    pass
            return True
        except TimeoutError:  # before OSError: TimeoutError is an OSError subclass
            return False
        except (ConnectionError, OSError):
            return True

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()


def parse_publish(data: bytes) -> tuple[str, bytes]:
    """Topic and payload of a QoS 0 PUBLISH packet read by :meth:`Raw.read_packet`."""
    index = 1
    while data[index] & 0x80:
        index += 1
    body = data[index + 1 :]
    (length,) = struct.unpack("!H", body[:2])
    qos = (data[0] >> 1) & 3
    start = 2 + length + (2 if qos else 0)
    return body[2 : 2 + length].decode(), body[start:]
