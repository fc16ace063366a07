"""The record model: disposition, hang-up party, derived figures, CSV, queries."""

from __future__ import annotations

import csv
import io
from dataclasses import MISSING, fields, replace

import pytest
from cdr_samples import T0, full_record, open_record

from sbc.cdr.record import (
    CSV_FIELDS,
    INTERRUPTED_REASON,
    MAX_LIMIT,
    CdrQuery,
    CdrRecord,
    Disposition,
    HangupBy,
    MediaFigures,
    completed,
    cursor_after,
    disposition,
    hangup_party,
    interrupted,
)
from sbc.media.interface import MediaStats

D = Disposition


@pytest.mark.parametrize(
    ("status", "answered", "reason", "expected"),
    [
        (200, True, "caller hung up", D.ANSWERED),
        (200, True, "maximum call duration", D.ANSWERED),
        (486, False, "B-leg answered 486", D.BUSY),
        (600, False, "B-leg answered 600", D.BUSY),
        (487, False, "cancelled by caller", D.CANCELLED),
        (487, False, "caller hung up early", D.CANCELLED),
        (480, False, "B-leg answered 480", D.NO_ANSWER),
        (408, False, "no answer", D.NO_ANSWER),  # our ringing timer
        (408, False, "B-leg answered 408", D.FAILED),  # the trunk never answered
        (503, False, "B-leg answered 503", D.FAILED),
        (500, False, "internal error", D.FAILED),
        (None, False, "internal error", D.FAILED),
        (404, False, "B-leg answered 404", D.REJECTED),
        (488, False, "media: no common codec", D.REJECTED),
        (302, False, "B-leg answered 302", D.REJECTED),
        (603, False, "B-leg answered 603", D.REJECTED),
        (None, False, INTERRUPTED_REASON, D.INTERRUPTED),
        (200, True, INTERRUPTED_REASON, D.INTERRUPTED),
    ],
)
def test_disposition_from_status_and_reason(
    status: int | None, answered: bool, reason: str, expected: Disposition
) -> None:
    assert disposition(status, answered, reason) is expected


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("caller hung up", HangupBy.CALLER),
        ("caller hung up early", HangupBy.CALLER),
        ("cancelled by caller", HangupBy.CALLER),
        ("callee hung up", HangupBy.CALLEE),
        ("B-leg answered 486", HangupBy.CALLEE),
        ("no answer", HangupBy.SBC),
        ("session expired", HangupBy.SBC),
        ("media: no common codec", HangupBy.SBC),
        ("", None),
    ],
)
def test_hangup_party_from_end_reason(reason: str, expected: HangupBy | None) -> None:
    assert hangup_party(reason) == expected


def test_completed_fills_disposition_and_hangup_party() -> None:
    record = open_record(answer=T0 + 3)
    done = completed(record, end=T0 + 63, final_status=200, end_reason="callee hung up")
    assert done.disposition is D.ANSWERED
    assert done.hangup_by is HangupBy.CALLEE
    assert done.duration_s == pytest.approx(60.0)
    assert not done.is_open
    explicit = completed(
        open_record(), end=T0 + 5, final_status=503, end_reason="x", hangup_by=HangupBy.CALLER
    )
    assert explicit.disposition is D.FAILED
    assert explicit.hangup_by is HangupBy.CALLER


def test_derived_figures() -> None:
    record = open_record()
    assert record.is_open
    assert record.duration_s == 0.0
    assert record.setup_ms is None
    failed = replace(record, end=record.start + 0.75)
    assert failed.duration_s == 0.0
    assert failed.setup_ms == pytest.approx(750.0)  # start to the final answer
    answered = replace(record, answer=record.start + 2.0, end=record.start + 12.0)
    assert answered.setup_ms == pytest.approx(2000.0)
    assert answered.duration_s == pytest.approx(10.0)


def test_interrupted_ends_at_the_last_sign_of_life() -> None:
    record = open_record(answer=T0 + 10)
    at_heartbeat = interrupted(record, last_alive=T0 + 100, now=T0 + 5000)
    assert at_heartbeat.end == T0 + 100
    assert at_heartbeat.disposition is D.INTERRUPTED
    assert at_heartbeat.hangup_by is HangupBy.SBC
    assert at_heartbeat.end_reason == INTERRUPTED_REASON
    # A heartbeat older than the call itself: the call's own last timestamp.
    assert interrupted(record, last_alive=T0 - 50, now=T0 + 5000).end == T0 + 10
    # Nothing known: now. A heartbeat from the future (clock step): capped at now.
    assert interrupted(record, last_alive=None, now=T0 + 5000).end == T0 + 5000
    assert interrupted(record, last_alive=T0 + 9000, now=T0 + 5000).end == T0 + 5000


def test_media_figures_from_stats() -> None:
    extra = {
        "a_to_b_packets": 10.0,
        "a_to_b_octets": 1720.0,
        "a_to_b_lost": 1.0,
        "a_to_b_jitter_ms": 2.5,
        "a_to_b_reported_lost": 3.0,
        "a_to_b_reported_jitter_ms": 4.5,
        "b_to_a_packets": 20.0,
    }
    record = open_record().with_media(MediaStats(30, 5160, 1, extra))
    assert record.a_to_b == MediaFigures(10, 1720, 1, 2.5, 3, 4.5)
    assert record.b_to_a == MediaFigures(packets=20)
    assert open_record().with_media(MediaStats()).a_to_b == MediaFigures()


def test_row_round_trip_keeps_every_field() -> None:
    record = full_record()
    for f in fields(CdrRecord):  # the sample really sets every field
        if f.default is not MISSING:
            assert getattr(record, f.name) != f.default, f.name
        elif f.default_factory is not MISSING:
            assert getattr(record, f.name) != f.default_factory(), f.name
    row = record.row()
    assert len(row) == len(CSV_FIELDS)
    assert CdrRecord.from_row(row) == record
    flat = record.flat()
    assert list(flat) == list(CSV_FIELDS)
    assert flat["duration_s"] == pytest.approx(60.0)
    assert flat["setup_ms"] == pytest.approx(1500.0)
    assert flat["b_to_a_reported_jitter_ms"] == 4.125
    with pytest.raises(ValueError, match="38 values"):
        CdrRecord.from_row(row[:-1])


def test_csv_header_and_row() -> None:
    record = full_record(end_reason='media: "weird", codec\nline two')
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_FIELDS)
    writer.writerow(record.to_csv_row())
    header, row = list(csv.reader(io.StringIO(out.getvalue())))
    assert header[:4] == ["id", "a_call_id", "b_call_id", "a_local_tag"]
    cells = dict(zip(header, row, strict=True))
    assert cells["end_reason"] == 'media: "weird", codec\nline two'  # quoted, not split
    assert cells["start"] == "2023-11-14T22:13:21.000+00:00"
    assert cells["ring"] == "2023-11-14T22:13:21.250+00:00"
    assert cells["duration_s"] == "60.000"
    assert cells["final_status"] == "200"
    assert cells["disposition"] == "answered"
    assert cells["hangup_by"] == "caller"
    assert cells["calling"] == "+13105550199"  # a number stays a number
    assert cells["a_to_b_jitter_ms"] == "1.250"
    assert cells["b_to_a_packets"] == "2990"
    open_cells = dict(zip(CSV_FIELDS, open_record().to_csv_row(), strict=True))
    assert open_cells["end"] == open_cells["disposition"] == open_cells["setup_ms"] == ""


@pytest.mark.parametrize(
    "hostile",
    ['=HYPERLINK("http://x")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\t=1"],
)
def test_csv_defuses_formulas_from_the_network(hostile: str) -> None:
    cells = dict(zip(CSV_FIELDS, full_record(calling=hostile).to_csv_row(), strict=True))
    assert cells["calling"] == "'" + hostile


def test_query_limits_and_cursor() -> None:
    assert CdrQuery().limit == 100
    CdrQuery(limit=MAX_LIMIT)
    for bad in (0, MAX_LIMIT + 1):
        with pytest.raises(ValueError, match="limit"):
            CdrQuery(limit=bad)
    with pytest.raises(ValueError, match="offset"):
        CdrQuery(offset=-1)
    for cursor in ("nonsense", "12.5:", ":call-1", "nan:call-1", "inf:x"):
        with pytest.raises(ValueError, match="bad cursor"):
            CdrQuery(after=cursor)
    record = full_record(7, id="odd:id")
    assert CdrQuery(after=cursor_after(record)).after_key() == (record.start, "odd:id")
    assert CdrQuery().after_key() is None
