"""The psycopg pool tries a connection with a round trip before handing it out only when it
rested a while or something arrived on it (issue #16: a round trip on every hand-out was 6.6 %
of the broker's CPU in a connect storm); a connection the server ended is still replaced.

What the pool's check did shows in ``pg_stat_activity``: its empty query becomes the last
statement of the connection's server process."""

from __future__ import annotations

import asyncio

import psycopg

from backend.db.engine import Database


def last_statement(url: str, backend_pid: int) -> str:
    """The last statement the server process ``backend_pid`` ran, seen from another connection."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", (backend_pid,)).fetchone()
    assert row is not None
    return str(row[0])


async def used(db: Database, statement: str) -> int:
    """Run ``statement`` on a pooled connection; the pid of its server process."""
    async with db.pool.connection() as conn:
        await conn.execute(statement)
        return conn.info.backend_pid


async def test_a_connection_used_just_now_is_handed_out_without_a_round_trip(fresh_db: str) -> None:
    async with Database(fresh_db, pool_size=1) as db:
        pid = await used(db, "SELECT 'used just now'")
        async with db.pool.connection() as conn:
            assert conn.info.backend_pid == pid
            assert last_statement(fresh_db, pid) == "SELECT 'used just now'"  # no check ran


async def test_a_connection_that_rested_is_tried_before_it_is_handed_out(fresh_db: str) -> None:
    async with Database(fresh_db, pool_size=1) as db:
        db.pool.check_after = 0.1
        pid = await used(db, "SELECT 'then rested'")
        await asyncio.sleep(0.3)
        async with db.pool.connection() as conn:
            assert conn.info.backend_pid == pid
            assert last_statement(fresh_db, pid) == ""  # the check's empty query


async def test_a_connection_the_server_ended_just_now_is_replaced(fresh_db: str) -> None:
    """As in a database restart: the server ends the connection right after it was used."""
    async with Database(fresh_db, pool_size=1) as db:
        pid = await used(db, "SELECT 'ended next'")
        with psycopg.connect(fresh_db, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s, 10000)", (pid,))  # waits until it is gone
        async with db.pool.connection() as conn:
            assert conn.info.backend_pid != pid
            assert await (await conn.execute("SELECT 42")).fetchone() == (42,)
