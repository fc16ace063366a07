"""Who may reach the core: screening, trust and digest authentication.

Theory of operation. Every datagram (or framed stream message) meets
:func:`prescreened` before it is parsed: the ban table, the interface's ACL
and, for a source that is no trunk's, its per-source rate limit, charged by
the method read from the first token (:func:`sbc.guard.guard.request_class`).
A message that then fails to parse is a strike against such a source
(:func:`answer_parse_error`): garbage gets its sender banned. A new request
(not a retransmission) then passes three more gates before the transaction
layer keeps any state for it, in this order:

1. :func:`screened`: scanner User-Agents and trunk rate limits
   (``security.yaml`` through :class:`sbc.guard.Guard`);
2. :func:`trusted`: out-of-dialog requests must come from a trunk (or be a
   REGISTER on a registration-relay interface);
3. :func:`authenticated`: a trunk with ``require_auth`` wants valid digest
   credentials (RFC 3261 §22.1).

What these refuse is answered statelessly, straight back to the source, or
not at all (an ACK, a ``drop`` verdict, anything that is not a request): a
flood leaves no state, and no answer is larger than its request
(:func:`sbc.b2bua.refusal.refuse`). A message that does not parse is answered 400 by
:func:`answer_parse_error` when it can be answered. Each refusal is counted
in the core's ``stats``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sbc.auth.server import AuthStatus
from sbc.b2bua.call import Call
from sbc.b2bua.refusal import refuse
from sbc.b2bua.registrar import relay_settings
from sbc.guard.guard import ALLOW, DROP, Verdict, request_class
from sbc.policy import Policy, Trunk
from sbc.policy.security import OTHER_CLASS
from sbc.sip.errors import ParseError
from sbc.sip.message import Request, Response, error_reason
from sbc.sip.target import Target
from sbc.sip.uri import SipUri

if TYPE_CHECKING:
    from sbc.b2bua.core import Core

#: Out-of-dialog methods a ``require_auth`` trunk must authenticate (RFC 3261 §22.1).
_CHALLENGED = frozenset(("INVITE", "REGISTER"))
#: (interface, address) pairs whose trunk-or-not answer is kept; cleared when full.
_SOURCES_CACHED = 65_536


class TrunkSources:
    """Whether a source address is a trunk's, cached per interface and address
    until the policy changes: for a stranger the policy parses the address and
    scans the trunks' ``sources``, which would cost a flood more than its limit."""

    __slots__ = ("_policy", "_seen")

    def __init__(self) -> None:
        self._policy: Policy | None = None
        self._seen: dict[tuple[str, str], bool] = {}

    def __call__(self, policy: Policy, source: Target) -> bool:
        if policy is not self._policy:
            self._policy = policy
            self._seen.clear()
        key = (source.interface, source.host)
        found = self._seen.get(key)
        if found is None:
            if len(self._seen) >= _SOURCES_CACHED:
                self._seen.clear()
            found = self._seen[key] = (
                policy.trunk_for_source(source.interface, source.host) is not None
            )
        return found


def prescreened(core: Core, data: bytes, source: Target) -> Verdict:
    """Bans, the ACL and a stranger's rate limit, before ``data`` is parsed.

    A ``drop`` verdict ends the message here, unparsed; a ``respond`` one is
    parsed only to be answered (:func:`refuse`). A trunk's traffic is limited
    once parsed (:func:`screened`), so that its retransmissions and responses
    are not charged (``per_source_applies_to`` keeps its meaning).
    """
    guard = core.guard
    verdict = guard.check_source(source.host, source.interface, core.now)
    if verdict.action == "drop":
        return verdict  # the cheap path: a banned flood costs two dict lookups
    if verdict.allowed and core.trunk_sources(core.policy, source):
        return verdict
    cls = request_class(data)
    if verdict.allowed:
        verdict = guard.limit_source(OTHER_CLASS if cls is None else cls, source.host, core.now)
        if verdict.allowed:
            return verdict
    core.stats["screened"] += 1
    return verdict if cls is not None else DROP  # only a request can be answered


def refuse_verdict(
    core: Core, message: Request | Response, source: Target, verdict: Verdict
) -> None:
    """Answer a refused request statelessly, when its verdict says so (never an
    ACK, never a response: those are dropped)."""
    if isinstance(message, Request) and verdict.action == "respond":
        refuse(core, message, source, verdict.status, verdict.reason, extra=verdict.headers)


def screened(core: Core, request: Request, source: Target, trunk: Trunk | None) -> bool:
    """Scanners and trunk rate limits (security.yaml), after :func:`prescreened`.
    What is refused is answered statelessly, or not at all: a flood leaves no state."""
    verdict = core.guard.screen(
        request.method,
        source.host,
        trunk.name if trunk is not None else None,
        request.headers.get("User-Agent"),
        core.now,
    )
    if verdict.allowed:
        return True
    core.stats["screened"] += 1
    refuse_verdict(core, request, source, verdict)
    return False


def trusted(core: Core, request: Request, source: Target, trunk: Trunk | None) -> bool:
    """Out-of-dialog requests must come from a trunk; others get a stateless
    403 (no transaction is kept for scanners) and an ACK is dropped."""
    if request.to.tag is not None or trunk is not None:
        return True  # in-dialog: matched by Call-ID and our random tag
    if request.method == "REGISTER" and relay_settings(core.policy, source.interface):
        return True  # phones register through a relay interface from anywhere
    core.stats["forbidden"] += 1
    refuse(core, request, source, 403)
    return False


def answer_parse_error(
    core: Core, exc: ParseError, source: Target, verdict: Verdict = ALLOW
) -> None:
    """Answer 400 naming the problem when the request can be answered at all.

    From a source that is no trunk's, it is a strike (garbage bans its sender);
    a trunk's address can be forged, so its garbage never counts. A message
    refused before parsing (``verdict``) was struck already and gets no answer.
    """
    core.stats["parse_errors"] += 1
    if not verdict.allowed:
        return
    if not core.trunk_sources(core.policy, source) and (
        core.guard.record_malformed(source.host, core.now) is not None
    ):
        return  # banned by this strike: silence from now on
    request = exc.message
    if not isinstance(request, Request) or request.method == "ACK":
        return
    if all(request.headers.get(n) for n in ("Via", "From", "To", "Call-ID", "CSeq")):
        # Straight back to the source, never to a Via that may be forged.
        refuse(core, request, source, exc.status, error_reason(exc))


def call_hosts(call: Call) -> set[str]:
    """Where an established call's far ends talk from: each leg's peer, the
    source its answers came from, and its remote target (RFC 3261 §12.1)."""
    hosts: set[str] = set()
    for leg in (call.a, call.b):
        hosts.add(leg.peer.host)
        if leg.observed is not None:
            hosts.add(leg.observed.host)
        target = leg.dialog.remote_target if leg.dialog is not None else None
        if isinstance(target, SipUri):
            hosts.add(target.host.strip("[]"))
    return hosts


def ingress_trunk(core: Core, request: Request, source: Target) -> Trunk | None:
    """The trunk a request comes in on, for screening, authentication and the call.

    Its source names it, unless the Request-URI is the Contact a trunk
    registered (RFC 3261 §10.2.1: the registrar sends calls for our AOR there)
    and the source may be that trunk: several accounts with one carrier, whose
    requests all come from the same proxy, are told apart by it.
    """
    policy = core.policy
    name = core.registrations.trunk_for_contact(request.uri)
    registered = policy.trunks.get(name) if name is not None else None
    if registered is not None and policy.accepts_source(registered, source.interface, source.host):
        return registered
    return policy.trunk_for_source(source.interface, source.host)


def authenticated(core: Core, request: Request, source: Target, trunk: Trunk | None) -> bool:
    """Digest authentication of a trunk that requires it (RFC 3261 §22.1).

    Its out-of-dialog INVITEs and REGISTERs must carry valid credentials
    (OPTIONS are keepalives; ACK and CANCEL cannot be challenged, §22.1; other
    methods are refused anyway). The 401 is stateless, like every refusal
    before a transaction exists (:func:`sbc.b2bua.refusal.refuse`): nonces are
    HMACs, so nothing needs keeping, and a forged INVITE costs one answer
    instead of a transaction re-sending its 401 on Timer G for 32 s. A
    failure is counted against the trunk and the username it claimed, never
    against the trunk's address: anyone can forge that (the guard alerts
    instead, in a throttled line)."""
    if request.to.tag is not None or request.method not in _CHALLENGED:
        return True
    server = core.auth_servers.get(trunk.name) if trunk is not None else None
    if trunk is None or server is None:
        return True
    value = request.headers.get("Authorization")
    stale = False
    if value is not None:
        result = server.verify(request, value, core.now)
        if result.status is AuthStatus.OK:
            return True
        stale = result.status is AuthStatus.STALE
        if not stale:
            core.stats["auth_failures"] += 1
            core.guard.record_auth_failure(source.host, core.now, trunk.name, result.username)
    challenge = {"WWW-Authenticate": server.challenge(core.now, stale=stale)}
    refuse(core, request, source, 401, extra=challenge)
    return False
