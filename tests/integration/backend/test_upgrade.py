"""Upgrades (issue #15 item 6): the current code started on a database of the previous release
migrates it, and every row the old release wrote is still there and usable.

The previous release: the repository has no tag, so it is the schema at the previous session's
start, migrations 0001-0012 (0013 and later came with this session's automations,
notifications, webhooks, gateways and Blynk.Inject). Those files must never change once
released, which :data:`RELEASED` pins; the database is built with them alone and filled with
the SQL of that time (the columns 0001-0012 define, values made as that release made them),
then the broker and the app of this checkout start on it: they apply 0013 onwards themselves.
"""

from __future__ import annotations

import hashlib
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest

from backend.db.migrate import available, migrate
from backend.security import AuthToken, Secrets, hash_password
from backend.transfer.schemas import DeviceOut
from tests.support.accounts import Api
from tests.support.net import wait_for
from tests.support.paho import connect_device
from tests.support.stack import TEST_SECRET, StackConfig, running

ROOT = Path(__file__).resolve().parents[3]
PREVIOUS_RELEASE = 12
RELEASED = {
    1: "initial",
    2: "device_api",
    3: "device_files",
    4: "rollups",
    5: "template_retention",
    6: "accounts",
    7: "ota",
    8: "history_packed",
    9: "console_dashboards",
    10: "platform_api",
    11: "device_actions",
    12: "registration_links",
}
ADMIN = ("old-admin@example.com", "old-admin-password-1")
STAFF = ("old-staff@example.com", "old-staff-password-1")
TOKEN = AuthToken.generate()
POINTS = 10


@pytest.fixture
def old_database(pg_server: str) -> Iterator[str]:
    """A database with the previous release's schema and data."""
    name = f"upgrade_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    base, _, query = pg_server.partition("?")
    url = f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")
    try:
        assert migrate(url, target=PREVIOUS_RELEASE) == list(range(1, PREVIOUS_RELEASE + 1))
        with psycopg.connect(url) as conn:
            _fill(conn)
        yield url
    finally:
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _fill(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """Rows as the previous release wrote them: an organization with two users, a template with
    datastreams, a device with its token, latest values, raw history with its rollups, firmware."""
    secrets = Secrets(TEST_SECRET)
    org = conn.execute("INSERT INTO organization (name) VALUES ('My Organization') RETURNING id").fetchone()[0]  # type: ignore[index]
    for (email, password), role in ((ADMIN, 1), (STAFF, 2)):
        conn.execute(
            "INSERT INTO app_user (org_id, email, name, password_hash, role_id) VALUES (%s, %s, %s, %s, %s)",
            (org, email, email.split("@")[0], hash_password(password), role),
        )
    template = conn.execute(
        "INSERT INTO template (public_id, org_id, name) VALUES ('TMPLold00001', %s, 'Old thermostat') RETURNING id",
        (org,),
    ).fetchone()[0]  # type: ignore[index]
    conn.execute(
        "INSERT INTO datastream (template_id, pin, name, type, min, max, save_raw) VALUES "
        "(%s, 0, 'Temperature', 'double', -40, 85, true), (%s, 1, 'Label', 'string', NULL, NULL, false)",
        (template, template),
    )
    device = conn.execute(
        "INSERT INTO device (org_id, template_id, name, token_hmac, token_encrypted) "
        "VALUES (%s, %s, 'Old kitchen', %s, %s) RETURNING id",
        (org, template, secrets.token_hmac(TOKEN), secrets.encrypt_token(TOKEN)),
    ).fetchone()[0]  # type: ignore[index]
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    conn.execute(
        "INSERT INTO datastream_value (device_id, pin, value, updated_at) VALUES (%s, 0, '10', %s), (%s, 1, 'old', %s)",
        (device, now, device, now),
    )
    for n in range(1, POINTS + 1):
        conn.execute(
            "INSERT INTO history (device_id, pin, ts, value) VALUES (%s, 0, %s, %s)",
            (device, now - timedelta(minutes=POINTS - n + 1), float(n)),
        )
    conn.execute(
        "INSERT INTO history_minute SELECT device_id, pin, date_trunc('minute', ts), value, value, value, 1, value, ts "
        "FROM history"
    )
    conn.execute(
        "INSERT INTO history_hour SELECT device_id, pin, date_trunc('hour', ts), min(value), max(value), "
        "sum(value), count(*), (array_agg(value ORDER BY ts DESC))[1], max(ts) FROM history GROUP BY 1, 2, 3"
    )
    image = b"old firmware image"
    conn.execute(
        "INSERT INTO firmware (org_id, filename, size, sha256, md5, signature, fw_type, version) "
        "VALUES (%s, 'old-fw.bin', %s, %s, %s, %s, 'TMPLold00001', '1.0.0')",
        (org, len(image), hashlib.sha256(image).digest(), hashlib.md5(image).digest(), bytes(64)),
    )


def _counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]
            for table in ("organization", "app_user", "template", "datastream", "device", "history", "firmware")
        }


def test_the_released_migrations_never_change() -> None:
    assert {m.version: m.name for m in available() if m.version <= PREVIOUS_RELEASE} == RELEASED


def test_the_current_code_upgrades_the_previous_release(old_database: str) -> None:
    before = _counts(old_database)
    assert before == {
        "organization": 1,
        "app_user": 2,
        "template": 1,
        "datastream": 2,
        "device": 1,
        "history": POINTS,
        "firmware": 1,
    }
    data_dir = ROOT / ".pytest-data" / f"upgrade-{uuid.uuid4().hex[:8]}"
    config = StackConfig(data_dir=data_dir, database_url=old_database)
    try:
        _use_it(config, old_database, before)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    with psycopg.connect(old_database) as conn:
        assert conn.execute("SELECT count(*) FROM history").fetchone() == (POINTS + 1,)


def _use_it(config: StackConfig, old_database: str, before: dict[str, int]) -> None:
    """Start the current broker and app on the old database; every old row is usable."""
    with running(config):
        with psycopg.connect(old_database) as conn:
            versions = [row[0] for row in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]
        assert versions == [m.version for m in available()]
        assert _counts(old_database) == before
        base = config.base_url
        assert httpx.get(f"{base}/external/api/get?token={TOKEN}&V0").text == "10"
        with Api(base) as admin:
            admin.login(*ADMIN)
            devices = admin.get("/api/devices").json()
            device = next(d for d in devices["content"] if d["name"] == "Old kitchen")
            end = datetime.now(UTC)
            series = admin.get(
                f"/api/console/devices/{device['id']}/history",
                params={"pin": 0, "start": (end - timedelta(hours=2)).isoformat(), "end": end.isoformat()},
            )
            assert series.status_code == 200, series.text
            assert (min(series.json()["min"]), max(series.json()["max"])) == (1.0, float(POINTS))
            firmware = admin.get("/api/ota/firmware")
            assert firmware.status_code == 200, firmware.text
            assert [f["filename"] for f in firmware.json()] == ["old-fw.bin"]
        with Api(base) as staff:
            staff.login(*STAFF)
            assert staff.get("/api/devices").json()["totalElements"] == 1
        paho = connect_device(config, _device_out(device["id"]))
        try:
            paho.publish("ds/Temperature", "42.5", qos=1)
            wait_for(
                lambda: httpx.get(f"{base}/external/api/get?token={TOKEN}&V0").text == "42.5",
                message="the old device's new value",
            )
        finally:
            paho.close()


def _device_out(device_id: int) -> DeviceOut:
    return DeviceOut("Old kitchen", device_id, TOKEN.value, "Old thermostat", "TMPLold00001", False)
