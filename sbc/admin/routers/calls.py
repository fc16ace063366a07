"""``/calls`` and ``/trunks``: the calls in progress, and the trunks they use.

``GET /calls`` filters the context's calls by trunk (either leg's) and
state, sorts them newest first (ties by id, so pages are stable) and
answers one page of at most :data:`MAX_CALLS_PAGE`. ``DELETE
/calls/{id}`` only asks the context to hang up (BYE or CANCEL, as the
call's state requires) and answers 202: the call ends on its own time.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated

import structlog
from fastapi import APIRouter, Query

from sbc.admin import models
from sbc.admin.context import AdminContext, CallView
from sbc.admin.problems import ProblemError, Responses, problem_doc

log = structlog.get_logger("sbc.admin")

MAX_CALLS_PAGE = 1000


def _call_matches(view: CallView, trunk: str | None, state: models.CallState | None) -> bool:
    if state is not None and view.state != state:
        return False
    return trunk is None or trunk in (view.a.trunk, view.b.trunk)


def _no_such_call(call_id: str) -> ProblemError:
    return ProblemError(HTTPStatus.NOT_FOUND, f"no active call {call_id!r}")


def add_call_routes(router: APIRouter, ctx: AdminContext) -> None:
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
            raise _no_such_call(call_id)
        return models.Call.of(view)

    @router.delete(
        "/calls/{call_id}",
        summary="Hang up: BYE or CANCEL on both legs, as the call's state requires",
        status_code=HTTPStatus.ACCEPTED,
        responses=unknown_call,
    )
    async def hang_up(call_id: str) -> models.HangupAccepted:
        if not ctx.hangup(call_id):
            raise _no_such_call(call_id)
        log.info("admin hang-up", call=call_id)
        return models.HangupAccepted(id=call_id)

    @router.get("/trunks", summary="Trunks with their reachability and current load")
    async def list_trunks() -> list[models.Trunk]:
        return [models.Trunk.of(view) for view in ctx.trunks()]
