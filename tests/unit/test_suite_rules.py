"""Every pass checks something, and no skip hides breakage (issue #23 item 12).

Reads the test suite with ``ast`` (nothing is imported or run) and fails on:

* a test function with no check in it: no ``assert`` (nor ``raise AssertionError``), no
  ``pytest.raises``/``warns``/``fail``, no call to a function of its own module that asserts
  (or calls one that does), and no call to a shared helper of :data:`ASSERTING_HELPERS`;
* a skip (``pytest.skip``, ``pytest.importorskip``, ``pytest.mark.skip``/``skipif``) whose
  reason is not, word for word, in :data:`ALLOWED_SKIPS`: a skip must name something a
  machine running ``make test`` may truly lack, not a dependency the project pins.

A shared helper joins :data:`ASSERTING_HELPERS` only if every function of that name in
``tests/`` asserts (``assert``, ``raise AssertionError``, ``pytest.fail``); that is checked here
too. A failure here is fixed in the test (make it check what it claims), not in the lists.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
SKIPPED_FOLDERS = {"bench"}
"""Benchmarks print figures; they are not pass/fail tests (tests/bench/README.md)."""

ASSERTING_HELPERS = {
    "wait_for": "tests/support/net.py: AssertionError when the condition never holds",
    "eventually": "tests/support/net.py: wait_for for async tests",
}
"""Shared helpers whose call is a test's check (a test module's own functions that assert
count without being listed)."""

ALLOWED_SKIPS = {
    "runs openblynk as root, as `make run` from /root does; this user is not root": "only root can run it; make test as a normal user cannot",
    "mounting a tmpfs for a full disk needs root; this user is not root": "only root can mount; make test as a normal user cannot",
    "the local PGlite TimescaleDB build crashes on COPY FROM STDIN, so the history writer's binary COPY into "
    "the hypertable (raw rows and rollups) runs only against a real TimescaleDB server: set "
    "OPENBLYNK_TEST_TIMESCALE_URL": "a TimescaleDB server is not something make test can install",
    "PAHO_MQTT_TESTING does not name a checkout of eclipse/paho.mqtt.testing's interoperability/ "
    "(the suite is on no package registry this machine reaches); test_paho_interop_port.py runs its checks": (
        "the suite is fetched from GitHub, which a machine with only the package registries cannot reach; "
        "its ten checks also run ported in test_paho_interop_port.py"
    ),
}
"""The only skip reasons allowed, each with why a machine may lack what it names."""

CHECK_CALLS = {"raises", "warns", "fail", "deprecated_call"}
SKIP_CALLS = {"skip", "skipif", "importorskip"}


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}"


def _called_name(call: ast.Call) -> str | None:
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return None


def _is_pytest(node: ast.expr) -> bool:
    """``pytest`` or ``pytest.mark``."""
    if isinstance(node, ast.Name):
        return node.id == "pytest"
    return isinstance(node, ast.Attribute) and node.attr == "mark" and _is_pytest(node.value)


def _asserts(function: ast.AST) -> bool:
    """Whether code asserts: ``assert``, ``raise AssertionError(...)`` or ``pytest.fail``."""
    for node in ast.walk(function):
        if isinstance(node, ast.Assert):
            return True
        if isinstance(node, ast.Raise) and node.exc is not None:
            raised = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(raised, ast.Name) and raised.id == "AssertionError":
                return True
        if isinstance(node, ast.Call) and _called_name(node) == "fail":
            return True
    return False


def _checks(function: ast.AST, helpers: set[str]) -> bool:
    """Whether a test checks: it asserts, uses ``pytest.raises``/``warns``, or calls a helper of ``helpers``."""
    if _asserts(function):
        return True
    for node in ast.walk(function):
        if isinstance(node, ast.Call):
            name = _called_name(node)
            if name in helpers or (
                name in CHECK_CALLS and isinstance(node.func, ast.Attribute) and _is_pytest(node.func.value)
            ):
                return True
    return False


def local_helpers(tree: ast.Module, helpers: set[str]) -> set[str]:
    """``helpers`` and the module's own functions that assert or call one that does (to a fixed point)."""
    found = set(helpers)
    functions = [
        node
        for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("test")
    ]
    while True:
        more = {f.name for f in functions if f.name not in found and _checks(f, found)}
        if not more:
            return found
        found |= more


def _functions(tree: ast.AST) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def _tests(tree: ast.Module) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    """Module-level ``test*`` functions and ``test*`` methods of ``Test*`` classes (pytest's rule)."""
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
            yield node
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name.startswith("test"):
                    yield item


def _reason(call: ast.Call) -> ast.expr | None:
    """``reason=``, or ``pytest.skip``'s first argument."""
    for keyword in call.keywords:
        if keyword.arg == "reason":
            return keyword.value
    return call.args[0] if _called_name(call) == "skip" and call.args else None


def unchecked_tests(source: str, path: str, helpers: set[str]) -> list[Finding]:
    """Test functions of one test module that check nothing."""
    tree = ast.parse(source)
    known = local_helpers(tree, helpers)
    return [
        Finding(
            path,
            test.lineno,
            f"{test.name} checks nothing: no assert, no pytest.raises, no call to a "
            "function of its module that asserts or of ASSERTING_HELPERS",
        )
        for test in _tests(tree)
        if not _checks(test, known)
    ]


def bad_skips(source: str, path: str, allowed: dict[str, str]) -> list[Finding]:
    """Skips of one module whose reason is not in ``allowed``."""
    tree = ast.parse(source)
    found: list[Finding] = []
    called = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "pytest":
            for alias in node.names:
                if alias.name in SKIP_CALLS | {"mark"}:
                    found.append(
                        Finding(
                            path,
                            node.lineno,
                            f"'from pytest import {alias.name}': use pytest.<name> so skips can be checked",
                        )
                    )
        if isinstance(node, ast.Attribute) and node.attr in SKIP_CALLS and _is_pytest(node.value):
            if id(node) not in called:  # a bare @pytest.mark.skip: no reason at all
                found.append(Finding(path, node.lineno, f"pytest.{node.attr} without a reason"))
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in SKIP_CALLS
            and _is_pytest(node.func.value)
        ):
            continue
        reason = _reason(node)
        text = reason.value if isinstance(reason, ast.Constant) and isinstance(reason.value, str) else None
        if text is None:
            found.append(Finding(path, node.lineno, f"pytest.{node.func.attr} without a literal reason"))
        elif text not in allowed:
            found.append(
                Finding(path, node.lineno, f"pytest.{node.func.attr} for a reason not in ALLOWED_SKIPS: {text!r}")
            )
    return sorted(found, key=lambda f: f.line)


def _suite() -> Iterator[tuple[Path, str]]:
    for path in sorted(TESTS.rglob("*.py")):
        if SKIPPED_FOLDERS.isdisjoint(path.relative_to(TESTS).parts):
            yield path, path.read_text(encoding="utf-8")


def _is_test_module(path: Path) -> bool:
    return path.name.startswith("test_") or path.name.endswith("_test.py")


# -- the suite itself -------------------------------------------------------------------------


def test_every_test_checks_something() -> None:
    found = [
        f
        for path, source in _suite()
        if _is_test_module(path)
        for f in unchecked_tests(source, str(path.relative_to(TESTS.parent)), set(ASSERTING_HELPERS))
    ]
    assert not found, "\n".join(map(str, found))


def test_every_skip_names_something_this_machine_may_truly_lack() -> None:
    found = [
        f for path, source in _suite() for f in bad_skips(source, str(path.relative_to(TESTS.parent)), ALLOWED_SKIPS)
    ]
    assert not found, "\n".join(map(str, found))


def test_the_asserting_helpers_assert() -> None:
    defined: dict[str, list[bool]] = {}
    for _path, source in _suite():
        for function in _functions(ast.parse(source)):
            if function.name in ASSERTING_HELPERS:
                defined.setdefault(function.name, []).append(_asserts(function))
    assert {name: all(results) for name, results in defined.items()} == dict.fromkeys(ASSERTING_HELPERS, True)


# -- the rules on small examples --------------------------------------------------------------


def test_a_test_without_a_check_is_found() -> None:
    source = """
import pytest

def test_nothing():
    value = 1 + 1

def test_assert():
    assert 1 + 1 == 2

def test_raises():
    with pytest.raises(ValueError):
        int("x")

def test_helper():
    wait_for(lambda: True)

def test_raises_of_another_module():
    other.raises(ValueError)

def helper_not_a_test():
    pass

def helper_asserting():
    assert True

def helper_calling_one():
    helper_asserting()

def test_local_helpers():
    helper_calling_one()

def test_a_helper_that_does_not_assert():
    helper_not_a_test()

def test_an_assertion_error_raised():
    def never():
        raise AssertionError("called")
    run(never)

class TestThings:
    def test_method_without_check(self):
        print("hi")
"""
    found = unchecked_tests(source, "t.py", {"wait_for"})
    assert [(f.line, f.what.split()[0]) for f in found] == [
        (4, "test_nothing"),
        (17, "test_raises_of_another_module"),
        (32, "test_a_helper_that_does_not_assert"),
        (41, "test_method_without_check"),
    ]


def test_a_skip_outside_the_allow_list_is_found() -> None:
    source = """
import os
import pytest

pytest.importorskip("tzfpy")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="allowed reason")
other = pytest.mark.skipif(True, reason="not yet")

@pytest.mark.skip
def test_a(): assert True

def test_b():
    pytest.skip("allowed reason")
    pytest.skip(f"computed {1}")
    pytest.skip(reason="not yet")
"""
    found = bad_skips(source, "t.py", {"allowed reason": "why"})
    assert [(f.line, f.what) for f in found] == [
        (5, "pytest.importorskip without a literal reason"),
        (7, "pytest.skipif for a reason not in ALLOWED_SKIPS: 'not yet'"),
        (9, "pytest.skip without a reason"),
        (14, "pytest.skip without a literal reason"),
        (15, "pytest.skip for a reason not in ALLOWED_SKIPS: 'not yet'"),
    ]


def test_a_helper_asserts_only_with_an_assert_a_raised_assertion_error_or_fail() -> None:
    tree = ast.parse("""
def a(): assert x
def b(): raise AssertionError("no")
def c(): pytest.fail("no")
def d(): return x == 1
def e(): raise ValueError("no")
""")
    assert {f.name: _asserts(f) for f in _functions(tree)} == {"a": True, "b": True, "c": True, "d": False, "e": False}
