"""Attempts counted per key in a sliding window kept in PostgreSQL, so every app process counts
the same attempts: the one mechanism behind the sign-in and claim throttles and the webhooks'
requests a minute.

A throttle owns a table of ``(scope, key, at)`` rows (one row an attempt counted; ``scope``
says what ``key`` is: an account, an address, a webhook) and a namespace of advisory locks. A
check first takes a transaction-scoped advisory lock per key, always in one order (so two
checks never wait on each other crosswise), then counts the key's rows in the window; whatever
the caller counts before its transaction ends (and releases the locks) is seen by the next
check, from any process. So concurrent attempts cannot race past the limit.

Two ways to count, both served by :class:`WindowThrottle`:

- **every attempt** (:meth:`WindowThrottle.attempt`): check and count in one step, before the
  attempt's work; an attempt that turns out not to count takes its row back
  (:meth:`WindowThrottle.take_back`). Sign-in counts this way (the password is checked only
  after the attempt counted), and so do webhook requests;
- **failures only** (:meth:`WindowThrottle.guard` before the work, :meth:`WindowThrottle.count`
  after a failure, within the same transaction). Claim codes count this way.

Past a limit, :class:`~backend.errors.RateLimitedError` with the seconds until enough rows left
the window (``Retry-After``). The SQL runs through a :data:`Sql` callable, so the throttle works
on a request's ORM session (:func:`on_session`) and on a psycopg connection (:func:`on_connection`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from backend.errors import RateLimitedError

Sql = Callable[[str, dict[str, Any]], Awaitable[list[Mapping[str, Any]]]]
"""Runs one statement (``:name`` placeholders) in the caller's transaction; its rows."""
Key = tuple[str, str]
"""``(scope, key)``."""

_NOW = "coalesce(CAST(:now AS timestamptz), now())"


def on_session(session: AsyncSession) -> Sql:
    """:data:`Sql` on an ORM session (the request's transaction)."""

    async def run(sql: str, params: dict[str, Any]) -> list[Mapping[str, Any]]:
        result = await session.exec(text(sql).bindparams(**params))  # type: ignore[call-overload]
        return list(result.mappings()) if result.returns_rows else []

    return run


def on_connection(conn: AsyncConnection[Any]) -> Sql:
    """:data:`Sql` on a psycopg connection (in a transaction the caller opened)."""

    async def run(sql: str, params: dict[str, Any]) -> list[Mapping[str, Any]]:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(_PLACEHOLDER.sub(r"%(\1)s", sql), params)
        return list(await cur.fetchall()) if cur.description is not None else []

    return run


_PLACEHOLDER = re.compile(r"(?<![:\w]):(\w+)")


class WindowThrottle:
    """At most ``limits[scope]`` rows per key of ``table`` within ``window_seconds`` (a limit of
    0 or less: no limit for that scope). ``messages[scope]`` is the refusal's text, with
    ``{wait}`` for the seconds to wait. ``clock`` (epoch seconds) replaces the database's time
    (tests move it); by default the window runs on PostgreSQL's clock, one for every process."""

    def __init__(
        self,
        table: str,
        lock_namespace: int,
        limits: Mapping[str, int],
        window_seconds: float,
        messages: Mapping[str, str],
        *,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if not table.isidentifier():
            raise ValueError(f"not a table name: {table!r}")
        self.table = table
        self.lock_namespace = lock_namespace
        self.limits = dict(limits)
        self.window = window_seconds
        self.messages = dict(messages)
        self.clock = clock

    def _now(self) -> datetime | None:
        return None if self.clock is None else datetime.fromtimestamp(self.clock(), UTC)

    async def guard(self, sql: Sql, keys: Sequence[Key]) -> None:
        """Lock ``keys`` (until the caller's transaction ends) and refuse
        (``RateLimitedError``) if any of them is at its limit."""
        ordered = sorted(keys)
        for scope, key in ordered:  # one order everywhere
            await sql(
                "SELECT pg_advisory_xact_lock(:ns, hashtext(:lock))",
                {"ns": self.lock_namespace, "lock": f"{scope}:{key}"},
            )
        now = self._now()
        for scope, key in ordered:
            limit = self.limits.get(scope, 0)
            if limit <= 0:
                continue
            rows = await sql(
                f"SELECT extract(epoch FROM at + make_interval(secs => :window) - {_NOW}) AS wait FROM {self.table}"
                f" WHERE scope = :scope AND key = :key AND at > {_NOW} - make_interval(secs => :window)"
                " ORDER BY at DESC OFFSET :skip LIMIT 1",
                {"scope": scope, "key": key, "window": self.window, "now": now, "skip": limit - 1},
            )
            if rows:
                wait = max(1, math.ceil(float(rows[0]["wait"])))
                raise RateLimitedError(self.messages[scope].format(wait=wait), wait)

    async def count(self, sql: Sql, keys: Sequence[Key]) -> datetime:
        """Count one attempt for each of ``keys`` (dropping their rows that left the window);
        the time it is counted at."""
        now = self._now()
        at: datetime | None = None
        for scope, key in sorted(keys):
            await sql(
                f"DELETE FROM {self.table} WHERE scope = :scope AND key = :key"
                f" AND at <= {_NOW} - make_interval(secs => :window)",
                {"scope": scope, "key": key, "window": self.window, "now": now},
            )
            rows = await sql(
                f"INSERT INTO {self.table} (scope, key, at) VALUES (:scope, :key, {_NOW}) RETURNING at",
                {"scope": scope, "key": key, "now": now},
            )
            at = rows[0]["at"]
        assert at is not None, "count() needs a key"
        return at

    async def attempt(self, sql: Sql, keys: Sequence[Key]) -> datetime:
        """Refuse if any key is at its limit, else count the attempt (:meth:`guard`, then
        :meth:`count`); the time it is counted at, for :meth:`take_back`."""
        await self.guard(sql, keys)
        return await self.count(sql, keys)

    async def take_back(self, sql: Sql, key: Key, at: datetime) -> None:
        """Remove one row of ``key`` counted at ``at`` (rows are only ``(scope, key, at)``:
        removing any one equal to it is removing it)."""
        await sql(
            f"DELETE FROM {self.table} WHERE ctid = (SELECT ctid FROM {self.table}"
            " WHERE scope = :scope AND key = :key AND at = :at LIMIT 1)",
            {"scope": key[0], "key": key[1], "at": at},
        )

    async def forget(self, sql: Sql, key: Key) -> None:
        """Remove every row of ``key``."""
        await sql(f"DELETE FROM {self.table} WHERE scope = :scope AND key = :key", {"scope": key[0], "key": key[1]})
