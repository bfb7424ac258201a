"""Platform API rules that need no server: every /api/v1/organization route guarded by a
permission guard (Bearer principals go through the same guards), the whole app builds its
OpenAPI schema without deprecation warnings from these handlers, and Basic credentials parse."""

from __future__ import annotations

import base64
import warnings

import pytest
from litestar import Litestar

from backend.access.guards import guarded
from backend.platform_api.http import basic_credentials, token
from backend.platform_api.oauth import OAuthError
from backend.server.routers import app_dependencies, platform_router


def test_every_platform_route_carries_a_permission_guard() -> None:
    app = Litestar([platform_router(), token], dependencies=app_dependencies())
    routes = [
        (route.path, handler)
        for route in app.routes
        if route.path.startswith("/api/v1/organization")
        for handler in getattr(route, "route_handlers", [])
        if set(handler.http_methods) != {"OPTIONS"}
    ]
    assert len(routes) > 40
    assert [(p, h.handler_name) for p, h in routes if not guarded(h) or h.opt.get("public")] == []
    assert token.opt.get("public") is True  # the token endpoint authenticates the client itself


def test_the_whole_app_builds_its_schema_without_warnings_from_platform_or_ota_handlers() -> None:
    from backend.server.factory import create_app
    from backend.settings import Settings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        schema = create_app(Settings(), "postgresql://localhost/none").openapi_schema.to_schema()
    ours = [
        str(w.message)
        for w in caught
        if "platform_api" in str(w.filename)
        or "/api/ota" in str(w.message)
        or any(name in str(w.message) for name in ("'upload'", "'create_shipment'", "'download'"))
    ]
    assert ours == []
    assert "/api/v1/organization/device/datastream/history" in schema["paths"]


def test_basic_credentials() -> None:
    header = "Basic " + base64.b64encode(b"oa2-client-id_x:se:cret").decode()
    assert basic_credentials(header) == ("oa2-client-id_x", "se:cret")
    assert basic_credentials("") is None and basic_credentials("Bearer abc") is None
    for bad in ("Basic ***", "Basic " + base64.b64encode(b"no-colon").decode()):
        with pytest.raises(OAuthError) as err:
            basic_credentials(bad)
        assert err.value.error == "invalid_request"
