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


@pytest.mark.parametrize(("document", "message"), [
    ("not json", "invalid document"),
    ('{"devices": [{"name": "A", "template": "B", "token": "short"}]}', "token"),
    ('{"devices": [{"name": "A", "template": "Missing"}]}', "no template named 'Missing'"),
    ('{"templates": [{"name": "T", "datastreams": [{"pin": "V999", "name": "x"}]}]}', "V0..V255"),
])
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
    result = subprocess.run([sys.executable, "-m", "backend.cli", "export"], env=env, capture_output=True,
                            timeout=60)
    assert result.returncode == 2 and b"OPENBLYNK_SECRET_KEY" in result.stderr
