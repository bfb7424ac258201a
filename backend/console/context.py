"""The console's per-request services, built on the accounts context's (one transaction, one
scope, one audit log)."""

from __future__ import annotations

from functools import cached_property

from litestar import Request
from litestar.di import NamedDependency

from backend.accounts.context import ApiServices
from backend.console.devices import DeviceConsole
from backend.console.runtime import ConsoleRuntime
from backend.console.templates import TemplateEditor


class ConsoleServices:
    """Templates and devices as the signed-in user may see and change them."""

    def __init__(self, api: ApiServices, runtime: ConsoleRuntime) -> None:
        self.api = api
        self.runtime = runtime

    @cached_property
    def templates(self) -> TemplateEditor:
        return TemplateEditor(self.api.session, self.api.scope, self.api.audit)

    @cached_property
    def devices(self) -> DeviceConsole:
        return DeviceConsole(self.api.session, self.api.scope, self.api.audit, self.runtime)


async def provide_console(request: Request, svc: NamedDependency[ApiServices]) -> ConsoleServices:  # type: ignore[type-arg]
    """The ``con`` dependency of console routes and pages."""
    return ConsoleServices(svc, request.app.state.console)
