"""``/cdrs`` and ``/cdrs.csv``: call detail records as JSON pages or a CSV export.

The query parameters become one :class:`~sbc.cdr.CdrQuery` through the
:func:`cdr_query` dependency; times are epoch seconds or ISO-8601
(:func:`parse_moment`), and a query that makes no sense is a 400 problem.

A JSON page carries ``next``, a keyset cursor after its last record, when
it is full; following ``after`` cursors is cheaper on deep pages than
large offsets. The CSV export (``format=csv``, or
``/cdrs.csv``) streams every matching record, a page of
:data:`~sbc.cdr.MAX_LIMIT` at a time, so memory stays flat however many
there are.

The store is the edge that can fail: :func:`_from_store` turns its failure
into a 503 problem while an answer can still be one; past the first CSV
page it aborts the transfer instead, so a broken export never looks
complete.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Annotated, Literal, TypeVar

import structlog
from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import StreamingResponse

from sbc.admin import models
from sbc.admin.context import AdminContext
from sbc.admin.problems import ProblemError, Responses, problem_doc
from sbc.cdr import CSV_FIELDS, MAX_LIMIT, CdrQuery, CdrStoreError, Disposition
from sbc.cdr import cursor_after as cdr_cursor_after

log = structlog.get_logger("sbc.admin")

T = TypeVar("T")


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


def add_cdr_routes(router: APIRouter, ctx: AdminContext) -> None:
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
