"""Errors of the admin API as RFC 9457 problem details (``application/problem+json``).

Every refusal leaves the API as one document shape, :class:`models.Problem`,
whoever made it:

- our handlers raise :class:`ProblemError` with the status and a detail;
- FastAPI's own refusals (unknown route 404, wrong method 405, a request
  that does not match the schema 422, malformed JSON 400) are rewritten by
  the handlers :func:`add_problem_handlers` installs;
- an unexpected exception in a handler becomes a logged 500 in
  :class:`GuardedRoute`, with nothing internal in the answer.

``type`` stays ``about:blank``, so ``title`` is the status phrase (RFC 9457
§4.2.1). :func:`problem_doc` and :data:`COMMON_ERRORS` describe these
answers in the OpenAPI document; :mod:`sbc.admin.api` then files them under
the problem+json media type.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping, Sequence
from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from sbc.admin import models

log = structlog.get_logger("sbc.admin")

PROBLEM_JSON = "application/problem+json"

#: The ``responses`` argument of a route: status -> OpenAPI response object.
Responses = dict[int | str, dict[str, Any]]


class ProblemError(Exception):
    """Raised by a handler to answer with a problem document."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        issues: Sequence[str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.issues = issues
        self.headers = headers


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem_response(
    status: int,
    detail: str | None = None,
    *,
    issues: Sequence[str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """``type`` stays ``about:blank``, so ``title`` is the status phrase (RFC 9457 §4.2.1)."""
    problem = models.Problem(
        title=_phrase(status),
        status=status,
        detail=detail,
        issues=list(issues) if issues is not None else None,
    )
    return JSONResponse(
        problem.model_dump(exclude_none=True),
        status_code=status,
        headers=headers,
        media_type=PROBLEM_JSON,
    )


async def _on_problem(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProblemError)
    return problem_response(exc.status, exc.detail, issues=exc.issues, headers=exc.headers)


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    detail: str | None = exc.detail if exc.detail != _phrase(exc.status_code) else None
    if exc.status_code == HTTPStatus.NOT_FOUND and detail is None:
        detail = f"nothing at {request.url.path}"
    elif exc.status_code == HTTPStatus.METHOD_NOT_ALLOWED:
        detail = f"{request.method} is not allowed on {request.url.path}"
    return problem_response(exc.status_code, detail, headers=exc.headers)


async def _on_invalid_request(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(error.get("type") == "json_invalid" for error in errors):
        return problem_response(HTTPStatus.BAD_REQUEST, "the body is not valid JSON")
    # The offending input is left out: it is the client's own, and may be large.
    issues = [
        f"{'.'.join(str(part) for part in error.get('loc', ()))}: {error.get('msg', '')}"
        for error in errors
    ]
    return problem_response(
        HTTPStatus.UNPROCESSABLE_ENTITY, "the request does not match the schema", issues=issues
    )


def add_problem_handlers(app: FastAPI) -> None:
    """Answer our refusals and FastAPI's own (404, 405, 422, bad JSON) as problems."""
    app.add_exception_handler(ProblemError, _on_problem)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(RequestValidationError, _on_invalid_request)


class GuardedRoute(APIRoute):
    """Turns an unexpected exception in a handler into a logged 500 problem.

    An app-wide ``Exception`` handler would answer too, but Starlette then
    re-raises to the server; here the failure ends with the request.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except (ProblemError, StarletteHTTPException, RequestValidationError):
                raise
            except Exception:
                log.exception("admin request failed", method=request.method, path=self.path)
                return problem_response(
                    HTTPStatus.INTERNAL_SERVER_ERROR, "internal error; see the SBC's log"
                )

        return guarded


def problem_doc(description: str) -> dict[str, Any]:
    """An error response in the OpenAPI document (see :meth:`sbc.admin.api.AdminApp.openapi`)."""
    return {"model": models.Problem, "description": description}


#: The refusals any route but ``/health`` can give.
COMMON_ERRORS: Responses = {
    401: problem_doc("missing or wrong bearer token"),
    429: problem_doc("too many failed bearer tokens from this address (see Retry-After)"),
    500: problem_doc("internal error"),
}
