"""Record changes and read them back per organization.

A change is recorded in the same transaction as the change itself, so the log never claims a
change that was rolled back and never misses one that was committed.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg_pool import AsyncConnectionPool
from sqlmodel.ext.asyncio.session import AsyncSession

from backend.access.permissions import Principal
from backend.csvcells import safe_row
from backend.db.sql import execute, fetch_all, fetch_one
from backend.errors import ValidationError

_COLUMNS = "id, at, org_id, actor_id, actor_email, ip, action, target_type, target_id, details"
CSV_HEADER = ["id", "at", "user", "ip", "action", "target_type", "target_id", "details"]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One recorded change."""

    id: int
    at: datetime
    org_id: int | None
    actor_id: int | None
    actor_email: str
    ip: str | None
    action: str
    target_type: str
    target_id: str | None
    details: dict[str, Any]


def _like(text: str) -> str:
    """``text`` as a LIKE pattern matching itself literally."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Which entries of an organization to read: by user (part of the e-mail, any case), by
    action (its start: ``device`` matches ``device.create``), in ``[since, until)``."""

    user: str = ""
    action: str = ""
    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        if len(self.user) > 200 or len(self.action) > 100:
            raise ValidationError("user is at most 200 characters and action at most 100")
        if self.since and self.until and self.until <= self.since:
            raise ValidationError("until must be after since")

    def where(self, org_id: int, mark: str = ":{}") -> tuple[str, dict[str, Any]]:
        """The SQL condition and its parameters; ``mark`` spells a placeholder (``:{}`` for
        SQLAlchemy's text, ``%({})s`` for psycopg)."""
        conditions = {
            "org": ("org_id = {}", org_id),
            "user": ("actor_email ILIKE {}", f"%{_like(self.user)}%" if self.user else None),
            "action": ("action LIKE {}", f"{_like(self.action)}%" if self.action else None),
            "since": ("at >= {}", self.since),
            "until": ("at < {}", self.until),
        }
        wanted = {name: c for name, c in conditions.items() if c[1] is not None}
        sql = " AND ".join(c[0].format(mark.format(name)) for name, c in wanted.items())
        return sql, {name: c[1] for name, c in wanted.items()}


def _csv_line(writer: Any, out: io.StringIO, cells: list[str]) -> bytes:
    writer.writerow(safe_row(cells))
    text = out.getvalue()
    out.seek(0)
    out.truncate()
    return text.encode()


async def stream_csv(pool: AsyncConnectionPool, org_id: int, wanted: AuditFilter) -> AsyncIterator[bytes]:
    """The entries of ``wanted`` as CSV, oldest first, read through a server-side cursor (memory
    does not grow with the log); no cell a spreadsheet would run as a formula."""
    where, params = wanted.where(org_id, "%({})s")
    sql = f"SELECT {_COLUMNS} FROM audit_log WHERE {where} ORDER BY id"  # noqa: S608 (fixed parts)
    out = io.StringIO()
    writer = csv.writer(out)
    yield _csv_line(writer, out, CSV_HEADER)
    async with pool.connection() as conn, conn.transaction():
        async with conn.cursor(name="audit_export") as cur:
            cur.itersize = 2000
            await cur.execute(sql, params)
            async for row in cur:
                _id, at, _org, _actor, email, ip, action, ttype, tid, details = row
                cells = [str(_id), at.isoformat(), email, ip or "", action, ttype, tid or "", json.dumps(details)]
                yield _csv_line(writer, out, cells)


class AuditService:
    """The audit log of one database session."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def record(
        self,
        actor: Principal | None,
        org_id: int | None,
        action: str,
        target_type: str,
        target_id: object = None,
        *,
        ip: str | None = None,
        actor_email: str = "",
        **details: Any,
    ) -> None:
        """Log ``action`` on a target, by ``actor`` (None for a visitor, e.g. a sign-up)."""
        await execute(
            self.session,
            """
            INSERT INTO audit_log (org_id, actor_id, actor_email, ip, action, target_type, target_id, details)
            VALUES (:org, :actor, :email, :ip, :action, :ttype, :tid, CAST(:details AS jsonb))""",
            org=org_id,
            actor=actor.user_id if actor and actor.client_id is None else None,
            email=actor.email if actor else actor_email,
            ip=actor.ip if actor else ip,
            action=action,
            ttype=target_type,
            tid=None if target_id is None else str(target_id),
            details=json.dumps(details, default=str),
        )

    async def page(
        self, org_id: int, page: int, size: int, wanted: AuditFilter | None = None
    ) -> tuple[list[AuditEntry], int]:
        """Entries of one organization (those ``wanted``), newest first; and how many there are."""
        where, params = (wanted or AuditFilter()).where(org_id)
        rows = await fetch_all(
            self.session,
            f"SELECT {_COLUMNS} FROM audit_log WHERE {where} ORDER BY id DESC LIMIT :size OFFSET :offset",  # noqa: S608
            size=size,
            offset=page * size,
            **params,
        )
        total = await fetch_one(self.session, f"SELECT count(*) AS n FROM audit_log WHERE {where}", **params)  # noqa: S608
        return [AuditEntry(**row) for row in rows], int(total["n"]) if total else 0
