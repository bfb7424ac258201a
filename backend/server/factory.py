"""The app factory: the routes, the exception handlers and the one lifespan.

Importing this module reads no environment and opens nothing; ``create_app`` receives the
settings and the database URL from the CLI, and the lifespan builds and starts the runtime.
"""

from __future__ import annotations

import logging

from litestar import Litestar, MediaType, Response
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from backend.connections import AnyRequest
from backend.db.engine import REFUSED_ERRORS, refused_value
from backend.errors import (
    AuthenticationError,
    BlynkApiError,
    BlynkLimitError,
    BlynkServerError,
    ConflictError,
    MailError,
    NotFoundError,
    OpenBlynkError,
    PermissionDeniedError,
    RateLimitedError,
    StorageFullError,
    UnavailableError,
    ValidationError,
)
from backend.server.lifespan import app_lifespan
from backend.server.metrics import HTTP_METRICS
from backend.server.routers import app_dependencies, route_handlers
from backend.settings import Settings
from backend.transport.https import hsts_header
from console_ui.headers import security_headers
from console_ui.routes import console_template_config

log = logging.getLogger(__name__)


def create_app(settings: Settings, database_url: str) -> Litestar:
    """Assemble the Litestar application."""
    return Litestar(
        route_handlers=route_handlers(),
        dependencies=app_dependencies(),
        template_config=console_template_config(),
        lifespan=[app_lifespan(settings, database_url)],
        exception_handlers={OpenBlynkError: _error_response, **{kind: _database_refusal for kind in REFUSED_ERRORS}},
        middleware=[HTTP_METRICS.middleware],  # HTTP requests by route template and status (/metrics)
        # the console's CSP and framing headers on every HTML answer; HSTS on every HTTPS answer
        before_send=[security_headers, hsts_header(settings)],
        openapi_config=OpenAPIConfig(
            title="openblynk",
            version="0.1.0",
            path="/schema",
            # Only the document, never the viewers: Swagger, ReDoc and the others load scripts
            # and styles from CDNs, which the console's CSP refuses (and should).
            render_plugins=[JsonRenderPlugin()],
            components=Components(
                security_schemes={
                    "BearerToken": SecurityScheme(
                        type="http", scheme="bearer", description="access token from POST /oauth2/token"
                    )
                }
            ),
        ),
        logging_config=None,
    )


_STATUS: tuple[tuple[type[OpenBlynkError], int], ...] = (
    (BlynkLimitError, 403),
    (BlynkServerError, 500),
    (NotFoundError, 404),
    (ConflictError, 409),
    (AuthenticationError, 401),
    (PermissionDeniedError, 403),
    (MailError, 503),
    (StorageFullError, 507),  # Insufficient Storage: the data directory's disk is full
    (UnavailableError, 503),
    (RateLimitedError, 429),
    (ValidationError, 400),
    (BlynkApiError, 400),
)
"""HTTP status of each kind of error, the first that matches (more specific kinds first)."""


def _error_response(request: AnyRequest, exc: Exception) -> Response[object]:
    """Map the project's error tree to HTTP (Blynk's shape for the device API)."""
    assert isinstance(exc, OpenBlynkError)
    status = next((code for kind, code in _STATUS if isinstance(exc, kind)), None)
    if status is None:
        log.error("unexpected error on %s: %s", request.url.path, exc)
        status = 500
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimitedError) else {}
    return Response({"error": {"message": exc.message}}, status_code=status, media_type=MediaType.JSON, headers=headers)


def _database_refusal(request: AnyRequest, exc: Exception) -> Response[object]:
    """A value the database refused (text with NUL) is the sender's ValidationError, answered by
    this route's own handler of the project's errors: Blynk's body on the APIs, an error page in
    the console. Any other database error is logged and answered 500."""
    refusal = refused_value(exc)
    if refusal is None:
        log.error("unexpected database error on %s", request.url.path, exc_info=exc)
        return Response(
            {"status_code": 500, "detail": "Internal Server Error"}, status_code=500, media_type=MediaType.JSON
        )
    handlers = request.route_handler.resolve_exception_handlers()
    handler = next(handlers[kind] for kind in type(refusal).__mro__ if kind in handlers)
    return handler(request, refusal)
