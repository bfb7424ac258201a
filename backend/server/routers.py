"""The one list of what the app mounts, and the parts of the runtime the top provides to the
areas' controllers as dependencies.

Each area builds its own request-scoped services from these (``Provide`` on its routers); no
controller reads the app's state. Order matters once: ``DATA_ROUTES`` after
``DeviceApiController`` (both under ``/external/api``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.di import Provide

from backend.access.guards import same_origin
from backend.accounts.context import provide_services
from backend.accounts.controllers import (AuthController, InvitationController, RoleController, UserController,
                                          list_permissions)
from backend.accounts.middleware import session_middleware
from backend.accounts.runtime import AccountsRuntime
from backend.audit.controllers import audit_log
from backend.console.context import provide_console
from backend.console.controllers import ConsoleDeviceController, ConsoleTemplateController
from backend.device_api.controllers import DeviceApiController
from backend.device_api.data_controllers import DATA_ROUTES
from backend.orgs.controllers import DeviceController, OrgController, TagController
from backend.ota.controllers import OtaController
from backend.platform_api.auth import bearer_middleware
from backend.platform_api.context import provide_platform
from backend.platform_api.controllers import (PlatformDeviceController, PlatformLookupController,
                                              PlatformValueController)
from backend.platform_api.directory_controllers import (NOT_OFFERED_ROUTES, PlatformOrgController,
                                                        PlatformTemplateController, PlatformUserController)
from backend.platform_api.http import OAuthClientController, token
from backend.server.container import Runtime, runtime, runtime_of
from backend.server.health import health
from backend.transport.controllers import ca_certificate
from backend.transport.websocket import mqtt_websocket
from console_ui.routes import console_pages


def _accounts(app: Litestar) -> AccountsRuntime:
    return runtime(app).accounts


def _part(pick: Callable[[Runtime], Any]) -> Provide:
    """A dependency that is one part of the running app's runtime."""
    def provide(state: State) -> Any:
        return pick(runtime_of(state))
    return Provide(provide, sync_to_thread=False)


def runtime_dependencies() -> dict[str, Provide]:
    """The parts the areas' controllers and providers name as parameters, app-wide."""
    return {
        "accounts_runtime": _part(lambda rt: rt.accounts),
        "console_runtime": _part(lambda rt: rt.console),
        "platform_runtime": _part(lambda rt: rt.platform),
        "ota": _part(lambda rt: rt.ota),
        "device_api": _part(lambda rt: rt.device_api),
        "data_api": _part(lambda rt: rt.data_api),
        "tls": _part(lambda rt: rt.tls),
        "mqtt_bridge": _part(lambda rt: rt.mqtt_bridge),
    }


def api_router() -> Router:
    """``/api``: accounts, organizations, audit, OAuth2 clients and Blynk.Air, behind the
    session middleware and the same-origin guard."""
    return Router(path="/api", route_handlers=[AuthController, UserController, RoleController, InvitationController,
                                               OrgController, DeviceController, TagController, list_permissions,
                                               audit_log, OAuthClientController, OtaController],
                  middleware=[session_middleware(_accounts)], guards=[same_origin],
                  dependencies={"svc": Provide(provide_services)})


def console_api_router() -> Router:
    """``/api/console``: behind the accounts session middleware and same-origin guard."""
    return Router(path="/api/console", route_handlers=[ConsoleTemplateController, ConsoleDeviceController],
                  middleware=[session_middleware(_accounts)], guards=[same_origin],
                  dependencies={"svc": Provide(provide_services), "con": Provide(provide_console)})


def platform_router() -> Router:
    """``/api/v1/organization``: Bearer authentication, rate limit, the guards of ``backend.access``."""
    return Router(path="/api/v1/organization",
                  route_handlers=[PlatformDeviceController, PlatformLookupController, PlatformValueController,
                                  PlatformOrgController, PlatformTemplateController, PlatformUserController,
                                  *NOT_OFFERED_ROUTES],
                  middleware=[bearer_middleware(_accounts)],
                  dependencies={"svc": Provide(provide_services), "api": Provide(provide_platform)},
                  security=[{"BearerToken": []}])


def route_handlers() -> list[Any]:
    """Everything the app mounts."""
    return [DeviceApiController, *DATA_ROUTES, health, ca_certificate, mqtt_websocket, api_router(), token,
            platform_router(), console_api_router(), *console_pages(_accounts)]
