"""The layering rules of docs/architecture.md, checked on the source with :mod:`ast`.

Every ``import`` and ``from ... import`` of the project's packages is read: at module level,
inside functions, and under ``if TYPE_CHECKING:``. All three count. An import inside a
function is still a dependency (it only runs later), and a ``TYPE_CHECKING`` import is still
one for the reader and for mypy: hiding either kind is how a circle stays unnoticed (issue #12
found two that way). A module that really needs a name only for typing can take a Protocol of
its own instead.

The rules:

- ``amqtt`` is imported only in ``broker/``; outside ``broker/`` only its public modules
  (no ``broker._private``) are imported;
- ``device_sdk`` imports only the standard library, paho-mqtt and cryptography (devices install
  it alone);
- ``broker/`` imports no other package of the project; ``ota/`` imports only the standard
  library and cryptography;
- ``console_ui`` imports ``backend`` (not its top) and ``ota``'s value types; ``backend``
  imports ``broker``, ``ota`` and, from its top only, ``console_ui``'s mounting surface;
- inside ``backend``, every package or top-level module has one layer (bottom, area, top);
  the bottom imports no area and no top; the areas do not import the top;
- no import circles: none between modules, none between backend's packages.

Known violations that remain while issue #12 is in progress are listed in ``KNOWN``, each with
its reason and the item that removes it. The tests fail on a violation not in the list, and on
an entry that is no longer a violation: the list can only shrink.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("backend", "broker", "ota", "console_ui", "device_sdk")
STDLIB = frozenset(sys.stdlib_module_names) | {"__future__"}

# -- backend's layers, by package (``backend.<name>``) ----------------------------------------
BOTTOM = frozenset(
    {
        "backend.errors",
        "backend.settings",
        "backend.db",
        "backend.access",
        "backend.security",
        "backend.numbers",
        "backend.csvcells",
        "backend.redaction",
        "backend.metrics",
        "backend.connections",
        "backend.tasks",
        "backend.scheduler",
        "backend.transport",
        "backend.placeholders",
    }
)
"""Imported by every area, imports no area: errors, settings, storage, access control and paging,
secrets, small value helpers (Blynk's placeholders), the job runner, and the transports (HTTP limits, TLS, the MQTT
service client)."""
AREAS = frozenset(
    {
        "backend.accounts",
        "backend.orgs",
        "backend.templates",
        "backend.devices",
        "backend.history",
        "backend.ingest",
        "backend.device_api",
        "backend.platform_api",
        "backend.ota",
        "backend.console",
        "backend.audit",
        "backend.locations",
        "backend.transfer",
        "backend.automations",
        "backend.notifications",
        "backend.webhooks",
        "backend.inject",
        "backend.integrations",
    }
)
"""The product areas; they may import each other as long as no circle forms."""
TOP = frozenset({"backend.server", "backend.cli", "backend.supervisor", "backend.runtime", "backend.backup"})
"""What assembles the areas: the app's package (factory, routers, runtime container, lifespan,
table registry), the start-up steps, the processes, the CLI."""
CONSOLE_SURFACE = frozenset({"console_ui.routes", "console_ui.headers"})
"""What backend's top mounts: the console's routes and the headers middleware of its pages."""

# -- what remains to fix (issue #12); entries may only be removed ----------------------------
# (rule, importer, imported): reason and the issue #12 item that removes it. Backend entries are
# by package. A "cycle" entry is an import edge that closes a circle between backend packages;
# the circle check ignores these edges, and each must still close a circle.
KNOWN: dict[tuple[str, str, str], str] = {}


# -- reading imports ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Import:
    """One imported module, as written in ``importer`` (resolved to a project module if one
    exists, else the module named)."""

    importer: str
    target: str
    line: int
    kind: str
    """``module``, ``function`` or ``type-checking``."""

    def __str__(self) -> str:
        return f"{self.importer}:{self.line} imports {self.target} ({self.kind} level)"


@dataclass(frozen=True, slots=True)
class Source:
    """A module's text and whether it is a package's ``__init__``."""

    text: str
    is_package: bool = False


def project_sources(root: Path = ROOT) -> dict[str, Source]:
    """Every module of the project's packages, by dotted name."""
    found: dict[str, Source] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            if "node_modules" in path.parts:
                continue
            parts = list(path.relative_to(root).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            name = ".".join(parts[:-1] if is_package else parts)
            found[name] = Source(path.read_text(encoding="utf-8"), is_package)
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _named(node: ast.AST, module: str, is_package: bool, modules: Iterable[str]) -> list[str]:
    """The modules an import node names (relative imports resolved)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level:
            base = module.split(".") if is_package else module.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            stem = ".".join(base + ([node.module] if node.module else []))
        else:
            stem = node.module or ""
        known = set(modules)
        return [f"{stem}.{a.name}" if f"{stem}.{a.name}" in known else stem for a in node.names]
    if (  # importlib.import_module("x") / __import__("x") with a literal name
        isinstance(node, ast.Call)
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
        and (
            (isinstance(node.func, ast.Name) and node.func.id == "__import__")
            or (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
        )
    ):
        return [node.args[0].value]
    return []


def imports_of(module: str, source: Source, modules: Iterable[str] = ()) -> list[Import]:
    """Every import in one module, with where it sits."""
    found: list[Import] = []

    def walk(node: ast.AST, kind: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = kind
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) and kind == "module":
                inner = "function"
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for branch, branch_kind in ((child.body, "type-checking"), (child.orelse, inner)):
                    for stmt in branch:
                        found.extend(
                            Import(module, t, stmt.lineno, branch_kind)
                            for t in _named(stmt, module, source.is_package, modules)
                        )
                        walk(stmt, branch_kind)
                continue
            found.extend(
                Import(module, t, getattr(child, "lineno", 0), inner)
                for t in _named(child, module, source.is_package, modules)
            )
            walk(child, inner)

    walk(ast.parse(source.text), "module")
    return [i for i in found if i.target and i.target != "__future__"]


def all_imports(sources: Mapping[str, Source]) -> list[Import]:
    return [i for name, source in sources.items() for i in imports_of(name, source, sources)]


# -- the rules ---------------------------------------------------------------------------------
def top_name(module: str) -> str:
    return module.split(".")[0]


def unit(module: str) -> str:
    """The layer unit of a module: ``backend.<package or module>``, else its top-level package."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "backend" and len(parts) > 1 else parts[0]


def layer_of(backend_unit: str) -> str | None:
    for name, layer in (("bottom", BOTTOM), ("area", AREAS), ("top", TOP)):
        if backend_unit in layer:
            return name
    return None


def rule_broken(imp: Import) -> tuple[str, str, str] | None:
    """The rule ``imp`` breaks, as a key (rule, importer, imported), or None."""
    src, dst, target_top = top_name(imp.importer), imp.target, top_name(imp.target)
    project = target_top in PACKAGES
    if target_top == "amqtt" and src != "broker":
        return ("amqtt outside broker/", unit(imp.importer), "amqtt")
    if target_top == "broker" and src != "broker" and any(p.startswith("_") for p in dst.split(".")[1:]):
        return ("private broker module", unit(imp.importer), dst)
    if src == "device_sdk" and target_top not in STDLIB | {"paho", "cryptography", "device_sdk"}:
        return ("device_sdk imports beyond stdlib, paho, cryptography", imp.importer, target_top)
    if src == "ota" and target_top not in STDLIB | {"cryptography", "ota"}:
        return ("ota imports beyond stdlib, cryptography", imp.importer, target_top)
    if src == "broker" and project and target_top != "broker":
        return ("broker imports the project", imp.importer, target_top)
    if src == "console_ui" and project:
        if target_top not in {"console_ui", "backend", "ota"}:
            return ("console_ui imports beyond backend, ota", imp.importer, target_top)
        if target_top == "backend" and layer_of(unit(dst)) == "top":
            return ("console_ui imports backend's top", imp.importer, unit(dst))
    if src != "backend" or not project:
        return None
    here, there = unit(imp.importer), unit(dst)
    if target_top == "device_sdk":
        return ("backend imports device_sdk", here, there)
    if target_top == "console_ui" and (layer_of(here) != "top" or dst not in CONSOLE_SURFACE):
        return ("backend imports console_ui beyond its top's mounting", here, dst)
    if target_top != "backend" or here == there:
        return None
    if layer_of(here) == "bottom" and layer_of(there) == "area":
        return ("bottom imports an area", here, there)
    if layer_of(here) == "bottom" and layer_of(there) == "top":
        return ("bottom imports the top", here, there)
    if layer_of(here) == "area" and layer_of(there) == "top":
        return ("area imports the top", here, there)
    return None


def unlayered(sources: Iterable[str]) -> set[str]:
    """Backend units that are in no layer."""
    return {unit(m) for m in sources if m.startswith("backend.") and layer_of(unit(m)) is None}


def violations(imports: Iterable[Import]) -> dict[tuple[str, str, str], list[Import]]:
    found: dict[tuple[str, str, str], list[Import]] = {}
    for imp in imports:
        key = rule_broken(imp)
        if key is not None:
            found.setdefault(key, []).append(imp)
    return found


# -- circles -----------------------------------------------------------------------------------
def _ancestors(module: str) -> set[str]:
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def module_graph(imports: Iterable[Import], modules: Iterable[str]) -> dict[str, set[str]]:
    """Module -> project modules it makes Python run: the module named and those of its parent
    packages the importer is not already inside (their ``__init__`` runs first)."""
    known = set(modules)
    graph: dict[str, set[str]] = {m: set() for m in known}
    for imp in imports:
        if imp.target not in known and not any(a in known for a in _ancestors(imp.target)):
            continue
        for target in ({imp.target} | _ancestors(imp.target)) - _ancestors(imp.importer) - {imp.importer}:
            if target in known:
                graph[imp.importer].add(target)
    return graph


def unit_graph(graph: Mapping[str, set[str]]) -> dict[str, set[str]]:
    units: dict[str, set[str]] = {}
    for src, targets in graph.items():
        units.setdefault(unit(src), set())
        for dst in targets:
            units.setdefault(unit(dst), set())
            if unit(src) != unit(dst):
                units[unit(src)].add(unit(dst))
    return units


def circles(graph: Mapping[str, set[str]]) -> list[set[str]]:
    """Strongly connected components with more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component: set[str] = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(component)
    return found


def without(graph: Mapping[str, set[str]], edges: Iterable[tuple[str, str]]) -> dict[str, set[str]]:
    dropped = set(edges)
    return {src: {dst for dst in targets if (src, dst) not in dropped} for src, targets in graph.items()}


def closes_a_circle(graph: Mapping[str, set[str]], edge: tuple[str, str]) -> bool:
    src, dst = edge
    return dst in graph.get(src, set()) and any({src, dst} <= c for c in circles(graph))


def describe(graph: Mapping[str, set[str]], component: set[str]) -> str:
    edges = sorted((s, d) for s in component for d in graph[s] if d in component)
    return "\n".join(f"    {s} -> {d}" for s, d in edges)


# -- the project -------------------------------------------------------------------------------
SOURCES = project_sources()
IMPORTS = all_imports(SOURCES)
MODULES = module_graph(IMPORTS, SOURCES)
UNITS = unit_graph(MODULES)
KNOWN_EDGES = {(src, dst) for _rule, src, dst in KNOWN}


def test_the_scan_sees_the_project() -> None:
    assert {"backend.server.factory", "broker._core", "ota.image", "console_ui.routes", "device_sdk._device"} <= set(
        SOURCES
    )
    assert any(i.target.startswith("amqtt") for i in IMPORTS)


def test_every_backend_package_has_a_layer() -> None:
    missing = unlayered(SOURCES)
    assert not missing, f"put {sorted(missing)} in BOTTOM, AREAS or TOP of tests/unit/test_layering.py"
    assert not (BOTTOM & AREAS or AREAS & TOP or BOTTOM & TOP)


def test_no_import_breaks_a_layering_rule() -> None:
    found = violations(IMPORTS)
    new = {key: imps for key, imps in found.items() if key not in KNOWN}
    assert not new, "imports that break the layering rules of docs/architecture.md:\n" + "\n".join(
        f"  {key[0]}: {key[1]} -> {key[2]}\n" + "\n".join(f"    {i}" for i in imps) for key, imps in sorted(new.items())
    )


def test_every_known_rule_violation_still_exists() -> None:
    found = violations(IMPORTS)
    gone = sorted(key for key in KNOWN if key[0] != "cycle" and key not in found)
    assert not gone, f"fixed: delete these entries from KNOWN in tests/unit/test_layering.py: {gone}"


def test_no_circle_between_modules() -> None:
    found = circles(MODULES)
    assert not found, "import circles between modules:\n" + "\n\n".join(describe(MODULES, c) for c in found)


def test_no_circle_between_backend_packages_beyond_the_known_edges() -> None:
    found = circles(without(UNITS, KNOWN_EDGES))
    assert not found, "import circles between packages:\n" + "\n\n".join(describe(UNITS, c) for c in found)


def test_every_known_cycle_edge_still_closes_a_circle() -> None:
    gone = sorted(key for key in KNOWN if key[0] == "cycle" and not closes_a_circle(UNITS, (key[1], key[2])))
    assert not gone, f"no longer a circle: delete these entries from KNOWN in tests/unit/test_layering.py: {gone}"


# -- the checker itself, on made-up modules ----------------------------------------------------
def synthetic(modules: Mapping[str, str]) -> tuple[dict[str, Source], list[Import]]:
    sources = {name: Source(text) for name, text in modules.items()}
    return sources, all_imports(sources)


@pytest.mark.parametrize(
    "source",
    [
        "import broker",
        "from backend.server.factory import create_app",
        "import amqtt.broker as b",
        "def f():\n    from litestar import Litestar",
        "import importlib\nimportlib.import_module('broker.settings')",
        "__import__('amqtt')",
        "try:\n    import requests\nexcept ImportError:\n    pass",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import backend.errors",
    ],
)
def test_the_checker_catches_what_device_sdk_must_not_import(source: str) -> None:
    _, imports = synthetic({"device_sdk._x": source})
    assert violations(imports)


def test_the_checker_allows_device_sdk_its_own_stdlib_and_permitted_imports() -> None:
    source = (
        "from __future__ import annotations\nimport json, ssl\nfrom . import _codec\n"
        "from ._token import AuthToken\nimport paho.mqtt.client as mqtt\n"
        "from cryptography.hazmat.primitives import hashes\n"
    )
    _, imports = synthetic({"device_sdk._x": source})
    assert violations(imports) == {}


def test_the_checker_tells_where_an_import_sits() -> None:
    source = (
        "from typing import TYPE_CHECKING\nimport backend.errors\nif TYPE_CHECKING:\n"
        "    from backend import settings\nelse:\n    import backend.numbers\n"
        "def f():\n    from backend.devices import changes\n"
    )
    sources = {"backend.x": Source(source), "backend.settings": Source(""), "backend.devices.changes": Source("")}
    kinds = {i.target: i.kind for i in imports_of("backend.x", sources["backend.x"], sources)}
    assert kinds == {
        "typing": "module",
        "backend.errors": "module",
        "backend.settings": "type-checking",
        "backend.numbers": "module",
        "backend.devices.changes": "function",
    }


def test_relative_imports_resolve_against_the_package() -> None:
    sources = {
        "broker.a.b": Source("from . import c\nfrom ..d import e\n"),
        "broker.a.c": Source(""),
        "broker.a": Source("from .b import x\n", is_package=True),
    }
    targets = {(i.importer, i.target) for i in all_imports(sources)}
    assert targets == {("broker.a.b", "broker.a.c"), ("broker.a.b", "broker.d"), ("broker.a", "broker.a.b")}


@pytest.mark.parametrize(
    ("module", "source", "rule"),
    [
        ("backend.devices.x", "import amqtt", "amqtt outside broker/"),
        ("console_ui.x", "from amqtt.session import Session", "amqtt outside broker/"),
        ("backend.transport.x", "from broker._core import CoreBroker", "private broker module"),
        ("broker.x", "from backend.errors import OpenBlynkError", "broker imports the project"),
        ("broker.x", "import ota", "broker imports the project"),
        ("ota.x", "import psycopg", "ota imports beyond stdlib, cryptography"),
        ("ota.x", "from backend.settings import Settings", "ota imports beyond stdlib, cryptography"),
        ("console_ui.x", "import broker", "console_ui imports beyond backend, ota"),
        ("console_ui.x", "from backend.server.factory import create_app", "console_ui imports backend's top"),
        (
            "backend.devices.x",
            "from console_ui.render import page",
            "backend imports console_ui beyond its top's mounting",
        ),
        (
            "backend.server.routers",
            "from console_ui.pages_air import ROUTES",
            "backend imports console_ui beyond its top's mounting",
        ),
        ("backend.access.guards", "from backend.accounts.users import UserService", "bottom imports an area"),
        ("backend.access.guards", "def f():\n    from backend.orgs import tree", "bottom imports an area"),
        ("backend.errors", "from backend.server.factory import create_app", "bottom imports the top"),
        ("backend.devices.x", "from backend.server.factory import create_app", "area imports the top"),
        ("backend.ota.x", "from backend.runtime import migrate", "area imports the top"),
    ],
)
def test_the_checker_catches_each_rule(module: str, source: str, rule: str) -> None:
    found = violations(imports_of(module, Source(source)))
    assert [key[0] for key in found] == [rule]


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("backend.access.guards", "from backend.errors import PermissionDeniedError\nfrom backend.db.sql import one"),
        ("backend.devices.x", "from backend.access.permissions import Principal\nfrom broker import MqttBroker"),
        ("backend.server.routers", "from console_ui.routes import console_pages\nfrom backend.devices import x"),
        ("console_ui.pages_air", "from backend.ota.wiring import OtaServices\nfrom ota import DeviceStatus"),
        ("ota.x", "from cryptography.hazmat.primitives import hashes\nimport hashlib"),
        ("broker.x", "from amqtt.session import Session\nfrom broker._core import CoreBroker"),
    ],
)
def test_the_checker_allows_what_the_layers_allow(module: str, source: str) -> None:
    assert violations(imports_of(module, Source(source))) == {}


def test_the_checker_finds_a_circle_through_a_function_level_import() -> None:
    sources, imports = synthetic(
        {
            "backend.ota.a": "from backend.ota.b import y\n",
            "backend.ota.b": "def f():\n    from backend.ota.a import x\n",
            "backend.ota.c": "from backend.ota.a import x\n",
        }
    )
    assert circles(module_graph(imports, sources)) == [{"backend.ota.a", "backend.ota.b"}]


def test_the_checker_finds_a_circle_through_a_package_init() -> None:
    sources = {
        "backend.devices": Source("from backend.devices.y import Y\n", is_package=True),
        "backend.devices.y": Source("from backend.orgs.z import Z\n"),
        "backend.orgs.z": Source("from backend.devices.w import W\n"),
        "backend.devices.w": Source(""),
    }
    graph = module_graph(all_imports(sources), sources)
    assert circles(graph) == [{"backend.devices", "backend.devices.y", "backend.orgs.z"}]
    assert circles(unit_graph(graph)) == [{"backend.devices", "backend.orgs"}]


def test_a_known_edge_hides_only_its_own_circle() -> None:
    graph = {"a": {"b"}, "b": {"a", "c"}, "c": {"d"}, "d": {"c"}}
    assert circles(without(graph, {("b", "a")})) == [{"c", "d"}]
    assert closes_a_circle(graph, ("b", "a"))
    assert not closes_a_circle(without(graph, {("a", "b")}), ("b", "a"))
    assert not closes_a_circle(graph, ("a", "c"))
