"""Trunk liveness: periodic OPTIONS to each trunk that asks for it.

A trunk with ``options_interval_s`` set is probed that often. An answer
(any final response but 503, RFC 3261 §11.2: OPTIONS is answered like an
INVITE would be) marks it up; a timeout, a transport failure or a 503 marks
it down, and routing skips it until a later probe is answered. Trunks
without probing are always up. Pure: the core sends the probes this module
builds and reports what came back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import structlog

from sbc.b2bua.identity import uri_host, via_value
from sbc.policy import Interface, Trunk
from sbc.sip.headers import Headers
from sbc.sip.ids import new_call_id, new_tag
from sbc.sip.message import Request
from sbc.sip.target import Target
from sbc.sip.uri import SipUri

log = structlog.get_logger("sbc.liveness")

#: What makes a probe answer mean "down": the peer says it cannot take calls.
_DOWN_STATUSES = frozenset({503})


@dataclass(slots=True)
class TrunkHealth:
    """What probing knows about one trunk."""

    name: str
    interval: float
    up: bool = True
    next_probe: float = 0.0
    in_flight: bool = False
    last_status: int | None = None
    changed: float = 0.0
    probes: int = 0
    failures: int = 0


@dataclass(frozen=True, slots=True)
class Probe:
    """Context of an OPTIONS client transaction (``tx.context``)."""

    trunk: str


@dataclass(slots=True)
class Liveness:
    """Up/down state of every probed trunk, kept across policy reloads."""

    trunks: dict[str, TrunkHealth] = field(default_factory=dict)

    def set_trunks(self, trunks: Mapping[str, Trunk], now: float) -> None:
        """Follow a new policy: keep what is known of trunks still probed."""
        kept: dict[str, TrunkHealth] = {}
        for trunk in trunks.values():
            if trunk.options_interval <= 0:
                continue
            health = self.trunks.get(trunk.name) or TrunkHealth(trunk.name, trunk.options_interval)
            if health.interval != trunk.options_interval:
                health.interval = trunk.options_interval
                health.next_probe = now
            kept[trunk.name] = health
        self.trunks = kept

    def is_up(self, trunk: str) -> bool:
        health = self.trunks.get(trunk)
        return health is None or health.up

    def next_deadline(self) -> float | None:
        pending = [h.next_probe for h in self.trunks.values() if not h.in_flight]
        return min(pending, default=None)

    def due(self, now: float) -> list[str]:
        """Trunks whose probe is due; they count as in flight until answered."""
        names = []
        for health in self.trunks.values():
            if not health.in_flight and health.next_probe <= now:
                health.in_flight = True
                health.probes += 1
                names.append(health.name)
        return names

    def answered(self, trunk: str, status: int, now: float) -> None:
        """A probe ended: ``status`` is the final response, or 408/503 for no answer."""
        health = self.trunks.get(trunk)
        if health is None:
            return  # the trunk left the policy meanwhile
        health.in_flight = False
        health.last_status = status
        health.next_probe = now + health.interval
        up = status not in _DOWN_STATUSES and status != 408
        if not up:
            health.failures += 1
        if up != health.up:
            health.up = up
            health.changed = now
            log.warning("trunk.up" if up else "trunk.down", trunk=trunk, status=status)


def options_probe(trunk: Trunk, interface: Interface, user_agent: str | None) -> Request:
    """An out-of-dialog OPTIONS to ``trunk`` from ``interface`` (RFC 3261 §11.1)."""
    host = interface.advertised_address
    bracketed = uri_host(host)
    params: dict[str, str | None] = {}
    if trunk.transport != "udp":
        params["transport"] = trunk.transport
    uri = SipUri(host=trunk.address, port=trunk.port, params=params)
    headers = Headers()
    headers.add("Via", via_value(trunk.transport, host, interface.port_for(trunk.transport)))
    headers.add("Max-Forwards", "70")
    headers.add("From", f"<sip:sbc@{bracketed}>;tag={new_tag()}")
    headers.add("To", f"<{uri}>")
    headers.add("Call-ID", new_call_id(host))
    headers.add("CSeq", "1 OPTIONS")
    headers.add("Accept", "application/sdp")
    if user_agent:
        headers.add("User-Agent", user_agent)
    return Request("OPTIONS", uri, headers)


def probe_target(trunk: Trunk) -> Target:
    return Target(trunk.interface, trunk.transport, trunk.address, trunk.port)
