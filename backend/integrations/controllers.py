"""The console's routes for connected MQTT gateway and integration sessions (under ``/api``,
session and CSRF; permission ``api.clients``, like the OAuth clients they log in with)."""

from __future__ import annotations

from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.status_codes import HTTP_200_OK
from sqlmodel.ext.asyncio.session import AsyncSession

from backend.access.guards import requires
from backend.access.permissions import Permission as P
from backend.access.scope import Scope
from backend.audit.services import AuditService
from backend.integrations.bridges import BridgeSessions, BrokerControl
from backend.integrations.schemas import BridgeSessionOut


class BridgeSessionController(Controller):
    """Connected gateway and integration sessions (Settings -> Developers -> MQTT sessions)."""

    path = "/integrations/sessions"
    tags = ["MQTT sessions"]

    @get("/", guards=[requires(P.API_CLIENTS)])
    async def list_sessions(
        self,
        db_session: NamedDependency[AsyncSession],
        org_scope: NamedDependency[Scope],
        audit: NamedDependency[AuditService],
        broker_control: NamedDependency[BrokerControl],
        org_id: FromQuery[int | None] = None,
    ) -> list[BridgeSessionOut]:
        """Sessions of one organization or of the whole scope, oldest first (503 when the broker
        process cannot be asked)."""
        service = BridgeSessions(db_session, org_scope, audit, broker_control)
        return [BridgeSessionOut.of(s) for s in await service.shown(org_id)]

    @post("/{session_id:str}/disconnect", guards=[requires(P.API_CLIENTS)], status_code=HTTP_200_OK)
    async def disconnect_session(
        self,
        session_id: FromPath[str],
        db_session: NamedDependency[AsyncSession],
        org_scope: NamedDependency[Scope],
        audit: NamedDependency[AuditService],
        broker_control: NamedDependency[BrokerControl],
    ) -> BridgeSessionOut:
        """Disconnect one session now; its credentials keep working (revoke the client for that)."""
        service = BridgeSessions(db_session, org_scope, audit, broker_control)
        return BridgeSessionOut.of(await service.disconnect(session_id))
