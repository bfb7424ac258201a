"""The build step that brings the console's browser files into the package
(:mod:`console_ui.vendor`), on a console directory made here: a lock, and a ``node_modules``
that already matches it or not (the npm registry is reached only by the wheel test)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from console_ui import vendor

LOCKED = {"htmx.org": "2.0.11", "uplot": "1.6.32"}


def console_dir(root: Path, installed: dict[str, str]) -> Path:
    """A console directory whose lock pins ``LOCKED`` and whose node_modules holds ``installed``."""
    ui = root / "console_ui"
    ui.mkdir()
    packages = {f"node_modules/{name}": {"version": version} for name, version in LOCKED.items()}
    (ui / "package-lock.json").write_text(json.dumps({"lockfileVersion": 3, "packages": {"": {}, **packages}}))
    for name, version in installed.items():
        package = ui / "node_modules" / name
        package.mkdir(parents=True)
        (package / "package.json").write_text(json.dumps({"name": name, "version": version}))
        (package / "LICENSE").write_text(f"{name} licence")
        for served, (owner, path) in vendor.FILES.items():
            if owner == name:
                (package / path).parent.mkdir(parents=True, exist_ok=True)
                (package / path).write_text(f"{served} {version}")
    return ui


def test_build_copies_just_the_served_files_with_their_licences(tmp_path: Path) -> None:
    ui = console_dir(tmp_path, LOCKED)
    dest = ui / "static" / "vendor"
    assert vendor.problem(dest) is not None
    assert vendor.build(ui, dest) is True
    assert sorted(p.name for p in dest.iterdir()) == sorted(
        [*vendor.FILES, "htmx.org.LICENSE", "uplot.LICENSE", vendor.VERSIONS]
    )
    assert (dest / "uPlot.iife.min.js").read_text() == "uPlot.iife.min.js 1.6.32"
    assert vendor.vendored_versions(dest) == LOCKED
    assert vendor.problem(dest) is None
    assert vendor.build(ui, dest) is False  # already at the lock's versions: nothing to do


def test_a_stale_node_modules_is_reinstalled_by_npm_ci(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ui = console_dir(tmp_path, {"htmx.org": "2.0.11", "uplot": "1.6.31"})
    calls: list[Path] = []

    def npm_ci(where: Path) -> None:  # what npm ci does: node_modules as the lock says
        calls.append(where)
        for name, version in LOCKED.items():
            (where / "node_modules" / name / "package.json").write_text(json.dumps({"version": version}))

    monkeypatch.setattr(vendor, "_npm_ci", npm_ci)
    assert vendor.build(ui, ui / "static" / "vendor") is True
    assert calls == [ui]
    assert vendor.vendored_versions(ui / "static" / "vendor") == LOCKED


def test_without_npm_the_build_says_what_it_needs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ui = console_dir(tmp_path, {})
    monkeypatch.setenv("PATH", str(tmp_path))  # no npm on it
    with pytest.raises(vendor.VendorError, match=r"install Node\.js \(npm\), or install a built wheel"):
        vendor.build(ui, ui / "static" / "vendor")


def test_the_missing_files_are_named_with_what_to_run(tmp_path: Path) -> None:
    (tmp_path / "htmx.min.js").write_text("")
    message = vendor.problem(tmp_path)
    assert message is not None and "\n" not in message
    assert "(uPlot.iife.min.js, uPlot.min.css) are missing" in message and "make install" in message
