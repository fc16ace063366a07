"""SDP for DTMF interworking: telephone-event kept from or given to a leg.

Each leg's trunk policy says how it carries DTMF (:data:`DtmfMode`):
``rfc4733`` (telephone-event packets in the RTP stream, RFC 4733) or
``info`` (SIP INFO requests, :mod:`sbc.b2bua.dtmf`). When both legs use the
same mode nothing changes here. When leg Y is ``info`` and leg X ``rfc4733``
the SBC converts, and the SDP each side sees says so:

- Y never sees telephone-event (RFC 4733 §7.1.1: listing it invites events
  in the stream): its payload numbers, a=rtpmap and a=fmtp lines are
  stripped from every body towards Y, offers and answers alike.
- X always gets telephone-event, so that it sends its digits as events and
  accepts ours: an offer towards X that lacks it gets ``telephone-event/8000``
  under a dynamic payload number the offer does not use, with
  ``a=fmtp:N 0-16`` (the DTMF events and flash, RFC 4733 §7.1.1); an answer
  towards X gets the telephone-event X offered (RFC 3264 §6: same number)
  with ``a=fmtp:N 0-15``, the digits, which any DTMF offer lists, so the
  answer names no event X did not offer; Y's answer cannot carry it since Y
  never saw it.

Only audio m= lines are touched.
"""

from __future__ import annotations

from typing import Literal

from sbc.sip.params import parse_number
from sbc.sip.sdp import (
    MAX_CLOCK_RATE,
    MAX_PAYLOAD_TYPE,
    Attribute,
    MediaDescription,
    SessionDescription,
)

DtmfMode = Literal["rfc4733", "info"]

TELEPHONE_EVENT = "telephone-event"
EVENTS_FMTP = "0-16"  # in offers: the DTMF digits and flash
DIGITS_FMTP = "0-15"  # in answers: the digits alone
DYNAMIC = range(96, 128)  # RFC 3551 §6: dynamic payload types
CLOCK_RATE = 8000


def interworks(leg: DtmfMode, other: DtmfMode) -> bool:
    """The SBC converts between these two legs' DTMF (one INFO, one RFC 4733)."""
    return leg != other


def telephone_event(codecs: tuple[tuple[int, str], ...]) -> tuple[int, int] | None:
    """(payload number, clock rate) of telephone-event in a leg's (lower-case)
    rtpmap: /8000 when listed (every DTMF endpoint offers it), else the first
    at another rate (e.g. /48000 beside Opus, RFC 4733 §2.3.1)."""
    found = [(pt, name.split("/")) for pt, name in codecs if name.startswith(TELEPHONE_EVENT + "/")]
    read = ((pt, parse_number(parts[1], MAX_CLOCK_RATE)) for pt, parts in found if len(parts) > 1)
    rates = [(pt, rate) for pt, rate in read if rate is not None]
    return next((e for e in rates if e[1] == CLOCK_RATE), rates[0] if rates else None)


def adapt_offer(body: SessionDescription, from_mode: DtmfMode, to_mode: DtmfMode) -> None:
    """An offer from a ``from_mode`` leg, as a ``to_mode`` leg must see it."""
    if not interworks(from_mode, to_mode):
        return
    for media in _audio(body):
        if to_mode == "info":
            strip_telephone_event(media)
        else:
            add_telephone_event(media)


def adapt_answer(
    body: SessionDescription,
    from_mode: DtmfMode,
    to_mode: DtmfMode,
    offered: list[tuple[int, int] | None],
) -> None:
    """An answer from a ``from_mode`` leg towards a ``to_mode`` one; ``offered``
    is, per m= line, the telephone-event (number, clock rate) the receiving
    leg offered (:func:`telephone_event`)."""
    if not interworks(from_mode, to_mode):
        return
    for index, media in enumerate(body.media):
        if media.media != "audio" or media.is_rejected:
            continue
        if to_mode == "info":
            strip_telephone_event(media)
        elif index < len(offered) and (event := offered[index]) is not None:
            add_telephone_event(media, event[0], clock=event[1], events=DIGITS_FMTP)


def strip_telephone_event(media: MediaDescription) -> None:
    """Remove telephone-event (any clock) from an m= line, unless it is all there is."""
    numbers = {
        fmt for fmt, name in media.rtpmap.items() if name.split("/")[0].lower() == TELEPHONE_EVENT
    }
    kept = [fmt for fmt in media.formats if fmt not in numbers]
    if not numbers or not kept:
        return
    media.formats[:] = kept
    media.lines[:] = [line for line in media.lines if not _describes(line, numbers)]


def add_telephone_event(
    media: MediaDescription,
    number: int | None = None,
    *,
    clock: int = CLOCK_RATE,
    events: str = EVENTS_FMTP,
) -> int | None:
    """Add telephone-event to an m= line that lacks it; its number (None: no free one)."""
    existing = telephone_event(tuple((int(f), n.lower()) for f, n in _rtpmap(media)))
    if existing is not None:
        return existing[0]
    used = {n for f in media.formats if (n := parse_number(f, MAX_PAYLOAD_TYPE)) is not None}
    used |= {int(fmt) for fmt, _ in _rtpmap(media)}
    if number is None or number in used:
        number = next((n for n in DYNAMIC if n not in used), None)
        if number is None:
            return None
    media.formats.append(str(number))
    media.add_attribute("rtpmap", f"{number} {TELEPHONE_EVENT}/{clock}")
    media.add_attribute("fmtp", f"{number} {events}")
    return number


def _audio(body: SessionDescription) -> list[MediaDescription]:
    return [m for m in body.media if m.media == "audio" and not m.is_rejected]


def _rtpmap(media: MediaDescription) -> list[tuple[str, str]]:
    readable = media.rtpmap.items()
    return [(f, name) for f, name in readable if parse_number(f, MAX_PAYLOAD_TYPE) is not None]


def _describes(line: object, numbers: set[str]) -> bool:
    """An a=rtpmap/a=fmtp line about one of ``numbers``."""
    if not isinstance(line, Attribute) or line.name not in ("rtpmap", "fmtp"):
        return False
    return (line.value or "").split(" ", 1)[0] in numbers
