"""Where exactly the needles are in a message, and the text with them replaced.

This is the slow path: it runs only when the automaton of
:class:`~sbc.b2bua.leaks.needles.NeedleSet` (or a call's identifier test)
saw a candidate. Each occurrence is confirmed by its edges — what comes
just before and after it (:func:`edges_ok`) — and located: the start line,
a header (by name) or the body. Overlapping occurrences keep the longest
needle, so ``10.0.0.1:5060`` is one hit, not two.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sbc.b2bua.leaks.needles import Edge, Needle

START_LINE = "start-line"
BODY = "body"

_ALNUM = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
#: A host name goes on with these (RFC 1123 labels; "_" as SRV names use it).
_NAME = _ALNUM | frozenset(b"-_")
_DIGITS = frozenset(b"0123456789")
#: RFC 3261 §25.1 token characters, less "%": an escaped identifier ("%40")
#: is still found in a URI header (Replaces=...%3Bto-tag%3D...).
_TOKEN = _ALNUM | frozenset(b"-.!*_+`'~")
_DOT, _COLON, _PERCENT = ord("."), ord(":"), ord("%")


@dataclass(frozen=True, slots=True)
class Hit:
    start: int
    end: int
    needle: Needle


def edges_ok(data: bytes, start: int, end: int, edge: Edge) -> bool:
    """Whether ``data[start:end]`` stands alone, not inside a longer address,
    name or token (``10.0.0.1`` is not in ``10.0.0.15`` nor ``a.10.0.0.1``)."""
    before = data[start - 1] if start > 0 else None
    after = data[end] if end < len(data) else None
    follow = data[end + 1] if end + 1 < len(data) else None
    if edge is Edge.TOKEN:
        escaped = start >= 3 and data[start - 3] == _PERCENT  # "%3D" before it
        return (before not in _TOKEN or escaped) and after not in _TOKEN
    if before in _NAME or before == _DOT:
        return False
    if edge is Edge.HOST_PORT:
        return after not in _DIGITS
    if edge is Edge.IP6:
        if _COLON in (before, after):
            return False
    elif after == _DOT and follow in _NAME:  # "10.0.0.1.example.net" is another name
        return False
    return after not in _NAME


def find(data: bytes, needles: Sequence[Needle]) -> list[Hit]:
    """Every confirmed occurrence, in order, longest needle first where they overlap.

    ``needles`` must be longest first. Tokens are matched as written; addresses
    and names in the folded text (same offsets: folding is ASCII only).
    """
    folded = data.lower()
    hits: list[Hit] = []
    for needle in needles:
        text = needle.text
        hay = data if needle.edge is Edge.TOKEN else folded
        pos = hay.find(text)
        while pos >= 0:
            end = pos + len(text)
            if edges_ok(hay, pos, end, needle.edge) and not _overlaps(hits, pos, end):
                hits.append(Hit(pos, end, needle))
            pos = hay.find(text, pos + 1)
    hits.sort(key=lambda h: h.start)
    return hits


def _overlaps(hits: list[Hit], start: int, end: int) -> bool:
    return any(h.start < end and start < h.end for h in hits)


def replace(data: bytes, hits: Sequence[Hit]) -> bytes:
    """``data`` with each hit (in order, non-overlapping) replaced by its needle's
    replacement; an IPv6 reference ``[...]`` replaced by an IPv4 address loses
    its brackets (RFC 3261 §25.1: only IPv6 is bracketed)."""
    out: list[bytes] = []
    pos = 0
    for hit in hits:
        start, end = hit.start, hit.end
        replacement = hit.needle.replacement
        if (
            hit.needle.edge is Edge.IP6
            and b":" not in replacement
            and data[start - 1 : start] == b"["
            and data[end : end + 1] == b"]"
        ):
            start, end = start - 1, end + 1
        out.append(data[pos:start])
        out.append(replacement)
        pos = end
    out.append(data[pos:])
    return b"".join(out)


def scrub(data: bytes, needles: Sequence[Needle]) -> bytes:
    return replace(data, find(data, needles)) if needles else data


def scrub_text(text: str, needles: Sequence[Needle]) -> str:
    """:func:`scrub` for a header value (kept as text with surrogate escapes)."""
    raw = text.encode("utf-8", "surrogateescape")
    return scrub(raw, needles).decode("utf-8", "surrogateescape")


def body_start(data: bytes) -> int:
    """Offset of the body in serialized bytes (our own serializer: CRLF lines)."""
    end = data.find(b"\r\n\r\n")
    return len(data) if end < 0 else end + 4


def where(data: bytes, body: int, pos: int) -> str:
    """The part of the message ``pos`` falls in: START_LINE, BODY or a header name."""
    if pos >= body:
        return BODY
    line = data.rfind(b"\r\n", 0, pos)
    if line < 0:
        return START_LINE
    colon = data.find(b":", line + 2, pos + 1)
    if colon < 0:  # inside the name itself: the line is still that header's
        colon = data.find(b":", line + 2)
    return data[line + 2 : colon].decode("ascii", "replace")
