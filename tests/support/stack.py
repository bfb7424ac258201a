"""Start real openblynk processes (broker, app, serve) for tests, and stop them cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.net import free_port, port_open, wait_for

TEST_SECRET = "test-secret-key-that-is-long-enough-0123456789"


@dataclass
class StackConfig:
    """Ports, directories and database of one test stack."""

    data_dir: Path
    database_url: str = ""
    http_port: int = field(default_factory=free_port)
    mqtt_port: int = field(default_factory=free_port)
    mqtts_port: int = field(default_factory=free_port)
    https_port: int = field(default_factory=free_port)
    proxy_port: int = field(default_factory=free_port)
    broker_metrics_port: int = field(default_factory=free_port)

    def env(self) -> dict[str, str]:
        """The environment for openblynk processes of this stack."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENBLYNK_")}
        env.update(
            OPENBLYNK_BIND="127.0.0.1",
            OPENBLYNK_HTTP_PORT=str(self.http_port),
            OPENBLYNK_MQTT_PORT=str(self.mqtt_port),
            OPENBLYNK_DATA_DIR=str(self.data_dir),
            OPENBLYNK_MQTTS_PORT=str(self.mqtts_port),
            OPENBLYNK_HTTPS_PORT=str(self.https_port),
            OPENBLYNK_MQTT_PROXY_PORT=str(self.proxy_port),
            OPENBLYNK_BROKER_METRICS_PORT=str(self.broker_metrics_port),
            OPENBLYNK_SECRET_KEY=TEST_SECRET,
            OPENBLYNK_ADMIN_PASSWORD="admin-password-123",
            OPENBLYNK_LOG_LEVEL="INFO",
            PYTHONUNBUFFERED="1",
            # caches live long here so that tests prove change notices, not expiry
            OPENBLYNK_CACHE_TTL_SECONDS="600",
            # every test device connects from 127.0.0.1: don't let bad-token tests lock it out
            OPENBLYNK_AUTH_FAILURES_PER_MINUTE="0",
        )
        if self.database_url:
            env["OPENBLYNK_DATABASE_URL"] = self.database_url
        return env

    @property
    def base_url(self) -> str:
        """The app's base URL."""
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def https_url(self) -> str:
        """The app's base URL over HTTPS (the certificate of ``data_dir/tls``)."""
        return f"https://127.0.0.1:{self.https_port}"


class Process:
    """An ``openblynk <command>`` child process with its output in a log file: this checkout's
    code, or ``program`` (an installed ``openblynk`` script, run in ``cwd``)."""

    def __init__(
        self,
        config: StackConfig,
        *args: str,
        name: str | None = None,
        program: Sequence[str] = (sys.executable, "-m", "backend.cli"),
        cwd: Path | None = None,
    ) -> None:
        self.name = name or args[0]
        self.log_path = config.data_dir / f"{self.name}.log"
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [*program, *args],
            env=config.env(),
            cwd=cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self) -> str:
        """Everything the process printed so far."""
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Signal the process and wait for it; kill it if it does not stop in time."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()
        return int(self.proc.returncode)


def wait_http_ready(config: StackConfig, proc: Process, timeout: float = 60.0) -> None:
    """Wait until ``/healthz`` says the app is connected to the broker."""

    def ready() -> bool:
        assert proc.alive(), f"{proc.name} exited early:\n{proc.log()[-3000:]}"
        try:
            with urllib.request.urlopen(f"{config.base_url}/healthz", timeout=1) as resp:
                return b'"broker_connected":true' in resp.read()
        except OSError:
            return False

    wait_for(ready, timeout, interval=0.1, message=f"{proc.name} to serve /healthz")


def wait_port(port: int, proc: Process, timeout: float = 30.0) -> None:
    """Wait until the process listens on ``port``."""

    def listening() -> bool:
        assert proc.alive(), f"{proc.name} exited early:\n{proc.log()[-3000:]}"
        return port_open(port)

    wait_for(listening, timeout, interval=0.05, message=f"{proc.name} to listen on {port}")


@contextmanager
def running(config: StackConfig) -> Iterator[tuple[Process, Process]]:
    """The broker, then the app once the broker listens; both stopped afterwards, even when
    starting one of them failed. Yields (broker, app) once the app is connected."""
    broker = Process(config, "broker")
    app: Process | None = None
    try:
        wait_port(config.mqtt_port, broker)
        app = Process(config, "app")
        wait_http_ready(config, app)
        yield broker, app
    finally:
        for proc in (app, broker):
            if proc is not None:
                proc.stop()
