"""Record changes and read them back per organization.

A change is recorded in the same transaction as the change itself, so the log never claims a
change that was rolled back and never misses one that was committed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from backend.access.permissions import Principal
from backend.db.sql import execute, fetch_all, fetch_one


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

    async def page(self, org_id: int, page: int, size: int) -> tuple[list[AuditEntry], int]:
        """Entries of one organization, newest first; and how many there are in all."""
        rows = await fetch_all(
            self.session,
            """
            SELECT id, at, org_id, actor_id, actor_email, ip, action, target_type, target_id, details
            FROM audit_log WHERE org_id = :org ORDER BY id DESC LIMIT :size OFFSET :offset""",
            org=org_id,
            size=size,
            offset=page * size,
        )
        total = await fetch_one(self.session, "SELECT count(*) AS n FROM audit_log WHERE org_id = :org", org=org_id)
        return [AuditEntry(**row) for row in rows], int(total["n"]) if total else 0
