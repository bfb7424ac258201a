"""Who is asking and what they may reach, as dependencies of a request."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.di import NamedDependency
from sqlmodel.ext.asyncio.session import AsyncSession

from backend.access.permissions import Principal
from backend.access.scope import Scope


def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    """``principal``: the signed-in user or API client (set by the session or Bearer middleware)."""
    principal = request.scope.get("user")
    if not isinstance(principal, Principal):
        raise RuntimeError("route is public but asked for the principal")
    return principal


def provide_org_scope(db_session: NamedDependency[AsyncSession], principal: NamedDependency[Principal]) -> Scope:
    """``org_scope``: the organizations the principal reaches, in the request's transaction."""
    return Scope(db_session, principal)
