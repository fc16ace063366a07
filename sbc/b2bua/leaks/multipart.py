"""Multipart bodies after a scrub: each part that states its length gets it right.

RFC 2046 §5.1.1: parts are separated by ``--boundary`` lines, and the CRLF
before each delimiter belongs to the delimiter, not to the part. Parts
rarely carry a Content-Length (RFC 5621 §3 does not ask for one), but one
that does must not disagree with its content once addresses in it were
replaced by longer or shorter ones. The message's own Content-Length is
recomputed by the serializer.
"""

from __future__ import annotations

from sbc.sip.errors import ParseError
from sbc.sip.params import split_outside_quotes


def boundary_of(content_type: str) -> bytes | None:
    """The ``boundary`` parameter of a multipart Content-Type, unquoted."""
    media, _, params = content_type.partition(";")
    if not media.strip().lower().startswith("multipart/"):
        return None
    try:
        found = list(split_outside_quotes(params, ";"))
    except ParseError:
        return None
    for param in found:
        name, _, value = param.partition("=")
        if name.strip().lower() == "boundary":
            value = value.strip().strip('"')
            return value.encode("utf-8", "surrogateescape") if value else None
    return None


def fix_part_lengths(body: bytes, content_type: str) -> bytes:
    """``body`` with every part's own Content-Length (if any) matching its content."""
    boundary = boundary_of(content_type)
    if boundary is None:
        return body
    delimiter = b"--" + boundary
    pieces = body.split(delimiter)
    return delimiter.join([pieces[0], *(_fixed(piece) for piece in pieces[1:])])


def _fixed(piece: bytes) -> bytes:
    """One part (``CRLF headers CRLF CRLF content CRLF``); the close delimiter as is."""
    if piece.startswith(b"--"):
        return piece
    head_end = piece.find(b"\r\n\r\n")
    if head_end < 0:
        return piece
    head, content = piece[:head_end], piece[head_end + 4 :]
    length = len(content) - 2 if content.endswith(b"\r\n") else len(content)
    lines = head.split(b"\r\n")
    fixed = [b"Content-Length: %d" % length if _is_length(line) else line for line in lines]
    return b"\r\n".join(fixed) + b"\r\n\r\n" + content


def _is_length(line: bytes) -> bool:
    name, colon, _ = line.partition(b":")
    return bool(colon) and name.strip().lower() in (b"content-length", b"l")
