"""Logs fit for operations (issue #15 item 4): with ``OPENBLYNK_LOG_FORMAT=json`` every line the
broker and the app write is one JSON object, and no secret of a scripted session (device tokens,
passwords, OAuth client secrets and access tokens, the service password, session cookies)
appears in any line, even at DEBUG."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import httpx
import psycopg

from backend.security import Secrets
from tests.support.accounts import ROOT_ADMIN, AccountsStackConfig, Api
from tests.support.net import wait_for
from tests.support.paho import connect_device
from tests.support.provision import provision, thermostat_doc
from tests.support.stack import TEST_SECRET, running

ROOT = Path(__file__).resolve().parents[3]


def _session(config: AccountsStackConfig) -> list[str]:
    """Everything a user, a device and a platform client do in a short visit; the secrets used."""
    secrets = [ROOT_ADMIN[1], "wrong-password-9876", Secrets(TEST_SECRET).service_password()]
    device = provision(config.database_url, thermostat_doc()).devices[0]
    secrets.append(device.token)
    with Api(config.base_url) as api:
        wrong = api.post("/api/auth/login", json={"email": ROOT_ADMIN[0], "password": "wrong-password-9876"})
        assert wrong.status_code == 401, wrong.text
        api.login(*ROOT_ADMIN)
        secrets += [value for value in api.cookies.values() if len(value) >= 8]
        made = api.post("/api/oauth2/clients", json={"name": f"ops {uuid.uuid4().hex[:6]}", "org_id": None})
        assert made.status_code == 201, made.text
        client_id, client_secret = made.json()["client"]["client_id"], made.json()["client_secret"]
    secrets.append(client_secret)
    granted = httpx.post(
        f"{config.base_url}/oauth2/token",
        params={"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret},
    )
    assert granted.status_code == 200, granted.text
    access = granted.json()["access_token"]
    secrets.append(access)
    listed = httpx.get(f"{config.base_url}/api/v1/organization", headers={"Authorization": f"Bearer {access}"})
    assert listed.status_code == 200, listed.text
    assert httpx.get(f"{config.base_url}/external/api/update?token={device.token}&V0=21.5").status_code == 200
    paho = connect_device(config, device)
    try:
        paho.publish("ds/Temperature", "22.5", qos=1)
        paho.publish("ds/Power", "1", qos=1)
    finally:
        paho.close()
    wrong = device.token[:-1] + ("y" if device.token.endswith("x") else "x")  # never the token itself
    bad = httpx.get(f"{config.base_url}/external/api/get?token={wrong}&V0")
    assert bad.status_code == 400
    return secrets


def test_json_logs_parse_and_hold_no_secret(pg_server: str, template_db: str) -> None:
    name = f"logs_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {template_db}")
    base, _, query = pg_server.partition("?")
    url = f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")
    data_dir = ROOT / ".pytest-data" / name
    env = {"OPENBLYNK_LOG_FORMAT": "json", "OPENBLYNK_LOG_LEVEL": "DEBUG"}
    config = AccountsStackConfig(data_dir=data_dir, database_url=url, extra_env=env)
    try:
        with running(config) as (broker, app):
            secrets = _session(config)
            token = secrets[3]
            wait_for(
                lambda: httpx.get(f"{config.base_url}/external/api/get?token={token}&V0").text == "22.5",
                message="the device's value to reach the app",
            )
        lines = [line for proc in (broker, app) for line in proc.log().splitlines()]
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    assert len(lines) > 50
    roles = set()
    for line in lines:
        record = json.loads(line)
        assert {"time", "level", "role", "logger", "message"} <= record.keys(), line
        roles.add(record["role"])
        for secret in secrets:
            assert secret not in line, f"a secret in: {line}"
    assert roles == {"broker", "app"}
