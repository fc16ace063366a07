"""``/health``, ``/ready`` and ``/metrics``: is the SBC alive, ready, and how is it doing.

``/health`` only proves that the process and its event loop answer (it is
the one path open without a token, for liveness probes). ``/ready`` turns
the context's :class:`~sbc.admin.context.Readiness` into a report, 503 when
any part is not ready. ``/metrics`` serves the Prometheus exposition the
server hands in, or a 503 problem when metrics are off.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus

from fastapi import APIRouter, Response
from fastapi.responses import PlainTextResponse

from sbc.admin import models
from sbc.admin.context import AdminContext
from sbc.admin.problems import ProblemError, problem_doc

#: Returns the Prometheus exposition: (body, content type).
Metrics = Callable[[], tuple[bytes, str]]


def add_health_routes(router: APIRouter, ctx: AdminContext, metrics: Metrics | None) -> None:
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
