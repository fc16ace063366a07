"""Call detail records: one per call attempt, and the queries that find them.

A record is written *open* when the call starts (``end`` is ``None``) so a
crash leaves a trace, and written again, complete, when it ends. Times are
wall-clock epoch seconds (floats): the runtime converts the call engine's
loop time before building a record. Numbers are the ones sent on each leg
(after manipulation). The disposition is derived from the final SIP status
(RFC 3261 §21) and the end reason by :func:`disposition`, in one place.

The flat form (:meth:`CdrRecord.flat`, :data:`CSV_FIELDS`) is what storage
columns and CSV exports use: the two media directions are spread into
``a_to_b_*`` and ``b_to_a_*`` columns, and the derived figures
(``duration_s``, ``setup_ms``) are included.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from enum import StrEnum
from operator import attrgetter, itemgetter

from sbc.media.interface import MediaStats


class Disposition(StrEnum):
    """How a call attempt ended, for filtering and billing."""

    ANSWERED = "answered"  # a 2xx reached the caller
    BUSY = "busy"  # 486 Busy Here, 600 Busy Everywhere
    NO_ANSWER = "no_answer"  # rang until someone gave up: 480, or our ringing timer's 408
    CANCELLED = "cancelled"  # the caller gave up: 487 Request Terminated
    REJECTED = "rejected"  # refused by the far end: 3xx, other 4xx, other 6xx
    FAILED = "failed"  # something broke: 5xx, a request timeout (408), no final status
    INTERRUPTED = "interrupted"  # the SBC stopped while the call was open


class HangupBy(StrEnum):
    CALLER = "caller"
    CALLEE = "callee"
    SBC = "sbc"


#: The end reason the call engine gives when its own ringing timer fires.
NO_ANSWER_REASON = "no answer"
#: The end reason of a record completed by :func:`interrupted`.
INTERRUPTED_REASON = "interrupted: the SBC stopped during the call"

BUSY_STATUSES = frozenset({486, 600})  # RFC 3261 §21.4.24, §21.6.1
CANCELLED_STATUS = 487  # RFC 3261 §21.4.25
NO_ANSWER_STATUS = 480  # RFC 3261 §21.4.18 (Q.850 cause 19, "no answer", RFC 3398 §7.2.6.1)
TIMEOUT_STATUS = 408  # RFC 3261 §21.4.9


def disposition(final_status: int | None, answered: bool, end_reason: str) -> Disposition:
    """Map a finished call attempt to its disposition.

    An answered call is ``answered`` however it ended. A 408 is ``no_answer``
    only when our ringing timer produced it; a 408 from a request timing out
    (the trunk never answered at all, RFC 3261 §17.1.1.2 Timer B) is ``failed``.
    """
    if end_reason == INTERRUPTED_REASON:
        return Disposition.INTERRUPTED
    if answered:
        return Disposition.ANSWERED
    if final_status is None or final_status < 300:
        return Disposition.FAILED
    if final_status in BUSY_STATUSES:
        return Disposition.BUSY
    if final_status == CANCELLED_STATUS:
        return Disposition.CANCELLED
    if final_status == NO_ANSWER_STATUS:
        return Disposition.NO_ANSWER
    if final_status == TIMEOUT_STATUS:
        return Disposition.NO_ANSWER if end_reason == NO_ANSWER_REASON else Disposition.FAILED
    if 500 <= final_status < 600:
        return Disposition.FAILED
    return Disposition.REJECTED


def hangup_party(end_reason: str) -> HangupBy | None:
    """Who ended the call, read from the call engine's end reason.

    The engine says "caller hung up", "callee hung up", "cancelled by caller",
    "caller hung up early" or "B-leg answered <status>"; any other reason
    (timers, media errors, admin hang-up, internal errors) is the SBC's doing.
    """
    if not end_reason:
        return None
    if end_reason.startswith("caller") or end_reason == "cancelled by caller":
        return HangupBy.CALLER
    if end_reason.startswith(("callee", "B-leg answered")):
        return HangupBy.CALLEE
    return HangupBy.SBC


@dataclass(frozen=True, slots=True)
class MediaFigures:
    """One direction of a call's media (RFC 3550 §6.4.1 loss and jitter).

    ``lost``/``jitter_ms`` are what the relay measured; ``reported_*`` what the
    receiving endpoint's RTCP reports said.
    """

    packets: int = 0
    octets: int = 0
    lost: int = 0
    jitter_ms: float = 0.0
    reported_lost: int = 0
    reported_jitter_ms: float = 0.0

    @classmethod
    def from_stats(cls, stats: MediaStats, direction: str) -> MediaFigures:
        """Read ``direction`` ("a_to_b" or "b_to_a") out of a call's stats."""
        extra = stats.extra
        return cls(
            packets=int(extra.get(f"{direction}_packets", 0)),
            octets=int(extra.get(f"{direction}_octets", 0)),
            lost=int(extra.get(f"{direction}_lost", 0)),
            jitter_ms=float(extra.get(f"{direction}_jitter_ms", 0.0)),
            reported_lost=int(extra.get(f"{direction}_reported_lost", 0)),
            reported_jitter_ms=float(extra.get(f"{direction}_reported_jitter_ms", 0.0)),
        )


MEDIA_FIELDS = tuple(f.name for f in fields(MediaFigures))
DIRECTIONS = ("a_to_b", "b_to_a")


@dataclass(frozen=True, slots=True, kw_only=True)
class CdrRecord:
    """One call attempt. ``end`` is ``None`` while the call is open."""

    id: str  # the SBC's own call id
    a_call_id: str
    b_call_id: str = ""
    a_local_tag: str = ""
    a_remote_tag: str = ""
    b_local_tag: str = ""
    b_remote_tag: str = ""
    ingress_trunk: str = ""
    egress_trunk: str = ""
    ingress_interface: str = ""
    egress_interface: str = ""
    route: str = ""
    calling: str = ""
    called: str = ""
    start: float
    ring: float | None = None  # first 18x
    answer: float | None = None
    end: float | None = None
    final_status: int | None = None
    disposition: Disposition | None = None
    hangup_by: HangupBy | None = None
    end_reason: str = ""
    codecs: str = ""  # e.g. "PCMU/8000,telephone-event/8000"
    failovers: int = 0
    a_to_b: MediaFigures = field(default_factory=MediaFigures)
    b_to_a: MediaFigures = field(default_factory=MediaFigures)

    @property
    def is_open(self) -> bool:
        return self.end is None

    @property
    def duration_s(self) -> float:
        """Answer to end (0 for calls never answered or still open)."""
        if self.answer is None or self.end is None:
            return 0.0
        return max(0.0, self.end - self.answer)

    @property
    def setup_ms(self) -> float | None:
        """Start to answer, or start to the final answer for failed attempts."""
        settled = self.answer if self.answer is not None else self.end
        return None if settled is None else max(0.0, (settled - self.start) * 1000.0)

    def with_media(self, stats: MediaStats) -> CdrRecord:
        """The same record carrying a call's media statistics."""
        return replace(
            self,
            a_to_b=MediaFigures.from_stats(stats, "a_to_b"),
            b_to_a=MediaFigures.from_stats(stats, "b_to_a"),
        )

    def row(self) -> tuple[object, ...]:
        """The flat values, in :data:`CSV_FIELDS` order (storage columns)."""
        return (
            *_head_values(self),
            self.duration_s,
            self.setup_ms,
            *_tail_values(self),
            *_media_values(self.a_to_b),
            *_media_values(self.b_to_a),
        )

    def flat(self) -> dict[str, object]:
        """Column name to value, in :data:`CSV_FIELDS` order."""
        return dict(zip(CSV_FIELDS, self.row(), strict=True))

    @classmethod
    def from_row(cls, row: Sequence[object]) -> CdrRecord:
        """Rebuild a record from :meth:`row` values (derived columns ignored)."""
        if len(row) != len(CSV_FIELDS):
            raise ValueError(f"a CDR row has {len(CSV_FIELDS)} values, not {len(row)}")
        plain = dict(zip(_PLAIN_FIELDS, _plain_values(row), strict=True))
        if plain["disposition"] is not None:
            plain["disposition"] = Disposition(plain["disposition"])
        if plain["hangup_by"] is not None:
            plain["hangup_by"] = HangupBy(plain["hangup_by"])
        a_to_b = row[_MEDIA_START : _MEDIA_START + len(MEDIA_FIELDS)]
        b_to_a = row[_MEDIA_START + len(MEDIA_FIELDS) :]
        return cls(
            **plain,
            a_to_b=MediaFigures(*a_to_b),  # type: ignore[arg-type]
            b_to_a=MediaFigures(*b_to_a),  # type: ignore[arg-type]
        )

    def to_csv_row(self) -> list[str]:
        """One CSV row (see :data:`CSV_FIELDS`); quoting is the csv writer's job."""
        return [_csv_cell(name, value) for name, value in self.flat().items()]


_PLAIN_FIELDS = tuple(f.name for f in fields(CdrRecord) if f.name not in DIRECTIONS)
# The derived figures sit right after the timestamps they come from.
_HEAD_FIELDS = _PLAIN_FIELDS[: _PLAIN_FIELDS.index("end") + 1]
_TAIL_FIELDS = _PLAIN_FIELDS[len(_HEAD_FIELDS) :]
_TIME_FIELDS = frozenset({"start", "ring", "answer", "end"})

#: Flat column names: storage columns and the CSV header, in order.
CSV_FIELDS: tuple[str, ...] = (
    *_HEAD_FIELDS,
    "duration_s",
    "setup_ms",
    *_TAIL_FIELDS,
    *(f"{direction}_{name}" for direction in DIRECTIONS for name in MEDIA_FIELDS),
)
_MEDIA_START = len(CSV_FIELDS) - 2 * len(MEDIA_FIELDS)
_plain_values = itemgetter(*(CSV_FIELDS.index(name) for name in _PLAIN_FIELDS))
_head_values = attrgetter(*_HEAD_FIELDS)
_tail_values = attrgetter(*_TAIL_FIELDS)
_media_values = attrgetter(*MEDIA_FIELDS)

# Spreadsheets run a cell starting with one of these as a formula (CSV
# injection); calling numbers come from the network, so such text is
# prefixed with a quote unless it is a plain signed number ("+12125550123").
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(name: str, value: object) -> str:
    if value is None:
        return ""
    if name in _TIME_FIELDS and isinstance(value, float | int):
        return datetime.fromtimestamp(value, UTC).isoformat(timespec="milliseconds")
    if isinstance(value, float):
        return f"{value:.3f}"
    text = str(value)
    if text.startswith(_FORMULA_STARTS) and not (text[1:].isascii() and text[1:].isdigit()):
        return "'" + text
    return text


def completed(
    record: CdrRecord,
    *,
    end: float,
    final_status: int | None,
    end_reason: str,
    hangup_by: HangupBy | None = None,
) -> CdrRecord:
    """The final form of an open record: disposition and hang-up party filled in."""
    return replace(
        record,
        end=end,
        final_status=final_status,
        end_reason=end_reason,
        disposition=disposition(final_status, record.answer is not None, end_reason),
        hangup_by=hangup_by if hangup_by is not None else hangup_party(end_reason),
    )


def interrupted(record: CdrRecord, *, last_alive: float | None, now: float) -> CdrRecord:
    """Complete a record left open by a crash.

    The call ended when the SBC stopped: no earlier than the record's last
    timestamp, no later than the store's last sign of life (``last_alive``),
    and ``now`` when nothing better is known.
    """
    latest = max(t for t in (record.start, record.ring, record.answer) if t is not None)
    end = now if last_alive is None else min(now, max(latest, last_alive))
    return replace(
        record,
        end=max(end, latest),
        end_reason=INTERRUPTED_REASON,
        disposition=Disposition.INTERRUPTED,
        hangup_by=HangupBy.SBC,
    )


#: The most records one query returns (the admin API pages beyond that).
MAX_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class CdrQuery:
    """Filters and one page of records, newest first (by ``start``, then ``id``).

    ``since`` is inclusive and ``until`` exclusive; ``trunk`` matches the
    ingress or the egress trunk; ``number`` matches the calling or the called
    number, exactly or (with ``prefix``) as a prefix. Page with ``offset`` or,
    cheaper on deep pages, with ``after`` = :func:`cursor_after` of the last
    record of the previous page.
    """

    since: float | None = None
    until: float | None = None
    trunk: str | None = None
    number: str | None = None
    prefix: bool = False
    disposition: Disposition | None = None
    closed_only: bool = False
    limit: int = 100
    offset: int = 0
    after: str | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise ValueError(f"limit must be between 1 and {MAX_LIMIT}")
        if self.offset < 0:
            raise ValueError("offset must not be negative")
        if self.after is not None:
            self.after_key()  # refuse a bad cursor here, not in the store

    def after_key(self) -> tuple[float, str] | None:
        """The (start, id) the page starts after, from the ``after`` cursor."""
        if self.after is None:
            return None
        start, sep, call_id = self.after.partition(":")
        try:
            moment = float(start)
        except ValueError:
            moment = math.nan
        if not sep or not call_id or not math.isfinite(moment):
            raise ValueError(f"bad cursor {self.after!r}")
        return moment, call_id


def cursor_after(record: CdrRecord) -> str:
    """The cursor of the page that follows ``record`` (see :class:`CdrQuery`)."""
    return f"{record.start!r}:{record.id}"
