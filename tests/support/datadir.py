"""Removing a test's data directory together with the embedded PostgreSQL cluster it holds.

As root with a repository under a private directory (``/root`` is 0700), the embedded cluster
lives outside the data directory, in ``/var/lib/openblynk/...``, and ``DATA_DIR/postgres`` is a
link to it (``backend.db.embedded``). Deleting the data directory alone would leave that
cluster behind after every test run, so fixtures remove it through here.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from backend.db.embedded import EmbeddedPostgres

# where the fixtures keep their clusters: DATA_DIR/postgres (serve, import) and the
# resilience tests' DATA_DIR/pg/postgres
_CLUSTERS = ("postgres", "pg/postgres")


def remove_data_dir(data_dir: Path) -> None:
    """Stop and delete any embedded cluster in ``data_dir``, wherever it lives, then the directory."""
    for relative in _CLUSTERS:
        pgdata = data_dir / relative
        if pgdata.is_symlink() or pgdata.exists():
            EmbeddedPostgres(pgdata).remove()
    shutil.rmtree(data_dir, ignore_errors=True)
