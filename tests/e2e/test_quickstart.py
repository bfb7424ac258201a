"""The README's story, end to end, against ``openblynk serve`` started as a subprocess:

one command serves everything; I import a template and a device; a device speaking Blynk's
MQTT API connects with its token and sends values; I read them over Blynk's HTTP API; a value
I write over HTTP reaches the device. Ctrl-C stops every process, PostgreSQL included.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from device_sdk import Device
from tests.support.datadir import remove_data_dir
from tests.support.net import wait_for
from tests.support.stack import Process, StackConfig, wait_http_ready

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "thermostat.json"  # the README's quick start document
SECOND = {"devices": [{"name": "Garage", "template": "Thermostat", "token": "Garage_token_0123456789abcdefghi"}]}


@pytest.fixture
def config() -> Iterator[StackConfig]:
    data_dir = ROOT / ".pytest-data" / f"e2e-{os.getpid()}"
    remove_data_dir(data_dir)
    yield StackConfig(data_dir=data_dir)  # no database URL: the embedded server in data_dir
    remove_data_dir(data_dir)


def cli(config: StackConfig, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "backend.cli", *args], env=config.env(), input=stdin, capture_output=True, timeout=120
    )


def processes_using(path: Path) -> list[str]:
    """Command lines of live processes that mention ``path`` (orphans, if any)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(path) in cmdline and int(pid) != os.getpid():
            found.append(f"{pid}: {cmdline}")
    return found


def test_readme_story(config: StackConfig) -> None:
    # 1. import before the server runs: the CLI starts the embedded database itself
    imported = cli(config, "import", str(EXAMPLE))
    assert imported.returncode == 0, imported.stderr.decode()
    kitchen = json.loads(imported.stdout)["devices"][0]
    assert kitchen["name"] == "Kitchen" and len(kitchen["token"]) == 32 and isinstance(kitchen["id"], int)

    serve = Process(config, "serve")
    try:
        wait_http_ready(config, serve, timeout=90)

        # 2. import while the server runs on the same data directory
        second = cli(config, "import", "-", stdin=json.dumps(SECOND).encode())
        assert second.returncode == 0, second.stderr.decode()
        assert json.loads(second.stdout)["devices"][0]["token"] == SECOND["devices"][0]["token"]

        # 3. a device connects with its token and sends values; HTTP reads them back
        device = Device(
            kitchen["token"],
            host="127.0.0.1",
            port=config.mqtt_port,
            template_id="TMPLabcd1234",
            firmware_version="1.0.0",
        )
        with device, httpx.Client(base_url=config.base_url, timeout=10) as api:
            device.write("Temperature", 22.5)
            wait_for(
                lambda: api.get(f"/external/api/get?token={kitchen['token']}&V0").text == "22.5",
                message="the device's value over HTTP",
            )

            # 4. a value written over HTTP reaches the device
            with device.downlinks() as downlinks:  # opened first: the write may beat the HTTP answer
                start = time.perf_counter()
                assert api.get(f"/external/api/update?token={kitchen['token']}&V1=1").status_code == 200
                assert downlinks.wait_for_write("Power", timeout=10) == "1"
            print(f"\nHTTP update reached the device in {(time.perf_counter() - start) * 1000:.1f} ms")
            assert api.get(f"/external/api/isHardwareConnected?token={kitchen['token']}").text == "true"

        # 5. export shows both devices
        exported = cli(config, "export")
        assert exported.returncode == 0, exported.stderr.decode()
        assert {d["name"] for d in json.loads(exported.stdout)["devices"]} == {"Kitchen", "Garage"}
    finally:
        code = serve.stop(signal.SIGINT, timeout=60)  # what Ctrl-C sends
    assert code == 0, serve.log()[-3000:]
    assert "openblynk is up" in serve.log()
    assert not (config.data_dir / "postgres" / "postmaster.pid").exists(), "PostgreSQL left running"
    assert processes_using(config.data_dir) == []


def test_serve_refuses_a_taken_port_with_a_clear_error(config: StackConfig) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", config.mqtt_port))
        taken.listen()
        serve = Process(config, "serve")
        try:
            serve.proc.wait(90)
        except subprocess.TimeoutExpired:
            serve.stop()
            raise AssertionError("serve kept running although its MQTT port is taken") from None
    log = serve.log()
    assert serve.proc.returncode != 0
    assert str(config.mqtt_port) in log and "in use" in log.lower(), log[-2000:]
    serve.stop()
    assert processes_using(config.data_dir) == []


def test_serve_adopts_a_leftover_database_and_refuses_a_second_serve(config: StackConfig) -> None:
    from backend.db.embedded import EmbeddedPostgres

    leftover = EmbeddedPostgres(config.data_dir.resolve() / "postgres")
    leftover.start()  # as if a previous serve had been killed with SIGKILL
    serve = Process(config, "serve")
    try:
        wait_http_ready(config, serve, timeout=90)
        second = Process(config, "serve", name="second-serve")
        assert second.proc.wait(60) == 2
        assert "another `openblynk serve` is running" in second.log()
        second.stop()
    finally:
        assert serve.stop(signal.SIGINT, timeout=60) == 0
    assert not leftover.running(), "serve left the adopted PostgreSQL running"
    assert processes_using(config.data_dir) == []
