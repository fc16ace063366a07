"""The admin REST API: FastAPI over an :class:`~sbc.admin.context.AdminContext`.

:func:`create_app` builds the application; :mod:`sbc.admin.server` serves it
with uvicorn inside the SBC's own event loop. Every endpoint is ``async``:
the context is the live SBC, which is not thread-safe, so handlers run on
the event loop and never in FastAPI's thread pool (the one exception,
policy validation, only reads files and compiles a policy off-loop so a
big file does not stall signalling).

Access (bearer token, or loopback ``Host`` when open) is checked before
routing by :class:`~sbc.admin.access.AccessGuard`; errors are RFC 9457
problem details (:mod:`sbc.admin.problems`), for our own refusals and for
FastAPI's.
"""

from __future__ import annotations

import asyncio
import csv
import io
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Annotated, Any, Literal, TypeVar

import structlog
from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse

from sbc.admin import models
from sbc.admin.access import OPEN_PATHS, AccessGuard
from sbc.admin.context import AdminContext, CallView
from sbc.admin.problems import (
    COMMON_ERRORS,
    PROBLEM_JSON,
    GuardedRoute,
    ProblemError,
    Responses,
    add_problem_handlers,
    problem_doc,
)
from sbc.cdr import CSV_FIELDS, MAX_LIMIT, CdrQuery, CdrStoreError, Disposition
from sbc.cdr import cursor_after as cdr_cursor_after

log = structlog.get_logger("sbc.admin")

T = TypeVar("T")

API_TITLE = "sbc admin API"
API_VERSION = "1.0"
YAML_TYPES = frozenset(
    {"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "text/plain"}
)
MAX_CALLS_PAGE = 1000
API_DESCRIPTION = (
    "Administration of a running sbc: health, metrics, active calls, trunks, policies, "
    "route what-ifs, bans and CDRs. Every route but /health takes a bearer token when "
    "one is configured. Errors are RFC 9457 problem details (application/problem+json)."
)

#: Returns the Prometheus exposition: (body, content type).
Metrics = Callable[[], tuple[bytes, str]]


# --- the application ------------------------------------------------------------------


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


def create_app(ctx: AdminContext, *, token: str | None, metrics: Metrics | None = None) -> FastAPI:
    """The admin API over ``ctx``.

    ``token`` None leaves the API open (loopback binds only: the server
    refuses anything else); ``metrics`` None makes ``/metrics`` a 503.
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
    _add_health_routes(router, ctx, metrics)
    _add_call_routes(router, ctx)
    _add_policy_routes(router, ctx)
    _add_security_routes(router, ctx)
    _add_cdr_routes(router, ctx)

    @router.get("/openapi.json", include_in_schema=False)
    async def openapi_document() -> JSONResponse:
        return JSONResponse(app.openapi())

    app.include_router(router)
    add_problem_handlers(app)
    app.add_middleware(AccessGuard, token=token)
    return app


# --- health and metrics ---------------------------------------------------------------


def _add_health_routes(router: APIRouter, ctx: AdminContext, metrics: Metrics | None) -> None:
    @router.get("/health", summary="Liveness: the process and its event loop answer")
    async def health() -> models.Health:
        return models.Health()

    @router.get(
        "/ready",
        summary="Readiness: listeners up, policy loaded, media workers alive",
        responses={503: {"model": models.ReadinessReport, "description": "not ready"}},
    )
    async def ready(response: Response) -> models.ReadinessReport:
        report = models.ReadinessReport.of(ctx.readiness())
        if not report.ready:
            response.status_code = HTTPStatus.SERVICE_UNAVAILABLE
        return report

    @router.get(
        "/metrics",
        summary="Prometheus metrics (text exposition format)",
        response_class=PlainTextResponse,
        responses={503: problem_doc("metrics are not enabled")},
    )
    async def prometheus_metrics() -> Response:
        if metrics is None:
            raise ProblemError(HTTPStatus.SERVICE_UNAVAILABLE, "metrics are not enabled")
        body, content_type = metrics()
        return Response(body, media_type=content_type)


# --- calls and trunks -----------------------------------------------------------------


def _call_matches(view: CallView, trunk: str | None, state: models.CallState | None) -> bool:
    if state is not None and view.state != state:
        return False
    return trunk is None or trunk in (view.a.trunk, view.b.trunk)


def _add_call_routes(router: APIRouter, ctx: AdminContext) -> None:
    unknown_call: Responses = {404: problem_doc("no such call")}

    @router.get("/calls", summary="Active calls, newest first")
    async def list_calls(
        trunk: Annotated[str | None, Query(max_length=128, description="either leg's")] = None,
        state: models.CallState | None = None,
        limit: Annotated[int, Query(ge=1, le=MAX_CALLS_PAGE)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> models.CallPage:
        views = [view for view in ctx.calls() if _call_matches(view, trunk, state)]
        views.sort(key=lambda view: (-view.started, view.id))
        return models.CallPage(
            items=[models.Call.of(view) for view in views[offset : offset + limit]],
            total=len(views),
            limit=limit,
            offset=offset,
        )

    @router.get("/calls/{call_id}", summary="One call, both legs", responses=unknown_call)
    async def get_call(call_id: str) -> models.Call:
        view = ctx.call(call_id)
        if view is None:
            raise ProblemError(HTTPStatus.NOT_FOUND, f"no active call {call_id!r}")
        return models.Call.of(view)

    @router.delete(
        "/calls/{call_id}",
        summary="Hang up: BYE or CANCEL on both legs, as the call's state requires",
        status_code=HTTPStatus.ACCEPTED,
        responses=unknown_call,
    )
    async def hang_up(call_id: str) -> models.HangupAccepted:
        if not ctx.hangup(call_id):
            raise ProblemError(HTTPStatus.NOT_FOUND, f"no active call {call_id!r}")
        log.info("admin hang-up", call=call_id)
        return models.HangupAccepted(id=call_id)

    @router.get("/trunks", summary="Trunks with their reachability and current load")
    async def list_trunks() -> list[models.Trunk]:
        return [models.Trunk.of(view) for view in ctx.trunks()]


# --- policies -------------------------------------------------------------------------


def _policy_name(ctx: AdminContext, name: str) -> str:
    """``name`` if it is one of the context's policy files; never a path of our own making."""
    files = list(ctx.policy_files())
    if name not in files:
        known = ", ".join(files) or "none"
        raise ProblemError(HTTPStatus.NOT_FOUND, f"no policy file {name!r} (files: {known})")
    return name


def _prefers_yaml(accept: str) -> bool:
    first = accept.split(",", 1)[0].split(";", 1)[0].strip().lower()
    return first in YAML_TYPES


async def _yaml_body(request: Request) -> str:
    """The request body as text: YAML media types only, bounded, UTF-8."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type not in YAML_TYPES:
        raise ProblemError(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            "send the file as application/yaml or text/plain",
        )
    too_large = ProblemError(
        HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        f"a policy file is at most {models.MAX_POLICY_BYTES} bytes",
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > models.MAX_POLICY_BYTES:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > models.MAX_POLICY_BYTES:
            raise too_large
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProblemError(HTTPStatus.BAD_REQUEST, f"the file is not UTF-8: {exc.reason}") from exc


_YAML_BODY = {
    "requestBody": {
        "required": True,
        "content": {media: {"schema": {"type": "string"}} for media in sorted(YAML_TYPES)},
    }
}


def _add_policy_routes(router: APIRouter, ctx: AdminContext) -> None:
    unknown_file: Responses = {404: problem_doc("not a policy file")}

    @router.get("/policies", summary="Policy files and the last reload")
    async def list_policies() -> models.PolicyIndex:
        return models.PolicyIndex(
            files=list(ctx.policy_files()),
            last_reload=models.ReloadReport.of(ctx.reload_status()),
        )

    @router.get(
        "/policies/{file}",
        summary="One policy file (JSON, or the raw YAML with Accept: application/yaml)",
        response_model=models.PolicyFile,
        responses={**unknown_file, 200: {"content": {"application/yaml": {}}}},
    )
    async def read_policy(file: str, request: Request) -> Response | models.PolicyFile:
        name = _policy_name(ctx, file)
        text = ctx.read_policy(name)
        if text is None:
            raise ProblemError(HTTPStatus.NOT_FOUND, f"{name} is gone from the directory")
        if _prefers_yaml(request.headers.get("accept", "")):
            return PlainTextResponse(text, media_type="application/yaml")
        return models.PolicyFile(name=name, content=text)

    @router.put(
        "/policies/{file}",
        summary="Replace a file: validate, write atomically, reload",
        openapi_extra=_YAML_BODY,
        responses={
            **unknown_file,
            413: problem_doc("file too large"),
            415: problem_doc("not sent as YAML text"),
            422: problem_doc("refused: issues lists file:line: message"),
        },
    )
    async def replace_policy(file: str, request: Request) -> models.ReloadReport:
        name = _policy_name(ctx, file)
        text = await _yaml_body(request)
        status = await ctx.write_policy(name, text)
        log.info("admin policy write", file=name, applied=status.applied, issues=len(status.issues))
        if not status.applied:
            raise ProblemError(
                HTTPStatus.UNPROCESSABLE_ENTITY,
                f"{name} was refused; the running policy stays in force",
                issues=status.issues,
            )
        return models.ReloadReport.of(status)

    @router.post(
        "/policies/validate",
        summary="Dry run: would this content be accepted as that file?",
        responses=unknown_file,
    )
    async def validate_policy(draft: models.PolicyDraft) -> models.ValidationReport:
        name = _policy_name(ctx, draft.file)
        # Off the loop: compiling a policy must not stall signalling.
        issues = await asyncio.to_thread(ctx.validate_policy, name, draft.content)
        return models.ValidationReport(valid=not issues, issues=list(issues))

    @router.post("/routes/resolve", summary="What-if: the route, trunks and limits a call meets")
    async def resolve_route(query: models.RouteQuery) -> models.RouteResolution:
        try:
            view = ctx.resolve(
                method=query.method,
                source=str(query.source),
                interface=query.interface,
                request_uri=query.request_uri,
                from_uri=query.from_uri,
                headers=query.headers,
            )
        except ValueError as exc:
            raise ProblemError(HTTPStatus.UNPROCESSABLE_ENTITY, f"cannot resolve: {exc}") from exc
        return models.RouteResolution.of(view)


# --- bans -----------------------------------------------------------------------------


def _add_security_routes(router: APIRouter, ctx: AdminContext) -> None:
    @router.get("/registrations", summary="Our registrations with trunks and phones' relayed ones")
    async def list_registrations() -> list[models.Registration]:
        return [models.Registration.of(view) for view in ctx.registrations()]

    @router.get("/bans", summary="Sources banned now")
    async def list_bans() -> list[models.BanEntry]:
        return [models.BanEntry.of(ban) for ban in ctx.bans()]

    @router.delete(
        "/bans/{source}",
        summary="Lift a ban",
        status_code=HTTPStatus.NO_CONTENT,
        response_class=Response,
        responses={404: problem_doc("the source is not banned")},
    )
    async def lift_ban(source: str) -> Response:
        address = models.canonical_source(source)
        if not ctx.unban(address):
            raise ProblemError(HTTPStatus.NOT_FOUND, f"{address} is not banned")
        log.info("admin unban", source=address)
        return Response(status_code=HTTPStatus.NO_CONTENT)


# --- CDRs -----------------------------------------------------------------------------


def parse_moment(text: str, name: str) -> float:
    """Epoch seconds from epoch seconds or ISO-8601 (no offset = UTC).

    A ``+`` left unencoded in a query string arrives as a space, so
    ``2024-05-01T10:00:00 02:00`` is read as ``...+02:00``.
    """
    try:
        value = float(text)
    except ValueError:
        value = math.nan
        for candidate in (text, "+".join(text.rsplit(" ", 1))):
            try:
                moment = datetime.fromisoformat(candidate)
            except ValueError:
                continue
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            value = moment.timestamp()
            break
    if not math.isfinite(value):
        raise ProblemError(
            HTTPStatus.BAD_REQUEST, f"{name}: {text!r} is neither epoch seconds nor ISO-8601"
        )
    return value


async def cdr_query(
    *,
    since: Annotated[str | None, Query(description="inclusive; epoch or ISO-8601")] = None,
    until: Annotated[str | None, Query(description="exclusive; epoch or ISO-8601")] = None,
    trunk: Annotated[str | None, Query(max_length=128, description="ingress or egress")] = None,
    number: Annotated[str | None, Query(max_length=128, description="calling or called")] = None,
    prefix: Annotated[bool, Query(description="match number as a prefix")] = False,
    disposition: Disposition | None = None,
    closed_only: bool = False,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
    after: Annotated[str | None, Query(max_length=512, description="a page's `next`")] = None,
) -> CdrQuery:
    """The query parameters of ``/cdrs`` as a :class:`CdrQuery` (400 when they make none)."""
    start = parse_moment(since, "since") if since is not None else None
    end = parse_moment(until, "until") if until is not None else None
    if start is not None and end is not None and start >= end:
        raise ProblemError(HTTPStatus.BAD_REQUEST, "since must be before until")
    try:
        return CdrQuery(
            since=start,
            until=end,
            trunk=trunk,
            number=number,
            prefix=prefix,
            disposition=disposition,
            closed_only=closed_only,
            limit=limit,
            offset=offset,
            after=after,
        )
    except ValueError as exc:
        raise ProblemError(HTTPStatus.BAD_REQUEST, str(exc)) from exc


async def _from_store(pending: Awaitable[T]) -> T:
    """Await a CDR store call; an unusable store is a 503, not a 500."""
    try:
        return await pending
    except CdrStoreError as exc:
        log.warning("admin CDR query failed", error=str(exc))
        raise ProblemError(HTTPStatus.SERVICE_UNAVAILABLE, "the CDR store is unavailable") from exc


def _csv_text(rows: Sequence[Sequence[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)  # RFC 4180 §2
    return buffer.getvalue()


async def _csv_export(ctx: AdminContext, query: CdrQuery) -> StreamingResponse:
    """Every record matching the filters (from ``after`` on), a page of MAX_LIMIT at a time.

    The first page is read before answering, so a store failure is still a
    problem document; a failure later aborts the transfer instead of
    ending it as if the export were complete.
    """
    query = replace(query, limit=MAX_LIMIT, offset=0)
    first = await _from_store(ctx.cdrs(query))

    async def chunks() -> AsyncIterator[str]:
        yield _csv_text([CSV_FIELDS])
        page = first
        while page:
            yield _csv_text([record.to_csv_row() for record in page])
            if len(page) < query.limit:
                return
            try:
                page = await ctx.cdrs(replace(query, after=cdr_cursor_after(page[-1])))
            except Exception:
                log.exception("admin CDR export aborted")
                raise

    return StreamingResponse(
        chunks(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="cdrs.csv"'},
    )


_CSV_RESPONSE: Responses = {
    200: {
        "content": {"text/csv": {"schema": {"type": "string"}}},
        "description": "records: a JSON page, or CSV (header row, then one row per record)",
    },
    400: problem_doc("bad time, cursor or range"),
    503: problem_doc("the CDR store is unavailable"),
}


def _add_cdr_routes(router: APIRouter, ctx: AdminContext) -> None:
    @router.get(
        "/cdrs",
        summary="Call detail records, newest first (format=csv: the whole export)",
        response_model=models.CdrPage,
        responses=_CSV_RESPONSE,
    )
    async def list_cdrs(
        query: Annotated[CdrQuery, Depends(cdr_query)],
        output: Annotated[Literal["json", "csv"], Query(alias="format")] = "json",
    ) -> Response | models.CdrPage:
        if output == "csv":
            return await _csv_export(ctx, query)
        records = await _from_store(ctx.cdrs(query))
        total = await _from_store(ctx.cdr_count(query))
        last = records[-1] if len(records) == query.limit else None
        return models.CdrPage(
            items=[models.Cdr.of(record) for record in records],
            total=total,
            limit=query.limit,
            offset=query.offset,
            next=cdr_cursor_after(last) if last is not None else None,
        )

    @router.get(
        "/cdrs.csv",
        summary="Every record matching the filters as CSV (limit and offset ignored)",
        response_class=StreamingResponse,
        responses=_CSV_RESPONSE,
    )
    async def export_cdrs(query: Annotated[CdrQuery, Depends(cdr_query)]) -> StreamingResponse:
        return await _csv_export(ctx, query)
