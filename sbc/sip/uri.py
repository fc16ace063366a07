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
from sbc.sip.params import MAX_PORT, Params, format_params, parse_number, parse_params

_HOST_RE = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.\-]*[A-Za-z0-9.])?)$")
_TEL_NUMBER_RE = re.compile(r"^\+?[0-9A-Fa-f*#.()\-pPwW]+$")
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*$")
_USER_FORBIDDEN = frozenset(' \t<>"@\r\n\x00[]{}|\\^`')
_HEADERS_FORBIDDEN = frozenset(' \t<>"\r\n\x00')
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


@dataclass(slots=True)
class UnparsedUri:
    """A Request-URI that failed to parse, kept verbatim.

    Only ever found on the ``message`` of a :class:`ParseError`, so that the
    core can still answer 400 to e.g. ``INVITE <sip:u@h> SIP/2.0`` (RFC 4475
    §3.1.2.7) or a Request-URI with embedded LWS (§3.1.2.8).
    """

    text: str
    scheme: str = ""

    def __str__(self) -> str:
        return self.text

    @property
    def user(self) -> None:
        return None

    def copy(self) -> UnparsedUri:
        return UnparsedUri(self.text)


Uri = SipUri | TelUri | AbsoluteUri | UnparsedUri


def parse_uri(text: str) -> Uri:
    """Parse any URI we may meet in a Request-URI or name-addr."""
    scheme, colon, rest = text.partition(":")
    if not colon or not _SCHEME_RE.match(scheme):
        raise ParseError(f"invalid URI {text!r}")
    lowered = scheme.lower()
    if lowered in SIP_SCHEMES:
        return _parse_sip_uri(lowered, rest)
    if lowered == "tel":
        return _parse_tel_uri(scheme, rest)
    if not rest or any(c in rest for c in " \t\r\n"):
        raise ParseError(f"invalid URI {text!r}")
    return AbsoluteUri(scheme, rest)


def _parse_tel_uri(scheme: str, rest: str) -> TelUri:
    """``telephone-subscriber = global-number / local-number`` (RFC 3966 §3)."""
    semi = rest.find(";")
    number, params = (rest, "") if semi < 0 else (rest[:semi], rest[semi:])
    if not number or not _TEL_NUMBER_RE.match(number):
        raise ParseError(f"invalid tel URI number {number[:40]!r}")
    return TelUri(number=number, params=parse_params(params), scheme=scheme)


def parse_sip_uri(text: str) -> SipUri:
    """Parse a URI that must be SIP or SIPS."""
    uri = parse_uri(text)
    if not isinstance(uri, SipUri):
        raise ParseError(f"not a SIP URI: {text!r}")
    return uri


def _parse_sip_uri(scheme: str, rest: str) -> SipUri:
    """``[ userinfo ] hostport uri-parameters [ headers ]`` (RFC 3261 §25.1).

    userinfo is found first: ``user`` may hold ``;``, ``?`` and ``/``
    (user-unreserved), but never ``@``, so the first ``@`` ends it (RFC 4475
    §3.1.1.2, §3.1.1.9).
    """
    user: str | None = None
    password: str | None = None
    at = rest.find("@")
    if at >= 0:
        userinfo, rest = rest[:at], rest[at + 1 :]
        user, colon, pw = userinfo.partition(":")
        password = pw if colon else None
        if not user or not _USER_FORBIDDEN.isdisjoint(userinfo):
            raise ParseError(f"invalid user part {userinfo[:40]!r}")
    rest, qmark, headers = rest.partition("?")
    semi = rest.find(";")
    hostport, params = (rest, "") if semi < 0 else (rest[:semi], rest[semi:])
    host, port = split_hostport(hostport)
    if qmark and not _is_uri_headers(headers):
        raise ParseError(f"invalid URI headers {headers[:40]!r}")
    return SipUri(
        host=host,
        user=user,
        password=password,
        port=port,
        scheme=scheme,
        params=parse_params(params) if params else {},
        headers=headers if qmark else None,
    )


def _is_uri_headers(text: str) -> bool:
    """``headers = "?" header *( "&" header )``, ``header = hname "=" hvalue``."""
    return bool(text) and _HEADERS_FORBIDDEN.isdisjoint(text)


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
    port = parse_number(port_text, MAX_PORT)
    if not port:  # not digits, above 65535, or 0
        raise ParseError(f"invalid port {port_text[:20]!r}")
    return host, port
