"""The console's third-party browser files (htmx, uPlot): which ones, where the package keeps
them, and how a build takes them from npm.

They come from the npm registry at build time, at the versions of ``console_ui/package-lock.json``
(nothing is committed, nothing comes from a CDN): the build (``setup.py``, also run by
``pip install -e .`` and ``make install``) runs ``npm ci --prefix console_ui`` when
``node_modules`` is missing or differs from the lock, and copies just the files in ``FILES``,
with their licences, to ``console_ui/static/vendor/`` (git-ignored). A wheel carries that
directory, so an installed openblynk needs no Node.js; the app serves the files from there.

This module uses the standard library only and imports nothing of the project: ``setup.py``
loads it by its path before anything is installed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENDOR_DIR = HERE / "static" / "vendor"
"""Where the package keeps the files (``/static/vendor/<name>`` on the console)."""
VERSIONS = "versions.json"
"""In ``VENDOR_DIR``: the npm package versions the files were copied from."""

FILES: dict[str, tuple[str, str]] = {
    "htmx.min.js": ("htmx.org", "dist/htmx.min.js"),
    "uPlot.iife.min.js": ("uplot", "dist/uPlot.iife.min.js"),
    "uPlot.min.css": ("uplot", "dist/uPlot.min.css"),
}
"""The only third-party files the console serves: the name pages use -> (npm package, path in it)."""

FIX = (
    "install openblynk from its wheel (it carries them), or in a checkout run `make install` "
    "(or `npm ci --prefix console_ui` then `pip install -e .`)"
)


class VendorError(Exception):
    """The build could not take the browser files from npm (no npm, or ``npm ci`` failed)."""


def missing(vendor_dir: Path = VENDOR_DIR) -> list[str]:
    """The names in ``FILES`` that are not in ``vendor_dir``."""
    return [name for name in FILES if not (vendor_dir / name).is_file()]


def problem(vendor_dir: Path = VENDOR_DIR) -> str | None:
    """One line saying which browser files are missing and what to run; None when all are there."""
    absent = missing(vendor_dir)
    if not absent:
        return None
    return (
        f"the console's browser files ({', '.join(absent)}) are missing from {vendor_dir}, so its pages "
        f"cannot work: {FIX}"
    )


def locked_versions(ui_dir: Path = HERE) -> dict[str, str]:
    """The version of each package in ``FILES``, as ``ui_dir/package-lock.json`` pins it."""
    lock = json.loads((ui_dir / "package-lock.json").read_text(encoding="utf-8"))
    packages = lock["packages"]
    return {name: str(packages[f"node_modules/{name}"]["version"]) for name in _packages()}


def installed_versions(ui_dir: Path = HERE) -> dict[str, str | None]:
    """The version of each package in ``FILES`` found in ``ui_dir/node_modules`` (None: absent)."""
    found: dict[str, str | None] = {}
    for name in _packages():
        manifest = ui_dir / "node_modules" / name / "package.json"
        found[name] = str(json.loads(manifest.read_text(encoding="utf-8"))["version"]) if manifest.is_file() else None
    return found


def vendored_versions(vendor_dir: Path = VENDOR_DIR) -> dict[str, str] | None:
    """The versions ``vendor_dir`` was copied from, or None when it holds no complete copy."""
    record = vendor_dir / VERSIONS
    if missing(vendor_dir) or not record.is_file():
        return None
    return {str(k): str(v) for k, v in json.loads(record.read_text(encoding="utf-8")).items()}


def build(ui_dir: Path = HERE, vendor_dir: Path = VENDOR_DIR) -> bool:
    """Make ``vendor_dir`` hold the files at the lock's versions: nothing to do when it already
    does; else ``npm ci`` when ``node_modules`` is missing or differs from the lock, then copy.
    True when files were copied."""
    wanted = locked_versions(ui_dir)
    if vendored_versions(vendor_dir) == wanted:
        return False
    if installed_versions(ui_dir) != wanted:
        _npm_ci(ui_dir)
    if installed_versions(ui_dir) != wanted:
        raise VendorError(f"npm ci did not install {wanted} into {ui_dir / 'node_modules'}")
    if vendor_dir.exists():
        shutil.rmtree(vendor_dir)
    vendor_dir.mkdir(parents=True)
    for name, (package, path) in FILES.items():
        shutil.copyfile(ui_dir / "node_modules" / package / path, vendor_dir / name)
    for package in _packages():  # the licences travel with the files
        shutil.copyfile(ui_dir / "node_modules" / package / "LICENSE", vendor_dir / f"{package}.LICENSE")
    (vendor_dir / VERSIONS).write_text(json.dumps(wanted, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return True


def _npm_ci(ui_dir: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise VendorError(
            "building openblynk takes the console's browser files from npm, at the versions of "
            f"{ui_dir / 'package-lock.json'}: install Node.js (npm), or install a built wheel"
        )
    cmd = [npm, "ci", "--prefix", str(ui_dir), "--no-audit", "--no-fund", "--loglevel=error"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise VendorError(f"`{' '.join(cmd)}` failed ({result.returncode}): {result.stderr.strip()[-2000:]}")


def _packages() -> list[str]:
    return sorted({package for package, _ in FILES.values()})
