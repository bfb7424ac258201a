"""A broker and app with accounts settings for tests, a real local SMTP server (aiosmtpd) that
keeps what it receives, and an HTTP client that signs in and sends the CSRF header."""

from __future__ import annotations

import email
import email.policy
import os
import re
import shutil
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import psycopg
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.support.net import free_port, wait_for
from tests.support.stack import Process, StackConfig, running

ROOT_ADMIN = ("admin@openblynk.local", "admin-password-123")
ADMIN, STAFF, USER = 1, 2, 3
_TOKEN = re.compile(r"token=([A-Za-z0-9_-]+)")


class Outbox:
    """An aiosmtpd handler keeping every message it is given."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 (aiosmtpd's name)
        assert isinstance(envelope.content, bytes)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self._lock:
            self.messages.append(message)  # type: ignore[arg-type]
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        """Messages received for ``address``, oldest first."""
        with self._lock:
            return [m for m in self.messages if m["To"].lower() == address.lower()]

    def last_token(self, address: str, count: int = 1) -> str:
        """The link token of the ``count``-th message to ``address`` (waiting for it)."""
        wait_for(lambda: len(self.to(address)) >= count, 10, message=f"e-mail number {count} to {address}")
        body = self.to(address)[count - 1].get_content()
        match = _TOKEN.search(body)
        assert match, body
        return match[1]


@dataclass
class AccountsStackConfig(StackConfig):
    """A stack whose app has the given extra settings."""

    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        return {**super().env(), **self.extra_env}


@dataclass
class AccountsStack:
    config: AccountsStackConfig
    outbox: Outbox
    app: Process

    @property
    def base_url(self) -> str:
        return self.config.base_url

    def client(self) -> Api:
        return Api(self.config.base_url)

    def login(self, email_address: str, password: str) -> Api:
        api = self.client()
        api.login(email_address, password)
        return api

    def db(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.config.database_url, autocommit=True)


def start_accounts_stack(pg_server: str, template_db: str, tag: str, **settings: str) -> Iterator[AccountsStack]:
    """A fresh database, an SMTP server, a broker and an app with ``OPENBLYNK_<settings>``."""
    name = f"acc_{tag}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {template_db}")
    base, _, query = pg_server.partition("?")
    url = f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")
    outbox = Outbox()
    smtp = Controller(outbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    data_dir = Path(__file__).resolve().parents[2] / ".pytest-data" / f"{name}-{os.getpid()}"
    env = {
        "OPENBLYNK_SMTP_HOST": "127.0.0.1",
        "OPENBLYNK_SMTP_PORT": str(smtp.port),
        "OPENBLYNK_SMTP_SECURITY": "none",
        "OPENBLYNK_SIGNUP_ENABLED": "true",
        "OPENBLYNK_PUBLIC_URL": "http://console.test",
        "LITESTAR_DEBUG": "1",
    }  # an unexpected error answers with its traceback
    env.update({f"OPENBLYNK_{k.upper()}": v for k, v in settings.items()})
    config = AccountsStackConfig(data_dir=data_dir, database_url=url, extra_env=env)
    try:
        with running(config) as (_broker, app):
            yield AccountsStack(config, outbox, app)
    finally:
        smtp.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


class Api(httpx.Client):
    """An HTTP client of the app that keeps its session cookie and sends the CSRF header."""

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url=base_url, timeout=30)
        self.csrf = ""
        self.me: dict[str, Any] = {}

    def __enter__(self) -> Api:  # usable in ``with`` after requests were made
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def login(self, email_address: str, password: str) -> httpx.Response:
        r = self.post("/api/auth/login", json={"email": email_address, "password": password})
        assert r.status_code == 200, r.text
        self.csrf = r.json()["csrf_token"]
        self.me = r.json()["user"]
        return r

    def request(self, method: str, url: Any, **kwargs: Any) -> httpx.Response:  # type: ignore[override]
        if method.upper() not in ("GET", "HEAD", "OPTIONS") and self.csrf and kwargs.get("headers") is None:
            kwargs["headers"] = {"X-CSRF-Token": self.csrf}
        return super().request(method, url, **kwargs)


def invite_and_join(
    stack: AccountsStack, inviter: Api, org_id: int, address: str, role_id: int, password: str = "a-good-password-1"
) -> Api:
    """Invite ``address`` to ``org_id``, accept the e-mailed link, and sign the new user in."""
    count = len(stack.outbox.to(address)) + 1
    r = inviter.post("/api/invitations", json={"email": address, "role_id": role_id, "org_id": org_id})
    assert r.status_code == 201, r.text
    token = stack.outbox.last_token(address, count)
    with stack.client() as anon:
        r = anon.post("/api/invitations/accept", json={"token": token, "password": password, "name": "T"})
    assert r.status_code == 201, r.text
    return stack.login(address, password)
