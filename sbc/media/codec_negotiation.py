"""Per-trunk codec policy and transcoding in SDP offer/answer (RFC 3264).

Pure: works on :mod:`sbc.sip.sdp` bodies, called from small hooks in
:mod:`sbc.media.anchor`. Only ``m=audio`` lines are touched, and only for a
leg with a :class:`~sbc.media.interface.CodecPolicy`; without one a body
crosses byte for byte. Theory of operation, for an offer from leg F to T:

- **Offer** (:func:`negotiate_offer`): F's formats are filtered by T's
  policy (``strip`` never shown, ``allow`` else dropped, telephone-event
  kept unless stripped) and ordered by its ``prefer`` list. When T's policy
  says ``transcode`` and the node has transcoding capacity, the codecs of
  :data:`TRANSCODABLE` that T allows and the offer lacks are added, after
  the offered ones (unless preferred), with a free payload number (the
  static one when free, RFC 3551 §6, else 96-127) and their rtpmap/fmtp
  (``opus/48000/2``, RFC 7587 §7). This is only done when F offered a
  codec the SBC can decode. No codec left for T: 488 when transcoding
  cannot help (policy off, nothing decodable, node capacity 0), 503 when
  only a full node stands in the way. An offer left with no codec but
  added ones must transcode: :attr:`OfferPlan.must_transcode`.
- **Answer** (:func:`negotiate_answer`): if T answered with a codec F
  offered, nothing is decoded; added codecs T also listed are removed from
  the answer F sees (RFC 3264 §6.1: an answer lists only offered formats).
  If T picked only added codecs, the stream transcodes: F's answer names
  F's first decodable codec (its payload number, its rtpmap/fmtp, its
  ptime) plus F's telephone-event when both legs have it, and a
  :class:`~sbc.media.control.TranscodeSpec` says what each direction
  decodes and encodes. Telephone events cross with payload numbers mapped.

Static payload types without a=rtpmap are named from RFC 3551 §6.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sbc.media.control import (
    DEFAULT_OPUS_COMPLEXITY,
    CodecEnd,
    TranscodeDirection,
    TranscodeSpec,
)
from sbc.media.interface import CodecPolicy, MediaError
from sbc.sip.params import parse_number
from sbc.sip.sdp import (
    MAX_CLOCK_RATE,
    MAX_PAYLOAD_TYPE,
    MAX_SDP_NUMBER,
    Attribute,
    MediaDescription,
    SessionDescription,
)

AUDIO = "audio"
TELEPHONE_EVENT = "telephone-event"
#: Formats that carry no audio of their own: never the stream's codec (RFC 4733, RFC 3389).
AUXILIARY = frozenset((TELEPHONE_EVENT, "cn", "red", "ulpfec"))
#: RFC 3551 §6 static payload types: number -> (name, clock).
STATIC = {0: ("pcmu", 8000), 3: ("gsm", 8000), 4: ("g723", 8000), 8: ("pcma", 8000)}
STATIC |= {9: ("g722", 8000), 13: ("cn", 8000), 18: ("g729", 8000)}
#: How the SBC writes a codec it adds: its static number (if any) and rtpmap value.
ADDED_RTPMAP = {
    "pcmu": (0, "PCMU/8000"),
    "pcma": (8, "PCMA/8000"),
    "g722": (9, "G722/8000"),
    "opus": (None, "opus/48000/2"),
}
#: What the relay can transcode (:data:`sbc.media.transcode.TRANSCODABLE`, named
#: here so signalling never loads the codecs).
TRANSCODABLE = frozenset(ADDED_RTPMAP)
#: RFC 7587 §6.1: our decoder takes any frame size down to 10 ms.
ADDED_FMTP = {"opus": "minptime=10;useinbandfec=1"}
#: Added codecs, when the policy names no order: wideband first.
DEFAULT_ORDER = ("opus", "g722", "pcma", "pcmu")
DYNAMIC = range(96, 128)  # RFC 3551 §3
DEFAULT_PTIME = 20
OPUS_PTIMES = (10, 20, 40, 60)  # RFC 6716 §2.1.4 frame sizes a single-frame packet carries
#: Attributes bound to one payload type (RFC 8866 §6.6, §6.15; RFC 4585 §4.2).
PAYLOAD_ATTRIBUTES = ("rtpmap", "fmtp", "rtcp-fb")
PTIME = "ptime"
MAXPTIME = "maxptime"


@dataclass(frozen=True, slots=True)
class Format:
    """One payload format of an m= line: number, lower-case name, clock, rtpmap/fmtp text."""

    payload: int
    name: str
    clock: int
    rtpmap: str | None  # the a=rtpmap value after the number; None for a bare static type
    fmtp: str | None
    added: bool = False  # not offered: the SBC adds it and transcodes to it

    @property
    def is_audio_codec(self) -> bool:
        return bool(self.name) and self.name not in AUXILIARY


@dataclass(frozen=True, slots=True)
class OfferedStream:
    """One audio m= line of an offer: what the offerer listed and what the answerer saw."""

    offerer: str  # leg name
    offered: tuple[Format, ...]
    sent: tuple[Format, ...]
    ptime: int | None  # the offerer's a=ptime


@dataclass(frozen=True, slots=True)
class OfferPlan:
    streams: dict[int, OfferedStream]
    must_transcode: bool  # a stream has no codec in common: only transcoding carries it


def read_formats(media: MediaDescription) -> tuple[Format, ...]:
    """The m= line's formats, named by a=rtpmap or else RFC 3551 §6."""
    rtpmap, fmtp = media.rtpmap, media.fmtp
    formats = []
    for fmt in media.formats:
        number = parse_number(fmt, MAX_PAYLOAD_TYPE)
        if number is None:
            continue
        mapped = rtpmap.get(fmt)
        if mapped:
            parts = mapped.split("/")
            name = parts[0].strip().lower()
            clock = parse_number(parts[1].strip(), MAX_CLOCK_RATE) if len(parts) > 1 else None
            clock = clock or 0
        else:
            name, clock = STATIC.get(number, ("", 0))
        formats.append(Format(number, name, clock, mapped or None, fmtp.get(fmt)))
    return tuple(formats)


def visible(name: str, policy: CodecPolicy) -> bool:
    """May a leg with ``policy`` see codec ``name``? telephone-event only ``strip`` hides."""
    if name in policy.strip:
        return False
    return name == TELEPHONE_EVENT or policy.allow is None or name in policy.allow


def negotiate_offer(
    body: SessionDescription,
    live: Iterable[int],
    offerer: str,
    towards: CodecPolicy | None,
    *,
    transcoding: bool,
    capacity: bool,
    current: Mapping[int, CodecEnd] | None = None,
) -> OfferPlan:
    """Apply ``towards``'s policy to the audio m= lines of ``live`` in place.

    ``transcoding``: the node transcodes at all (capacity above 0);
    ``capacity``: a slot is free now (or this call already holds one);
    ``current``: per m= line, the codec the receiving leg speaks in a stream
    transcoding now. A re-offer that lacks it lists it too, whatever the
    leg's policy, so the call can go on as it is (RFC 3264 §8).
    Raises :class:`MediaError` 488 (or 503, see the module docstring).
    """
    streams: dict[int, OfferedStream] = {}
    must_transcode = False
    for index in live:
        media = body.media[index]
        if media.media != AUDIO:
            continue
        offered = read_formats(media)
        speaking = (current or {}).get(index)
        policy = towards if towards is not None or speaking is None else CodecPolicy()
        if policy is None:
            streams[index] = OfferedStream(offerer, offered, offered, _ptime(media))
            continue
        kept = [f for f in offered if visible(f.name, policy)]
        codecs = [f for f in kept if f.is_audio_codec]
        decodable = any(f.name in TRANSCODABLE for f in offered)
        wanted = _additions(offered, kept, policy) if policy.transcode and decodable else []
        if speaking is not None and decodable and visible(speaking.name, policy):
            wanted = _keep_current(speaking, offered, wanted) + wanted
        if not codecs and (not wanted or not transcoding):
            raise MediaError(f"no codec in common for m= line {index} and transcoding is off")
        if not codecs and not capacity:
            raise MediaError(f"no codec in common for m= line {index}; transcoding is full", 503)
        added = wanted if transcoding and capacity else []
        must_transcode = must_transcode or not codecs
        order = _preference(policy)
        sent = sorted([*codecs, *added], key=lambda f: order.get(f.name, len(order)))
        sent += [f for f in kept if not f.is_audio_codec]
        if tuple(sent) != offered:
            _write_formats(media, sent)
            if not codecs and policy.ptime is not None:
                _set_ptime(media, policy.ptime)
        streams[index] = OfferedStream(offerer, offered, tuple(sent), _ptime(media))
    return OfferPlan(streams, must_transcode)


def negotiate_answer(
    media: MediaDescription,
    offer: OfferedStream,
    offerer_policy: CodecPolicy | None,
    answerer_policy: CodecPolicy | None,
    *,
    opus_complexity: int = DEFAULT_OPUS_COMPLEXITY,
) -> TranscodeSpec | None:
    """Rewrite one answered audio m= line for the offerer; say how to transcode, if at all."""
    answered = read_formats(media)
    sent = {f.payload: f for f in offer.sent}
    codecs = [f for f in answered if f.is_audio_codec]
    common = [f for f in codecs if not _was_added(f, sent)]
    if common or not codecs:
        if len(common) != len(codecs):  # drop the added codecs the answerer also listed
            _write_formats(media, [f for f in answered if not _was_added(f, sent)])
        return None
    chosen = codecs[0]
    mine = _offerer_codec(offer, offerer_policy)
    if mine is None:
        raise MediaError("the answer needs transcoding but the offer has no decodable codec")
    events = _events(offer.offered, mine.clock), _events(answered, chosen.clock)
    both_events = None not in events
    mine_ptime = _valid_ptime(mine.name, offer.ptime)
    theirs_ptime = _ptime(media)
    if theirs_ptime is None and answerer_policy is not None:
        theirs_ptime = answerer_policy.ptime
    theirs = CodecEnd(
        chosen.name,
        chosen.payload,
        _valid_ptime(chosen.name, theirs_ptime or mine_ptime),
        _fmtp(chosen.fmtp),
        events[1].payload if both_events and events[1] is not None else None,
    )
    ours = CodecEnd(
        mine.name,
        mine.payload,
        mine_ptime,
        _fmtp(mine.fmtp),
        events[0].payload if both_events and events[0] is not None else None,
    )
    listed = [mine] + ([events[0]] if both_events and events[0] is not None else [])
    _write_formats(media, listed, rewrite_all=True)
    _set_ptime(media, mine_ptime)
    forward = TranscodeDirection(ours, theirs, opus_complexity)  # offerer -> answerer
    backward = TranscodeDirection(theirs, ours, opus_complexity)
    if offer.offerer == "a":
        return TranscodeSpec(a_to_b=forward, b_to_a=backward)
    return TranscodeSpec(a_to_b=backward, b_to_a=forward)


# --- helpers -----------------------------------------------------------------


def _additions(
    offered: tuple[Format, ...], kept: list[Format], policy: CodecPolicy
) -> list[Format]:
    """Transcodable codecs ``policy`` allows that the offer lacks, numbered freely."""
    present = {f.name for f in offered}
    order = [*policy.prefer, *(policy.allow or ()), *DEFAULT_ORDER]
    taken = {f.payload for f in offered}
    added = []
    for name in dict.fromkeys(order):
        if name not in TRANSCODABLE or name in present or not visible(name, policy):
            continue
        static, rtpmap = ADDED_RTPMAP[name]
        number = static if static is not None and static not in taken else _free(taken)
        if number is None:
            break  # every dynamic number is in use: nothing more can be added
        taken.add(number)
        clock = int(rtpmap.split("/")[1])
        added.append(Format(number, name, clock, rtpmap, ADDED_FMTP.get(name), added=True))
    return added


def _keep_current(end: CodecEnd, offered: tuple[Format, ...], wanted: list[Format]) -> list[Format]:
    """The codec a leg speaks now, as an added format, unless the offer has it already."""
    if end.name not in ADDED_RTPMAP or any(f.name == end.name for f in (*offered, *wanted)):
        return []
    taken = {f.payload for f in (*offered, *wanted)}
    number = end.payload if end.payload not in taken else _free(taken)
    if number is None:
        return []
    rtpmap = ADDED_RTPMAP[end.name][1]
    fmtp = ";".join(f"{key}={value}" for key, value in end.fmtp) or ADDED_FMTP.get(end.name)
    return [Format(number, end.name, int(rtpmap.split("/")[1]), rtpmap, fmtp, added=True)]


def _free(taken: set[int]) -> int | None:
    return next((n for n in DYNAMIC if n not in taken), None)


def _preference(policy: CodecPolicy) -> dict[str, int]:
    return {name: rank for rank, name in enumerate(policy.prefer)}


def _was_added(answered: Format, sent: dict[int, Format]) -> bool:
    """Is the answerer's format one the SBC added? By number (RFC 3264 §6.1), else by name."""
    match = sent.get(answered.payload)
    if match is None or match.name != answered.name:
        match = next((f for f in sent.values() if f.name == answered.name), None)
    return match is not None and match.added


def _offerer_codec(offer: OfferedStream, policy: CodecPolicy | None) -> Format | None:
    """The offerer's preferred codec the SBC can transcode (its own order)."""
    usable = [f for f in offer.offered if f.name in TRANSCODABLE]
    allowed = [f for f in usable if policy is None or visible(f.name, policy)]
    chosen = allowed or usable
    return chosen[0] if chosen else None


def _events(formats: Iterable[Format], clock: int) -> Format | None:
    """The telephone-event format at the codec's clock, else any (RFC 4733 §2.1)."""
    events = [f for f in formats if f.name == TELEPHONE_EVENT]
    return next((f for f in events if f.clock == clock), events[0] if events else None)


def _fmtp(text: str | None) -> tuple[tuple[str, str], ...]:
    """``a=fmtp`` parameters ``k=v;k=v`` (RFC 8866 §6.15) as pairs; others are ignored."""
    pairs = []
    for item in (text or "").split(";"):
        key, sep, value = item.strip().partition("=")
        if sep and key:
            pairs.append((key.strip().lower(), value.strip()))
    return tuple(pairs)


def _ptime(media: MediaDescription) -> int | None:
    attribute = media.attribute(PTIME)
    value = attribute.value.strip() if attribute is not None and attribute.value else ""
    return parse_number(value, MAX_SDP_NUMBER) or None  # 0 is no ptime


def _valid_ptime(name: str, ptime: int | None) -> int:
    """A packet duration the codec can produce: Opus only has 10/20/40/60 ms frames."""
    if ptime is None or not 10 <= ptime <= 120:
        return DEFAULT_PTIME
    if name == "opus" and ptime not in OPUS_PTIMES:
        return DEFAULT_PTIME
    return ptime


def _set_ptime(media: MediaDescription, ptime: int) -> None:
    media.remove_attributes(PTIME, MAXPTIME)
    media.add_attribute(PTIME, str(ptime))


def _write_formats(
    media: MediaDescription, formats: list[Format], *, rewrite_all: bool = False
) -> None:
    """Make the m= line list ``formats``: attributes of the others go, new ones come.

    ``rewrite_all``: every rtpmap/fmtp is written afresh from ``formats``
    (their numbers may have meant something else in this body).
    """
    keep = {str(f.payload) for f in formats} if not rewrite_all else set()
    had = {(a.value or "").split(None, 1)[0] for a in media.attributes if _payload_bound(a)}
    media.lines[:] = [
        line
        for line in media.lines
        if not (isinstance(line, Attribute) and _payload_bound(line))
        or (line.value or "").split(None, 1)[0] in keep | {"*"}
    ]
    media.formats = [str(f.payload) for f in formats]
    for fmt in formats:
        number = str(fmt.payload)
        if number in keep and number in had:
            continue
        if fmt.rtpmap is not None or fmt.payload not in STATIC:
            media.add_attribute("rtpmap", f"{number} {fmt.rtpmap or _rtpmap_for(fmt)}")
        if fmt.fmtp:
            media.add_attribute("fmtp", f"{number} {fmt.fmtp}")


def _payload_bound(attribute: Attribute) -> bool:
    return attribute.name in PAYLOAD_ATTRIBUTES and bool(attribute.value)


def _rtpmap_for(fmt: Format) -> str:
    return f"{fmt.name.upper()}/{fmt.clock or 8000}"
