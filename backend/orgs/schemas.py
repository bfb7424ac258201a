"""Wire types of the organization routes (separate from the tables)."""

from __future__ import annotations

import msgspec

from backend.orgs.tree import OrgInfo

# What the services return is what goes on the wire: one class per shape, never a mirror.
OrgOut = OrgInfo


class OrgCreateIn(msgspec.Struct):
    name: str
    parent_id: int | None = None
    tz: str | None = None


class OrgUpdateIn(msgspec.Struct):
    name: str | None = None
    tz: str | None = None


class OrgMoveIn(msgspec.Struct):
    parent_id: int
