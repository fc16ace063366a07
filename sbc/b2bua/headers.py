"""Which headers cross from one leg to the other.

Nothing crosses unless listed here (DESIGN.md: the B-leg is built fresh).
Headers naming the other side's network — Via, Route, Record-Route,
Contact, Call-ID, tags, Server/User-Agent, Warning, Call-Info, Alert-Info —
are never on the list; identity headers cross with the host replaced;
a trunk's ``pass_headers`` (policy) extend the list for what that trunk sends.
"""

from __future__ import annotations

from sbc.b2bua.identity import rehost
from sbc.policy import Trunk
from sbc.sip.address import parse_address_list
from sbc.sip.errors import ParseError
from sbc.sip.headers import canonical_name
from sbc.sip.message import Message
from sbc.sip.uri import TelUri

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
        "Reason",
        "Event",
        "Subscription-State",
        "Info-Package",
        "Recv-Info",
        "Expires",
    )
)

#: Name a party by URI: the user part (and display name, header parameters)
#: crosses, the host becomes the SBC's own on the outgoing leg. Transfer
#: targets keep our port too, so the transfer comes back through us.
REHOSTED_WITH_PORT = ("Refer-To", "Referred-By")
REHOSTED = (
    "P-Asserted-Identity",
    "P-Preferred-Identity",
    "Remote-Party-ID",
    "Diversion",
    "History-Info",
)

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
        "Expires",
        "Min-Expires",
        "Event",
        "Recv-Info",
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


# Stored header names are canonical ("Remote-Party-Id"): compare in that spelling.
_REHOSTED_ANY = frozenset(canonical_name(name) for name in (*REHOSTED_WITH_PORT, *REHOSTED))
_WITH_PORT = frozenset(canonical_name(name) for name in REHOSTED_WITH_PORT)


def copy_rehosted(
    source: Message, target: Message, host: str, port: int, passed: frozenset[str] = frozenset()
) -> None:
    """Copy the party headers with the host replaced; unparseable ones are dropped
    (they cannot be cleaned), and those in ``passed`` were copied verbatim already."""
    for name, value in source.headers:  # one pass: most messages carry none of them
        if name not in _REHOSTED_ANY or name in passed:
            continue
        rewritten = _rehost_list(value, host, port if name in _WITH_PORT else None)
        if rewritten is not None:
            target.headers.add(name, rewritten)


def _rehost_list(value: str, host: str, port: int | None) -> str | None:
    try:
        addresses = parse_address_list(value)
    except ParseError:
        return None
    out = []
    for address in addresses:
        if isinstance(address.uri, TelUri):
            out.append(str(address))  # a number names no host
            continue
        rehosted = rehost(address, host, port)
        rehosted.params = dict(address.params)
        out.append(str(rehosted))
    return ", ".join(out)
