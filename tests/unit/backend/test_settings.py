"""Settings: environment parsing, defaults, refusals."""

from pathlib import Path

import pytest

from backend.errors import ConfigError
from backend.settings import Settings


def test_defaults_match_the_readme() -> None:
    s = Settings.from_env({}, dotenv=Path("/nonexistent"))
    assert (s.http_port, s.mqtt_port, s.mqtts_port, s.bind) == (8080, 1883, 8883, "0.0.0.0")
    assert s.data_dir == Path("./data") and s.database_url == ""


def test_environment_is_read_and_typed() -> None:
    s = Settings.from_env(
        {
            "OPENBLYNK_HTTP_PORT": "9000",
            "OPENBLYNK_DATA_DIR": "/srv/ob",
            "OPENBLYNK_HISTORY_FLUSH_SECONDS": "0.25",
            "OPENBLYNK_TYPO": "1",
        },
        dotenv=Path("/nonexistent"),
    )
    assert s.http_port == 9000 and s.data_dir == Path("/srv/ob") and s.history_flush_seconds == 0.25
    assert "OPENBLYNK_TYPO" in s.extra


def test_dotenv_never_overrides_the_environment(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("OPENBLYNK_HTTP_PORT=1111\nOPENBLYNK_MQTT_PORT=2222\n")
    s = Settings.from_env({"OPENBLYNK_HTTP_PORT": "3333"}, dotenv=dotenv)
    assert (s.http_port, s.mqtt_port) == (3333, 2222)


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"OPENBLYNK_HTTP_PORT": "eighty"}, "OPENBLYNK_HTTP_PORT"),
        ({"OPENBLYNK_MQTT_PORT": "70000"}, "OPENBLYNK_MQTT_PORT"),
        ({"OPENBLYNK_ENV": "production"}, "OPENBLYNK_SECRET_KEY"),
        ({"OPENBLYNK_ENV": "production", "OPENBLYNK_SECRET_KEY": "change-me"}, "OPENBLYNK_SECRET_KEY"),
        ({"OPENBLYNK_ENV": "staging"}, "OPENBLYNK_ENV"),
    ],
)
def test_bad_settings_say_what_to_change(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        Settings.from_env(env, dotenv=Path("/nonexistent"))


def test_secret_key_is_generated_once_and_kept(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path)
    first = s.resolved_secret_key()
    assert len(first) >= 48 and s.resolved_secret_key() == first
    assert (tmp_path / "secret.key").stat().st_mode & 0o077 == 0


def test_every_setting_is_documented_in_the_readme() -> None:
    import dataclasses

    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    missing = [
        f"OPENBLYNK_{f.name.upper()}"
        for f in dataclasses.fields(Settings)
        if f.name != "extra" and f"OPENBLYNK_{f.name.upper()}" not in readme
    ]
    assert missing == []
