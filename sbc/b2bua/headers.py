"""Which headers cross from one leg to the other.

Nothing crosses unless listed here (DESIGN.md: the B-leg is built fresh).
Headers naming the other side's network — Via, Route, Record-Route,
Contact, Call-ID, tags, Server/User-Agent, Warning — are never on the list;
a trunk's ``pass_headers`` (policy) extend the list for what that trunk sends.
"""

from __future__ import annotations

from sbc.b2bua.identity import rehost
from sbc.policy import Trunk
from sbc.sip.address import parse_address
from sbc.sip.errors import ParseError
from sbc.sip.headers import canonical_name
from sbc.sip.message import Message

#: Carried on requests (INVITE and in-dialog requests).
REQUEST_ALLOW = frozenset(
    canonical_name(name)
    for name in (
        "Content-Type",
        "Content-Disposition",
        "Content-Encoding",
        "Content-Language",
        "Accept",
        "Accept-Language",
        "Allow-Events",
        "Subject",
        "Priority",
        "Privacy",
        "P-Asserted-Identity",
        "P-Preferred-Identity",
        "Diversion",
        "Reason",
        "Event",
        "Subscription-State",
        "Info-Package",
        "Recv-Info",
        "Expires",
        "Call-Info",
        "Alert-Info",
    )
)

#: Name a party by URI: the user part crosses, the host becomes the SBC's
#: own on the outgoing leg (so a transfer target is reached through us).
REHOSTED = ("Refer-To", "Referred-By")

#: Carried on responses relayed back to the other leg.
RESPONSE_ALLOW = frozenset(
    canonical_name(name)
    for name in (
        "Content-Type",
        "Content-Disposition",
        "Content-Encoding",
        "Content-Language",
        "Accept",
        "Allow-Events",
        "Retry-After",
        "Reason",
        "Unsupported",
        "Privacy",
        "P-Asserted-Identity",
        "Expires",
        "Min-Expires",
        "Event",
        "Recv-Info",
        "Alert-Info",
        "Call-Info",
    )
)

#: Also carried on redirects: the Contact *is* the content of a 3xx.
REDIRECT_ALLOW = RESPONSE_ALLOW | {"Contact"}


def allow_for(allow: frozenset[str], source: Trunk | None) -> frozenset[str]:
    """The headers that may cross from ``source``: the base list plus its ``pass_headers``."""
    if source is None or not source.pass_headers:
        return allow
    return allow | source.pass_headers


def copy_allowed(source: Message, target: Message, allow: frozenset[str]) -> None:
    """Copy the allowed headers of ``source`` (in order) onto ``target``."""
    for name, value in source.headers:
        if name in allow:
            target.headers.add(name, value)


def copy_rehosted(source: Message, target: Message, host: str, port: int) -> None:
    """Copy the party headers with the host replaced (unparseable ones are dropped)."""
    for name in REHOSTED:
        value = source.headers.get(name)
        if value is None:
            continue
        try:
            address = parse_address(value)
        except ParseError:
            continue
        target.headers.add(name, str(rehost(address, host, port)))
