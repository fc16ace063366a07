"""name-addr / addr-spec headers: From, To, Contact, Route, Record-Route…

    name-addr    = [ display-name ] LAQUOT addr-spec RAQUOT
    display-name = *(token LWS) / quoted-string
    LAQUOT       = SWS "<"      RAQUOT = ">" SWS

RFC 3261 §20.10: without angle brackets, every ``;param`` after the URI is a
header parameter, never a URI parameter, and the URI may not contain ``,``,
``?`` or ``;``. RFC 4475 §3.1.1.6: a token display name directly followed by
``<`` (no LWS) is accepted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sbc.sip.errors import ParseError
from sbc.sip.params import Params, format_params, parse_params, split_outside_quotes
from sbc.sip.uri import Uri, parse_uri

#: RFC 3261 §25.1 token characters.
_TOKENS_RE = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~]+(?:[ \t]+[A-Za-z0-9\-.!%*_+`'~]+)*$")
_ADDR_SPEC_RESERVED = frozenset(' \t,?"<>')


@dataclass(slots=True)
class Address:
    """A URI with optional display name and header parameters (e.g. ``tag``)."""

    uri: Uri
    display: str | None = None  # wire form: quoted string with quotes, or tokens
    params: Params = field(default_factory=dict)
    bracketed: bool = True

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    @property
    def display_name(self) -> str | None:
        """The display name with quotes and quoted-pairs removed."""
        return unquote_string(self.display) if self.display is not None else None

    def __str__(self) -> str:
        if self.bracketed or self.display is not None:
            head = f"{self.display} <{self.uri}>" if self.display else f"<{self.uri}>"
        else:
            head = str(self.uri)
        return head + format_params(self.params)

    def copy(self) -> Address:
        return Address(self.uri.copy(), self.display, dict(self.params), self.bracketed)


def parse_address(text: str) -> Address:
    """Parse one name-addr or addr-spec with header parameters."""
    text = text.strip(" \t")
    if not text:
        raise ParseError("empty address")
    if text[0] == '"':
        end = _closing_quote(text)
        display: str | None = text[: end + 1]
        rest = text[end + 1 :].lstrip(" \t")
        if not rest.startswith("<"):
            raise ParseError("display name without <URI>")
        return _parse_name_addr(display, rest)
    lt = text.find("<")
    if lt >= 0:
        display = text[:lt].strip(" \t") or None
        if display is not None and not _TOKENS_RE.match(display):
            raise ParseError(f"display name must be tokens or quoted: {display[:40]!r}")
        return _parse_name_addr(display, text[lt:])
    return _parse_addr_spec(text)


def _parse_name_addr(display: str | None, text: str) -> Address:
    """``<addr-spec> *( SEMI param )`` with ``text`` starting at ``<``."""
    gt = text.find(">")
    if gt < 0:
        raise ParseError("unterminated <URI>")
    inner = text[1:gt]
    if inner != inner.strip(" \t"):
        raise ParseError("whitespace inside <URI>")  # RFC 4475 §3.1.2.15
    uri = parse_uri(inner)
    tail = text[gt + 1 :].lstrip(" \t")
    if tail and tail[0] != ";":
        raise ParseError(f"unexpected text after <URI>: {tail[:40]!r}")
    return Address(uri, display, parse_params(tail), bracketed=True)


def _parse_addr_spec(text: str) -> Address:
    """``addr-spec *( SEMI param )``: the first ``;`` starts header params."""
    semi = text.find(";")
    uri_text, params = (text, "") if semi < 0 else (text[:semi], text[semi:])
    uri_text = uri_text.rstrip(" \t")
    if not _ADDR_SPEC_RESERVED.isdisjoint(uri_text):
        raise ParseError(f"addr-spec with reserved characters needs <>: {uri_text[:40]!r}")
    return Address(parse_uri(uri_text), None, parse_params(params), bracketed=False)


def parse_address_list(value: str) -> list[Address]:
    """Parse a comma-separated list (Contact, Route, Record-Route).

    Empty elements (``a, ,b``) are a syntax error (RFC 4475 §3.1.2.1).
    """
    if "," not in value:
        return [parse_address(value)]
    parts = list(split_outside_quotes(value, ","))
    if len(parts) == 1:
        return [parse_address(parts[0])]
    out = []
    for part in parts:
        if not part.strip(" \t"):
            raise ParseError("empty element in address list")
        out.append(parse_address(part))
    return out


def unquote_string(text: str) -> str:
    """The content of a quoted-string (``"a \\" b"`` → ``a " b``); tokens as is."""
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        return text
    inner = text[1:-1]
    if "\\" not in inner:
        return inner
    out: list[str] = []
    i = 0
    while i < len(inner):
        ch = inner[i]
        if ch == "\\" and i + 1 < len(inner):
            i += 1
            ch = inner[i]
        out.append(ch)
        i += 1
    return "".join(out)


def quote_string(text: str) -> str:
    """A quoted-string for ``text`` (escapes ``"`` and ``\\``)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _closing_quote(text: str) -> int:
    i = 1
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == '"':
            return i
        i += 1
    raise ParseError("unterminated quoted display name")
