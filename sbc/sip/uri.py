"""SIP, SIPS and tel URIs (RFC 3261 §19.1, §25.1; RFC 3966).

    SIP-URI  = "sip:" [ userinfo ] hostport uri-parameters [ headers ]
    userinfo = ( user / telephone-subscriber ) [ ":" password ] "@"
    hostport = host [ ":" port ]
    host     = hostname / IPv4address / IPv6reference

The user part is kept in its escaped wire form so that serialization is
byte-exact; :func:`unescape` gives the value to compare.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote

from sbc.sip.errors import ParseError
from sbc.sip.params import Params, format_params, parse_params

_HOST_RE = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.\-]*[A-Za-z0-9.])?)$")
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*$")
_USER_FORBIDDEN = frozenset(' \t<>"@\r\n')
SIP_SCHEMES = frozenset(("sip", "sips"))


def unescape(text: str) -> str:
    """Undo %HH escapes (RFC 3261 §19.1.4: compare URIs unescaped)."""
    return unquote(text) if "%" in text else text


@dataclass(slots=True)
class SipUri:
    """A ``sip:`` or ``sips:`` URI."""

    host: str
    user: str | None = None
    password: str | None = None
    port: int | None = None
    scheme: str = "sip"
    params: Params = field(default_factory=dict)
    headers: str | None = None  # raw ``?h=v&...`` part without the ``?``

    def __str__(self) -> str:
        parts = [self.scheme, ":"]
        if self.user is not None:
            parts.append(self.user)
            if self.password is not None:
                parts.append(":" + self.password)
            parts.append("@")
        parts.append(self.host)
        if self.port is not None:
            parts.append(f":{self.port}")
        if self.params:
            parts.append(format_params(self.params))
        if self.headers is not None:
            parts.append("?" + self.headers)
        return "".join(parts)

    @property
    def transport(self) -> str | None:
        """The ``transport`` parameter, lower-cased (values are case-insensitive)."""
        value = self.params.get("transport")
        return value.lower() if value else None

    @property
    def host_bare(self) -> str:
        """Host without IPv6 brackets, lower-cased (hosts compare case-insensitively)."""
        host = self.host
        if host.startswith("["):
            host = host[1:-1]
        return host.lower()

    def copy(self) -> SipUri:
        return SipUri(
            host=self.host,
            user=self.user,
            password=self.password,
            port=self.port,
            scheme=self.scheme,
            params=dict(self.params),
            headers=self.headers,
        )


@dataclass(slots=True)
class TelUri:
    """A ``tel:`` URI (RFC 3966); parameters kept in order."""

    number: str
    params: Params = field(default_factory=dict)
    scheme: str = "tel"

    def __str__(self) -> str:
        return f"{self.scheme}:{self.number}{format_params(self.params)}"

    @property
    def user(self) -> str:
        return self.number

    def copy(self) -> TelUri:
        return TelUri(number=self.number, params=dict(self.params), scheme=self.scheme)


@dataclass(slots=True)
class AbsoluteUri:
    """Any other absolute URI (e.g. ``mailto:``, ``urn:``), kept opaque."""

    scheme: str
    rest: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.rest}"

    @property
    def user(self) -> None:
        return None

    def copy(self) -> AbsoluteUri:
        return AbsoluteUri(self.scheme, self.rest)


Uri = SipUri | TelUri | AbsoluteUri


def parse_uri(text: str) -> Uri:
    """Parse any URI we may meet in a Request-URI or name-addr."""
    scheme, colon, rest = text.partition(":")
    if not colon or not _SCHEME_RE.match(scheme):
        raise ParseError(f"invalid URI {text!r}")
    lowered = scheme.lower()
    if lowered in SIP_SCHEMES:
        return _parse_sip_uri(lowered, rest)
    if lowered == "tel":
        number, _, params = rest.partition(";")
        if not number:
            raise ParseError("empty tel URI")
        return TelUri(number=number, params=parse_params(params), scheme=scheme)
    if not rest or any(c in rest for c in " \t\r\n"):
        raise ParseError(f"invalid URI {text!r}")
    return AbsoluteUri(scheme, rest)


def parse_sip_uri(text: str) -> SipUri:
    """Parse a URI that must be SIP or SIPS."""
    uri = parse_uri(text)
    if not isinstance(uri, SipUri):
        raise ParseError(f"not a SIP URI: {text!r}")
    return uri


def _parse_sip_uri(scheme: str, rest: str) -> SipUri:
    rest, qmark, headers = rest.partition("?")
    user: str | None = None
    password: str | None = None
    at = rest.rfind("@")
    if at >= 0:
        userinfo, rest = rest[:at], rest[at + 1 :]
        user, colon, pw = userinfo.partition(":")
        password = pw if colon else None
        if not user or any(c in _USER_FORBIDDEN for c in userinfo):
            raise ParseError(f"invalid user part {userinfo!r}")
    hostport, _, params = rest.partition(";")
    host, port = split_hostport(hostport)
    return SipUri(
        host=host,
        user=user,
        password=password,
        port=port,
        scheme=scheme,
        params=parse_params(params),
        headers=headers if qmark else None,
    )


def split_hostport(hostport: str) -> tuple[str, int | None]:
    """Split ``host[:port]`` with IPv6 references; validate both."""
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise ParseError(f"unterminated IPv6 reference {hostport!r}")
        host, tail = hostport[: end + 1], hostport[end + 1 :]
        if tail and not tail.startswith(":"):
            raise ParseError(f"invalid host {hostport!r}")
        port_text = tail[1:] if tail else None
    else:
        host, colon, port_text_raw = hostport.partition(":")
        port_text = port_text_raw if colon else None
    if not _HOST_RE.match(host):
        raise ParseError(f"invalid host {host!r}")
    if port_text is None:
        return host, None
    if not port_text.isdigit() or not 0 < int(port_text) <= 65535:
        raise ParseError(f"invalid port {port_text!r}")
    return host, int(port_text)
