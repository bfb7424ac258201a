"""A digest of a whole database, to prove that a refused request changed nothing anywhere."""

from __future__ import annotations

import time

import psycopg

CALLER_TRACES: dict[str, tuple[str, ...]] = {
    "user_session": ("last_seen_at", "ip"),  # a session is touched by every request it signs
    "oauth_token": ("used_at",),  # an access token records its last use
    "api_rate": (),  # the platform API counts calls per client
    "device": ("last_seen",),  # a device-token call marks the caller's own device seen
}
"""What a request records about who made it, refused or not: the columns left out of the
digest (a table with no column named is left out whole)."""


def database_state(url: str, ignore: dict[str, tuple[str, ...]] | None = None) -> dict[str, str]:
    """An MD5 of every public table's rows (rows as JSON, in a stable order), without the
    columns of ``ignore`` (``CALLER_TRACES`` by default); compare two to list changed tables."""
    ignore = CALLER_TRACES if ignore is None else ignore
    with psycopg.connect(url, autocommit=True) as db:
        tables = [
            r[0]
            for r in db.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
            ).fetchall()
        ]
        state = {}
        for table in tables:
            if table in ignore and not ignore[table]:
                continue
            dropped = "".join(f" - '{column}'" for column in ignore.get(table, ()))
            row = db.execute(
                f"SELECT md5(coalesce(string_agg((to_jsonb(x){dropped})::text, '|' "
                f"ORDER BY (to_jsonb(x){dropped})::text), '')) FROM {table} x"
            ).fetchone()
            state[table] = str(row[0]) if row else ""
        return state


def changed_tables(before: dict[str, str], after: dict[str, str]) -> set[str]:
    """The tables whose digest differs between two ``database_state`` results."""
    return {t for t in before.keys() | after.keys() if before.get(t) != after.get(t)}


def settled_state(url: str, quiet_seconds: float = 1.5, timeout: float = 30.0) -> dict[str, str]:
    """``database_state`` once two reads ``quiet_seconds`` apart agree: what earlier requests
    queued (the latest values the app writes at most once a second) has landed."""
    deadline = time.monotonic() + timeout
    state = database_state(url)
    while True:
        time.sleep(quiet_seconds)
        again = database_state(url)
        if again == state:
            return state
        assert time.monotonic() < deadline, f"the database kept changing: {sorted(changed_tables(state, again))}"
        state = again
