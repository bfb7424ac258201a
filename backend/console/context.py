"""The console's per-request services, built on the accounts context's (one transaction, one
scope, one audit log)."""

from __future__ import annotations

from functools import cached_property

from litestar.di import NamedDependency

from backend.accounts.context import ApiServices
from backend.accounts.runtime import AccountsRuntime
from backend.console.devices import DeviceConsole
from backend.console.live_access import LiveAccess
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


async def provide_console(svc: NamedDependency[ApiServices],
                          console_runtime: NamedDependency[ConsoleRuntime]) -> ConsoleServices:
    """The ``con`` dependency of console routes and pages."""
    return ConsoleServices(svc, console_runtime)


def provide_live_access(accounts_runtime: NamedDependency[AccountsRuntime],
                        console_runtime: NamedDependency[ConsoleRuntime]) -> LiveAccess:
    """The ``live_access`` dependency of the console's live socket."""
    return LiveAccess(accounts_runtime, console_runtime)
