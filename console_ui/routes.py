"""The console's router: pages behind the accounts session middleware, a redirect to /login
for signed-out visitors, the Jinja template engine, and the static files.

Browser libraries come from npm at build time (``console_ui/package.json`` and its lock file);
the build copies the files listed in :data:`console_ui.vendor.FILES` into the package, and
they are served from there (``console_ui/static/vendor/``), never from ``node_modules``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from litestar import Request, Response, Router, get
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import File, Redirect
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from backend.access.guards import PUBLIC
from backend.accounts.deps import accounts_dependencies
from backend.accounts.middleware import session_middleware
from backend.accounts.runtime import AccountsOf
from backend.automations.deps import automations_dependencies
from backend.console.context import console_dependencies
from backend.errors import AuthenticationError, NotFoundError, OpenBlynkError, PermissionDeniedError
from backend.locations.controllers import locations_dependencies
from backend.notifications.deps import notifications_dependencies
from backend.orgs.deps import orgs_dependencies
from backend.webhooks.deps import webhooks_dependencies
from console_ui import (
    live,
    notices,
    pages_air,
    pages_app,
    pages_automations,
    pages_developer,
    pages_devices,
    pages_inject,
    pages_integrations,
    pages_locations,
    pages_notifications,
    pages_org,
    pages_public,
    pages_templates,
    pages_webhooks,
    vendor,
)
from console_ui.render import page

HERE = Path(__file__).resolve().parent


def browser_files_problem() -> str | None:
    """One line saying which of the console's browser files are missing and what to run, or None
    when the package has them all (the app says it at start; every page shows it)."""
    return vendor.problem()


def console_template_config() -> TemplateConfig[JinjaTemplateEngine]:
    """Jinja templates of ``console_ui/templates`` (autoescaped)."""
    return TemplateConfig(directory=HERE / "templates", engine=JinjaTemplateEngine)


@get("/static/vendor/{name:str}", opt=PUBLIC, include_in_schema=False)
async def vendor_file(name: FromPath[str]) -> File:
    """A browser library's dist file, from the package (``console_ui/static/vendor/``)."""
    if name not in vendor.FILES:
        raise NotFoundException(f"no vendored file {name!r}")
    path = vendor.VENDOR_DIR / name
    if not path.is_file():
        raise NotFoundException(f"{name} is missing: {vendor.FIX}")
    media_type = "text/css" if name.endswith(".css") else "text/javascript"
    return File(
        path,
        content_disposition_type="inline",
        media_type=media_type,
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


def console_pages(accounts: AccountsOf) -> list[Any]:
    """Everything the app mounts for the console: the page router and the static files
    (``accounts`` finds the running app's accounts runtime for the session middleware)."""
    handlers = [
        *pages_public.ROUTES,
        *pages_devices.ROUTES,
        *pages_templates.ROUTES,
        *pages_org.ROUTES,
        *pages_air.ROUTES,
        *pages_inject.ROUTES,
        *pages_webhooks.ROUTES,
        *pages_automations.ROUTES,
        *pages_notifications.ROUTES,
        *pages_developer.ROUTES,
        *pages_integrations.ROUTES,
        *pages_locations.ROUTES,
        *pages_app.ROUTES,
        live.live_socket,
        notices.notices_socket,
        vendor_file,
    ]
    pages = Router(
        path="/",
        route_handlers=handlers,
        middleware=[session_middleware(accounts)],
        dependencies={
            **accounts_dependencies(),
            **orgs_dependencies(),
            **console_dependencies(),
            **locations_dependencies(),
            **automations_dependencies(),
            **notifications_dependencies(),
            **webhooks_dependencies(),
        },
        exception_handlers={OpenBlynkError: _error_page, NotFoundException: _error_page},
        include_in_schema=False,
    )
    static = create_static_files_router(
        path="/static/console", directories=[HERE / "static"], opt=PUBLIC, include_in_schema=False
    )
    return [pages, static]


def _error_page(request: Request, exc: Exception) -> Response[Any]:  # type: ignore[type-arg]
    if isinstance(exc, AuthenticationError):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return Redirect(f"/login?next={quote(target, safe='')}")
    status = (
        404
        if isinstance(exc, NotFoundError | NotFoundException)
        else 403
        if isinstance(exc, PermissionDeniedError)
        else 400
    )
    message = exc.message if isinstance(exc, OpenBlynkError) else str(getattr(exc, "detail", exc))
    return page(request, "error.html", status_code=status, status=status, message=message)
