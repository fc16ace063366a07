"""Identities crossing legs: user parts survive, hosts become the SBC's.

Topology hiding keeps *who* (display name, user part) and drops *where*
(host, port, URI parameters and headers) of every party named in a message.
"""

from __future__ import annotations

from sbc.sip.address import Address
from sbc.sip.ids import new_branch
from sbc.sip.uri import SipUri, TelUri, Uri

#: RFC 3323 §4.1.1.3: anonymous identities keep their host.
ANONYMOUS_HOST = "anonymous.invalid"


def user_of(uri: Uri) -> str | None:
    if isinstance(uri, SipUri):
        return uri.user
    if isinstance(uri, TelUri):
        return uri.number
    return None


def rehost(address: Address, host: str, port: int | None = None) -> Address:
    """Keep display name and user; put our host (or the trunk's) instead.

    URI parameters and headers go too: they belong to the other side's
    network (e.g. a Refer-To ``?Replaces=`` names the other leg's dialog).
    """
    user = user_of(address.uri)
    uri = address.uri
    if isinstance(uri, SipUri) and uri.host_bare == ANONYMOUS_HOST:
        return Address(SipUri(host=ANONYMOUS_HOST, user=user), address.display)
    return Address(SipUri(host=uri_host(host), user=user, port=port), address.display)


def uri_host(host: str) -> str:
    """IPv6 addresses are bracketed in URIs (RFC 3261 §25.1 IPv6reference)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def via_value(transport: str, host: str, port: int) -> str:
    """The Via the SBC puts on a request it sends: a fresh branch (RFC 3261
    §8.1.1.7) and ``rport`` (RFC 3581) so answers come back to our socket."""
    return f"SIP/2.0/{transport.upper()} {uri_host(host)}:{port};branch={new_branch()};rport"
