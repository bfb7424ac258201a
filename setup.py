"""The build step the declarative configuration in pyproject.toml cannot express: before the
packages are built, the console's third-party browser files are taken from npm at the versions
of ``console_ui/package-lock.json`` and copied into ``console_ui/static/vendor/`` (see
``console_ui/vendor.py``), so that the wheel (and an editable install) carries them.
"""

from __future__ import annotations

import runpy
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildWithBrowserFiles(build_py):
    """``build_py`` that first brings the console's browser files into the package."""

    def run(self) -> None:
        vendor = runpy.run_path(str(ROOT / "console_ui" / "vendor.py"))
        try:
            copied = vendor["build"](ROOT / "console_ui", ROOT / "console_ui" / "static" / "vendor")
        except vendor["VendorError"] as exc:
            raise SystemExit(f"openblynk: {exc}") from exc
        if copied:
            self.announce("copied the console's browser files into console_ui/static/vendor", level=2)
        super().run()


setup(cmdclass={"build_py": BuildWithBrowserFiles})
