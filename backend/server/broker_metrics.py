"""The broker process's own ``/metrics``, served on 127.0.0.1:``OPENBLYNK_BROKER_METRICS_PORT``.

The broker is a process of its own, so its numbers cannot be read from the app's memory: it
serves them on a loopback port, and the app's ``/metrics`` fetches and appends them (one scrape
target). In a split deployment (``openblynk broker`` on another host) scrape that host's port
from a local agent, or read ``openblynk_broker_metrics_up`` as 0 on the app.

The values are read from :class:`broker.MqttBroker`'s diagnostics in the event loop (never from
another thread: the broker's tables change under it), one small HTTP/1.1 answer per connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from backend.server.broker_control import PREFIX, answer_control
from broker import MqttBroker

log = logging.getLogger(__name__)
REQUEST_TIMEOUT_SECONDS = 5.0
MAX_REQUEST_BYTES = 8192


class BrokerCollector(Collector):
    """Connections, sessions and queues of the broker, read at scrape time."""

    def __init__(self, broker: MqttBroker) -> None:
        self.broker = broker

    def collect(self) -> Iterator[Metric]:
        broker = self.broker
        yield _gauge(
            "openblynk_broker_connected_devices",
            "Devices online, directly or through a gateway.",
            len(broker.connected_devices()),
        )
        yield _gauge(
            "openblynk_broker_open_connections",
            "Client sockets served, authenticated or not.",
            broker.open_connections(),
        )
        yield _gauge(
            "openblynk_broker_gateways", "Gateway connections (MQTT Gateway API).", len(broker.gateway_sessions())
        )
        queues = broker.session_queues()
        yield _gauge("openblynk_broker_sessions", "Sessions the broker keeps (devices and services).", len(queues))
        waiting = GaugeMetricFamily(
            "openblynk_broker_queued_messages",
            "Messages waiting in the broker, summed over sessions, by queue (outgoing, inflight, incoming, backlog).",
            labels=["queue"],
        )
        for queue in ("outgoing", "inflight", "incoming", "backlog"):
            waiting.add_metric([queue], sum(getattr(q, queue) for q in queues.values()))
        yield waiting
        yield _gauge(
            "openblynk_broker_dropped_messages",
            "QoS 0 messages dropped on the current connections' full queues plus QoS 1 refused by full backlogs.",
            sum(q.dropped for q in queues.values()),
        )


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=float(value))


def broker_registry(broker: MqttBroker) -> CollectorRegistry:
    """The broker's numbers and its process's (``openblynk_broker_process_*``: memory, CPU, files)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BrokerCollector(broker))
    ProcessCollector(namespace="openblynk_broker", registry=registry)
    return registry


def _authorization(head: bytes) -> bytes:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"authorization":
            return value.strip()
    return b""


@asynccontextmanager
async def serving_metrics(broker: MqttBroker, port: int, control_token: str = "") -> AsyncIterator[None]:
    """Serve ``GET /metrics`` on 127.0.0.1:``port`` for the block (nothing when ``port`` is 0),
    and the control routes of ``backend.server.broker_control`` to holders of ``control_token``."""
    if not port:
        yield
        return
    registry = broker_registry(broker)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_SECONDS):
                head = await reader.readuntil(b"\r\n\r\n")
            parts = head[:MAX_REQUEST_BYTES].split(b" ", 2)
            if len(parts) == 3 and parts[0] == b"GET" and parts[1] == b"/metrics":
                status, kind, body = b"200 OK", CONTENT_TYPE_LATEST.encode(), generate_latest(registry)
            elif len(parts) == 3 and parts[1].startswith(PREFIX):
                status, kind, body = await answer_control(
                    broker, control_token, parts[0], parts[1], _authorization(head)
                )
            else:
                status, kind, body = b"404 Not Found", b"text/plain", b"only GET /metrics is served here\n"
            writer.write(
                b"HTTP/1.1 "
                + status
                + b"\r\nContent-Type: "
                + kind
                + b"\r\nContent-Length: "
                + str(len(body)).encode()
                + b"\r\nConnection: close\r\n\r\n"
                + body
            )
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", port, limit=MAX_REQUEST_BYTES)
    log.info("broker metrics on http://127.0.0.1:%d/metrics", port)
    try:
        yield
    finally:
        server.close()
        await server.wait_closed()
