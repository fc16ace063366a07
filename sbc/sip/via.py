"""The Via header (RFC 3261 §20.42, §18.2.1; RFC 3581 rport).

via-parm = sent-protocol LWS sent-by *( SEMI via-params )
sent-protocol = protocol-name SLASH protocol-version SLASH transport
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sbc.sip.errors import ParseError
from sbc.sip.params import (
    MAX_PORT,
    Params,
    format_params,
    parse_number,
    parse_params,
    split_outside_quotes,
)
from sbc.sip.uri import split_hostport

#: RFC 3261 §8.1.1.7: branches of RFC 3261 transactions start with this cookie.
MAGIC_COOKIE = "z9hG4bK"
DEFAULT_PORTS = {"udp": 5060, "tcp": 5060, "tls": 5061, "sctp": 5060, "ws": 80, "wss": 443}


@dataclass(slots=True)
class Via:
    transport: str  # upper-case on the wire, e.g. "UDP"
    host: str
    port: int | None = None
    params: Params = field(default_factory=dict)
    protocol: str = "SIP/2.0"

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def received(self) -> str | None:
        return self.params.get("received")

    @property
    def rport(self) -> int | None:
        """The rport value filled in by the server, if any (RFC 3581 §4)."""
        port = parse_number(self.params.get("rport") or "", MAX_PORT)
        return port or None  # 0 is no port

    def __str__(self) -> str:
        sent_by = self.host if self.port is None else f"{self.host}:{self.port}"
        return f"{self.protocol}/{self.transport} {sent_by}{format_params(self.params)}"


_SENT_PROTOCOL_RE = re.compile(r"^\s*([^/\s]+)\s*/\s*([^/\s]+)\s*/\s*([^\s;]+)\s+(.*)$", re.S)


def parse_vias(value: str) -> list[Via]:
    """Parse a whole Via header value: ``via-parm *(COMMA via-parm)``.

    Empty elements (``a,,b``) are a syntax error (RFC 4475 §3.1.2.1).
    """
    if "," not in value:
        return [parse_via(value)]
    vias = []
    for part in split_outside_quotes(value, ","):
        if not part.strip(" \t"):
            raise ParseError("empty Via element")
        vias.append(parse_via(part))
    return vias


def parse_via(text: str) -> Via:
    """Parse one via-parm (a single element of a Via header value).

    LWS is allowed around the slashes of sent-protocol (RFC 4475 §3.1.1.1).
    """
    match = _SENT_PROTOCOL_RE.match(text)
    if match is None:
        raise ParseError(f"invalid Via {text.strip()!r}")
    name, version, transport, rest = match.groups()
    if name.upper() != "SIP":
        raise ParseError(f"invalid Via protocol {name!r}")
    semi = rest.find(";")
    sent_by, params = (rest, "") if semi < 0 else (rest[:semi], rest[semi:])
    host, port = split_hostport("".join(sent_by.split()))
    return Via(
        transport=transport.upper(),
        host=host,
        port=port,
        params=parse_params(params),
        protocol=f"{name}/{version}",
    )
