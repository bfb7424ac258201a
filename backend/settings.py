"""The one typed settings object, built once from ``OPENBLYNK_*`` environment variables.

Every field has a default and a one-line docstring; ``Settings.from_env()`` is the only place
that reads the environment (importing this module reads nothing). A ``.env`` file in the
working directory fills in variables that the real environment does not set; it never
overrides them.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backend.errors import ConfigError

PREFIX = "OPENBLYNK_"
PLACEHOLDER_SECRETS = frozenset({"", "change-me", "changeme", "secret", "dev"})


@dataclass(frozen=True)
class Settings:
    """Runtime configuration of every openblynk process."""

    env: str = "development"
    """`development` or `production`; production refuses placeholder secrets."""
    bind: str = "0.0.0.0"
    """Address the HTTP and MQTT listeners bind to."""
    http_port: int = 8080
    """Port of the web console, REST APIs and Blynk HTTP device API."""
    mqtt_port: int = 1883
    """Port of the plain MQTT listener."""
    mqtts_port: int = 8883
    """Port of the MQTT-over-TLS listener (TLS 1.2+); 0 turns TLS off."""
    tls_certfile: str = ""
    """PEM certificate (chain) for MQTT over TLS; empty = a local CA made in data_dir/tls."""
    tls_keyfile: str = ""
    """PEM private key of that certificate."""
    tls_cafile: str = ""
    """CA certificate served at /ca.pem when a certificate is configured (optional)."""
    tls_hostnames: str = ""
    """Extra host names/addresses (comma-separated) for the generated server certificate."""
    https_port: int = 8443
    """Port of HTTPS and WSS (console, APIs, /mqtt) with the MQTT TLS certificate; 443 by default as root; 0 turns it off."""
    https_redirect: bool = False
    """Answer plain-HTTP requests (except /healthz and /ca.pem) with a redirect to HTTPS."""
    hsts_seconds: int = 31536000
    """Strict-Transport-Security max-age sent on answers served over HTTPS; 0 sends none."""
    mqtt_proxy_port: int = 1884
    """Broker port for the app's MQTT-over-WebSocket bridge (PROXY protocol, 127.0.0.1 only)."""
    trusted_proxies: str = ""
    """Reverse proxies (comma-separated IPs/CIDRs) whose X-Forwarded-For/-Proto are believed; empty = none."""
    http_header_timeout_seconds: float = 10.0
    """An HTTP connection whose request headers are not complete this long after it opened is closed."""
    http_body_timeout_seconds: float = 30.0
    """An HTTP connection whose request body brings less than 1 KiB in this many seconds (and is not complete) is closed."""
    http_keepalive_seconds: int = 5
    """An idle keep-alive HTTP connection is closed after this many seconds."""
    http_connections_per_address: int = 256
    """Open HTTP/WebSocket connections one client address may hold (IPv6: per /64; 0: no cap)."""
    data_dir: Path = Path("./data")
    """Directory holding the embedded PostgreSQL cluster, the secret key and uploads."""
    database_url: str = ""
    """PostgreSQL URL (postgresql://...); empty starts the embedded server in data_dir."""
    secret_key: str = ""
    """Key for token HMACs, token encryption and sessions; generated into data_dir if empty."""
    admin_email: str = "admin@openblynk.local"
    """E-mail of the first administrator, created on first start."""
    admin_password: str = ""
    """Password of the first administrator; generated and logged once if empty."""
    mqtt_max_packet_size: int = 1024
    """Largest MQTT packet (remaining length, bytes) a device may send, as Blynk."""
    mqtt_max_subscriptions: int = 64
    """Topic filters one device may hold; more get SUBACK 0x80 and a downlink/diag line."""
    device_rate_limit: float = 50.0
    """Messages a second a device may send (Blynk's 50): over MQTT more are dropped with a diag,
    on the HTTP device API answered 429 (a budget per path and per app process)."""
    device_rate_abuse_seconds: float = 5.0
    """A device over the rate limit this long without a break is disconnected."""
    integration_rate_limit: float = 500.0
    """MQTT messages a second one integration client (``integration:<client id>``) may send;
    more are dropped, and one over it for ``device_rate_abuse_seconds`` is disconnected."""
    integration_retained_messages: int = 10_000
    """Retained messages one organization's integration namespace may hold; past it a retained
    publish is delivered but not kept (logged)."""
    integration_retained_bytes: int = 10_485_760
    """Bytes (topics plus payloads) of the retained messages one organization's namespace may hold."""
    auth_failures_per_minute: int = 20
    """Refused MQTT logins from one address a minute before that address is refused outright (0: off)."""
    session_queue_limit: int = 1000
    """Messages waiting for one device; a device that stops reading cannot grow memory past it."""
    session_backlog_limit: int = 100_000
    """QoS 1 messages the broker keeps for the app while it restarts or its database is slow."""
    mqtt_ack_after_commit: bool = True
    """Acknowledge a device's QoS 1 publish only once the app has committed it (a PUBACK means
    stored); off: on receipt, as stock MQTT brokers do."""
    device_inflight_limit: int = 20
    """QoS 1 publishes of one device awaiting their PUBACK; at the limit the broker stops reading it."""
    vitals_interval_seconds: float = 60.0
    """How often the broker reports each connected device's vitals to the app."""
    mqtt_broker_host: str = "127.0.0.1"
    """Where the app process reaches the broker as an MQTT client."""
    cache_ttl_seconds: float = 5.0
    """How long a process trusts its cached device lookups without a change notice."""
    log_level: str = "INFO"
    """Python logging level name."""
    log_format: str = "text"
    """`text` (a line of time, level, role, logger and message) or `json` (one JSON object a line)."""
    metrics_token: str = ""
    """Bearer token that may read /metrics from any address; empty = only loopback clients may."""
    broker_metrics_port: int = 1885
    """Port on 127.0.0.1 where the broker process serves its own /metrics (the app's /metrics includes them; 0: off)."""
    history_batch_rows: int = 10_000
    """History rows written per binary COPY batch at most (two batches are written at a time;
    each costs PostgreSQL a transaction and a rollup merge, so larger batches store more rows
    a second: 10,000 stored about 45 % more than 5,000 in tests/bench/bench_ingest.py)."""
    history_flush_seconds: float = 0.5
    """Longest time a history row waits before its batch is flushed."""
    history_raw_retention_days: int = 30
    """Days raw history points are kept (whole daily partitions are dropped)."""
    history_rollup_retention_days: int = 365
    """Days the per-minute and per-hour rollups are kept."""
    maintenance_interval_seconds: float = 3600.0
    """How often the history maintenance job runs (partitions ahead, packing, retention behind)."""
    timescale: str = "auto"
    """TimescaleDB for history: ``auto`` (when the server has the extension), ``off``, ``require``."""
    string_max_bytes: int = 1024
    """Longest string datastream value accepted, in bytes (Blynk's limit)."""
    events_per_day: int = 100
    """Events a device may log per UTC day (Blynk's limit); more are refused on downlink/diag."""
    event_min_interval_seconds: float = 1.0
    """Shortest time between two events of the same code from one device (Blynk's limit)."""
    timestamped_max_age_days: int = 30
    """Timestamped points further than this from now (past or future) are refused ("one month")."""
    last_seen_flush_seconds: float = 5.0
    """How often a device's last-seen time is written at most (it moves on every uplink)."""
    import_daily_points: int = 10_000
    """Timestamped points a device may import per UTC day with POST batch/update (Blynk's limit)."""
    export_daily_limit: int = 10
    """Data exports (data/get) a device may request per UTC day (Blynk's limit)."""
    export_ttl_hours: float = 24.0
    """How long a data export zip stays downloadable before it is deleted."""
    upload_max_bytes: int = 5 * 1024 * 1024
    """Largest file a device may upload (Blynk's limit: 5 MB)."""
    upload_files_per_device: int = 10
    """Uploaded files kept per device; the oldest is deleted beyond this (Blynk's limit)."""
    upload_daily_limit: int = 100
    """Files a device may upload per UTC day, then 403 `File uploads limit has been reached.`"""
    image_max_bytes: int = 512 * 1024
    """Largest image (PNG, JPEG or WebP) that may be uploaded to an organization's image library, in bytes."""
    images_per_org: int = 100
    """Images an organization's image library keeps at most (mobile dashboards' image buttons)."""
    firmware_max_bytes: int = 32 * 1024 * 1024
    """Largest firmware image (.bin/.tar) that may be uploaded for Blynk.Air, in bytes."""
    ota_public_url: str = ""
    """Base URL devices download firmware from (e.g. https://iot.example.com); empty = the URL the shipment was created at."""
    ota_tick_seconds: float = 2.0
    """How often the scheduler advances live shipments (timeouts, abort rule, pacing, new offers)."""
    scheduler_retry_seconds: float = 5.0
    """How often app processes that do not run the scheduler try to take it over (and the leader checks its lock)."""
    scheduler_misfire_grace_seconds: float = 300.0
    """How late a scheduled automation may still run once (missed while no process led); later runs are skipped."""
    automation_workers: int = 4
    """Automation runs one app process executes at once (more wait in its queue)."""
    test_crash_at: str = ""
    """Tests only: kill this process (SIGKILL) the first time it reaches this point (fire-recorded, fire-claimed, step-done)."""
    mqtt_client_id: str = "openblynk-app"
    """The app's MQTT client id (persistent session); with ``replica`` set, the prefix of each replica's."""
    replica: str = ""
    """This app replica's name, for several app processes on one broker and database (the MQTT
    client id becomes ``<mqtt_client_id>-<replica>``; ``auto``: ``<hostname>-<pid>``); empty: one process."""
    org_max_depth: int = 4
    """Deepest level of the organization tree (the root is level 1; Blynk's limit is 4)."""
    signup_enabled: bool = False
    """Let anyone create an account (and their own organization under the root) at /api/auth/signup."""
    public_url: str = ""
    """Base URL of this server in e-mailed links; empty = http://localhost:<http_port> (never the Host header)."""
    session_lifetime_hours: float = 336.0
    """How long a console session lasts after sign-in (14 days)."""
    session_cookie_secure: str = "auto"
    """`auto` (Secure on HTTPS requests and in production), `true` or `false`."""
    login_failures_per_account: int = 5
    """Failed sign-ins to one account within the window before it is throttled (429)."""
    login_failures_per_address: int = 20
    """Failed sign-ins from one address within the window before it is throttled (429)."""
    login_failure_window_seconds: int = 900
    """The window of the login throttles, in seconds."""
    claim_failures_per_user: int = 10
    """Wrong claim codes one user (or platform client) may try within the window before claiming answers 429."""
    claim_failures_per_address: int = 30
    """Wrong claim codes from one address within the window before claiming answers 429."""
    claim_failure_window_seconds: int = 900
    """The window of the claim throttles, in seconds."""
    static_tokens_per_batch: int = 10_000
    """Static tokens one generate or CSV import may make at once."""
    provisioning_token_minutes: int = 15
    """How long a Wi-Fi provisioning token waits for its device's first connection."""
    invitations_per_day: int = 25
    """Invitations an organization may send per UTC day (Blynk's limit)."""
    invitation_ttl_hours: float = 72.0
    """How long an invitation link works."""
    password_reset_ttl_minutes: float = 60.0
    """How long a password-reset link works."""
    signup_ttl_hours: float = 24.0
    """How long a sign-up confirmation link works."""
    api_requests_per_minute: int = 10_000
    """Platform API requests an organization may make per minute (Blynk's limit); more get 429 (0: off)."""
    api_refresh_token_days: float = 30.0
    """How long a platform API refresh token works (each works once; access tokens last 300 s)."""
    smtp_host: str = ""
    """SMTP server for e-mail; empty = messages are written to data_dir/mail as .eml files and logged."""
    smtp_port: int = 587
    """Port of the SMTP server."""
    smtp_security: str = "starttls"
    """`starttls`, `tls` (implicit TLS, usually port 465) or `none`."""
    smtp_username: str = ""
    """SMTP user name (empty: no authentication)."""
    smtp_password: str = ""
    """SMTP password."""
    smtp_from: str = "openblynk <noreply@openblynk.local>"
    """The From address of e-mails."""
    notification_emails_per_hour: int = 20
    """Notification e-mails (events, automations) an organization may send per hour (Blynk's limit; 0: no limit)."""
    notification_retention_days: int = 90
    """Days in-app notifications are kept (read or not)."""
    automations_per_org: int = 50
    """Automations an organization may have (Blynk's limit)."""
    actions_per_automation: int = 50
    """Actions one automation may hold (Blynk's limit)."""
    webhook_allowed_hosts: str = ""
    """Hosts and networks (comma-separated: hooks.lan, 10.0.0.0/8) webhooks may reach though private, loopback or link-local."""
    webhook_failure_limit: int = 10
    """Failed webhook deliveries in a row after which the webhook is disabled and the organization's admins told."""
    extra: Mapping[str, str] = field(default_factory=dict)
    """Unrecognised OPENBLYNK_* variables, kept so a typo can be reported."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, dotenv: Path | None = None) -> Settings:
        """Build settings from the environment (and a ``.env`` file that never overrides it)."""
        env = dict(_read_dotenv(dotenv or Path(".env")))
        env.update(os.environ if environ is None else environ)
        values: dict[str, Any] = {}
        known = {f.name: f for f in dataclasses.fields(cls) if f.name != "extra"}
        extra: dict[str, str] = {}
        for key, raw in env.items():
            if not key.startswith(PREFIX):
                continue
            name = key[len(PREFIX) :].lower()
            if name not in known:
                extra[key] = raw
                continue
            values[name] = _convert(key, raw, known[name].type)
        if "https_port" not in values and os.geteuid() == 0:
            values["https_port"] = 443  # root may bind it, as a self-hoster on a small box runs
        settings = cls(**values, extra=extra)
        settings.check()
        return settings

    def check(self) -> None:
        """Refuse settings that cannot work, with a message that says what to change."""
        if self.env not in ("development", "production"):
            raise ConfigError(f"OPENBLYNK_ENV must be 'development' or 'production', not {self.env!r}")
        for name in ("http_port", "https_port", "mqtt_port", "mqtts_port", "mqtt_proxy_port", "broker_metrics_port"):
            port = getattr(self, name)
            if not 0 <= port <= 65535:
                raise ConfigError(f"OPENBLYNK_{name.upper()} must be a port number, not {port}")
        if self.env == "production":
            if self.secret_key.strip().lower() in PLACEHOLDER_SECRETS or len(self.secret_key) < 32:
                raise ConfigError(
                    "OPENBLYNK_SECRET_KEY must be set to at least 32 random characters "
                    "in production (try: python -c 'import secrets; print(secrets.token_urlsafe(48))')"
                )
            if self.admin_password and len(self.admin_password) < 10:
                raise ConfigError("OPENBLYNK_ADMIN_PASSWORD must have at least 10 characters in production")
        if self.log_format not in ("text", "json"):
            raise ConfigError(f"OPENBLYNK_LOG_FORMAT must be 'text' or 'json', not {self.log_format!r}")
        if self.timescale not in ("auto", "off", "require"):
            raise ConfigError("OPENBLYNK_TIMESCALE must be 'auto', 'off' or 'require'")
        if self.history_raw_retention_days < 1 or self.history_rollup_retention_days < 1:
            raise ConfigError("OPENBLYNK_HISTORY_*_RETENTION_DAYS must be at least 1")
        if not 1 <= self.org_max_depth <= 16:
            raise ConfigError("OPENBLYNK_ORG_MAX_DEPTH must be between 1 and 16")
        if self.session_cookie_secure not in ("auto", "true", "false"):
            raise ConfigError("OPENBLYNK_SESSION_COOKIE_SECURE must be 'auto', 'true' or 'false'")
        if self.smtp_security not in ("starttls", "tls", "none"):
            raise ConfigError("OPENBLYNK_SMTP_SECURITY must be 'starttls', 'tls' or 'none'")
        if self.mqtt_max_packet_size < 128:
            raise ConfigError("OPENBLYNK_MQTT_MAX_PACKET_SIZE must be at least 128 bytes")
        if not self.device_rate_limit > 0:
            raise ConfigError("OPENBLYNK_DEVICE_RATE_LIMIT must be above 0 (messages a second per device)")
        integration = (self.integration_rate_limit, self.integration_retained_messages, self.integration_retained_bytes)
        if min(integration) <= 0:
            raise ConfigError("OPENBLYNK_INTEGRATION_RATE_LIMIT and OPENBLYNK_INTEGRATION_RETAINED_* must be above 0")
        if self.notification_retention_days < 1 or self.notification_emails_per_hour < 0:
            raise ConfigError(
                "OPENBLYNK_NOTIFICATION_RETENTION_DAYS must be at least 1 and "
                "OPENBLYNK_NOTIFICATION_EMAILS_PER_HOUR at least 0"
            )
        if self.mqtt_max_subscriptions < 1:
            raise ConfigError("OPENBLYNK_MQTT_MAX_SUBSCRIPTIONS must be at least 1")
        if self.automations_per_org < 1 or self.actions_per_automation < 1:
            raise ConfigError("OPENBLYNK_AUTOMATIONS_PER_ORG and OPENBLYNK_ACTIONS_PER_AUTOMATION must be at least 1")
        self._check_http_listener()
        self._check_webhooks()

    def _check_http_listener(self) -> None:
        try:
            _ = self.trusted_proxy_networks  # parsing it is the check
        except ValueError as exc:
            raise ConfigError(
                f"OPENBLYNK_TRUSTED_PROXIES: {exc} (write IPs or networks: 10.0.0.5,192.168.1.0/24)"
            ) from None
        if self.http_header_timeout_seconds <= 0 or self.http_keepalive_seconds < 1:
            raise ConfigError(
                "OPENBLYNK_HTTP_HEADER_TIMEOUT_SECONDS must be above 0 and OPENBLYNK_HTTP_KEEPALIVE_SECONDS at least 1"
            )
        if self.http_body_timeout_seconds <= 0:
            raise ConfigError("OPENBLYNK_HTTP_BODY_TIMEOUT_SECONDS must be above 0")
        if self.https_redirect and not self.https_port:
            raise ConfigError("OPENBLYNK_HTTPS_REDIRECT needs OPENBLYNK_HTTPS_PORT (it is 0)")
        if self.hsts_seconds < 0:
            raise ConfigError("OPENBLYNK_HSTS_SECONDS must be 0 (no header) or more")
        if self.http_connections_per_address < 0:
            raise ConfigError("OPENBLYNK_HTTP_CONNECTIONS_PER_ADDRESS must be 0 (no cap) or more")

    def _check_webhooks(self) -> None:
        if self.webhook_failure_limit < 1:
            raise ConfigError("OPENBLYNK_WEBHOOK_FAILURE_LIMIT must be at least 1")
        for entry in self.webhook_allowed_hosts.split(","):
            name = entry.strip()
            if name and not _is_network(name) and not _HOST_NAME.fullmatch(name):
                raise ConfigError(
                    f"OPENBLYNK_WEBHOOK_ALLOWED_HOSTS: {name!r} is neither a host name nor an IP address or network"
                )

    @property
    def webhook_allowed(self) -> tuple[frozenset[str], tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]]:
        """``webhook_allowed_hosts`` read: the host names (lower case) and the networks."""
        names: set[str] = set()
        networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for entry in self.webhook_allowed_hosts.split(","):
            item = entry.strip()
            if not item:
                continue
            if _is_network(item):
                networks.append(ipaddress.ip_network(item, strict=False))
            else:
                names.add(item.lower().rstrip("."))
        return frozenset(names), tuple(networks)

    @property
    def trusted_proxy_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """The networks of ``trusted_proxies`` (ValueError if one is not an IP or network)."""
        return tuple(
            ipaddress.ip_network(item.strip(), strict=False) for item in self.trusted_proxies.split(",") if item.strip()
        )

    @property
    def pg_dir(self) -> Path:
        """The embedded PostgreSQL cluster directory."""
        return self.data_dir.resolve() / "postgres"

    def resolved_secret_key(self) -> str:
        """The secret key, generating and persisting one in the data directory if unset."""
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / "secret.key"
        if path.exists():
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(key + "\n")
        return key


_HOST_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?\.?")


def _is_network(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


def _convert(key: str, raw: str, typ: Any) -> Any:
    typ = typ if isinstance(typ, str) else getattr(typ, "__name__", str(typ))
    try:
        if typ == "int":
            return int(raw)
        if typ == "float":
            return float(raw)
        if typ == "Path":
            return Path(raw)
        if typ == "bool":
            return {
                "1": True,
                "true": True,
                "yes": True,
                "on": True,
                "0": False,
                "false": False,
                "no": False,
                "off": False,
            }[raw.strip().lower()]
    except KeyError as exc:
        raise ConfigError(f"{key}={raw!r} is not a valid boolean (true/false)") from exc
    except ValueError as exc:
        raise ConfigError(f"{key}={raw!r} is not a valid {typ}") from exc
    return raw


def _read_dotenv(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        out[key.strip().removeprefix("export ").strip()] = value.strip().strip("'\"")
    return out
