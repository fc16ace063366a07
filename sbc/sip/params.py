"""Header and URI parameters (``;name=value``), RFC 3261 §25.1 ``generic-param``.

    generic-param = token [ EQUAL gen-value ]
    gen-value     = token / host / quoted-string
    uri-parameter = transport-param / ... / other-param   (paramchar, %HH)

Names compare case-insensitively, so keys are stored lower-cased; values keep
their case. A parameter without ``=`` has the value ``None``.
"""

from __future__ import annotations

from collections.abc import Iterator

from sbc.sip.errors import ParseError

Params = dict[str, str | None]

#: RFC 3261 §20.19: delta-seconds run from 0 to 2**32-1.
MAX_DELTA_SECONDS = 2**32 - 1
MAX_PORT = 65535

#: Characters that can never appear in a parameter name (token or paramchar).
_NAME_FORBIDDEN = frozenset(' \t\r\n"<>,;=@?\\')
#: Characters that can never appear in an unquoted parameter value.
_VALUE_FORBIDDEN = frozenset(' \t\r\n"<>,;\\')


def is_digits(text: str) -> bool:
    """``1*DIGIT`` in ASCII only (``str.isdigit`` also accepts e.g. ``²``)."""
    return text.isascii() and text.isdigit()


def parse_number(text: str, maximum: int, *, clamp: bool = False) -> int | None:
    """A numeric field from the wire (``1*DIGIT``, RFC 3261 §25.1) as an int.

    The one reader of wire numbers: ``str.isdigit`` takes ``²`` and Arabic-Indic
    digits that ``int`` refuses, and ``int`` refuses over 4,300 digits, so
    neither is used on wire text anywhere else. None when ``text`` is not
    ASCII digits only (callers strip the LWS their grammar allows), or names a
    number above ``maximum`` — with ``clamp``, such a number reads as
    ``maximum`` (e.g. delta-seconds beyond 2**32-1). Leading zeros are dropped
    before the length check, so no more digits than ``maximum`` has are ever
    converted.
    """
    if not text.isascii() or not text.isdigit():
        return None
    significant = text.lstrip("0")
    if len(significant) > len(str(maximum)):
        return maximum if clamp else None
    number = int(significant) if significant else 0
    if number > maximum:
        return maximum if clamp else None
    return number


def delta_seconds(text: str | None) -> int | None:
    """``delta-seconds = 1*DIGIT`` (RFC 3261 §25.1) after optional LWS, read as
    at most 2**32-1 (§20.19); None when absent or not digits."""
    if text is None:
        return None
    return parse_number(text.strip(" \t"), MAX_DELTA_SECONDS, clamp=True)


def split_outside_quotes(text: str, sep: str) -> Iterator[str]:
    """Split on ``sep`` except inside double quotes or angle brackets.

    Raises :class:`ParseError` on an unterminated quoted string (RFC 3261
    §25.1 ``quoted-string = SWS DQUOTE *(qdtext / quoted-pair ) DQUOTE``).
    """
    if '"' not in text and "<" not in text:
        yield from text.split(sep)
        return
    start = 0
    in_quotes = in_angle = False
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if in_quotes:
            if ch == "\\":
                i += 1
            elif ch == '"':
                in_quotes = False
        elif ch == '"':
            in_quotes = True
        elif ch == "<":
            in_angle = True
        elif ch == ">":
            in_angle = False
        elif ch == sep and not in_angle:
            yield text[start:i]
            start = i + 1
        i += 1
    if in_quotes:
        raise ParseError("unterminated quoted string")
    yield text[start:]


def parse_params(text: str) -> Params:
    """Parse ``*( SEMI generic-param )`` into a dict.

    ``text`` is either empty or starts with ``;`` (leading LWS allowed); for
    compatibility a text without the leading ``;`` is read as if it had one.
    Empty parameters (``;;``) and names or unquoted values with reserved
    characters are rejected (RFC 4475 §3.1.2.1).
    """
    if not text:
        return {}
    text = text.strip(" \t")
    if not text:
        return {}
    if text[0] == ";":
        text = text[1:]
    params: Params = {}
    items = split_outside_quotes(text, ";") if '"' in text else text.split(";")
    for raw in items:
        name, eq, value = raw.partition("=")
        name = name.strip(" \t")
        if not name:
            raise ParseError("empty parameter")
        if not _NAME_FORBIDDEN.isdisjoint(name):
            raise ParseError(f"invalid parameter name {name[:40]!r}")
        params[name.lower()] = _param_value(value) if eq else None
    return params


def _param_value(value: str) -> str:
    value = value.strip(" \t")
    if value.startswith('"'):
        if not _is_quoted(value):
            raise ParseError(f"invalid quoted parameter value {value[:40]!r}")
        return value
    if not _VALUE_FORBIDDEN.isdisjoint(value):
        raise ParseError(f"invalid parameter value {value[:40]!r}")
    return value


def _is_quoted(value: str) -> bool:
    """True when ``value`` is exactly one quoted-string."""
    i = 1
    n = len(value)
    while i < n:
        ch = value[i]
        if ch == "\\":
            i += 2
            continue
        if ch == '"':
            return i == n - 1
        i += 1
    return False


def format_params(params: Params) -> str:
    """Serialize parameters back to ``;a=1;b`` form."""
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())
