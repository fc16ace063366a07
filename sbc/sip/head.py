"""Octet-level checks of a message's header section, made before it is parsed.

Theory of operation. Parsing costs time per header line, so a datagram of
thousands of tiny headers costs hundreds of normal parses: :func:`check_size`
refuses a head with too many lines, or a line too long, using only
``bytes.count`` and ``bytes.find`` (no decoding, no splitting).

Line ends are CRLF; a bare LF is tolerated as one too (RFC 3261 §7: be liberal
in what you accept), which every SIP stack agrees on. A bare CR is not: our
parser would keep it inside a value while PJSIP-based peers (Asterisk) read it
as a line break, so a header smuggled behind a CR would cross the allow-list.
:func:`stray_octet` therefore refuses, anywhere in the head, a CR that does
not end a line, and every other control octet the grammar has no place for
(RFC 3261 §25.1: ``TEXT-UTF8char``, ``qdtext`` and ``reason-phrase`` allow no
octet below %x20 but HTAB, nor DEL). The one exception is a ``quoted-pair``
inside a quoted-string of a header, which may escape any octet but CR and LF
(RFC 4475 §3.1.1.2, intmeth, escapes BEL, NUL and DEL so); the serializer
still never emits NUL (:meth:`sbc.sip.message.Message.serialize`).

The common case costs one ``translate`` over the head and one ``memchr`` over
its text (:func:`has_stray`); the line-by-line look that names the culprit
(:func:`stray_octet`) runs only when something is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sbc.sip.errors import ParseError
from sbc.sip.headers import canonical_name

#: RFC 3261 §21.5.11 513 Message Too Large: the status such a message is worth,
#: though it is never answered (nothing of it was parsed to answer with).
MESSAGE_TOO_LARGE = 513

#: Octets that may appear in a head only in a quoted-pair (CR: only in a CRLF).
_CONTROLS = bytes([*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])
_CTL = rb"\x00-\x08\x0a-\x1f\x7f"  # the same as a regex class, with CR and LF
_STRAY = re.compile(rb"[" + _CTL + rb"]")
_UNESCAPED = re.compile(rb"(?<!\\)[" + _CTL + rb"]|\\[\r\n]")  # to name the culprit
# A header line as the grammar allows it: text, and quoted-strings whose
# quoted-pairs escape any octet but CR and LF (quoted-string = DQUOTE
# *(qdtext / quoted-pair) DQUOTE; one left open runs to the line's end).
# Possessive throughout: one pass, never a retry from a later quote, so a line
# of 4,000 escaped quotes costs what its length does (quadratic otherwise).
_CLEAN_HEADER_LINE = re.compile(
    rb'(?:[^"' + _CTL + rb"]++" + rb'|"(?:[^"\\' + _CTL + rb"]++|\\[^\r\n])*+(?:\"|\Z))*+"
)
_NAMES = {0x00: "NUL", 0x0D: "bare CR"}


@dataclass(frozen=True, slots=True)
class HeadLimits:
    """How large a header section the parser reads at all (``sbc.yaml`` ``sip:``)."""

    max_headers: int = 256  # header lines, folded continuation lines included
    max_header_line: int = 8192  # octets in one line, start line included


DEFAULT_HEAD_LIMITS = HeadLimits()


def check_size(head: bytes, limits: HeadLimits) -> None:
    """Refuse a head over ``limits`` (:class:`ParseError`, status 513)."""
    lines = head.count(b"\n")  # one per header line: the start line has none before it
    if lines > limits.max_headers:
        raise ParseError(
            f"too many header lines ({lines} > {limits.max_headers})", MESSAGE_TOO_LARGE
        )
    if len(head) > limits.max_header_line:
        _check_line_lengths(head, limits.max_header_line)


def _check_line_lengths(head: bytes, limit: int) -> None:
    """At most ``max_headers`` + 1 finds: the line count was checked first."""
    start = 0
    while start <= len(head):
        end = head.find(b"\n", start)
        if end < 0:
            end = len(head)
        length = end - start - (1 if head[end - 1 : end] == b"\r" else 0)
        if length > limit:
            raise ParseError(f"header line too long ({length} > {limit} octets)", MESSAGE_TOO_LARGE)
        start = end + 1


def has_stray(head: bytes, text: str) -> bool:
    """Whether :func:`stray_octet` must look: ``text`` is ``head`` decoded, its
    CRLFs turned into LF, so any CR left in it is a bare one."""
    return "\r" in text or len(head.translate(None, _CONTROLS)) != len(head)


def stray_octet(head: bytes) -> str | None:
    """What is wrong with the head's octets (``"bare CR in header From"``), if
    anything; only worth calling when :func:`has_stray` says so."""
    lines = head.split(b"\n")
    for index, line in enumerate(lines):
        if line.endswith(b"\r"):
            line = line[:-1]  # noqa: PLW2901 - the CR of the CRLF
        if len(line.translate(None, _CONTROLS + b"\r")) == len(line):
            continue  # no control octet in this line
        octet = _stray_in_line(line, header=index > 0)
        if octet is not None:
            what = _NAMES.get(octet) or f"control character 0x{octet:02X}"
            return f"{what} in {_where(lines, index)}"
    return None


def _stray_in_line(line: bytes, *, header: bool) -> int | None:
    """The first octet the grammar refuses here (no quoted-pair in a start line)."""
    start = 0
    if header:
        clean = _CLEAN_HEADER_LINE.match(line)
        start = clean.end() if clean is not None else 0
        if start == len(line):
            return None
    found = (_UNESCAPED.search(line, start) if header else None) or _STRAY.search(line, start)
    return None if found is None else found.group()[-1]


def _where(lines: list[bytes], index: int) -> str:
    """``the Request-Line``, ``the Status-Line`` or ``header <name>`` (unfolded)."""
    while index > 0 and lines[index][:1] in (b" ", b"\t"):
        index -= 1  # a folded continuation belongs to the header above
    if index == 0:
        return "the Status-Line" if lines[0][:4].upper() == b"SIP/" else "the Request-Line"
    name = lines[index].partition(b":")[0].strip(b" \t\r")[:40]
    return f"header {canonical_name(name.decode('latin-1'))}"
