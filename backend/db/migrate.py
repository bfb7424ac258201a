"""Versioned schema migrations, applied at start-up.

Migrations are plain SQL files ``migrations/NNNN_name.sql`` applied in order, each in its own
transaction, under a PostgreSQL advisory lock so that several processes starting at once
(broker, app, a CLI import) never race. The applied versions are kept in
``schema_migrations``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources

import psycopg

from backend.errors import DatabaseError

log = logging.getLogger(__name__)

MIGRATION_LOCK = 0x0B1E_0001  # advisory lock id
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, order=True)
class Migration:
    """One SQL migration file."""

    version: int
    name: str
    sql: str


def available() -> list[Migration]:
    """Every migration shipped with this release, in order."""
    found = []
    for entry in resources.files("backend.db.migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text()))
    found.sort()
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise DatabaseError(f"migration versions must be 1..N without gaps, found {versions}")
    return found


def migrate(url: str, target: int | None = None) -> list[int]:
    """Apply pending migrations up to ``target`` (all by default); return what was applied."""
    try:
        conn = psycopg.connect(url, autocommit=True)
    except psycopg.OperationalError as exc:
        raise DatabaseError(f"cannot connect to PostgreSQL to migrate: {exc}") from exc
    applied: list[int] = []
    with conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, "
                "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            for migration in available():
                if migration.version in done or (target is not None and migration.version > target):
                    continue
                log.info("applying migration %04d_%s", migration.version, migration.name)
                with conn.transaction():
                    conn.execute(migration.sql.encode())
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                        (migration.version, migration.name),
                    )
                applied.append(migration.version)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
    return applied


def current_version(url: str) -> int:
    """The highest applied migration version (0 for an empty database)."""
    with psycopg.connect(url) as conn:
        exists = conn.execute("SELECT to_regclass('schema_migrations')").fetchone()
        if not exists or exists[0] is None:
            return 0
        row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
        return int(row[0]) if row else 0
