"""The TimescaleDB path: ``history`` as a hypertable with compression and retention policies.

On a server where the ``timescaledb`` extension is available (and ``OPENBLYNK_TIMESCALE`` is
not ``off``), :func:`adopt` runs once at start-up, after the migrations:

* it creates the extension and replaces the natively partitioned ``history`` (migration
  0001) by a hypertable of the same columns with daily chunks, copying any rows over, in one
  transaction;
* compresses chunks older than :data:`COMPRESS_AFTER` segmented by (device_id, pin) and
  ordered by ts, as a Timescale policy (its columnar compression does what
  :mod:`backend.history.packing` does on plain PostgreSQL, which then stays idle).

The maintenance job keeps a Timescale retention policy at the longest raw retention of any
template (:func:`set_retention`) instead of dropping partitions itself.

Nothing else changes: the writer COPYs into ``history``, every reader goes through
``history_points()``, the rollup tables stay ordinary partitioned tables, and the maintenance
job still trims templates that keep raw data for less than the global retention.
"""

from __future__ import annotations

import logging

import psycopg
from psycopg import AsyncConnection

from backend.errors import ConfigError

log = logging.getLogger(__name__)

COMPRESS_AFTER = "2 days"

_AVAILABLE_SQL = "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')"
_INSTALLED_SQL = "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')"
_HYPERTABLE_SQL = """
SELECT EXISTS (SELECT 1 FROM timescaledb_information.hypertables
               WHERE hypertable_schema = current_schema() AND hypertable_name = 'history')
"""
_CONVERT = [
    "ALTER TABLE history RENAME TO history_partitioned",
    "ALTER INDEX history_device_pin_ts_idx RENAME TO history_partitioned_device_pin_ts_idx",
    "CREATE TABLE history (LIKE history_partitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS)",
    "SELECT create_hypertable('history', 'ts', chunk_time_interval => INTERVAL '1 day')",
    "CREATE INDEX history_device_pin_ts_idx ON history (device_id, pin, ts)",
    "INSERT INTO history SELECT device_id, pin, ts, value, text_value FROM history_partitioned",
    "DROP TABLE history_partitioned",
    "ALTER TABLE history SET (timescaledb.compress, timescaledb.compress_segmentby = 'device_id, pin', "
    "timescaledb.compress_orderby = 'ts')",
    f"SELECT add_compression_policy('history', INTERVAL '{COMPRESS_AFTER}', if_not_exists => true)",
]


def adopt(url: str, mode: str = "auto") -> bool:
    """Make ``history`` a hypertable if TimescaleDB is available; True if it is one now.

    ``mode``: ``auto`` (use TimescaleDB when the server has it), ``off`` (never), ``require``
    (fail if the server does not have it).
    """
    if mode == "off":
        return False
    with psycopg.connect(url, autocommit=True) as conn:
        if not _one(conn, _AVAILABLE_SQL):
            if mode == "require":
                raise ConfigError(
                    "OPENBLYNK_TIMESCALE=require, but this PostgreSQL server has no timescaledb "
                    "extension; install TimescaleDB or set OPENBLYNK_TIMESCALE=auto"
                )
            return False
        conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        if not _one(conn, _HYPERTABLE_SQL):
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (0x0B1E_0005,))
                if not _one(conn, _HYPERTABLE_SQL):  # another process may have converted meanwhile
                    for statement in _CONVERT:
                        conn.execute(statement)
                    log.info("history is now a TimescaleDB hypertable, compressed after %s", COMPRESS_AFTER)
    return True


async def set_retention(conn: AsyncConnection, days: int) -> bool:
    """The retention policy drops whole chunks older than ``days``; True if it was changed.

    The maintenance job calls this with the longest raw retention of any template (the
    global setting included), as it does for native partitions.
    """
    current = await (
        await conn.execute(
            "SELECT config->>'drop_after' FROM timescaledb_information.jobs "
            "WHERE proc_name = 'policy_retention' AND hypertable_name = 'history'"
        )
    ).fetchone()
    wanted = await (await conn.execute("SELECT (%s * INTERVAL '1 day')::text", (days,))).fetchone()
    if current is not None and wanted is not None and current[0] == wanted[0]:
        return False
    await conn.execute("SELECT remove_retention_policy('history', if_exists => true)")
    await conn.execute("SELECT add_retention_policy('history', %s * INTERVAL '1 day')", (days,))
    log.info("TimescaleDB retention policy of history: %d days", days)
    return True


def _one(conn: psycopg.Connection[tuple[object, ...]], sql: str) -> bool:
    row = conn.execute(sql).fetchone()
    return bool(row and row[0])


async def is_hypertable(conn: AsyncConnection) -> bool:
    """Whether ``history`` is a TimescaleDB hypertable on this database."""
    row = await (await conn.execute(_INSTALLED_SQL)).fetchone()
    if not row or not row[0]:
        return False
    row = await (await conn.execute(_HYPERTABLE_SQL)).fetchone()
    return bool(row and row[0])
