"""Migration 0023 moves the rule state kept in ``automation.state`` (one JSON object an
automation: disarmed devices, when each fired last) into ``automation_device_state`` rows, and
leaves out what it cannot read."""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
from psycopg.types.json import Jsonb

MIGRATION = Path(__file__).resolve().parents[3] / "backend/db/migrations/0023_automation_device_state.sql"


def test_the_kept_json_state_becomes_a_row_per_automation_and_device(pg_server: str, template_db: str) -> None:
    name = f"mig_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {template_db}")
    base, _, query = pg_server.partition("?")
    url = f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DROP TABLE automation_device_state")  # as before 0023
            (org,) = conn.execute("INSERT INTO organization (name) VALUES ('m') RETURNING id").fetchone() or (0,)
            states = [
                {"disarmed": [5, 7], "last": {"5": 1700000000.5, "9": 1700000100}},
                {"disarmed": "bad", "last": {"x": 1, "4": "soon"}},
                {},
            ]
            ids = []
            for n, state in enumerate(states):
                row = conn.execute(
                    "INSERT INTO automation (org_id, name, condition, actions, state) "
                    "VALUES (%s, %s, '{}'::jsonb, '[]'::jsonb, %s) RETURNING id",
                    (org, f"a{n}", Jsonb(state)),
                ).fetchone()
                assert row is not None
                ids.append(row[0])
            conn.execute(MIGRATION.read_bytes())
            rows = conn.execute(
                "SELECT automation_id, device_id, disarmed, last_fired FROM automation_device_state "
                "ORDER BY automation_id, device_id"
            ).fetchall()
        assert rows == [
            (ids[0], 5, True, 1700000000.5),
            (ids[0], 7, True, None),
            (ids[0], 9, False, 1700000100.0),
        ]
    finally:
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
