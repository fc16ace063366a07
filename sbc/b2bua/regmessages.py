"""The registration relay's messages: what a phone's REGISTER asks, and what
the SBC sends for it (upstream REGISTERs, keepalive OPTIONS).

A phone's REGISTER is read once into a :class:`PhoneRegister` (a query, a
binding or a removal, RFC 3261 §10.2) that the driver
(:mod:`sbc.b2bua.registrar`) carries; numbers are read as ASCII digits with
a length cap (``'²'.isdigit()`` is True, and ``int()`` of thousands of
digits is slow or raises).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from sbc.b2bua.identity import uri_host, user_of, via_value
from sbc.b2bua.regrelay import Binding, Upstream
from sbc.sip.errors import ParseError
from sbc.sip.headers import Headers
from sbc.sip.ids import new_call_id, new_tag
from sbc.sip.message import Request, Response
from sbc.sip.params import delta_seconds
from sbc.sip.uri import SipUri

#: Credentials travel end to end: the registrar authenticates the phone.
AUTH_HEADERS = ("Authorization", "Proxy-Authorization")
CHALLENGE_HEADERS = ("WWW-Authenticate", "Proxy-Authenticate")
#: RFC 3261 §10.2.1.1 leaves the default to the registrar; this is ours.
DEFAULT_EXPIRES = 3600


class Ask(Enum):
    """What a REGISTER asks of the registrar (RFC 3261 §10.2)."""

    QUERY = "query"  # no Contact: list the bindings (§10.2.3)
    BIND = "bind"  # a Contact with a lifetime (§10.2.1)
    REMOVE = "remove"  # expires 0, or ``Contact: *`` with Expires: 0 (§10.2.2)


@dataclass(frozen=True, slots=True)
class PhoneRegister:
    """A phone's REGISTER, decided once."""

    user: str  # the AOR's user part
    ask: Ask
    contact: str | None  # the Contact URI to bind (BIND only)
    credentials: bool  # carries Authorization / Proxy-Authorization


def parse_register(request: Request) -> PhoneRegister:
    """Read a phone's REGISTER; :class:`ParseError` (a 400) when it makes no sense."""
    user = user_of(request.to.uri)
    if not user:
        raise ParseError("No User In To")
    contacts = request.contacts
    credentials = any(name in request.headers for name in AUTH_HEADERS)
    if "Contact" not in request.headers:
        return PhoneRegister(user, Ask.QUERY, None, credentials)
    header = delta_seconds(request.headers.get("Expires"))
    if not contacts:  # Contact: * (§10.2.2): only with Expires: 0 (§10.3 step 6)
        if header != 0:
            raise ParseError("Contact * Needs Expires 0")
        return PhoneRegister(user, Ask.REMOVE, None, credentials)
    first = contacts[0]
    expires = delta_seconds(first.params.get("expires"))
    if expires is None:  # RFC 3261 §10.2.1.1: the parameter wins, then the header
        expires = DEFAULT_EXPIRES if header is None else header
    if expires == 0:
        return PhoneRegister(user, Ask.REMOVE, None, credentials)
    return PhoneRegister(user, Ask.BIND, str(first.uri), credentials)


def upstream_register(
    upstream: Upstream,
    aor_user: str,
    *,
    registrar: SipUri,
    transport: str,
    local_host: str,
    local_port: int,
    expires: int,
    phone_request: Request | None,
    user_agent: str | None,
) -> Request:
    """The REGISTER the SBC sends for ``aor_user`` (same Call-ID, next CSeq,
    RFC 3261 §10.2.4), with the SBC's Contact and the phone's credentials."""
    upstream.cseq += 1
    host = uri_host(local_host)
    aor = f"<sip:{aor_user}@{uri_host(registrar.host)}>"
    suffix = "" if transport == "udp" else f";transport={transport}"
    headers = Headers()
    headers.add("Via", via_value(transport, local_host, local_port))
    headers.add("Max-Forwards", "70")
    headers.add("From", f"{aor};tag={upstream.tag}")
    headers.add("To", aor)
    headers.add("Call-ID", upstream.call_id)
    headers.add("CSeq", f"{upstream.cseq} REGISTER")
    headers.add("Contact", f"<sip:{upstream.sbc_user}@{host}:{local_port}{suffix}>")
    headers.add("Expires", str(expires))
    if phone_request is not None:
        for name in AUTH_HEADERS:
            for value in phone_request.headers.get_all(name):
                headers.add(name, value)
    if user_agent:
        headers.add("User-Agent", user_agent)
    return Request("REGISTER", registrar.copy(), headers)


def granted_expires(response: Response, upstream: Upstream, asked: int) -> int:
    """What the registrar granted our Contact (RFC 3261 §10.2.4)."""
    try:
        contacts = response.contacts
    except ParseError:
        contacts = []
    for contact in contacts:
        uri = contact.uri
        if isinstance(uri, SipUri) and uri.user == upstream.sbc_user:
            granted = delta_seconds(contact.params.get("expires"))
            if granted is not None:
                return granted
    header = delta_seconds(response.headers.get("Expires"))
    return asked if header is None else header


def keepalive_options(binding: Binding, local_host: str, local_port: int) -> Request:
    """An OPTIONS to the phone's observed source: keeps its NAT pinhole open."""
    host = uri_host(local_host)
    transport = binding.source.transport
    headers = Headers()
    headers.add("Via", via_value(transport, local_host, local_port))
    headers.add("Max-Forwards", "70")
    headers.add("From", f"<sip:sbc@{host}>;tag={new_tag()}")
    headers.add("To", f"<sip:{binding.aor_user}@{host}>")
    headers.add("Call-ID", new_call_id(host))
    headers.add("CSeq", "1 OPTIONS")
    uri = SipUri(host=uri_host(binding.source.host), port=binding.source.port)
    return Request("OPTIONS", uri, headers)
