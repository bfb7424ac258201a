"""Settings -> Developers -> MQTT sessions: the gateway (Blynk's MQTT Gateway API) and
integration connections of the organizations in scope, each with its credentials, MQTT client
id, address, time connected, devices, subscriptions and traffic, and a "Disconnect" button
(``POST /api/integrations/sessions/{id}/disconnect``; revoking the client is on the OAuth2
clients page)."""

from __future__ import annotations

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.response import Template as Page
from sqlmodel.ext.asyncio.session import AsyncSession

from backend.access.guards import requires
from backend.access.permissions import Permission as P
from backend.access.scope import Scope
from backend.audit.services import AuditService
from backend.errors import UnavailableError
from backend.integrations.bridges import BridgeSessionInfo, BridgeSessions, BrokerControl
from backend.orgs.tree import OrgTreeService
from console_ui.render import page


@get("/mqtt-sessions", guards=[requires(P.API_CLIENTS)])
async def mqtt_sessions_page(
    request: Request,  # type: ignore[type-arg]
    db_session: NamedDependency[AsyncSession],
    org_scope: NamedDependency[Scope],
    audit: NamedDependency[AuditService],
    broker_control: NamedDependency[BrokerControl],
    org_tree: NamedDependency[OrgTreeService],
) -> Page:
    """The connected sessions of the scope, oldest first (or why they cannot be listed)."""
    sessions: list[BridgeSessionInfo] = []
    problem = ""
    try:
        sessions = await BridgeSessions(db_session, org_scope, audit, broker_control).shown()
    except UnavailableError as exc:
        problem = exc.message
    return page(request, "mqtt_sessions.html", sessions=sessions, problem=problem, orgs=await org_tree.list())


ROUTES = [mqtt_sessions_page]
