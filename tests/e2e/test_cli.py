"""The CLI's answers to bad input: a clear message on stderr, exit code 2, nothing changed."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_quickstart import ROOT, cli
from tests.support.datadir import remove_data_dir
from tests.support.stack import StackConfig


@pytest.fixture(scope="module")
def config() -> Iterator[StackConfig]:
    data_dir = ROOT / ".pytest-data" / f"cli-{os.getpid()}"
    remove_data_dir(data_dir)
    yield StackConfig(data_dir=data_dir)
    remove_data_dir(data_dir)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("not json", "invalid document"),
        ('{"devices": [{"name": "A", "template": "B", "token": "short"}]}', "token"),
        ('{"devices": [{"name": "A", "template": "Missing"}]}', "no template named 'Missing'"),
        ('{"templates": [{"name": "T", "datastreams": [{"pin": "V999", "name": "x"}]}]}', "V0..V255"),
        (
            '{"templates": [{"name": "T", "datastreams": [{"pin": "V0", "name": "Label", "type": "string"}], "web_dashboard":'
            ' {"widgets": [{"id": "g", "type": "gauge", "pin": 0, "x": 0, "y": 0, "w": 3, "h": 2, "title": "Heat"}]}}]}',
            "template 'T': web dashboard: widget 'Heat' (gauge): cannot show datastream 'Label' of type string",
        ),
    ],
)
def test_bad_import_documents(config: StackConfig, document: str, message: str) -> None:
    result = cli(config, "import", "-", stdin=document.encode())
    assert result.returncode == 2
    assert message in result.stderr.decode()
    assert result.stdout == b""


def test_device_token_show_rotate_and_unknown(config: StackConfig, tmp_path: Path) -> None:
    doc = {"templates": [{"name": "T"}], "devices": [{"name": "Lamp", "template": "T"}]}
    created = json.loads(cli(config, "import", "-", stdin=json.dumps(doc).encode()).stdout)
    token = created["devices"][0]["token"]
    shown = cli(config, "device", "token", "Lamp")
    assert (shown.returncode, shown.stdout.decode().strip()) == (0, token)
    rotated = cli(config, "device", "token", "Lamp", "--rotate").stdout.decode().strip()
    assert len(rotated) == 32 and rotated != token
    assert cli(config, "device", "token", "Lamp").stdout.decode().strip() == rotated
    missing = cli(config, "device", "token", "Nope")
    assert missing.returncode == 2 and "no device named 'Nope'" in missing.stderr.decode()


def test_production_refuses_a_placeholder_secret(config: StackConfig) -> None:
    env_config = StackConfig(data_dir=config.data_dir)
    import subprocess
    import sys

    env = {**env_config.env(), "OPENBLYNK_ENV": "production", "OPENBLYNK_SECRET_KEY": "change-me"}
    result = subprocess.run([sys.executable, "-m", "backend.cli", "export"], env=env, capture_output=True, timeout=60)
    assert result.returncode == 2 and b"OPENBLYNK_SECRET_KEY" in result.stderr


def test_an_export_imported_into_an_empty_data_directory_exports_the_same(config: StackConfig) -> None:
    example = (ROOT / "examples" / "thermostat.json").read_bytes()
    assert cli(config, "import", "-", stdin=example).returncode == 0
    first = cli(config, "export")
    assert first.returncode == 0, first.stderr.decode()
    templates = {t["name"]: t for t in json.loads(first.stdout)["templates"]}
    assert len(templates["Thermostat"]["web_dashboard"]["widgets"]) == 5
    elsewhere = StackConfig(data_dir=ROOT / ".pytest-data" / f"cli-empty-{os.getpid()}")
    remove_data_dir(elsewhere.data_dir)
    try:
        imported = cli(elsewhere, "import", "-", stdin=first.stdout)
        assert imported.returncode == 0, imported.stderr.decode()
        second = cli(elsewhere, "export")
    finally:
        remove_data_dir(elsewhere.data_dir)
    assert second.stdout == first.stdout
