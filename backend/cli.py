"""The ``openblynk`` command line.

    openblynk serve                  database, broker and app; Ctrl-C stops all
    openblynk --version              the installed version
    openblynk broker | app           one part alone, for split deployments
    openblynk migrate                apply schema migrations and exit
    openblynk backup FILE            the database and the data directory's files in one tar, while running
    openblynk restore FILE           a backup into an empty data directory
    openblynk import FILE|-          create/update templates and devices; prints devices + tokens
    openblynk export                 print templates and devices (with tokens) as JSON
    openblynk device token NAME [--rotate]
    openblynk device ping|reboot|reconfigure NAME | device redirect NAME URI
    openblynk provision --token=T --ssid NET --password P --server HOST [--device URL]

Settings come from OPENBLYNK_* environment variables (see README).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.metadata
import json
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import msgspec
import psycopg

from backend.errors import OpenBlynkError
from backend.runtime import JsonLines, check_ports, database, prepare, setup_logging
from backend.settings import Settings

log = logging.getLogger("openblynk")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``openblynk`` command."""
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        setup_logging(settings, args.command)
        check_ports(settings, args.command)
        return int(args.func(settings, args) or 0)
    except OpenBlynkError as exc:
        _fail(exc.message)
        return 2
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        _fail(f"invalid document: {exc}")
        return 2
    except FileNotFoundError as exc:
        _fail(f"{exc.strerror}: {exc.filename}")
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - every failure ends in one line that says what to do
        log.debug("the command failed", exc_info=exc)
        _fail(_explain(exc))
        return 2


def _fail(message: str) -> None:
    """The one line a failed command ends with: plain text for a person, or a JSON log line
    when the logs are JSON (OPENBLYNK_LOG_FORMAT=json: every line of a process stays JSON)."""
    if any(isinstance(h.formatter, JsonLines) for h in logging.getLogger().handlers):
        log.error("openblynk: %s", message)
    else:
        print(f"openblynk: {message}", file=sys.stderr)


def _explain(exc: Exception) -> str:
    """One line for an error nobody converted: what happened and what to do."""
    if isinstance(exc, PermissionError):
        return (
            f"permission denied: {exc.filename} — run as a user who may use it, or set OPENBLYNK_DATA_DIR "
            "to a directory this user may write"
        )
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror or exc}{where} — check that path and the settings that name it (see README)"
    if isinstance(exc, psycopg.Error):
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"database error: {first} — check OPENBLYNK_DATABASE_URL and that the server runs"
    return (
        f"{type(exc).__name__}: {exc} — this is a bug; run with OPENBLYNK_LOG_LEVEL=DEBUG to see where, and report it"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="openblynk", description="Self-hosted Blynk-compatible IoT platform")
    parser.add_argument("--version", action="version", version=f"openblynk {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run database, broker and app").set_defaults(func=_serve)
    sub.add_parser("broker", help="run the MQTT broker alone").set_defaults(func=_broker)
    sub.add_parser("app", help="run the web app and ingest alone").set_defaults(func=_app)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=_migrate)
    back = sub.add_parser("backup", help="write the database and the data directory's files to a tar FILE")
    back.add_argument("file", type=Path)
    back.set_defaults(func=_backup)
    rest = sub.add_parser("restore", help="restore a backup FILE into an empty data directory")
    rest.add_argument("file", type=Path)
    rest.set_defaults(func=_restore)
    imp = sub.add_parser("import", help="import templates and devices from a JSON file ('-' for stdin)")
    imp.add_argument("file")
    imp.set_defaults(func=_import)
    sub.add_parser("export", help="export templates and devices as JSON").set_defaults(func=_export)
    dev = sub.add_parser("device", help="device operations")
    dev_sub = dev.add_subparsers(dest="device_command", required=True)
    tok = dev_sub.add_parser("token", help="show (or --rotate) a device's auth token")
    tok.add_argument("name")
    tok.add_argument("--rotate", action="store_true", help="issue a new token; the old one stops working")
    tok.set_defaults(func=_device_token)
    for command, text in (
        ("ping", "ping a device and print the round trip"),
        ("reboot", "ask a device to reboot"),
        ("reconfigure", "ask a device to re-enter its Wi-Fi configuration mode"),
    ):
        cmd = dev_sub.add_parser(command, help=text)
        cmd.add_argument("name")
        cmd.set_defaults(func=_device_command, device_command=command, uri=None)
    red = dev_sub.add_parser(
        "redirect", help="send a device to another endpoint (mqtts://host:8883, wss://host:443/mqtt)"
    )
    red.add_argument("name")
    red.add_argument("uri")
    red.set_defaults(func=_device_command)
    prov = sub.add_parser("provision", help="configure a device over its Wi-Fi access point (Blynk Edgent's API)")
    prov.add_argument("--device", default="http://192.168.4.1", help="the device's access point URL")
    prov.add_argument("--token", required=True, help="a provisioning token from the console or the API")
    prov.add_argument("--ssid", required=True, help="the Wi-Fi network the device joins")
    prov.add_argument("--password", default="", help="that network's password")
    prov.add_argument("--server", required=True, help="this server's host name as the device reaches it")
    prov.add_argument("--port", type=int, default=None, help="MQTT port (default: OPENBLYNK_MQTT_PORT)")
    prov.add_argument("--port-ssl", type=int, default=None, help="MQTT over TLS port, if the device uses it")
    prov.set_defaults(func=_provision)
    return parser


def _provision(settings: Settings, args: argparse.Namespace) -> int:
    from backend.inject.ap_client import configure_device

    port = args.port if args.port is not None else settings.mqtt_port
    done = configure_device(args.device, args.token, args.ssid, args.password, args.server, port, args.port_ssl)
    print(
        f"{done.board.get('name', 'device')} ({done.board.get('tmpl_id', '?')}, firmware {done.board.get('fw_ver', '?')})"
    )
    print(f"device says: {done.answer.get('msg', 'ok')}")
    return 0


def _version() -> str:
    """The installed distribution's version (the wheel's; ``pip install -e .`` records it too)."""
    try:
        return importlib.metadata.version("openblynk")
    except importlib.metadata.PackageNotFoundError:
        return "(not installed: run from a checkout without `pip install`)"


def _serve(settings: Settings, _args: argparse.Namespace) -> int:
    from backend.supervisor import Supervisor

    return Supervisor(settings).run()


def _migrate(settings: Settings, _args: argparse.Namespace) -> int:
    with database(settings) as url:
        asyncio.run(prepare(settings, url))
    print("database is up to date", file=sys.stderr)
    return 0


def _backup(settings: Settings, args: argparse.Namespace) -> int:
    from backend.backup import backup

    with database(settings) as url:
        backup(settings, url, args.file, _progress)
    return 0


def _restore(settings: Settings, args: argparse.Namespace) -> int:
    from backend.backup import restore

    restore(settings, args.file, _progress)
    return 0


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _app(settings: Settings, _args: argparse.Namespace) -> int:
    import uvicorn
    from litestar.types import ASGIApp

    from backend.server.factory import create_app
    from backend.transport.http_limits import uvicorn_options
    from backend.transport.https import Listeners, RedirectToHttps, https_config_options
    from backend.transport.tls import tls_files
    from console_ui.routes import browser_files_problem

    if problem := browser_files_problem():  # serve's app process says it too
        log.warning("%s", problem)
    with database(settings) as url:
        asyncio.run(prepare(settings, url))
        app: ASGIApp = create_app(settings, url)
        if settings.https_redirect:
            app = RedirectToHttps(app, settings.https_port)
        # uvicorn_options: timeouts, per-address cap, forwarding headers from trusted proxies only
        options = uvicorn_options(settings)
        config = uvicorn.Config(
            app, host=settings.bind, port=settings.http_port, log_config=None, lifespan="on", **options
        )
        companions: list[uvicorn.Config] = []
        if settings.https_port:  # the same app over TLS 1.2+, with MQTT over TLS's certificate
            tls = https_config_options(tls_files(settings))
            companions.append(
                uvicorn.Config(
                    app,
                    host=settings.bind,
                    port=settings.https_port,
                    log_config=None,
                    lifespan="off",
                    **options,
                    **tls,
                )
            )
        Listeners(config, companions).run()
    return 0


def _broker(settings: Settings, _args: argparse.Namespace) -> int:
    with database(settings) as url:
        asyncio.run(prepare(settings, url))
        gc.set_threshold(*BROKER_GC_THRESHOLDS)
        with asyncio.Runner(loop_factory=_broker_loop()) as runner:
            runner.run(_run_broker(settings, url))
    return 0


BROKER_GC_THRESHOLDS = (50_000, 50, 1000)
"""The broker process's garbage collector: a young collection every 50,000 allocations instead
of 700 (and older ones rarer still). Every message makes short-lived objects, and with thousands
of connections each collection walks a large heap: +7 to +69 % broker-alone QoS 1 throughput in
three alternating pairs of tests/bench/bench_broker_vs_mosquitto.py runs (README "Performance")."""


def _broker_loop() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The broker's event loop: uvloop (a dependency; the broker's throughput depends on it,
    README "Performance"), or asyncio's own where uvloop cannot be imported."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


async def _run_broker(settings: Settings, url: str) -> None:
    import backend.server.tables  # noqa: F401  (every area's tables, before any session)
    from backend.db.changes import Change, ChangeListener
    from backend.db.engine import Database
    from backend.devices.auth import PgAuthenticator, client_gateway_key, device_gateway_key
    from backend.devices.registry import DeviceRegistry
    from backend.inject.activation import StaticActivation
    from backend.platform_api.mqtt_logins import OAuthClientLogins
    from backend.security import Secrets
    from backend.server.broker_metrics import serving_metrics
    from backend.transport.tls import tls_files
    from broker import BrokerSettings, MqttBroker

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    tls = tls_files(settings) if settings.mqtts_port else None
    secrets = Secrets(settings.resolved_secret_key())
    broker_settings = BrokerSettings(
        host=settings.bind,
        port=settings.mqtt_port,
        tls_port=settings.mqtts_port if tls else None,
        certfile=str(tls.certfile) if tls else None,
        keyfile=str(tls.keyfile) if tls else None,
        proxy_port=settings.mqtt_proxy_port or None,
        proxy_key=secrets.mqtt_proxy_key(),
        max_packet_size=settings.mqtt_max_packet_size,
        max_subscriptions=settings.mqtt_max_subscriptions,
        device_rate_limit=settings.device_rate_limit,
        rate_abuse_seconds=settings.device_rate_abuse_seconds,
        integration_rate_limit=settings.integration_rate_limit,
        namespace_retained_messages=settings.integration_retained_messages,
        namespace_retained_bytes=settings.integration_retained_bytes,
        auth_failures_per_minute=settings.auth_failures_per_minute,
        max_outgoing_queue=settings.session_queue_limit,
        max_session_backlog=settings.session_backlog_limit,
        sink_acks=settings.mqtt_ack_after_commit,
        device_inflight_limit=settings.device_inflight_limit,
        vitals_interval=settings.vitals_interval_seconds,
    )
    async with Database(url, pool_size=4) as db:
        registry = DeviceRegistry(db.pool, ttl=settings.cache_ttl_seconds)
        auth = PgAuthenticator(registry, secrets, StaticActivation(db).activate, clients=OAuthClientLogins(db))
        async with (
            MqttBroker(broker_settings, auth) as mqtt,
            serving_metrics(mqtt, settings.broker_metrics_port, secrets.broker_control_token()),
        ):

            async def on_change(change: Change) -> None:
                await registry.apply(change)
                if change.kind == "device" and change.revoked:  # the old token must stop working now
                    await mqtt.disconnect_device(change.id)
                    await mqtt.disconnect_gateways(device_gateway_key(change.id))
                elif change.kind == "device":  # moved, deleted...: gateways ask their scopes again
                    await mqtt.recheck_gateways(change.id, device_gateway_key(change.id))
                elif change.kind == "oauth_client" and change.revoked:
                    await mqtt.disconnect_gateways(client_gateway_key(change.id))
                elif change.kind == "oauth_client":  # "may use MQTT" switched: integrations ask again
                    await mqtt.recheck_gateways()
                elif change.kind in ("template", "user", "role", "org"):
                    await mqtt.recheck_gateways()

            listener = ChangeListener(url, on_change)
            listener.start()
            log.info(
                "MQTT broker listening on %s:%d (TLS: %s)", settings.bind, settings.mqtt_port, mqtt.tls_port or "off"
            )
            await stop.wait()
            log.info("stopping the broker")
            await listener.stop()


def _import(settings: Settings, args: argparse.Namespace) -> int:
    raw = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    from backend.transfer.schemas import decode_document

    doc = decode_document(raw)
    with database(settings) as url:
        result = asyncio.run(_with_transfer(settings, url, lambda svc, org: svc.import_document(org, doc)))
    print(msgspec.json.encode(result).decode())
    return 0


def _export(settings: Settings, _args: argparse.Namespace) -> int:
    with database(settings) as url:
        doc = asyncio.run(_with_transfer(settings, url, lambda svc, org: svc.export_document(org)))
    print(json.dumps(msgspec.to_builtins(doc), indent=2))
    return 0


async def _with_transfer(settings: Settings, url: str, action):  # type: ignore[no-untyped-def]
    import backend.server.tables  # noqa: F401  (every area's tables, before any session)
    from backend.db.engine import Database
    from backend.security import Secrets
    from backend.transfer.services import TransferService

    org_id = await prepare(settings, url)
    async with Database(url, pool_size=1) as db:
        async with db.session() as session:
            return await action(TransferService(session, Secrets(settings.resolved_secret_key())), org_id)


def _device_token(settings: Settings, args: argparse.Namespace) -> int:
    with database(settings) as url:
        token = asyncio.run(_token(settings, url, args.name, args.rotate))
    print(token)
    return 0


async def _token(settings: Settings, url: str, name: str, rotate: bool) -> str:
    import backend.server.tables  # noqa: F401  (every area's tables, before any session)
    from backend.db.engine import Database
    from backend.devices.services import DeviceService
    from backend.security import Secrets

    await prepare(settings, url)
    async with Database(url, pool_size=1) as db:
        async with db.session() as session:
            service = DeviceService(session, Secrets(settings.resolved_secret_key()))
            device = await service.by_name_anywhere(name)
            token = await service.set_token(device) if rotate else service.token_of(device)
            return token.value


def _device_command(settings: Settings, args: argparse.Namespace) -> int:
    """``openblynk device ping|reboot|reconfigure NAME`` and ``device redirect NAME URI``."""
    with database(settings) as url:
        print(asyncio.run(_command(settings, url, args.name, args.device_command, args.uri)))
    return 0


async def _command(settings: Settings, url: str, name: str, command: str, uri: str | None) -> str:
    import backend.server.tables  # noqa: F401  (every area's tables, before any session)
    from backend.db.engine import Database
    from backend.devices.remote import Broker, Target, send_command
    from backend.devices.services import DeviceService
    from backend.security import Secrets

    await prepare(settings, url)
    secrets = Secrets(settings.resolved_secret_key())
    async with Database(url, pool_size=1) as db:
        async with db.session() as session:
            device = await DeviceService(session, secrets).by_name_anywhere(name)
            assert device.id is not None
            target = Target(device.id, device.name, device.online)
    broker = Broker(settings.mqtt_broker_host, settings.mqtt_port, secrets.service_password())
    return await send_command(broker, target, command, uri)


if __name__ == "__main__":
    sys.exit(main())
