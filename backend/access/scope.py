"""Which organizations a principal may see: the scope every query is limited to.

A user sees their own organization; with ``orgs.view_sub`` also every organization below it
(its subtree). Anything outside that scope does not exist for them: asking for it is a
``NotFoundError``, the same answer as for an id that was never used, so one tenant cannot
learn of another. Templates reach the other way: a device may use a template of its own
organization or of one above it (its ancestry), as a manufacturer's templates serve its
customers on Blynk.
"""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from backend.access.permissions import Permission, Principal
from backend.db.sql import fetch_all, fetch_one
from backend.errors import NotFoundError

_SUBTREE = """WITH RECURSIVE sub(id, level) AS (
                  SELECT id, 0 FROM organization WHERE id = :root
                  UNION ALL SELECT o.id, s.level + 1 FROM organization o JOIN sub s ON o.parent_id = s.id)
              SELECT id, level FROM sub"""
_ANCESTRY = """WITH RECURSIVE up(id, parent_id, level) AS (
        SELECT id, parent_id, 1 FROM organization WHERE id = :org
        UNION ALL SELECT o.id, o.parent_id, u.level + 1 FROM organization o JOIN up u ON o.id = u.parent_id)
    SELECT id FROM up ORDER BY level"""


async def subtree(session: AsyncSession, root: int) -> dict[int, int]:
    """``root`` and every organization below it, each with its level below ``root`` (``root``
    is 0; empty for an unknown id)."""
    return {int(row["id"]): int(row["level"]) for row in await fetch_all(session, _SUBTREE, root=root)}


async def ancestry(session: AsyncSession, org_id: int) -> list[int]:
    """``org_id`` and every organization above it, up to the root (empty for an unknown id)."""
    return [int(row["id"]) for row in await fetch_all(session, _ANCESTRY, org=org_id)]


async def template_above(session: AsyncSession, template_id: int, org_id: int) -> bool:
    """Whether a template belongs to ``org_id`` or an organization above it: the templates a
    device of ``org_id`` may use (a manufacturer's templates serve its customers, as on Blynk)."""
    row = await fetch_one(
        session,
        "SELECT 1 AS ok FROM template WHERE id = :template AND org_id = ANY(:orgs)",
        template=template_id,
        orgs=await ancestry(session, org_id),
    )
    return row is not None


class Scope:
    """The organizations one principal may see, worked out once per request."""

    def __init__(self, session: AsyncSession, principal: Principal) -> None:
        self.session = session
        self.principal = principal
        self._ids: frozenset[int] | None = None

    async def org_ids(self) -> frozenset[int]:
        """Their organization, and its descendants when the role allows."""
        if self._ids is None:
            if self.principal.has(Permission.ORGS_VIEW_SUB):
                self._ids = frozenset(await subtree(self.session, self.principal.org_id))
            else:
                self._ids = frozenset({self.principal.org_id})
        return self._ids

    def forget(self) -> None:
        """Work the scope out again at the next question (the tree changed in this request)."""
        self._ids = None

    async def require_org(self, org_id: int) -> None:
        """Refuse an organization outside the scope exactly as one that does not exist."""
        if org_id not in await self.org_ids():
            raise NotFoundError("organization not found")
