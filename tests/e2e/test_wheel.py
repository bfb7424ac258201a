"""The self-hoster's path: ``python -m build`` (sdist, then the wheel from the sdist), the wheel
installed into a fresh venv outside the repository, ``openblynk serve`` from that venv on free
ports with a data directory of its own, and the console in Chromium: sign in, open a device and
see its chart drawn from history, with the browser files the wheel carries (no
``uPlot is not a constructor``). Then the same install without those files: the app says so in
one line at start and the console's pages show that line instead of widgets.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect

from console_ui import vendor
from tests.e2e.console_browser import browser, no_page_errors, shot  # noqa: F401 (fixture)
from tests.support.accounts import ROOT_ADMIN
from tests.support.datadir import remove_data_dir
from tests.support.stack import Process, StackConfig, wait_http_ready

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "thermostat.json"
TIMEOUT_MS = 15_000

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@dataclass(frozen=True)
class Installed:
    """A venv outside the repository holding openblynk from the wheel."""

    home: Path
    wheel: Path

    @property
    def venv(self) -> Path:
        return self.home / "venv"

    @property
    def openblynk(self) -> Path:
        return self.venv / "bin" / "openblynk"

    def package_dir(self, package: str, config: StackConfig) -> Path:
        """Where the venv's Python imports ``package`` from (run outside the repository)."""
        out = subprocess.run(
            [str(self.venv / "bin" / "python"), "-c", f"import {package}; print({package}.__file__)"],
            env=config.env(),
            cwd=self.home,
            capture_output=True,
            text=True,
            check=True,
        )
        return Path(out.stdout.strip()).parent

    def cli(self, config: StackConfig, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.openblynk), *args], env=config.env(), cwd=self.home, capture_output=True, text=True, timeout=180
        )


def run(*cmd: str | Path) -> None:
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"


@pytest.fixture(scope="module")
def installed() -> Iterator[Installed]:
    home = Path(tempfile.mkdtemp(prefix="openblynk-wheel-"))
    try:
        run(sys.executable, "-m", "build", "--outdir", home / "dist", ROOT)
        (wheel,) = (home / "dist").glob("openblynk-*.whl")
        run(sys.executable, "-m", "venv", home / "venv")
        run(
            home / "venv" / "bin" / "python",
            "-m",
            "pip",
            "install",
            "--quiet",
            "--constraint",
            ROOT / "constraints.txt",
            wheel,
        )
        yield Installed(home, wheel)
    finally:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def config(installed: Installed) -> Iterator[StackConfig]:
    data_dir = Path(tempfile.mkdtemp(prefix="data-", dir=installed.home))
    yield StackConfig(data_dir=data_dir)
    remove_data_dir(data_dir)


def test_the_wheel_carries_the_sources_and_the_browser_files(installed: Installed) -> None:
    (sdist,) = (installed.home / "dist").glob("openblynk-*.tar.gz")
    with tarfile.open(sdist) as archive:
        inside = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {"setup.py", "console_ui/package.json", "console_ui/package-lock.json", "console_ui/vendor.py"} <= inside
    assert not any(n.startswith(("console_ui/node_modules/", "console_ui/static/vendor/")) for n in inside)
    wheel = set(zipfile.ZipFile(installed.wheel).namelist())
    assert {f"console_ui/static/vendor/{name}" for name in vendor.FILES} <= wheel
    assert {
        "console_ui/static/chart.js",
        "console_ui/templates/base.html",
        "backend/db/migrations/0001_initial.sql",
    } <= wheel
    versions = json.loads(zipfile.ZipFile(installed.wheel).read("console_ui/static/vendor/versions.json"))
    assert versions == vendor.locked_versions(ROOT / "console_ui")


def test_serve_from_the_wheel_draws_a_chart(installed: Installed, config: StackConfig, browser: Browser) -> None:  # noqa: F811 (fixture)
    assert installed.cli(config, "--version").stdout.strip() == f"openblynk {installed.wheel.name.split('-')[1]}"
    assert installed.package_dir("console_ui", config).is_relative_to(installed.venv)  # not this checkout
    imported = installed.cli(config, "import", str(EXAMPLE))
    assert imported.returncode == 0, imported.stderr
    kitchen = json.loads(imported.stdout)["devices"][0]

    serve = Process(config, "serve", program=[str(installed.openblynk)], cwd=installed.home)
    try:
        wait_http_ready(config, serve, timeout=120)
        now = datetime.now(UTC)
        points = [[int((now - timedelta(minutes=m)).timestamp() * 1000), 20 + (m % 7)] for m in range(1, 300)]
        r = httpx.post(
            f"{config.base_url}/external/api/batch/update",
            params={"token": kitchen["token"], "pin": "V0"},
            json=points,
            timeout=10,
        )
        assert r.status_code == 200, r.text

        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        errors = no_page_errors(page)
        page.goto(f"{config.base_url}/devices/{kitchen['id']}")
        page.get_by_label("E-mail").fill(ROOT_ADMIN[0])
        page.get_by_label("Password").fill(ROOT_ADMIN[1])
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(f"{config.base_url}/devices/{kitchen['id']}")
        chart = page.locator(".widget-chart")
        expect(chart).to_have_attribute("data-chart-points", re.compile(r"^[1-9]\d*$"))
        expect(chart.locator(".u-over")).to_be_visible()  # uPlot drew it
        shot(page, "wheel-device-chart")
        context.close()
        assert errors == []
    finally:
        code = serve.stop(signal.SIGINT, timeout=60)
    assert code == 0, serve.log()[-3000:]
    assert vendor.FIX not in serve.log()


def test_without_the_browser_files_the_app_and_the_pages_say_what_to_run(
    installed: Installed, config: StackConfig, browser: Browser
) -> None:  # noqa: F811 (fixture)
    files = installed.package_dir("console_ui", config) / "static" / "vendor"
    aside = installed.home / "vendor-aside"
    files.rename(aside)
    serve = Process(config, "serve", program=[str(installed.openblynk)], cwd=installed.home)
    try:
        wait_http_ready(config, serve, timeout=120)
        said = [line for line in serve.log().splitlines() if vendor.FIX in line]
        assert len(said) == 1, serve.log()[-3000:]
        assert "htmx.min.js, uPlot.iife.min.js, uPlot.min.css" in said[0]

        page = browser.new_page()
        response = page.goto(f"{config.base_url}/login")
        assert response is not None and response.status == 503
        expect(page.locator("#browser-files-missing")).to_contain_text(vendor.FIX)
        expect(page.get_by_role("button", name="Sign in")).to_have_count(0)
        shot(page, "wheel-browser-files-missing")
        page.close()
    finally:
        code = serve.stop(signal.SIGINT, timeout=60)
        aside.rename(files)
    assert code == 0, serve.log()[-3000:]
