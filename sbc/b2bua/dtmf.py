"""DTMF as SIP INFO: the bodies, and the INFO requests the SBC sends.

Interworking happens between a leg whose trunk carries DTMF as INFO
(``dtmf: info``) and one whose trunk uses RFC 4733 events (the default):

- a digit the relay takes out of the RFC 4733 leg's stream becomes an INFO
  on the other leg (:func:`dtmf_info_request`), in that leg's dialog like any
  request the SBC originates (its CSeq, route set, Via);
- an INFO with a DTMF body arriving on the INFO leg is answered by the SBC
  itself (:func:`parse_dtmf_info`: 200, or 400 for an unreadable body) and
  becomes RFC 4733 events towards the other leg.

INFO here is the legacy usage (RFC 6086 §2: no Info-Package), so it is
answered 200 even when the other leg negotiated no telephone-event and the
digit cannot be delivered: the request itself was fine, and a 4xx would not
help the sender (RFC 6086 §4.2.2 reserves 469 for a bad Info-Package). That
case is logged and counted.

Bodies (both are accepted; the trunk's ``dtmf_info`` says which we send):

- ``application/dtmf-relay`` (Cisco's)::

      Signal=5
      Duration=160

  ``Signal`` a digit (``0-9 * # A-D``, or its RFC 4733 event code 10-15),
  ``Duration`` in ms (default 160 when absent);
- ``application/dtmf``: the digit alone (or its event code).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sbc.b2bua.leg import Leg, Side
from sbc.b2bua.pending import Kind, Pending
from sbc.media.dtmf import DEFAULT_DURATION_MS, DIGITS, MAX_DURATION_MS, clamp_duration_ms
from sbc.media.interface import PassthroughMedia
from sbc.sip.errors import SipError
from sbc.sip.message import Request, build_response
from sbc.sip.params import parse_number
from sbc.sip.transaction import ServerTransaction

if TYPE_CHECKING:
    from sbc.b2bua.call import Call

DTMF_RELAY = "application/dtmf-relay"
DTMF = "application/dtmf"
#: Digits waiting for our previous INFO's answer, at most (a stuck far end).
MAX_QUEUED = 32


class DtmfInfoError(SipError):
    """An INFO with a DTMF content type but no digit we can read (400)."""

    status = 400


@dataclass(frozen=True, slots=True)
class DtmfDigit:
    digit: str
    duration_ms: int


def is_dtmf_info(request: Request) -> bool:
    """An INFO whose body is one of the DTMF types."""
    return request.method == "INFO" and request.content_type in (DTMF_RELAY, DTMF)


def parse_dtmf_info(request: Request) -> DtmfDigit:
    """The digit of a DTMF INFO (:func:`is_dtmf_info`); :class:`DtmfInfoError` if unreadable."""
    text = request.body.decode("utf-8", "replace")
    if request.content_type == DTMF:
        return DtmfDigit(_digit(text.strip()), DEFAULT_DURATION_MS)
    fields: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep:
            fields[name.strip().lower()] = value.strip()
    if "signal" not in fields:
        raise DtmfInfoError("dtmf-relay body without Signal=")
    duration = fields.get("duration", "")
    # Longer than any digit we send reads as the longest (clamp_duration_ms).
    milliseconds = parse_number(duration, MAX_DURATION_MS, clamp=True) if duration else None
    if duration and milliseconds is None:
        raise DtmfInfoError(f"invalid Duration {duration[:20]!r}")
    if milliseconds is None:
        milliseconds = DEFAULT_DURATION_MS
    return DtmfDigit(_digit(fields["signal"]), clamp_duration_ms(milliseconds))


def dtmf_body(digit: str, duration_ms: int, style: str = "dtmf-relay") -> tuple[str, bytes]:
    """(Content-Type, body) of an INFO carrying ``digit`` in the trunk's ``style``."""
    if style == "dtmf":
        return DTMF, digit.encode()
    return DTMF_RELAY, f"Signal={digit}\r\nDuration={duration_ms}\r\n".encode()


def dtmf_info_request(leg: Leg, digit: str, duration_ms: int) -> Request | None:
    """Our INFO with ``digit`` in ``leg``'s dialog (None: no dialog yet)."""
    if leg.dialog is None:
        return None
    info = leg.dialog.create_request("INFO")
    leg.stamp_request(info)
    style = leg.trunk.dtmf_info if leg.trunk is not None else "dtmf-relay"
    content_type, body = dtmf_body(digit, duration_ms, style)
    info.headers.set("Content-Type", content_type)
    info.body = body
    return info


def intercepts(call: Call, side: Side, request: Request) -> bool:
    """This request is a DTMF INFO the SBC answers and converts: from an
    ``info`` leg to an ``rfc4733`` one, with media anchored (without a relay
    nothing could carry the events, so the INFO is relayed as before)."""
    return (
        is_dtmf_info(request)
        and converts(call.leg(side), call.leg(side.other))
        and not isinstance(call.sig.media, PassthroughMedia)
    )


def answer_dtmf_info(call: Call, side: Side, tx: ServerTransaction) -> None:
    """A DTMF INFO from ``side`` (an INFO leg): answered here, the digit sent
    on to the other leg's stream as RFC 4733 events."""
    try:
        digit = parse_dtmf_info(tx.request)
    except DtmfInfoError as exc:
        call.sig.send_response(tx, build_response(tx.request, exc.status, exc.reason))
        return
    call.sig.send_response(tx, build_response(tx.request, 200))
    target = side.other.value
    if call.sig.media.send_dtmf(call.id, target, digit.digit, digit.duration_ms):
        call.sig.stats["dtmf_from_info"] += 1
        call.debug("dtmf.info_to_rfc4733", digit=digit.digit, duration_ms=digit.duration_ms)
    else:
        call.sig.stats["dtmf_undelivered"] += 1
        call.log("dtmf.undelivered", leg=target, reason="no telephone-event negotiated")


def send_dtmf_info(call: Call, side: Side, digit: str, duration_ms: int) -> None:
    """A digit from the other leg's stream, sent to ``side`` as INFO (when
    the policies say that leg takes INFO and the other one RFC 4733).

    One INFO of ours at a time per leg; later digits wait for its final
    response. Two INFOs in flight could arrive out of order (a UDP
    retransmission), and a UAS answers the lower CSeq 500 (RFC 3261
    §12.2.2): the digit would be lost, or the digits swapped.
    """
    leg = call.leg(side)
    if not converts(leg, call.leg(side.other)):
        return
    waiting = call.dtmf_outbox.get(side)
    if waiting is not None:
        if len(waiting) < MAX_QUEUED:
            waiting.append((digit, duration_ms))
        return
    if _send_info(call, side, digit, duration_ms):
        call.dtmf_outbox[side] = []


def on_info_done(call: Call, side: Side, status: int) -> None:
    """Our INFO on ``side`` got its final response (or timed out: 408, or
    failed: 503); never fatal to the call. The next waiting digit goes."""
    if status >= 300:
        call.log("dtmf.info_refused", status=status)
    waiting = call.dtmf_outbox.pop(side, None)
    while waiting:
        digit, duration_ms = waiting.pop(0)
        if _send_info(call, side, digit, duration_ms):
            call.dtmf_outbox[side] = waiting
            return


def _send_info(call: Call, side: Side, digit: str, duration_ms: int) -> bool:
    leg = call.leg(side)
    info = dtmf_info_request(leg, digit, clamp_duration_ms(duration_ms))
    if info is None:
        return False
    call.sig.send_request(leg, info, Pending(call, leg, Kind.DTMF, request=info))
    call.sig.stats["dtmf_to_info"] += 1
    call.debug("dtmf.rfc4733_to_info", digit=digit, duration_ms=duration_ms)
    return True


def converts(source: Leg, target: Leg) -> bool:
    """INFO from ``source`` becomes RFC 4733 towards ``target`` (and the reverse)."""
    return _mode(source) == "info" and _mode(target) == "rfc4733"


def _mode(leg: Leg) -> str:
    return leg.trunk.dtmf if leg.trunk is not None else "rfc4733"


def _digit(value: str) -> str:
    """A digit as written (``5``, ``#``, ``a``) or as its event code (``11``)."""
    if len(value) == 1 and value.upper() in DIGITS:
        return value.upper()
    code = parse_number(value, len(DIGITS) - 1)  # RFC 4733 §3.2 event codes 0-15
    if code is not None and code >= 10:
        return DIGITS[code]
    raise DtmfInfoError(f"not a DTMF digit: {value[:20]!r}")
