"""The documented systemd unit and its environment file (docs/systemd/, docs/deployment.md) name
only settings that exist, run ``openblynk serve`` on /var/lib/openblynk, and start only once the
placeholder secret key is replaced."""

from __future__ import annotations

import configparser
import dataclasses
import re
from pathlib import Path

import pytest

from backend.errors import ConfigError
from backend.settings import PREFIX, Settings

ROOT = Path(__file__).resolve().parents[3]
SYSTEMD = ROOT / "docs" / "systemd"
NO_DOTENV = ROOT / "no-such-dir" / ".env"


def env_file(text: str) -> dict[str, str]:
    """The variables systemd's EnvironmentFile= sets from ``text`` (NAME=value lines)."""
    pairs = (line.split("=", 1) for line in text.splitlines() if line.strip() and not line.startswith("#"))
    return {name.strip(): value.strip() for name, value in pairs}


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((SYSTEMD / "openblynk.service").read_text())
    return parser


def test_every_variable_the_environment_file_names_is_a_setting() -> None:
    named = set(re.findall(r"\b(OPENBLYNK_[A-Z0-9_]+)=", (SYSTEMD / "openblynk.env").read_text()))
    known = {PREFIX + f.name.upper() for f in dataclasses.fields(Settings) if f.name != "extra"}
    assert len(named) >= 10
    assert named - known == set()


def test_the_unit_serves_from_var_lib_openblynk_with_the_environment_file() -> None:
    service = unit()["Service"]
    assert service["ExecStart"].endswith("/bin/openblynk serve")
    assert service["EnvironmentFile"] == "/etc/openblynk/openblynk.env"
    assert service["Environment"] == "OPENBLYNK_DATA_DIR=/var/lib/openblynk"
    assert service["StateDirectory"] == "openblynk" and service["WorkingDirectory"] == "/var/lib/openblynk"
    assert service["User"] == "openblynk"


def test_the_shipped_environment_starts_only_with_a_real_secret_key() -> None:
    environ = env_file((SYSTEMD / "openblynk.env").read_text())
    environ["OPENBLYNK_DATA_DIR"] = "/var/lib/openblynk"  # what the unit adds
    with pytest.raises(ConfigError, match="OPENBLYNK_SECRET_KEY must be set"):
        Settings.from_env(environ, dotenv=NO_DOTENV)
    settings = Settings.from_env({**environ, "OPENBLYNK_SECRET_KEY": "k" * 48}, dotenv=NO_DOTENV)
    assert settings.env == "production" and settings.extra == {}
    assert str(settings.data_dir) == "/var/lib/openblynk"
