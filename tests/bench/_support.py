"""What the benchmarks share: a throw-away embedded PostgreSQL and a progress line."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from backend.db.embedded import EmbeddedPostgres  # noqa: E402


@contextmanager
def scratch_database(name: str) -> Iterator[str]:
    """A fresh embedded PostgreSQL in .pytest-data/<name>, removed afterwards; yields its URL."""
    pgdir = ROOT / ".pytest-data" / name / "postgres"
    shutil.rmtree(pgdir.parent, ignore_errors=True)
    server = EmbeddedPostgres(pgdir)
    server.start()
    try:
        yield server.url()
    finally:
        server.stop()
        shutil.rmtree(pgdir.parent, ignore_errors=True)


def progress(label: str, done: int, total: int) -> None:
    """Rewrite one status line on stderr; end it when done."""
    print(f"\r  {label}: {min(done, total):>9,} / {total:,}", end="", file=sys.stderr, flush=True)
    if done >= total:
        print(file=sys.stderr)
