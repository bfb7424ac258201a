"""Automations in the platform API (``/api/v1/organization``), in the style of its other routes:
ids as query parameters with Blynk's names (``automationId``, ``orgId``), lists as Blynk's page
``{"content": [...], "totalElements": N}``, times in epoch milliseconds, camelCase fields.

| route | what |
| --- | --- |
| ``GET /automations?orgId&page&size`` | the automations of one organization or of the scope |
| ``GET /automation?automationId`` | one automation |
| ``POST /automation/create?orgId`` | a new automation (201); the body is the console's shape |
| ``PUT /automation?automationId`` | replace an automation |
| ``DELETE /automation?automationId`` | delete it (204) |
| ``POST /automation/run?automationId`` | run a scene now: ``{"runId": n}`` |
| ``GET /automation/logs?automationId&page&size`` | the log, newest first |

The condition and actions keep the shape of :mod:`backend.automations.schemas` (snake_case
inside, as they are stored), so one document serves the console and the API.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from backend.access.guards import requires
from backend.access.paging import page_args
from backend.access.permissions import Permission as P
from backend.automations.runner import SceneRunner
from backend.automations.schemas import Action, AutomationOut, Condition, RunOut, parse_automation
from backend.automations.service import AutomationService

Automations = NamedDependency[AutomationService]
AutomationId = Annotated[int, QueryParameter(name="automationId", description="Automation identifier")]
OptionalOrgId = Annotated[int | None, QueryParameter(name="orgId", description="Organization identifier")]
PageNo = Annotated[int, QueryParameter(name="page", description="Page number starting from 0")]
Size = Annotated[int, QueryParameter(name="size", description="Page size, 1 to 1000")]
VIEW = requires(P.AUTOMATIONS_VIEW)


class PlatformAutomation(msgspec.Struct):
    """An automation as the platform API shows it."""

    id: int
    orgId: int  # noqa: N815 (Blynk's names)
    name: str
    isActive: bool  # noqa: N815
    type: str
    """The condition's kind: schedule, interval, once, sun, device_state, presence, event or scene."""
    condition: Condition
    actions: list[Action]
    limitPeriod: int  # noqa: N815
    createdAt: int  # noqa: N815
    updatedAt: int  # noqa: N815


class AutomationPage(msgspec.Struct):
    """Blynk's page of automations."""

    content: list[PlatformAutomation]
    totalElements: int  # noqa: N815


class RunPage(msgspec.Struct):
    """Blynk's page of the automation log."""

    content: list[RunOut]
    totalElements: int  # noqa: N815


class RunStarted(msgspec.Struct):
    """The run a scene started."""

    runId: int  # noqa: N815


def platform_automation(a: AutomationOut) -> PlatformAutomation:
    """The platform API's form of an automation."""
    return PlatformAutomation(
        id=a.id,
        orgId=a.org_id,
        name=a.name,
        isActive=a.enabled,
        type=str(type(a.condition).__struct_config__.tag),
        condition=a.condition,
        actions=a.actions,
        limitPeriod=a.limit_period_s,
        createdAt=int(a.created_at.timestamp() * 1000),
        updatedAt=int(a.updated_at.timestamp() * 1000),
    )


class PlatformAutomationController(Controller):
    """Blynk's automations API."""

    path = "/"
    tags = ["Platform API: automations"]

    @get("/automations", guards=[VIEW])
    async def list_automations(
        self, automations: Automations, org_id: OptionalOrgId = None, page: PageNo = 0, size: Size = 20
    ) -> AutomationPage:
        """Automations of one organization (``orgId``) or of the whole scope, by name."""
        page, size = page_args(page, size)
        found, total = await automations.listing(org_id, page, size)
        return AutomationPage([platform_automation(a) for a in found], total)

    @get("/automation", guards=[VIEW])
    async def get_automation(self, automation_id: AutomationId, automations: Automations) -> PlatformAutomation:
        """One automation."""
        return platform_automation(await automations.get(automation_id))

    @post("/automation/create", guards=[requires(P.AUTOMATIONS_CREATE)], status_code=HTTP_201_CREATED)
    async def create_automation(
        self, request: Request[Any, Any, Any], automations: Automations, org_id: OptionalOrgId = None
    ) -> PlatformAutomation:
        """A new automation of ``orgId`` (the caller's organization by default)."""
        return platform_automation(await automations.create(org_id, parse_automation(await request.body())))

    @put("/automation", guards=[requires(P.AUTOMATIONS_EDIT)], status_code=HTTP_200_OK)
    async def update_automation(
        self, automation_id: AutomationId, request: Request[Any, Any, Any], automations: Automations
    ) -> PlatformAutomation:
        """Replace an automation (name, enabled, condition, actions, limit period)."""
        return platform_automation(await automations.update(automation_id, parse_automation(await request.body())))

    @delete("/automation", guards=[requires(P.AUTOMATIONS_DELETE)], status_code=HTTP_204_NO_CONTENT)
    async def delete_automation(self, automation_id: AutomationId, automations: Automations) -> None:
        """Delete an automation and its log."""
        await automations.delete(automation_id)

    @get("/automation/logs", guards=[VIEW])
    async def automation_logs(
        self, automation_id: AutomationId, automations: Automations, page: PageNo = 0, size: Size = 20
    ) -> RunPage:
        """An automation's runs, newest first, with each action's outcome."""
        page, size = page_args(page, size)
        return RunPage(*await automations.runs(automation_id, None, page, size))


class PlatformSceneController(Controller):
    """Scenes run by hand through the platform API (needs the engine's ``scene_runner``)."""

    path = "/"
    tags = ["Platform API: automations"]

    @post("/automation/run", guards=[requires(P.AUTOMATIONS_EXECUTE)], status_code=HTTP_200_OK)
    async def run_scene(
        self, automation_id: AutomationId, automations: Automations, scene_runner: NamedDependency[SceneRunner]
    ) -> RunStarted:
        """Run a scene now; its run's id."""
        return RunStarted(await automations.run(automation_id, scene_runner))
