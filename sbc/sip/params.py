"""Header and URI parameters (``;name=value``), RFC 3261 §25.1 ``generic-param``.

Names compare case-insensitively, so keys are stored lower-cased; values keep
their case. A parameter without ``=`` has the value ``None``.
"""

from __future__ import annotations

from collections.abc import Iterator

from sbc.sip.errors import ParseError

Params = dict[str, str | None]


def split_outside_quotes(text: str, sep: str) -> Iterator[str]:
    """Split on ``sep`` except inside double quotes or angle brackets."""
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
    """Parse ``;a=1;b;c="x"`` (the leading ``;`` optional) into a dict."""
    params: Params = {}
    for raw in split_outside_quotes(text, ";"):
        item = raw.strip()
        if not item:
            continue
        name, eq, value = item.partition("=")
        name = name.strip()
        if not name or any(c in name for c in ' \t"<>,'):
            raise ParseError(f"invalid parameter name {name!r}")
        params[name.lower()] = value.strip() if eq else None
    return params


def format_params(params: Params) -> str:
    """Serialize parameters back to ``;a=1;b`` form."""
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())
