"""The ``/api`` router: every accounts, organizations and audit route behind the session
middleware, the same-origin guard and the one request-scoped ``svc`` dependency."""

from __future__ import annotations

from litestar import Router
from litestar.di import Provide

from backend.access.guards import same_origin
from backend.accounts.context import provide_services
from backend.accounts.controllers import (AuthController, InvitationController, RoleController, UserController,
                                          list_permissions)
from backend.accounts.middleware import session_middleware
from backend.audit.controllers import audit_log
from backend.orgs.controllers import DeviceController, OrgController, TagController
from backend.ota.controllers import OtaController
from backend.platform_api.http import OAuthClientController


def api_router() -> Router:
    """The router the app mounts (its lifespan must include ``accounts_lifespan``)."""
    return Router(path="/api", route_handlers=[AuthController, UserController, RoleController, InvitationController,
                                               OrgController, DeviceController, TagController, list_permissions, audit_log,
                                               OAuthClientController, OtaController],
                  middleware=[session_middleware()], guards=[same_origin],
                  dependencies={"svc": Provide(provide_services)})
