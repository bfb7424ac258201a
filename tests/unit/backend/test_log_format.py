"""Log lines for operations (issue #15 item 4): the JSON formatter and the quiet routine jobs."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from backend.errors import ConfigError
from backend.redaction import RedactSecrets
from backend.runtime import JsonLines
from backend.settings import Settings

ROOT = Path(__file__).resolve().parents[3]


def _record(msg: str, *args: object, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc else None
    return logging.LogRecord("openblynk.ingest", logging.ERROR, __file__, 1, msg, args, exc_info)


def test_a_json_line_holds_the_fields_and_the_traceback_on_one_line() -> None:
    try:
        raise ValueError("bad value\nsecond line")
    except ValueError as exc:
        record = _record("ingest failed for %s", "device 7", exc=exc)
    line = JsonLines("app").format(record)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["level"] == "ERROR"
    assert parsed["role"] == "app"
    assert parsed["logger"] == "openblynk.ingest"
    assert parsed["message"] == "ingest failed for device 7"
    assert parsed["time"].endswith("+00:00")
    assert "ValueError: bad value\nsecond line" in parsed["exception"]


def test_a_json_line_is_redacted_before_it_is_formatted() -> None:
    record = _record("connect %s", "password=hunter2hunter2 from 10.0.0.1")
    assert RedactSecrets().filter(record)
    assert json.loads(JsonLines("broker").format(record))["message"] == "connect password=*** from 10.0.0.1"


def test_only_text_or_json_is_a_log_format() -> None:
    assert Settings.from_env({"OPENBLYNK_LOG_FORMAT": "json"}).log_format == "json"
    with pytest.raises(ConfigError, match="OPENBLYNK_LOG_FORMAT"):
        Settings.from_env({"OPENBLYNK_LOG_FORMAT": "yaml"})


def test_apscheduler_is_quiet_at_info() -> None:
    """APScheduler says "Running job" and "executed successfully" at INFO for every run of every
    job; at INFO those lines are not written (a fresh process: setup_logging configures the root)."""
    code = (
        "import logging\n"
        "from backend.runtime import setup_logging\n"
        "from backend.settings import Settings\n"
        "setup_logging(Settings.from_env({}), 'app')\n"
        "logging.getLogger('apscheduler.executors.default').info('Running job')\n"
        "logging.getLogger('apscheduler.executors.default').warning('missed by 3 s')\n"
        "logging.getLogger('openblynk').info('still here')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env={}, cwd=ROOT)
    assert "Running job" not in out.stderr
    assert "missed by 3 s" in out.stderr
    assert "still here" in out.stderr


def test_a_failed_command_ends_with_a_json_line_when_the_logs_are_json(tmp_path: Path) -> None:
    env = {
        "OPENBLYNK_LOG_FORMAT": "json",
        "OPENBLYNK_DATA_DIR": str(tmp_path),
        "OPENBLYNK_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2",
    }
    out = subprocess.run(
        [sys.executable, "-m", "backend.cli", "migrate"], capture_output=True, text=True, env=env, cwd=ROOT
    )
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    records = [json.loads(line) for line in lines]
    assert records[-1]["level"] == "ERROR"
    assert records[-1]["message"].startswith("openblynk: cannot connect to PostgreSQL")
