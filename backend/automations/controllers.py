"""The console's JSON routes of automations, under ``/api/console/automations`` (thin: one
service call each; the guards say who may call them, the session middleware checks CSRF).

Bodies are read raw and parsed by :func:`~backend.automations.schemas.parse_automation`, so a
malformed automation is answered with the project's error body (``{"error": {"message"}}``)
saying where it is wrong.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.status_codes import HTTP_200_OK

from backend.access.guards import requires
from backend.access.paging import Page, page_args
from backend.access.permissions import Permission as P
from backend.automations.runner import SceneRunner
from backend.automations.schemas import AutomationOut, RunOut, RunStartedOut, parse_automation
from backend.automations.service import AutomationService

Automations = NamedDependency[AutomationService]
VIEW = requires(P.AUTOMATIONS_VIEW)


class ConsoleAutomationController(Controller):
    """Automations of the caller's scope, and their log."""

    path = "/automations"

    @get("/", guards=[VIEW])
    async def list_automations(
        self,
        automations: Automations,
        org_id: FromQuery[int | None] = None,
        page: FromQuery[int] = 0,
        size: FromQuery[int] = 50,
    ) -> Page[AutomationOut]:
        """Automations of one organization (``org_id``) or of the whole scope, by name."""
        page, size = page_args(page, size)
        return Page(*await automations.listing(org_id, page, size), page, size)

    @post("/", guards=[requires(P.AUTOMATIONS_CREATE)])
    async def create_automation(
        self, request: Request[Any, Any, Any], automations: Automations, org_id: FromQuery[int | None] = None
    ) -> AutomationOut:
        """A new automation of ``org_id`` (the caller's organization by default)."""
        return await automations.create(org_id, parse_automation(await request.body()))

    @get("/log", guards=[VIEW])
    async def automation_log(
        self,
        automations: Automations,
        automation_id: FromQuery[int | None] = None,
        org_id: FromQuery[int | None] = None,
        page: FromQuery[int] = 0,
        size: FromQuery[int] = 50,
    ) -> Page[RunOut]:
        """Runs, newest first, each with its actions' outcomes and timing."""
        page, size = page_args(page, size)
        return Page(*await automations.runs(automation_id, org_id, page, size), page, size)

    @get("/{automation_id:int}", guards=[VIEW])
    async def get_automation(self, automation_id: FromPath[int], automations: Automations) -> AutomationOut:
        """One automation."""
        return await automations.get(automation_id)

    @put("/{automation_id:int}", guards=[requires(P.AUTOMATIONS_EDIT)])
    async def update_automation(
        self, automation_id: FromPath[int], request: Request[Any, Any, Any], automations: Automations
    ) -> AutomationOut:
        """Replace an automation (name, enabled, condition, actions, limit period)."""
        return await automations.update(automation_id, parse_automation(await request.body()))

    @delete("/{automation_id:int}", guards=[requires(P.AUTOMATIONS_DELETE)])
    async def delete_automation(self, automation_id: FromPath[int], automations: Automations) -> None:
        """Delete an automation and its log."""
        await automations.delete(automation_id)

    @post("/{automation_id:int}/enable", guards=[requires(P.AUTOMATIONS_EDIT)], status_code=HTTP_200_OK)
    async def enable_automation(self, automation_id: FromPath[int], automations: Automations) -> AutomationOut:
        """Turn an automation on."""
        return await automations.set_enabled(automation_id, True)

    @post("/{automation_id:int}/disable", guards=[requires(P.AUTOMATIONS_EDIT)], status_code=HTTP_200_OK)
    async def disable_automation(self, automation_id: FromPath[int], automations: Automations) -> AutomationOut:
        """Turn an automation off."""
        return await automations.set_enabled(automation_id, False)


class ConsoleSceneController(Controller):
    """Scenes run by hand (needs the engine's ``scene_runner``)."""

    path = "/automations"

    @post("/{automation_id:int}/run", guards=[requires(P.AUTOMATIONS_EXECUTE)], status_code=HTTP_200_OK)
    async def run_scene(
        self, automation_id: FromPath[int], automations: Automations, scene_runner: NamedDependency[SceneRunner]
    ) -> RunStartedOut:
        """Run a scene now; its run's id (the log shows how it goes)."""
        return RunStartedOut(await automations.run(automation_id, scene_runner))
