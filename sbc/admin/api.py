"""The admin REST API: FastAPI over an :class:`~sbc.admin.context.AdminContext`.

:func:`create_app` builds the application; :mod:`sbc.admin.server` serves it
with uvicorn inside the SBC's own event loop. This module only assembles:

- the endpoints come from :mod:`sbc.admin.routers`, one module per resource
  group (health and metrics, calls and trunks, policies and route what-ifs,
  registrations and bans, CDRs), all on one router whose routes turn an
  unexpected failure into a logged 500;
- access (bearer token, or loopback ``Host`` when open) is the
  :class:`~sbc.admin.access.AccessGuard` middleware, run before routing;
- errors are RFC 9457 problem details (:mod:`sbc.admin.problems`), for our
  own refusals and for FastAPI's.

What stays here is the OpenAPI document (:class:`AdminApp`): FastAPI cannot
say that errors are ``application/problem+json``, that our 422 is not its
own, or that every path but ``/health`` takes a bearer token, so the
generated document is corrected once, then cached and served behind the
token like everything else.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse

from sbc.admin.access import OPEN_PATHS, AccessGuard
from sbc.admin.context import AdminContext
from sbc.admin.problems import COMMON_ERRORS, PROBLEM_JSON, GuardedRoute, add_problem_handlers
from sbc.admin.routers.calls import add_call_routes
from sbc.admin.routers.cdrs import add_cdr_routes
from sbc.admin.routers.health import Metrics, add_health_routes
from sbc.admin.routers.policies import add_policy_routes
from sbc.admin.routers.security import add_security_routes

API_TITLE = "sbc admin API"
API_VERSION = "1.0"
API_DESCRIPTION = (
    "Administration of a running sbc: health, metrics, active calls, trunks, policies, "
    "route what-ifs, bans and CDRs. Every route but /health takes a bearer token when "
    "one is configured. Errors are RFC 9457 problem details (application/problem+json)."
)


class AdminApp(FastAPI):
    """FastAPI with an OpenAPI document that tells the truth about errors and auth."""

    secured: bool = False

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            schema = get_openapi(
                title=self.title,
                version=self.version,
                description=self.description,
                routes=self.routes,
            )
            if self.secured:
                _require_bearer(schema)
            _problems_as_problem_json(schema)
            self.openapi_schema = schema
        return self.openapi_schema


_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_FASTAPI_422 = {"$ref": "#/components/schemas/HTTPValidationError"}


def _problems_as_problem_json(schema: dict[str, Any]) -> None:
    """Error responses as FastAPI cannot say them: problem+json, our 422, no 401 when open.

    FastAPI files a model under the route's own media type (text/plain for
    /metrics) and documents its own 422 body, which our handler replaces.
    """
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.get("responses", {})
            if path in OPEN_PATHS or not schema.get("components", {}).get("securitySchemes"):
                responses.pop("401", None)
                responses.pop("429", None)
            for response in responses.values():
                content = response.get("content", {})
                for media_type, body in list(content.items()):
                    if body.get("schema") in (_PROBLEM_REF, _FASTAPI_422):
                        del content[media_type]
                        content[PROBLEM_JSON] = {"schema": _PROBLEM_REF}
    schemas = schema.get("components", {}).get("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)


def _require_bearer(schema: dict[str, Any]) -> None:
    components = schema.setdefault("components", {})
    components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            operation["security"] = [] if path in OPEN_PATHS else [{"bearer": []}]


def create_app(
    ctx: AdminContext,
    *,
    token: str | None,
    metrics: Metrics | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> FastAPI:
    """The admin API over ``ctx``.

    ``token`` None leaves the API open (loopback binds only: the server
    refuses anything else); ``metrics`` None makes ``/metrics`` a 503;
    ``clock`` times the throttling of failed tokens.
    """
    app = AdminApp(
        title=API_TITLE,
        version=API_VERSION,
        description=API_DESCRIPTION,
        docs_url=None,  # the schema is behind the token; a docs page could not load it
        redoc_url=None,
        openapi_url=None,  # served below, behind the token like everything else
    )
    app.secured = token is not None
    router = APIRouter(route_class=GuardedRoute, responses=COMMON_ERRORS)
    add_health_routes(router, ctx, metrics)
    add_call_routes(router, ctx)
    add_policy_routes(router, ctx)
    add_security_routes(router, ctx)
    add_cdr_routes(router, ctx)

    @router.get("/openapi.json", include_in_schema=False)
    async def openapi_document() -> JSONResponse:
        return JSONResponse(app.openapi())

    app.include_router(router)
    add_problem_handlers(app)
    app.add_middleware(AccessGuard, token=token, clock=clock)
    return app
