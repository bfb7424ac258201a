"""Rendering a console page: the one helper every page controller uses.

It lives apart from :mod:`console_ui.routes`, which imports the page modules to mount them, so
that the pages and the router do not import each other.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.response import Template

from backend.access.permissions import Principal


def page(request: Request, name: str, status_code: int = 200, **context: Any) -> Template:  # type: ignore[type-arg]
    """Render a page with what every page needs: the user, their permissions, the CSRF token."""
    user = request.scope.get("user")
    principal = user if isinstance(user, Principal) else None
    perms = {p.value for p in principal.permissions} if principal else set()
    return Template(template_name=name, status_code=status_code,
                    context={"principal": principal, "can": perms, "csrf": principal.csrf_token if principal else "",
                             "path": request.url.path, **context})
