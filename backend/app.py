"""The app factory: routes, exception handlers and the lifespan that wires the services.

Importing this module reads no environment and opens nothing; ``create_app`` receives the
settings and the database URL from the CLI.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from litestar import Litestar, MediaType, Response, get
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from backend.accounts.cleanup import clean_accounts
from backend.accounts.context import accounts_lifespan
from backend.accounts.http import api_router
from backend.connections import AnyRequest, PublicRequest
from backend.console.controllers import console_api_router
from backend.console.runtime import ConsoleRuntime
from backend.db.changes import ChangeListener
from backend.device_api.controllers import DeviceApiController
from backend.device_api.services import DeviceApiService
from backend.device_api.ratelimit import DeviceRateLimit
from backend.devices.actions import ActionLog
from backend.devices.auth import SERVICE_USERNAME
from backend.devices.context import DeviceServices
from backend.devices.data import DataService
from backend.devices.latest import LatestValues
from backend.devices.registry import DeviceRegistry
from backend.db.engine import REFUSED_ERRORS, Database, refused_value
from backend.errors import BlynkApiError, ConflictError, NotFoundError, OpenBlynkError, ValidationError
from backend.history.writer import AcksAfterCommit, HistoryWriter, ensure_partitions
from backend.transport.mqtt import ServiceClient
from backend.ingest.service import SUBSCRIPTIONS, IngestService
from backend.ota.wiring import OtaServices
from backend.platform_api.http import platform_router, token
from backend.platform_api.runtime import platform_lifespan
from backend.security import Secrets
from backend.history.maintenance import Retention, maintain
from backend.scheduler import Job, Scheduler
from backend.settings import Settings
from backend.device_api.data_controllers import DATA_ROUTES, data_api_lifespan
from backend.errors import AuthenticationError, BlynkLimitError, BlynkServerError, MailError, PermissionDeniedError
from backend.errors import RateLimitedError
from backend.tasks import finish
from backend.transport.controllers import ca_certificate
from backend.transport.tls import tls_files
from backend.transport.websocket import MqttBridge, mqtt_websocket
from console_ui.headers import security_headers
from console_ui.routes import console_pages, console_template_config

log = logging.getLogger(__name__)
INGEST_DRAIN_SECONDS = 30.0
INGEST_BATCH = 500
"""Messages the ingest takes from the broker connection at a time, at most."""
ACCOUNTS_CLEANUP_SECONDS = 3600.0  # expired sessions, API tokens, old sign-in failures and links


@dataclass
class Services:
    """Everything the lifespan starts, kept on ``app.state.services``."""

    db: Database
    mqtt: ServiceClient
    history: HistoryWriter
    latest: LatestValues
    ingest: IngestService
    ingest_task: asyncio.Task[None]
    changes: ChangeListener
    scheduler: Scheduler


def create_app(settings: Settings, database_url: str) -> Litestar:
    """Assemble the Litestar application."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        services = await _start_services(app, settings, database_url)
        try:
            yield
        finally:
            await _stop_services(services)

    return Litestar(
        route_handlers=[DeviceApiController, *DATA_ROUTES, health, ca_certificate, mqtt_websocket, api_router(),
                        token, platform_router(), console_api_router(), *console_pages()],
        template_config=console_template_config(),
        lifespan=[lifespan, data_api_lifespan(settings), accounts_lifespan(settings),
                  platform_lifespan()],  # DATA_ROUTES after DeviceApiController
        exception_handlers={OpenBlynkError: _error_response,
                            **{kind: _database_refusal for kind in REFUSED_ERRORS}},
        before_send=[security_headers],  # the console's CSP and framing headers on every HTML answer
        openapi_config=OpenAPIConfig(title="openblynk", version="0.1.0", path="/schema", components=Components(
            security_schemes={"BearerToken": SecurityScheme(type="http", scheme="bearer",
                                                            description="access token from POST /oauth2/token")})),
        logging_config=None,
    )


@get("/healthz", media_type=MediaType.JSON)
async def health(request: PublicRequest) -> dict[str, object]:
    """Liveness and the broker connection state."""
    services: Services = request.app.state.services
    return {"status": "ok", "broker_connected": services.mqtt.connected,
            "scheduler_leader": services.scheduler.is_leader.is_set(),
            "ingested": services.ingest.processed, "history_rows": services.history.rows_written,
            "unacknowledged": services.mqtt.unacknowledged}


_STATUS: tuple[tuple[type[OpenBlynkError], int], ...] = (
    (BlynkLimitError, 403), (BlynkServerError, 500), (NotFoundError, 404), (ConflictError, 409),
    (AuthenticationError, 401), (PermissionDeniedError, 403), (MailError, 503), (RateLimitedError, 429),
    (ValidationError, 400), (BlynkApiError, 400))
"""HTTP status of each kind of error, the first that matches (more specific kinds first)."""


def _error_response(request: AnyRequest, exc: Exception) -> Response[object]:
    """Map the project's error tree to HTTP (Blynk's shape for the device API)."""
    assert isinstance(exc, OpenBlynkError)
    status = next((code for kind, code in _STATUS if isinstance(exc, kind)), None)
    if status is None:
        log.error("unexpected error on %s: %s", request.url.path, exc)
        status = 500
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimitedError) else {}
    return Response({"error": {"message": exc.message}}, status_code=status, media_type=MediaType.JSON,
                    headers=headers)


def _database_refusal(request: AnyRequest, exc: Exception) -> Response[object]:
    """A value the database refused (text with NUL) is the sender's ValidationError, answered by
    this route's own handler of the project's errors: Blynk's body on the APIs, an error page in
    the console. Any other database error is logged and answered 500."""
    refusal = refused_value(exc)
    if refusal is None:
        log.error("unexpected database error on %s", request.url.path, exc_info=exc)
        return Response({"status_code": 500, "detail": "Internal Server Error"}, status_code=500,
                        media_type=MediaType.JSON)
    handlers = request.route_handler.resolve_exception_handlers()
    handler = next(handlers[kind] for kind in type(refusal).__mro__ if kind in handlers)
    return handler(request, refusal)


async def _start_services(app: Litestar, settings: Settings, database_url: str) -> Services:
    secrets = Secrets(settings.resolved_secret_key())
    app.state.tls = tls_files(settings) if settings.mqtts_port else None
    app.state.mqtt_bridge = MqttBridge(settings.mqtt_proxy_port, secrets.mqtt_proxy_key())
    history_writers = 2  # batches the history writer has in flight, each on its own connection
    db = Database(database_url, pool_size=4 + history_writers)
    await db.open()
    await ensure_partitions(db.pool)
    registry = DeviceRegistry(db.pool, ttl=settings.cache_ttl_seconds)
    history = HistoryWriter(db.pool, batch_rows=settings.history_batch_rows,
                            flush_seconds=settings.history_flush_seconds, in_flight=history_writers)
    latest = LatestValues(db.pool)
    mqtt = ServiceClient(settings.mqtt_broker_host, settings.mqtt_port, SERVICE_USERNAME,
                         secrets.service_password(), client_id="openblynk-app", subscriptions=SUBSCRIPTIONS)
    data = DataService(latest, history, mqtt, max_string_bytes=settings.string_max_bytes,
                       actions=ActionLog(db.pool))
    device_services = DeviceServices.build(db.pool, data, settings)
    ota = OtaServices.build(db.pool, mqtt, settings, settings.resolved_secret_key(), registry, device_services)
    ingest = IngestService(registry, data, db.pool, device_services, ota=ota.delivery)
    changes = ChangeListener(database_url, registry.apply, data.live.apply)  # live: console sockets' access
    changes.start()
    retention = Retention(settings.history_raw_retention_days, settings.history_rollup_retention_days)
    scheduler = Scheduler(database_url, [Job("history-maintenance", lambda: maintain(db.pool, retention),
                                             settings.maintenance_interval_seconds),
                                         Job("ota-rollout", ota.rollout.tick, settings.ota_tick_seconds),
                                         Job("accounts-cleanup",
                                             lambda: clean_accounts(db, settings.login_failure_window_seconds),
                                             ACCOUNTS_CLEANUP_SECONDS)])
    scheduler.start()
    history.start()
    latest.start()
    device_services.start()
    await mqtt.start()
    task = asyncio.create_task(_ingest_loop(mqtt, ingest, history), name="ingest")
    app.state.services = Services(db, mqtt, history, latest, ingest, task, changes, scheduler)
    app.state.device_api = DeviceApiService(registry, secrets, data, db.pool, device_services,
                                            DeviceRateLimit(settings.device_rate_limit))
    app.state.device_services = device_services
    app.state.console = ConsoleRuntime(registry, secrets, device_services, db.pool)
    app.state.ota = ota
    return app.state.services  # type: ignore[no-any-return]


async def _stop_services(s: Services) -> None:
    """Stop in the order that loses nothing: take no new messages (the broker keeps them),
    ingest everything already taken, let the writers flush (which acknowledges those messages
    to the broker), and only then disconnect."""
    await s.scheduler.stop()
    await s.changes.stop()
    s.mqtt.pause()
    await s.mqtt.end_of_messages()
    if not await finish(s.ingest_task, INGEST_DRAIN_SECONDS):
        log.error("ingest did not drain within %.0f s; stopped it", INGEST_DRAIN_SECONDS)
    await s.ingest.services.stop()
    await s.history.stop()
    await s.latest.stop()
    await s.mqtt.stop()
    await s.db.close()


async def _ingest_loop(mqtt: ServiceClient, ingest: IngestService, history: HistoryWriter,
                       batch: int = INGEST_BATCH) -> None:
    """Handle the messages in batches of what has arrived (at most ``batch``), then
    acknowledge them to the broker once the history rows they made are committed (see
    backend.transport.mqtt): a crash before that gets them sent again."""
    acks = AcksAfterCommit(history, mqtt.done_all)
    while (messages := await mqtt.take(batch)) is not None:
        done = ingest.handle_ready(messages)  # most messages: no coroutine to make and await
        while done < len(messages):
            await ingest.handle(messages[done])
            done = ingest.handle_ready(messages, done + 1)
        acks.add_all([m.receipt for m in messages if m.receipt is not None])
        # Taking waiting messages does not wait, nor does storing values in the common case:
        # under load this loop would keep the event loop to itself. Let the history writer,
        # the broker thread and HTTP requests have their turn after each batch, and let the
        # writer catch up when it is behind.
        await history.keep_pace()
