"""Rendering a console page: the one helper every page controller uses.

It lives apart from :mod:`console_ui.routes`, which imports the page modules to mount them, so
that the pages and the router do not import each other.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.response import Template

from backend.access.permissions import Principal
from console_ui import vendor


def page(request: Request, name: str, status_code: int = 200, **context: Any) -> Template:  # type: ignore[type-arg]
    """Render a page with what every page needs: the user, their permissions, the CSRF token.

    When the console's browser files are missing (an install without them), every page is
    instead the one line saying so and what to run (503), not widgets that cannot work."""
    user = request.scope.get("user")
    principal = user if isinstance(user, Principal) else None
    perms = {p.value for p in principal.permissions} if principal else set()
    missing = vendor.problem()
    return Template(
        template_name=name,
        status_code=503 if missing else status_code,
        context={
            "principal": principal,
            "can": perms,
            "csrf": principal.csrf_token if principal else "",
            "path": request.url.path,
            **context,
            "browser_files_missing": missing,
        },
    )
