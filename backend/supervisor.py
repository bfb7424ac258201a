"""``openblynk serve``: the database, the broker process and the app process, stopped in order.

The broker runs in its own process (Python uses one core per process, and the broker must not
share a core with page rendering). Children run in their own sessions so that Ctrl-C reaches
the supervisor only; it then stops the app, the broker and finally the embedded PostgreSQL.
Children also get SIGTERM if the supervisor itself dies (PR_SET_PDEATHSIG), so nothing is
left orphaned.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import signal
import subprocess
import sys
import time
import urllib.request
from types import FrameType

from backend.errors import OpenBlynkError
from backend.runtime import check_ports, child_env, database, prepare, serve_lock
from backend.settings import Settings

log = logging.getLogger("openblynk.serve")
PR_SET_PDEATHSIG = 1
STOP_TIMEOUT = 15.0


def _die_with_parent() -> None:
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


class Supervisor:
    """Starts and stops the parts of one openblynk server."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self._stopping = False

    def run(self) -> int:
        """Run until Ctrl-C / SIGTERM or until a part dies; return the exit code."""
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        with serve_lock(self.settings):
            for part in ("app", "broker"):
                check_ports(self.settings, part)
            code = self._serve()
        log.info("stopped")
        return code

    def _serve(self) -> int:
        with database(self.settings, own=True) as url:
            asyncio.run(prepare(self.settings, url))
            return self._run_children(url)

    def _run_children(self, url: str) -> int:
        env = child_env(url)
        try:
            self._spawn("broker", env)
            self._spawn("app", env)
            if self._wait_ready():
                s = self.settings
                log.info(
                    "openblynk is up: HTTP on %s:%d%s, MQTT on %s:%d (Ctrl-C stops)",
                    s.bind,
                    s.http_port,
                    f", HTTPS on {s.bind}:{s.https_port}" if s.https_port else "",
                    s.bind,
                    s.mqtt_port,
                )
            for name, proc in self.children.items():
                if proc.poll() is not None and not self._stopping:
                    raise OpenBlynkError(
                        f"the {name} process stopped while starting (exit code {proc.returncode}) "
                        "— its own error is in the lines above"
                    )
            while not self._stopping:
                for name, proc in self.children.items():
                    if proc.poll() is not None:
                        log.error("the %s process exited with code %s; stopping everything", name, proc.returncode)
                        self._stopping = True
                        return 1
                time.sleep(0.2)
            return 0
        finally:
            self._stop_children()

    def _spawn(self, role: str, env: dict[str, str]) -> None:
        self.children[role] = subprocess.Popen(
            [sys.executable, "-m", "backend.cli", role], env=env, start_new_session=True, preexec_fn=_die_with_parent
        )

    def _wait_ready(self, timeout: float = 60.0) -> bool:
        url = f"http://127.0.0.1:{self.settings.http_port}/healthz"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self._stopping:
            if any(p.poll() is not None for p in self.children.values()):
                return False
            try:
                with urllib.request.urlopen(url, timeout=1) as resp:
                    if resp.status == 200:
                        return True
            except OSError:
                time.sleep(0.2)
        return False

    def _stop_children(self) -> None:
        for name in ("app", "broker"):  # the app first: it flushes values while the broker still runs
            proc = self.children.get(name)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                log.warning("the %s process did not stop in %.0f s; killing it", name, STOP_TIMEOUT)
                proc.kill()
                proc.wait()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self._stopping:
            return
        log.info("received %s; stopping", signal.Signals(signum).name)
        self._stopping = True
