"""device_sdk is installed alone on devices: it may import only paho-mqtt, cryptography and
the standard library (ARCHITECTURE.md, "The parts")."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import device_sdk

PACKAGE_DIR = Path(device_sdk.__file__).parent
ALLOWED_THIRD_PARTY = frozenset({"paho", "cryptography"})
ALLOWED = ALLOWED_THIRD_PARTY | set(sys.stdlib_module_names) | {"__future__", "device_sdk"}


def imported_top_level_packages(source: str) -> set[str]:
    """Every absolute import in ``source``, anywhere in the module, as its top-level name."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
        elif (  # importlib.import_module("x") / __import__("x") with a literal name
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and (
                (isinstance(node.func, ast.Name) and node.func.id == "__import__")
                or (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
            )
        ):
            found.add(node.args[0].value.split(".")[0])
    return found


def module_files() -> list[Path]:
    return sorted(PACKAGE_DIR.rglob("*.py"))


def test_the_package_has_modules_to_check() -> None:
    names = {path.name for path in module_files()}
    assert {"__init__.py", "_device.py", "_connection.py"} <= names


@pytest.mark.parametrize("path", module_files(), ids=lambda p: str(p.relative_to(PACKAGE_DIR)))
def test_module_imports_only_allowed_packages(path: Path) -> None:
    forbidden = imported_top_level_packages(path.read_text(encoding="utf-8")) - ALLOWED
    assert not forbidden, f"{path.name} imports {sorted(forbidden)}"


@pytest.mark.parametrize(
    "source",
    [
        "import broker",
        "from backend.app import create_app",
        "import amqtt.broker as b",
        "def f():\n    from litestar import Litestar",
        "import importlib\nimportlib.import_module('broker.settings')",
        "__import__('amqtt')",
        "try:\n    import requests\nexcept ImportError:\n    pass",
    ],
)
def test_the_checker_catches_forbidden_imports(source: str) -> None:
    assert imported_top_level_packages(source) - ALLOWED


def test_the_checker_allows_relative_stdlib_and_permitted_imports() -> None:
    source = (
        "from __future__ import annotations\nimport json, ssl\nfrom . import _codec\n"
        "from ._token import AuthToken\nimport paho.mqtt.client as mqtt\n"
        "from cryptography.hazmat.primitives import hashes\n"
    )
    assert imported_top_level_packages(source) - ALLOWED == set()
