"""The one list of what the app mounts, and the parts of the runtime the top provides to the
areas' controllers as dependencies.

Each area builds its own request-scoped services from these (its ``*_dependencies()`` on the
routers that mount its controllers); no controller reads the app's state or takes a shared bag. Order matters once: ``DATA_ROUTES`` after
``DeviceApiController`` (both under ``/external/api``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.di import Provide

from backend.access.deps import provide_org_scope, provide_principal
from backend.access.guards import same_origin
from backend.accounts.controllers import (
    AuthController,
    InvitationController,
    RoleController,
    UserController,
    list_permissions,
)
from backend.accounts.deps import accounts_dependencies
from backend.accounts.middleware import session_middleware
from backend.accounts.runtime import AccountsRuntime
from backend.audit.controllers import audit_export, audit_log
from backend.audit.deps import provide_audit
from backend.automations.controllers import ConsoleAutomationController, ConsoleSceneController
from backend.automations.deps import automations_dependencies
from backend.automations.platform import PlatformAutomationController, PlatformSceneController
from backend.console.context import console_dependencies
from backend.console.controllers import ConsoleDeviceController, ConsoleTemplateController
from backend.console.image_controllers import ConsoleImageController
from backend.db.deps import provide_db_session
from backend.device_api.controllers import DeviceApiController
from backend.device_api.data_controllers import DATA_ROUTES
from backend.inject.controllers import InjectController, PlatformDeviceTokenController, PlatformInjectController
from backend.inject.deps import InjectRuntime
from backend.integrations.bridges import BrokerControl
from backend.integrations.controllers import BridgeSessionController
from backend.locations.controllers import LocationController
from backend.notifications.controllers import NotificationController
from backend.notifications.deps import notifications_dependencies
from backend.orgs.controllers import DeviceController, OrgController, TagController
from backend.orgs.deps import orgs_dependencies
from backend.ota.controllers import OtaController
from backend.platform_api.auth import bearer_middleware
from backend.platform_api.context import platform_dependencies
from backend.platform_api.controllers import PlatformDeviceController, PlatformLookupController, PlatformValueController
from backend.platform_api.directory_controllers import (
    NOT_OFFERED_ROUTES,
    PlatformOrgController,
    PlatformTemplateController,
    PlatformUserController,
)
from backend.platform_api.http import OAuthClientController, token
from backend.server.container import Runtime, runtime, runtime_of
from backend.server.health import health, ready
from backend.server.metrics import metrics
from backend.transport.controllers import ca_certificate
from backend.transport.websocket import mqtt_websocket
from backend.webhooks.controllers import ConsoleWebhookController
from backend.webhooks.deps import webhooks_dependencies
from console_ui.routes import console_pages


def _accounts(app: Litestar) -> AccountsRuntime:
    return runtime(app).accounts


def _part(pick: Callable[[Runtime], Any]) -> Provide:
    """A dependency that is one part of the running app's runtime."""

    def provide(state: State) -> Any:
        return pick(runtime_of(state))

    return Provide(provide, sync_to_thread=False)


def app_dependencies() -> dict[str, Provide]:
    """What every route may name as a parameter: the parts of the runtime the areas use, and
    the request's transaction, principal, scope and audit log, on which each area builds its
    own services (``accounts_dependencies``, ``orgs_dependencies``, ... on the routers)."""
    return {
        "db_session": Provide(provide_db_session),
        "principal": Provide(provide_principal, sync_to_thread=False),
        "org_scope": Provide(provide_org_scope, sync_to_thread=False),
        "audit": Provide(provide_audit, sync_to_thread=False),
        "db": _part(lambda rt: rt.db),
        "settings": _part(lambda rt: rt.settings),
        "accounts_runtime": _part(lambda rt: rt.accounts),
        "console_runtime": _part(lambda rt: rt.console),
        "platform_runtime": _part(lambda rt: rt.platform),
        "ota": _part(lambda rt: rt.ota),
        "device_api": _part(lambda rt: rt.device_api),
        "data_api": _part(lambda rt: rt.data_api),
        "tls": _part(lambda rt: rt.tls),
        "mqtt_bridge": _part(lambda rt: rt.mqtt_bridge),
        "inject_runtime": _part(lambda rt: InjectRuntime(rt.secrets, rt.signals, rt.settings, rt.latest, rt.history)),
        "webhook_sender": _part(lambda rt: rt.webhooks.sender),
        "notices": _part(lambda rt: rt.notices),
        "scene_runner": _part(lambda rt: rt.automations),
        "broker_control": _part(
            lambda rt: BrokerControl(rt.settings.broker_metrics_port, rt.secrets.broker_control_token())
        ),
    }


def api_router() -> Router:
    """``/api``: accounts, organizations, audit, OAuth2 clients and Blynk.Air, behind the
    session middleware and the same-origin guard."""
    return Router(
        path="/api",
        route_handlers=[
            AuthController,
            UserController,
            RoleController,
            InvitationController,
            OrgController,
            DeviceController,
            TagController,
            list_permissions,
            audit_log,
            audit_export,
            LocationController,
            OAuthClientController,
            BridgeSessionController,
            OtaController,
            InjectController,
        ],
        middleware=[session_middleware(_accounts)],
        guards=[same_origin],
        dependencies={**accounts_dependencies(), **orgs_dependencies()},
    )


def console_api_router() -> Router:
    """``/api/console``: behind the accounts session middleware and same-origin guard."""
    return Router(
        path="/api/console",
        route_handlers=[
            ConsoleTemplateController,
            ConsoleDeviceController,
            ConsoleImageController,
            ConsoleAutomationController,
            ConsoleSceneController,
            NotificationController,
            ConsoleWebhookController,
        ],
        middleware=[session_middleware(_accounts)],
        guards=[same_origin],
        dependencies={
            **console_dependencies(),
            **automations_dependencies(),
            **notifications_dependencies(),
            **webhooks_dependencies(),
        },
    )


def platform_router() -> Router:
    """``/api/v1/organization``: Bearer authentication, rate limit, the guards of ``backend.access``."""
    return Router(
        path="/api/v1/organization",
        route_handlers=[
            PlatformDeviceController,
            PlatformLookupController,
            PlatformValueController,
            PlatformOrgController,
            PlatformTemplateController,
            PlatformUserController,
            PlatformAutomationController,
            PlatformSceneController,
            PlatformInjectController,
            PlatformDeviceTokenController,
            *NOT_OFFERED_ROUTES,
        ],
        middleware=[bearer_middleware(_accounts)],
        dependencies={
            **accounts_dependencies(),
            **orgs_dependencies(),
            **platform_dependencies(),
            **automations_dependencies(),
        },
        security=[{"BearerToken": []}],
    )


def route_handlers() -> list[Any]:
    """Everything the app mounts."""
    return [
        DeviceApiController,
        *DATA_ROUTES,
        health,
        ready,
        metrics,
        ca_certificate,
        mqtt_websocket,
        api_router(),
        token,
        platform_router(),
        console_api_router(),
        *console_pages(_accounts),
    ]
