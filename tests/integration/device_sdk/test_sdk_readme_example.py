"""The README's example is real code: it is examples/quickstart.py, and it runs here."""

from __future__ import annotations

import json
import re
import runpy
from pathlib import Path

import pytest
from sdk_harness import DEVICE_ID, TOKEN, BrokerThread, Service

import device_sdk

PACKAGE = Path(device_sdk.__file__).parent
D = f"d/{DEVICE_ID}"


def readme_python_blocks() -> list[str]:
    text = (PACKAGE / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def test_readme_example_is_the_example_file() -> None:
    blocks = readme_python_blocks()
    assert blocks == [(PACKAGE / "examples" / "quickstart.py").read_text(encoding="utf-8")]


def test_readme_example_runs_against_the_broker(
    broker: BrokerThread, service: Service, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BLYNK_AUTH_TOKEN", TOKEN)
    monkeypatch.setenv("BLYNK_HOST", "127.0.0.1")
    monkeypatch.setenv("BLYNK_PORT", str(broker.port))
    service.answer(f"{D}/get/ds", f"{D}/downlink/ds/Power", "1")

    runpy.run_path(str(PACKAGE / "examples" / "quickstart.py"), run_name="__main__")

    assert json.loads(service.expect(f"{D}/info/mcu"))["tmpl"] == "TMPL4xyzABCD"
    assert service.expect(f"{D}/get/ds") == b"Power"
    temperatures = [float(service.expect(f"{D}/ds/Temperature")) for _ in range(3)]
    assert all(20 <= t <= 25 for t in temperatures)
    assert "Power is on" in capsys.readouterr().out
