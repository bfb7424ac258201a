"""Backup and restore (issue #15 item 5): ``openblynk backup`` of a running system with devices,
history, users and firmware; ``openblynk restore`` into a new data directory (its own embedded
PostgreSQL); the restored server, started with ``openblynk serve``, has everything, and the
devices connect with their old tokens."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.integration.ota.ota_support import image, upload
from tests.support.accounts import Api
from tests.support.datadir import remove_data_dir
from tests.support.net import wait_for
from tests.support.paho import connect_device
from tests.support.provision import provision, thermostat_doc
from tests.support.stack import Process, StackConfig, running, wait_http_ready

ROOT = Path(__file__).resolve().parents[3]
PROVISIONED_ADMIN = ("admin@test.local", "admin-password-123")  # the root that provision() makes


def cli(config: StackConfig, *args: str, database: bool = True) -> subprocess.CompletedProcess[str]:
    env = config.env()
    if not database:
        env.pop("OPENBLYNK_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "backend.cli", *args], env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture
def place() -> Iterator[Path]:
    path = ROOT / ".pytest-data" / f"backup-{uuid.uuid4().hex[:8]}"
    path.mkdir(parents=True)
    yield path
    remove_data_dir(path)


@pytest.fixture
def source_db(pg_server: str, template_db: str) -> Iterator[str]:
    name = f"backup_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {template_db}")
    base, _, query = pg_server.partition("?")
    yield f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _history(base: str, api: Api, device_id: int) -> list[float]:
    end = datetime.now(UTC) + timedelta(minutes=1)
    series = api.get(
        f"/api/console/devices/{device_id}/history",
        params={"pin": 0, "start": (end - timedelta(hours=1)).isoformat(), "end": end.isoformat()},
    )
    assert series.status_code == 200, series.text
    return sorted(v for v in series.json()["max"] if v is not None)


def _stored_latest(database_url: str, devices: list[Any]) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM datastream_value WHERE device_id = ANY(%s) AND pin = 0", ([d.id for d in devices],)
        ).fetchone()
    return int(row[0]) if row else 0


def test_backup_of_a_running_system_restores_into_a_new_data_directory(source_db: str, place: Path) -> None:
    source = StackConfig(data_dir=place / "source", database_url=source_db)
    devices = provision(source_db, thermostat_doc(devices=2, save_raw=True)).devices
    archive = place / "openblynk.tar"
    with running(source):
        for n, info in enumerate(devices):
            paho = connect_device(source, info)
            try:
                paho.publish("ds/Temperature", str(30 + n), qos=1)
            finally:
                paho.close()
        with Api(source.base_url) as admin:
            admin.login(*PROVISIONED_ADMIN)
            firmware = upload(admin, image("3.1.4"), name="kitchen-3.1.4.bin")
            signing_key = admin.get("/api/ota/signing-key").json()
            wait_for(lambda: _history(source.base_url, admin, devices[1].id) == [31.0], message="the values in history")
        latest = [httpx.get(f"{source.base_url}/external/api/get?token={d.token}&V0").text for d in devices]
        # the latest values are committed with their history rows (test_backup_latest.py)
        assert _stored_latest(source_db, devices) == len(devices)
        made = cli(source, "backup", str(archive))
        assert made.returncode == 0, made.stderr
    assert "dumping the database" in made.stderr
    assert f"wrote {archive}" in made.stderr
    assert archive.stat().st_mode & 0o077 == 0  # holds the secret key: its owner's only
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert names[0] == "database.dump" and names[-1] == "manifest.json"
    assert any(n.startswith("files/firmware/") for n in names)
    assert set(manifest["members"]) == set(names) - {"manifest.json"}

    target = StackConfig(data_dir=place / "target")
    (target.data_dir / "stray").mkdir(parents=True)
    refused = cli(target, "restore", str(archive), database=False)
    assert refused.returncode == 2
    assert "is not empty" in refused.stderr and "OPENBLYNK_DATA_DIR" in refused.stderr
    (target.data_dir / "stray").rmdir()

    restored = cli(target, "restore", str(archive), database=False)
    assert restored.returncode == 0, restored.stderr
    assert "restoring the database" in restored.stderr
    env = target.env
    target.env = lambda: {k: v for k, v in env().items() if k != "OPENBLYNK_DATABASE_URL"}  # type: ignore[method-assign]
    serve = Process(target, "serve")
    try:
        wait_http_ready(target, serve, timeout=120)
        base = target.base_url
        with Api(base) as admin:
            admin.login(*PROVISIONED_ADMIN)
            names_now = {d["name"] for d in admin.get("/api/devices").json()["content"]}
            assert {d.name for d in devices} <= names_now
            assert _history(base, admin, devices[0].id) == [30.0]
            assert _history(base, admin, devices[1].id) == [31.0]
            listed = admin.get("/api/ota/firmware").json()
            assert [(f["id"], f["filename"]) for f in listed] == [(firmware["id"], "kitchen-3.1.4.bin")]
            assert admin.get("/api/ota/signing-key").json() == signing_key
        for n, info in enumerate(devices):  # their old tokens still work, over HTTP and MQTT
            assert httpx.get(f"{base}/external/api/get?token={info.token}&V0").text == latest[n]
            paho = connect_device(target, info)
            try:
                paho.publish("ds/Temperature", "55.5", qos=1)
            finally:
                paho.close()
            wait_for(lambda t=info.token: httpx.get(f"{base}/external/api/get?token={t}&V0").text == "55.5")
    finally:
        serve.stop()
    source_files = sorted(
        p.relative_to(source.data_dir) for p in (source.data_dir / "firmware").rglob("*") if p.is_file()
    )
    target_files = sorted(
        p.relative_to(target.data_dir) for p in (target.data_dir / "firmware").rglob("*") if p.is_file()
    )
    assert source_files == target_files and source_files
    for rel in source_files:
        assert (source.data_dir / rel).read_bytes() == (target.data_dir / rel).read_bytes()
