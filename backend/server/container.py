"""The runtime container: every long-lived part of the running app, typed, built once.

:func:`build_runtime` makes the parts and wires them together; it starts nothing and opens no
connection (``backend.server.lifespan`` starts them). The app keeps the one :class:`Runtime` in
its state under :data:`RUNTIME_KEY`; :func:`runtime` reads it back, typed. Only the top reads
it: the areas receive their parts as dependencies (``backend.server.routers``).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from litestar import Litestar
from litestar.datastructures import State
from psycopg_pool import AsyncConnectionPool

import backend.server.tables  # noqa: F401  (every area's tables, before any session)
from backend.accounts.cleanup import clean_accounts
from backend.accounts.mail import Mailer
from backend.accounts.runtime import AccountsRuntime
from backend.automations.engine import AutomationEngine
from backend.automations.retention import trim_runs
from backend.console.images import ImageLimits
from backend.console.runtime import ConsoleRuntime
from backend.db.changes import ChangeListener
from backend.db.engine import Database
from backend.device_api.data_controllers import DataApi, build_data_api
from backend.device_api.ratelimit import DeviceRateLimit, SharedDeviceRate
from backend.device_api.services import DeviceApiService
from backend.devices.actions import ActionLog
from backend.devices.auth import SERVICE_USERNAME
from backend.devices.context import DeviceServices
from backend.devices.data import DataService
from backend.devices.latest import LatestValues
from backend.devices.live_relay import LiveRelay
from backend.devices.registry import DeviceRegistry
from backend.devices.signals import DeviceSignals
from backend.history.maintenance import Retention, maintain
from backend.history.writer import HistoryWriter
from backend.ingest.service import IngestService, app_subscriptions, replica_client_id
from backend.inject.activation import activation_listener
from backend.inject.windows import ClaimWindows
from backend.integrations.feed import DeviceFeed
from backend.integrations.wiring import IntegrationRuntime
from backend.notifications.cleanup import clean_notifications
from backend.notifications.events import EventNotifications
from backend.notifications.live import NoticeFeed
from backend.notifications.service import Notifier
from backend.ota.wiring import OtaServices
from backend.platform_api.runtime import PlatformRuntime
from backend.scheduler import Job, Scheduler
from backend.security import Secrets
from backend.server.pump import IngestPump
from backend.settings import Settings
from backend.transport.mqtt import ServiceClient
from backend.transport.tls import TlsFiles, tls_files
from backend.transport.websocket import MqttBridge
from backend.webhooks.retention import trim_deliveries
from backend.webhooks.wiring import WebhookRuntime

RUNTIME_KEY = "openblynk_runtime"
"""The one key of the app's state: the :class:`Runtime`."""
HISTORY_WRITERS = 2
"""Batches the history writer has in flight, each on its own connection."""
ACCOUNTS_CLEANUP_SECONDS = 3600.0
"""How often expired sessions, API tokens, old sign-in failures and links are deleted."""


@dataclass(frozen=True)
class Runtime:
    """Every part the app runs, built by :func:`build_runtime`."""

    settings: Settings
    secrets: Secrets
    db: Database
    registry: DeviceRegistry
    """Devices by id and token, cached; kept fresh by ``changes``."""
    mqtt: ServiceClient
    """The app's own connection to the broker: the ingest's messages, downlinks, Blynk.Air."""
    history: HistoryWriter
    latest: LatestValues
    data: DataService
    """The value path: check, latest value, live feed, history row, downlink."""
    signals: DeviceSignals
    """What devices do, told to automations, webhooks and notifications in this process."""
    devices: DeviceServices
    ota: OtaServices
    ingest: IngestService
    pump: IngestPump
    """The ingest loop: the broker's messages through ``ingest``, acknowledged once committed."""
    changes: ChangeListener
    """Change notices from every app process: the registry's cache and the live sockets' access."""
    scheduler: Scheduler
    automations: AutomationEngine
    """Fires automations (time, device values, presence, events, scenes) and runs them."""
    device_api: DeviceApiService
    data_api: DataApi
    accounts: AccountsRuntime
    platform: PlatformRuntime
    console: ConsoleRuntime
    tls: TlsFiles | None
    """The MQTT TLS files (``/ca.pem``), when MQTT over TLS is on."""
    mqtt_bridge: MqttBridge
    """Where MQTT over WebSocket reaches the broker."""
    webhooks: WebhookRuntime
    """Webhook delivery (queue, workers) and the triggers that feed it."""
    notifier: Notifier
    """In-app notifications and notification e-mail (events, automations)."""
    notices: NoticeFeed
    """New notifications told to the users' open console pages (the bell), from every process."""
    event_notifications: EventNotifications
    """The notifications of logged device events (template events' settings)."""
    integrations: IntegrationRuntime
    """Integration clients' device feed and writes (README, "Bridging and integrations")."""
    live_relay: LiveRelay | None
    """The live feed across app replicas (only with ``OPENBLYNK_REPLICA`` set)."""


async def _maintain(pool: AsyncConnectionPool, retention: Retention) -> None:
    """History maintenance, then the automation and webhook logs' retention (the devices' logs' rule)."""
    await maintain(pool, retention)
    await trim_runs(pool, retention.raw_days)
    await trim_deliveries(pool, retention.raw_days)


def build_runtime(settings: Settings, database_url: str) -> Runtime:
    """Make every part and wire them together; nothing starts or connects yet."""
    secrets = Secrets(settings.resolved_secret_key())
    db = Database(database_url, pool_size=4 + HISTORY_WRITERS)
    registry = DeviceRegistry(db.pool, ttl=settings.cache_ttl_seconds)
    history = HistoryWriter(
        db.pool,
        batch_rows=settings.history_batch_rows,
        flush_seconds=settings.history_flush_seconds,
        in_flight=HISTORY_WRITERS,
    )
    latest = LatestValues(db.pool)
    mqtt_client_id = replica_client_id(settings.mqtt_client_id, settings.replica, socket.gethostname(), os.getpid())
    mqtt = ServiceClient(
        settings.mqtt_broker_host,
        settings.mqtt_port,
        SERVICE_USERNAME,
        secrets.service_password(),
        client_id=mqtt_client_id,
        subscriptions=app_subscriptions(),  # shared: app replicas split the ingest
    )
    signals = DeviceSignals()
    notices = NoticeFeed()
    data = DataService(
        latest, history, mqtt, max_string_bytes=settings.string_max_bytes, actions=ActionLog(db.pool), signals=signals
    )
    devices = DeviceServices.build(db.pool, data, settings)
    ota = OtaServices.build(db.pool, mqtt, settings, settings.resolved_secret_key(), registry, devices)
    ingest = IngestService(registry, data, devices, ota=ota.delivery, claims=ClaimWindows(db, secrets))
    webhooks = WebhookRuntime.build(db, settings, signals, Mailer(settings))
    retention = Retention(settings.history_raw_retention_days, settings.history_rollup_retention_days)
    scheduler = Scheduler(
        database_url,
        [
            Job("history-maintenance", lambda: _maintain(db.pool, retention), settings.maintenance_interval_seconds),
            Job("ota-rollout", ota.rollout.tick, settings.ota_tick_seconds),
            Job(
                "accounts-cleanup",
                lambda: clean_accounts(db, settings.login_failure_window_seconds),
                ACCOUNTS_CLEANUP_SECONDS,
            ),
            Job(
                "notifications-cleanup",
                lambda: clean_notifications(db.pool, settings.notification_retention_days),
                settings.maintenance_interval_seconds,
            ),
        ],
        retry_seconds=settings.scheduler_retry_seconds,
        misfire_grace_seconds=settings.scheduler_misfire_grace_seconds,
        crash_at=settings.test_crash_at,
    )
    automations = AutomationEngine(
        db.pool,
        scheduler,
        signals,
        registry,
        data,
        devices.timeline,
        Notifier(db.pool, Mailer(settings), settings.notification_emails_per_hour),  # keeps no state of its own
        webhooks.sender,
        workers=settings.automation_workers,
    )
    feed = DeviceFeed(db.pool, signals, mqtt, registry)  # integration clients' device feed
    # live: console sockets' access; webhooks: the triggers' index of enabled webhooks; automations: reloads
    changes = ChangeListener(
        database_url,
        registry.apply,
        data.live.apply,
        notices.apply,
        webhooks.triggers.apply,
        automations.apply,
        feed.apply,
        activation_listener(signals),
    )
    device_api = DeviceApiService(registry, secrets, data, db.pool, devices, _device_rate_limit(settings, db.pool))
    data_api = build_data_api(device_api, latest, settings)
    mailer = Mailer(settings)
    notifier = Notifier(db.pool, mailer, settings.notification_emails_per_hour)
    event_notifications = EventNotifications(db.pool, notifier)
    event_notifications.listen(signals)
    platform = PlatformRuntime(registry, secrets, devices, db.pool, data_api.batch)
    broker_login = (settings.mqtt_broker_host, settings.mqtt_port, SERVICE_USERNAME, secrets.service_password())
    integrations = IntegrationRuntime.build(db, feed, platform, (*broker_login, mqtt_client_id))
    return Runtime(
        settings=settings,
        secrets=secrets,
        db=db,
        registry=registry,
        mqtt=mqtt,
        history=history,
        latest=latest,
        data=data,
        signals=signals,
        devices=devices,
        ota=ota,
        ingest=ingest,
        pump=IngestPump(mqtt, ingest, history),
        changes=changes,
        scheduler=scheduler,
        automations=automations,
        device_api=device_api,
        data_api=data_api,
        accounts=AccountsRuntime(db, settings, mailer, signals.user_added),
        platform=platform,
        console=ConsoleRuntime(
            registry, secrets, devices, db.pool, ImageLimits(settings.image_max_bytes, settings.images_per_org)
        ),
        tls=tls_files(settings) if settings.mqtts_port else None,
        mqtt_bridge=MqttBridge(settings.mqtt_proxy_port, secrets.mqtt_proxy_key()),
        webhooks=webhooks,
        notifier=notifier,
        notices=notices,
        event_notifications=event_notifications,
        integrations=integrations,
        live_relay=LiveRelay(database_url, data.live, mqtt_client_id) if settings.replica else None,
    )


def runtime_of(state: State) -> Runtime:
    """The runtime kept in an app's state (set by the app's lifespan)."""
    found = state.get(RUNTIME_KEY)
    if not isinstance(found, Runtime):
        raise RuntimeError("the app has not started: its lifespan sets the runtime")
    return found


def runtime(app: Litestar) -> Runtime:
    """The runtime of a running app."""
    return runtime_of(app.state)


def _device_rate_limit(settings: Settings, pool: AsyncConnectionPool) -> DeviceRateLimit:
    """The HTTP device API's limit: this process's buckets, and with replicas the shared ones."""
    rate = settings.device_rate_limit
    return DeviceRateLimit(rate, shared=SharedDeviceRate(pool, rate) if settings.replica else None)
