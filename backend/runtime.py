"""Shared start-up steps of every process: logging, the database URL, migrations, bootstrap."""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from backend.db.embedded import EmbeddedPostgres
from backend.db.engine import Database
from backend.db.migrate import migrate
from backend.errors import ConfigError
from backend.history import timescale
from backend.orgs.services import OrgService
from backend.redaction import RedactSecrets
from backend.settings import Settings


class JsonLines(logging.Formatter):
    """One JSON object a line: ``time`` (UTC, ISO 8601), ``level``, ``role``, ``logger``,
    ``message`` and, when there is one, ``exception`` (the traceback, newlines escaped), so a
    log shipper never has to join lines. It formats what the :class:`RedactSecrets` filter left."""

    def __init__(self, role: str) -> None:
        super().__init__()
        self.role = role

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, str] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "role": self.role,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return json.dumps(line, ensure_ascii=False)


def setup_logging(settings: Settings, role: str) -> None:
    """Log lines with time, level, process role and logger name, as text or as JSON
    (``OPENBLYNK_LOG_FORMAT``); secrets are never logged (every handler redacts tokens, client
    secrets, passwords and credentials, at every level)."""
    logging.basicConfig(
        level=settings.log_level.upper(),
        stream=sys.stderr,
        format=f"%(asctime)s %(levelname)-7s [{role}] %(name)s: %(message)s",
    )
    logging.captureWarnings(True)  # a Python warning is a log record too (one line, redacted)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactSecrets) for f in handler.filters):
            handler.addFilter(RedactSecrets())
        if settings.log_format == "json":
            handler.setFormatter(JsonLines(role))
    quiet = logging.DEBUG if settings.log_level.upper() == "DEBUG" else logging.WARNING
    # a line per connection or request, and APScheduler's two lines per run of every job
    for noisy in ("transitions", "amqtt", "uvicorn.access", "apscheduler"):
        logging.getLogger(noisy).setLevel(quiet)
    logging.getLogger("psycopg.pool").setLevel(logging.WARNING)
    for key in settings.extra:
        logging.getLogger("openblynk").warning("ignoring unknown setting %s (typo?)", key)


@contextmanager
def database(settings: Settings, *, own: bool = False) -> Iterator[str]:
    """The database URL to use: the configured one, or the embedded server in the data
    directory (started for the block if no other process runs it; always stopped at the end
    with ``own=True``)."""
    if settings.database_url:
        yield settings.database_url
        return
    with EmbeddedPostgres(settings.pg_dir).session(own=own) as url:
        yield url


@contextmanager
def serve_lock(settings: Settings) -> Iterator[None]:
    """Hold the data directory's serve lock: one ``openblynk serve`` per data directory."""
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        fh = open(settings.data_dir / ".serve.lock", "w")
    except (FileExistsError, NotADirectoryError):
        raise ConfigError(
            f"the data directory {settings.data_dir} is not a directory — remove that file "
            "or set OPENBLYNK_DATA_DIR to a directory"
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"cannot use the data directory {settings.data_dir}: {exc.strerror} — run as a user "
            "who may write there or set OPENBLYNK_DATA_DIR to another directory"
        ) from None
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(
                f"another `openblynk serve` is running on {settings.data_dir.resolve()}; "
                "stop it first or set OPENBLYNK_DATA_DIR to another directory"
            ) from None
        yield


_APP_PORTS: list[tuple[str, str | None]] = [("http_port", None), ("https_port", None)]
_BROKER_PORTS: list[tuple[str, str | None]] = [
    ("mqtt_port", None),
    ("mqtts_port", None),
    ("mqtt_proxy_port", "127.0.0.1"),
    ("broker_metrics_port", "127.0.0.1"),
]
LISTENERS = {"app": _APP_PORTS, "broker": _BROKER_PORTS}
"""command -> the port settings it listens on, with the address (None: OPENBLYNK_BIND);
``serve`` checks both once it holds the data directory's lock."""


def check_ports(settings: Settings, command: str) -> None:
    """Refuse to start ``command`` when a port it will listen on is taken, before anything starts."""
    for name, host in LISTENERS.get(command, []):
        port = getattr(settings, name)
        if port:
            _check_port(host or settings.bind, port, f"OPENBLYNK_{name.upper()}")


def _check_port(host: str, port: int, variable: str) -> None:
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(
            f"cannot listen on {host!r}: {exc.strerror} — set OPENBLYNK_BIND to an address "
            "of this machine (0.0.0.0 for all)"
        ) from None
    for family, kind, proto, _name, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise ConfigError(
                        f"port {port} on {host} is already in use — stop the program that "
                        f"listens there or set {variable} to a free port"
                    ) from None
                raise ConfigError(
                    f"cannot listen on {host}:{port}: {exc.strerror} — set OPENBLYNK_BIND to an "
                    f"address of this machine or {variable} to a port this user may open"
                ) from None


async def prepare(settings: Settings, url: str) -> int:
    """Apply migrations (and the TimescaleDB conversion where available), create the root
    organization; return its id."""
    migrate(url)
    timescale.adopt(url, settings.timescale)
    async with Database(url, pool_size=1) as db:
        async with db.session() as session:
            root = await OrgService(session).ensure_root(settings.admin_email, settings.admin_password)
            assert root.id is not None
            return root.id


def child_env(url: str) -> dict[str, str]:
    """The environment for a child process: ours plus the database URL we resolved."""
    return {**os.environ, "OPENBLYNK_DATABASE_URL": url}
