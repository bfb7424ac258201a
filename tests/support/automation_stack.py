"""A broker and one or more app processes on a database of their own, for the automation
engine's tests: automations are written straight into the database with the change notice the
console's service sends (``automation:<id>``), devices are the README's thermostat."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg.types.json import Jsonb

from backend.transfer.schemas import DeviceOut
from tests.support.net import free_port, wait_for
from tests.support.provision import provision, thermostat_doc
from tests.support.stack import Process, StackConfig, wait_http_ready, wait_port

DATA = Path(__file__).resolve().parents[2] / ".pytest-data"


@dataclass
class AppConfig(StackConfig):
    """A stack whose app has extra settings (and may be one of several on the database)."""

    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        return {**super().env(), **self.extra_env}


@dataclass
class App:
    """One app process and its settings."""

    proc: Process
    config: AppConfig

    def health(self) -> dict[str, Any]:
        """``/healthz``'s answer."""
        return dict(httpx.get(f"{self.config.base_url}/healthz", timeout=5).json())


@dataclass
class EngineStack:
    """The broker, the apps and the devices of one test module."""

    config: AppConfig
    broker: Process
    apps: list[App]
    devices: list[DeviceOut]
    org_id: int

    def db(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.config.database_url, autocommit=True)

    def add(self, condition: dict[str, Any], actions: list[dict[str, Any]], limit_period_s: int = 0) -> int:
        """An enabled automation of the devices' organization; every app process reloads it."""
        with self.db() as conn:
            row = conn.execute(
                "INSERT INTO automation (org_id, name, condition, actions, limit_period_s) "
                "VALUES (%s, %s, %s, %s, %s) RETURNING id",
                (self.org_id, f"auto {uuid.uuid4().hex[:6]}", Jsonb(condition), Jsonb(actions), limit_period_s),
            ).fetchone()
            assert row is not None
            conn.execute("SELECT pg_notify('openblynk_changes', %s)", (f"automation:{row[0]}",))
            (count,) = conn.execute("SELECT count(*) FROM automation WHERE enabled").fetchone() or (0,)
        for app in self.apps:  # every process has loaded it (the notice is applied asynchronously)
            wait_for(lambda a=app: a.health()["automations"] == count, 20, message="the automation to load")
        return int(row[0])

    def clear(self) -> None:
        """Delete every automation (and its runs); every app process forgets them."""
        with self.db() as conn:
            gone = [r[0] for r in conn.execute("DELETE FROM automation RETURNING id").fetchall()]
            for automation_id in gone:
                conn.execute("SELECT pg_notify('openblynk_changes', %s)", (f"automation:{automation_id}",))
        for app in self.apps:
            wait_for(lambda a=app: a.health()["automations"] == 0, 20, message="the automations to go")

    def runs(self, automation_id: int) -> list[tuple[int, str, str | None]]:
        """``(run id, status, trigger value)`` of each run, oldest first."""
        with self.db() as conn:
            rows = conn.execute(
                "SELECT id, status, trigger_value FROM automation_run WHERE automation_id = %s ORDER BY id",
                (automation_id,),
            ).fetchall()
        return [(r[0], r[1], r[2]) for r in rows]

    def steps(self, run_id: int) -> list[tuple[int, str, bool, str]]:
        """``(position, action type, ok, detail)`` of a run."""
        with self.db() as conn:
            rows = conn.execute(
                "SELECT position, action_type, ok, detail FROM automation_step WHERE run_id = %s ORDER BY position",
                (run_id,),
            ).fetchall()
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    def start_app(self, name: str = "app", **settings: str) -> App:
        """Another app process on the same database and broker (its own HTTP port and MQTT
        client id unless given)."""
        config = AppConfig(
            data_dir=self.config.data_dir,
            database_url=self.config.database_url,
            mqtt_port=self.config.mqtt_port,
            mqtts_port=self.config.mqtts_port,
            proxy_port=self.config.proxy_port,
            http_port=free_port() if self.apps else self.config.http_port,
            extra_env={**self.config.extra_env, **{f"OPENBLYNK_{k.upper()}": v for k, v in settings.items()}},
        )
        proc = Process(config, "app", name=name)
        wait_http_ready(config, proc)
        self.apps.append(App(proc, config))
        return self.apps[-1]


@contextmanager
def engine_stack(pg_server: str, template_db: str, devices: int = 2, **settings: str) -> Iterator[EngineStack]:
    """A fresh database with ``devices`` thermostats, the broker and one app with
    ``OPENBLYNK_<settings>``; everything stopped and dropped afterwards."""
    name = f"auto_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {template_db}")
    base, _, query = pg_server.partition("?")
    url = f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")
    data_dir = DATA / f"{name}"
    env = {f"OPENBLYNK_{k.upper()}": v for k, v in settings.items()}
    config = AppConfig(data_dir=data_dir, database_url=url, extra_env=env)
    made = provision(url, thermostat_doc(devices=devices)).devices
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT org_id FROM device WHERE id = %s", (made[0].id,)).fetchone()
    assert row is not None
    broker = Process(config, "broker")
    stack = EngineStack(config, broker, [], made, int(row[0]))
    try:
        wait_port(config.mqtt_port, broker)
        stack.start_app()
        yield stack
    finally:
        for proc in [*(a.proc for a in stack.apps), broker]:
            proc.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
