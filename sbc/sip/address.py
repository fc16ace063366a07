"""name-addr / addr-spec headers: From, To, Contact, Route, Record-Route…

    name-addr    = [ display-name ] LAQUOT addr-spec RAQUOT
    display-name = *(token LWS) / quoted-string

RFC 3261 §20.10: without angle brackets, every ``;param`` after the URI is a
header parameter, never a URI parameter.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sbc.sip.errors import ParseError
from sbc.sip.params import Params, format_params, parse_params, split_outside_quotes
from sbc.sip.uri import Uri, parse_uri


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
    text = text.strip()
    if not text:
        raise ParseError("empty address")
    display: str | None = None
    if text.startswith('"'):
        end = _closing_quote(text)
        display = text[: end + 1]
        text = text[end + 1 :].lstrip()
        if not text.startswith("<"):
            raise ParseError("display name without <URI>")
    lt = text.find("<")
    if lt >= 0:
        gt = text.find(">", lt)
        if gt < 0:
            raise ParseError("unterminated <URI>")
        if display is None and lt > 0:
            display = text[:lt].strip() or None
        uri = parse_uri(text[lt + 1 : gt].strip())
        return Address(uri, display, parse_params(text[gt + 1 :]), bracketed=True)
    uri_text, _, params = text.partition(";")
    if any(c in uri_text for c in " \t,?") and ":" in uri_text:
        raise ParseError(f"addr-spec with reserved characters needs <>: {uri_text!r}")
    return Address(parse_uri(uri_text.strip()), None, parse_params(params), bracketed=False)


def parse_address_list(value: str) -> list[Address]:
    """Parse a comma-separated list (Contact, Route, Record-Route)."""
    return [parse_address(part) for part in split_outside_quotes(value, ",") if part.strip()]


def _closing_quote(text: str) -> int:
    i = 1
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == '"':
            return i
        i += 1
    raise ParseError("unterminated quoted display name")
