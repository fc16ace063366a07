"""``/registrations`` and ``/bans``: who is registered through us, and who is shut out.

Both lists are read from the context as they are now. ``DELETE
/bans/{source}`` canonicalises the address first (so ``2001:DB8::01`` lifts
the ban on ``2001:db8::1``) and answers 204, or 404 when that source
was not banned.
"""

from __future__ import annotations

from http import HTTPStatus

import structlog
from fastapi import APIRouter, Response

from sbc.admin import models
from sbc.admin.context import AdminContext
from sbc.admin.problems import ProblemError, problem_doc

log = structlog.get_logger("sbc.admin")


def add_security_routes(router: APIRouter, ctx: AdminContext) -> None:
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
