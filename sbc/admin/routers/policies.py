"""``/policies`` and ``/routes/resolve``: read, replace and try out the policy files.

Only the context's own policy file names are accepted (:func:`_policy_name`),
so a request can never name a path of its own making. A file is read as
JSON, or as the raw YAML when the first media type in ``Accept`` is a YAML
one. ``PUT`` takes the file as YAML text (bounded by
:data:`~sbc.admin.models.MAX_POLICY_BYTES`, UTF-8), and the context
validates, writes atomically and reloads; a refused file answers 422 with
its ``file:line`` issues while the running policy stays in force.
``POST /policies/validate`` is the same check without the write, compiled
off the event loop so a big file does not stall signalling.
``POST /routes/resolve`` is a what-if: the route, trunks and limits a call
with these attributes would meet under the running policy.
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus

import structlog
from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse

from sbc.admin import models
from sbc.admin.context import AdminContext
from sbc.admin.problems import ProblemError, Responses, problem_doc
from sbc.sip.params import parse_number

log = structlog.get_logger("sbc.admin")

YAML_TYPES = frozenset(
    {"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "text/plain"}
)

#: The ``PUT`` body in the OpenAPI document: FastAPI cannot infer a raw text body.
_YAML_BODY = {
    "requestBody": {
        "required": True,
        "content": {media: {"schema": {"type": "string"}} for media in sorted(YAML_TYPES)},
    }
}


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
    limit = models.MAX_POLICY_BYTES
    if (parse_number(declared, limit + 1, clamp=True) or 0) > limit:  # never int() of "²"
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


def add_policy_routes(router: APIRouter, ctx: AdminContext) -> None:
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
