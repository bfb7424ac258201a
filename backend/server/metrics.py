"""``/metrics``: the app's numbers and the broker's, in Prometheus' text format.

Three sources, one answer:

- the counters the parts increment as things happen (``backend.metrics``, HTTP requests by route
  template and status from Litestar's Prometheus middleware, the process and Python collectors),
  all in prometheus-client's default registry;
- the states read at scrape time from the running parts (:class:`RuntimeCollector`): the broker
  connection, the ingest's queue, lag and unacknowledged messages, history rows written and
  queued, the database pool, the scheduler's leadership and jobs;
- the broker process's own ``/metrics`` (``backend.server.broker_metrics``), fetched from
  127.0.0.1:``OPENBLYNK_BROKER_METRICS_PORT`` and appended (``openblynk_broker_metrics_up`` says
  whether that worked).

Who may read it (:func:`check_reader`): with ``OPENBLYNK_METRICS_TOKEN`` set, whoever sends it as
``Authorization: Bearer``; without one, only clients on the loopback interface that came through
no reverse proxy (no forwarding header), so that a proxy in front of the app does not open it.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterator

import httpx
from litestar import Response, get
from litestar.enums import ScopeType
from litestar.plugins.prometheus import PrometheusConfig
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from backend.connections import PublicRequest
from backend.errors import AuthenticationError, PermissionDeniedError
from backend.server.container import Runtime, runtime
from backend.settings import Settings

FORWARDING_HEADERS = ("x-forwarded-for", "forwarded", "x-real-ip")
BROKER_TIMEOUT_SECONDS = 2.0

HTTP_METRICS = PrometheusConfig(
    app_name="openblynk",
    prefix="openblynk_http",
    group_path=True,  # the route template (/api/devices/{device_id:int}), never the raw path
    exclude=["^/metrics$"],
    scopes={ScopeType.HTTP},  # not the WebSockets: the MQTT bridge's every frame would pass through it
)
"""HTTP requests, their durations and those in progress, by method, route template and status.
Only routed requests are counted (a 404 for an unknown path reaches no route), so the labels
are bounded by the app's routes."""


class RuntimeCollector(Collector):
    """The running parts' states, read when ``/metrics`` is scraped."""

    def __init__(self, rt: Runtime, broker_up: bool) -> None:
        self.rt = rt
        self.broker_up = broker_up

    def collect(self) -> Iterator[Metric]:
        rt = self.rt
        yield _gauge(
            "openblynk_broker_connection_up", "1 while the app's connection to the broker is up.", rt.mqtt.connected
        )
        yield _gauge("openblynk_broker_metrics_up", "1 if the broker's own /metrics could be read.", self.broker_up)
        yield _gauge(
            "openblynk_ingest_queued_messages",
            "Messages received from the broker, not yet taken by the ingest.",
            rt.mqtt.queued,
        )
        yield _gauge(
            "openblynk_ingest_unacknowledged_messages",
            "QoS 1 messages taken from the broker whose history rows are not committed yet (the broker keeps them).",
            rt.mqtt.unacknowledged,
        )
        yield _gauge(
            "openblynk_ingest_lag_seconds",
            "Age of the oldest QoS 1 message received and not yet committed (0 when none waits).",
            rt.mqtt.lag_seconds,
        )
        processed = CounterMetricFamily("openblynk_ingest_processed", "Messages and values the ingest has handled.")
        processed.add_metric([], rt.ingest.processed)
        yield processed
        rows = CounterMetricFamily("openblynk_history_rows_written", "History rows committed by the history writer.")
        rows.add_metric([], rt.history.rows_written)
        yield rows
        yield _gauge(
            "openblynk_history_rows_pending",
            "History rows accepted by the writer and not yet committed.",
            rt.history.accepted - rt.history.settled,
        )
        yield from self._pool()
        yield _gauge(
            "openblynk_scheduler_leader",
            "1 in the app process that runs the scheduled jobs.",
            rt.scheduler.is_leader.is_set(),
        )
        yield _gauge(
            "openblynk_scheduler_interval_jobs",
            "Interval jobs the scheduler runs while it leads.",
            len(rt.scheduler.jobs),
        )

    def _pool(self) -> Iterator[Metric]:
        stats = self.rt.db.pool.get_stats()
        pool = GaugeMetricFamily(
            "openblynk_db_pool_connections", "Database pool connections, by state.", labels=["state"]
        )
        size, available = stats.get("pool_size", 0), stats.get("pool_available", 0)
        pool.add_metric(["open"], size)
        pool.add_metric(["idle"], available)
        pool.add_metric(["in_use"], size - available)
        yield pool
        yield _gauge("openblynk_db_pool_max", "Most connections the database pool opens.", stats.get("pool_max", 0))
        yield _gauge(
            "openblynk_db_pool_waiting", "Requests waiting for a pooled connection.", stats.get("requests_waiting", 0)
        )


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=float(value))


def check_reader(request: PublicRequest, settings: Settings) -> None:
    """Refuse a caller who may not read ``/metrics`` (see the module's docstring)."""
    if settings.metrics_token:
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {settings.metrics_token}".encode()):
            raise AuthenticationError("send OPENBLYNK_METRICS_TOKEN as 'Authorization: Bearer <token>'")
        return
    host = request.client.host if request.client else ""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback or any(name in request.headers for name in FORWARDING_HEADERS):
        raise PermissionDeniedError(
            "/metrics is served to loopback clients only; set OPENBLYNK_METRICS_TOKEN to scrape it from elsewhere"
        )


async def broker_metrics(settings: Settings) -> bytes | None:
    """The broker process's own metrics text, or None when it cannot be read."""
    if not settings.broker_metrics_port:
        return None
    url = f"http://127.0.0.1:{settings.broker_metrics_port}/metrics"
    try:
        async with httpx.AsyncClient(timeout=BROKER_TIMEOUT_SECONDS) as client:
            answer = await client.get(url)
    except httpx.HTTPError:
        return None
    return answer.content if answer.status_code == 200 else None


@get("/metrics", include_in_schema=False)
async def metrics(request: PublicRequest) -> Response[bytes]:
    """The app's and the broker's metrics, in Prometheus' text format."""
    rt = runtime(request.app)
    check_reader(request, rt.settings)
    broker = await broker_metrics(rt.settings)
    states = CollectorRegistry(auto_describe=False)
    states.register(RuntimeCollector(rt, broker is not None))
    body = generate_latest(REGISTRY) + generate_latest(states) + (broker or b"")
    return Response(body, media_type=CONTENT_TYPE_LATEST)
