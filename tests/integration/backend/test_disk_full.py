"""A full disk (issue #15 item 7): the app's data directory on a 4 MB tmpfs, filled to the last
byte. A firmware upload, a device's file upload and ``openblynk backup`` each fail with a clear
"the disk is full" error (HTTP 507 Insufficient Storage on the APIs, exit code 2 from the CLI),
leave no partial file behind and break nothing else (the device API still takes values); once
space is freed, the same requests succeed."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.integration.ota.ota_support import image
from tests.support.accounts import Api
from tests.support.provision import provision, thermostat_doc
from tests.support.stack import StackConfig, running

ROOT = Path(__file__).resolve().parents[3]
PROVISIONED_ADMIN = ("admin@test.local", "admin-password-123")  # the root that provision() makes
DISK_FULL = "the disk is full"


@pytest.fixture
def small_disk() -> Iterator[Path]:
    """A 4 MB tmpfs mounted on a fresh directory; unmounted (bounded in time) afterwards."""
    path = ROOT / ".pytest-data" / f"diskfull-{uuid.uuid4().hex[:8]}"
    path.mkdir(parents=True)
    if os.geteuid() != 0:
        path.rmdir()
        pytest.skip("mounting a tmpfs for a full disk needs root; this user is not root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert mounted.returncode == 0, f"mount refused as root: {mounted.stderr}"
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True, timeout=30).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)  # still busy: detach
        path.rmdir()


@pytest.fixture
def database(pg_server: str, template_db: str) -> Iterator[str]:
    name = f"diskfull_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {template_db}")
    base, _, query = pg_server.partition("?")
    yield f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def fill(directory: Path) -> Path:
    """Write a file in ``directory`` until its file system says it is full; that file."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as out:
        try:
            while True:
                out.write(b"\0" * 65536)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
        try:
            while True:  # the last few blocks, one page at a time
                out.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return filler


def leftovers(directory: Path) -> list[str]:
    """Temporary upload or backup files anywhere under ``directory``."""
    return sorted(
        p.relative_to(directory).as_posix()
        for p in directory.rglob("*")
        if p.name.startswith((".upload-", ".openblynk-backup-")) or p.name.endswith(".partial")
    )


def device_upload(base: str, token: str, data: bytes) -> httpx.Response:
    return httpx.post(
        f"{base}/external/api/upload",
        params={"token": token},
        files={"upfile": ("log.txt", data, "text/plain")},
        timeout=30,
    )


def backup(config: StackConfig, target: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "backend.cli", "backup", str(target)],
        env=config.env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def count(url: str, sql: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql).fetchone()
    assert row is not None
    return int(row[0])


def test_a_full_disk_refuses_uploads_and_backups_clearly_and_recovers(small_disk: Path, database: str) -> None:
    config = StackConfig(data_dir=small_disk, database_url=database)
    device = provision(database, thermostat_doc(devices=1)).devices[0]
    firmware = image("2.0.0", size=256 * 1024)
    with running(config), Api(config.base_url) as admin:
        admin.login(*PROVISIONED_ADMIN)
        filler = fill(small_disk)

        air = admin.post("/api/ota/firmware", params={"filename": "fw.bin"}, content=firmware, timeout=30)
        assert air.status_code == 507, air.text
        assert DISK_FULL in air.json()["error"]["message"]
        assert "free space" in air.json()["error"]["message"]

        dev = device_upload(config.base_url, device.token, b"x" * 200_000)
        assert dev.status_code == 507, dev.text
        assert DISK_FULL in dev.json()["error"]["message"]

        made = backup(config, small_disk / "openblynk.tar")
        assert made.returncode == 2, made.stderr
        assert DISK_FULL in made.stderr and str(small_disk) in made.stderr

        assert leftovers(small_disk) == []
        assert not (small_disk / "openblynk.tar").exists()
        assert count(database, "SELECT count(*) FROM firmware") == 0
        assert count(database, "SELECT count(*) FROM device_file") == 0
        # nothing else is affected: values still go to the database, the app still answers
        base = f"{config.base_url}/external/api"
        assert httpx.get(f"{base}/update", params={"token": device.token, "V0": "21.5"}).status_code == 200
        assert httpx.get(f"{base}/get", params={"token": device.token, "V0": ""}).text == "21.5"
        assert httpx.get(f"{config.base_url}/healthz").status_code == 200

        filler.unlink()  # space returns: the same requests succeed

        air = admin.post("/api/ota/firmware", params={"filename": "fw.bin"}, content=firmware, timeout=30)
        assert air.status_code == 201, air.text
        dev = device_upload(config.base_url, device.token, b"x" * 200_000)
        assert dev.status_code == 200, dev.text
        assert httpx.get(dev.text, timeout=30).content == b"x" * 200_000
        made = backup(config, small_disk / "openblynk.tar")
        assert made.returncode == 0, made.stderr
        assert (small_disk / "openblynk.tar").stat().st_size > 256 * 1024
        assert leftovers(small_disk) == []
