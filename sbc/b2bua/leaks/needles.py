"""What the leak guard looks for, compiled once per policy and interface pair.

A :class:`Needle` is a literal byte string that must not appear in a message
leaving one interface, with the text that replaces it when scrubbed and the
rule its two ends are checked by (:class:`Edge`): an address inside a longer
address or name (``10.0.0.1`` in ``10.0.0.15``) is not a leak.

For a message leaving interface E for a call whose other leg is on interface
O, the static needles are O's addresses (listen, advertised, media) and
those of the trunks on O (address or host name, and each ``sources`` entry
that is a single host), plus their ``address:port`` pairs (an interface's
SIP ports, a trunk's port), so that scrub replaces a pair with this side's
own address and port. Without a call (probes, registrations, stateless
answers) every interface but E counts as O. A value E owns itself (its own
addresses, its own trunks') is no secret on E and is left out; where it
differs from O's only by port, only O's ``address:port`` pairs are searched
for. Bare port numbers are never needles: a relay port equals some peer's
port by chance far too often to block a call on it.

Each pair's needles sit in one Aho-Corasick automaton (``ahocorasick_rs``):
one pass over the message, whatever the number of needles. It only says
"maybe": a candidate is confirmed with its edges by :mod:`sbc.b2bua.leaks.scan`.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from ahocorasick_rs import BytesAhoCorasick, MatchKind

from sbc.b2bua.identity import uri_host
from sbc.policy import Interface, Policy


class Edge(enum.Enum):
    """How the ends of a match are checked (see :mod:`sbc.b2bua.leaks.scan`)."""

    HOST = "host"  # IPv4 address or host name: not part of a longer address or name
    HOST_PORT = "host:port"  # same start; the port is not followed by another digit
    IP6 = "ip6"  # an IPv6 address: not part of a longer one
    TOKEN = "token"  # Call-ID, tag or branch: not part of a longer token (case kept)


@dataclass(frozen=True, slots=True)
class Needle:
    text: bytes  # lower case unless TOKEN: the message is searched folded
    replacement: bytes  # this side's own value, written in its place by scrub
    edge: Edge


def host_needles(host: str, replacement: str) -> list[Needle]:
    """Every spelling of one address or host name that is searched for."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return [Needle(host.lower().rstrip(".").encode(), replacement.encode(), Edge.HOST)]
    if ip.version == 4:
        return [Needle(str(ip).encode(), replacement.encode(), Edge.HOST)]
    spellings = dict.fromkeys((ip.compressed, ip.exploded))  # RFC 5952 form and the long one
    return [Needle(s.encode(), replacement.encode(), Edge.IP6) for s in spellings]


def host_port_needle(host: str, port: int, replacement: str) -> Needle:
    text = f"{uri_host(canonical(host))}:{port}".encode()
    return Needle(text, replacement.encode(), Edge.HOST_PORT)


def canonical(host: str) -> str:
    """An address in its canonical spelling, a host name in lower case."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host.lower().rstrip(".")


class NeedleSet:
    """The needles for one (other side, egress interface) pair, longest first."""

    __slots__ = ("_automaton", "fold", "needles")

    def __init__(self, needles: Iterable[Needle]) -> None:
        unique = {n.text: n for n in needles if n.text}
        self.needles = tuple(sorted(unique.values(), key=lambda n: -len(n.text)))
        # Names and IPv6 hex are matched without case: the text is folded first.
        self.fold = any(n.text.upper() != n.text for n in self.needles)
        self._automaton = (
            BytesAhoCorasick(unique, matchkind=MatchKind.LeftmostLongest) if unique else None
        )

    def suspects(self, data: bytes) -> bool:
        """Whether any needle occurs in ``data`` (edges unchecked: a candidate only)."""
        if self._automaton is None:
            return False
        return bool(self._automaton.find_matches_as_indexes(data.lower() if self.fold else data))


EMPTY = NeedleSet(())


@dataclass(frozen=True, slots=True)
class _Values:
    """What one side names itself by: hosts, and (host, port) pairs."""

    hosts: frozenset[str]
    pairs: frozenset[tuple[str, int]]


class Topology:
    """The needle sets of one policy (rebuilt on every policy swap).

    ``needles(other, egress)``: for a call between ``other`` and ``egress``;
    ``other=None``: for a message that belongs to no call (every other side).
    """

    __slots__ = ("_own", "_replacement", "_sets")

    def __init__(self, policy: Policy) -> None:
        values = {name: _values(policy, name) for name in policy.interfaces}
        self._own = {name: v.hosts for name, v in values.items()}
        self._replacement = {
            name: (i.advertised_address, i.port) for name, i in policy.interfaces.items()
        }
        self._sets: dict[tuple[str | None, str], NeedleSet] = {}
        for egress, interface in policy.interfaces.items():
            others = [values[name] for name in policy.interfaces if name != egress]
            self._sets[(None, egress)] = _compile(interface, values[egress], others)
            for name in policy.interfaces:
                if name != egress:
                    self._sets[(name, egress)] = _compile(interface, values[egress], [values[name]])

    def needles(self, other: str | None, egress: str) -> NeedleSet:
        """A call within one interface (``other == egress``) gets every other side."""
        return self._sets.get((other, egress)) or self._sets.get((None, egress)) or EMPTY

    def own_hosts(self, egress: str) -> frozenset[str]:
        """Hosts ``egress`` names itself by (never secrets there)."""
        return self._own.get(egress, frozenset())

    def replacement(self, egress: str) -> str:
        """What scrub writes instead of another side's address: the advertised one."""
        return self._replacement.get(egress, ("0.0.0.0", 0))[0]


def _values(policy: Policy, name: str) -> _Values:
    interface = policy.interfaces[name]
    ports = [interface.port_for(t) for t in sorted(interface.transports)]
    hosts = {canonical(h) for h in _addresses(interface)}
    signalling = (interface.address, interface.advertised_address)
    pairs = {(canonical(h), p) for h in signalling for p in ports}
    for trunk in policy.trunks.values():
        if trunk.interface != name:
            continue
        hosts.add(canonical(trunk.address))
        pairs.add((canonical(trunk.address), trunk.port))
        hosts.update(
            str(network.network_address)
            for network in trunk.sources
            if network.prefixlen == network.max_prefixlen
        )
    return _Values(frozenset(hosts), frozenset(pairs))


def _addresses(interface: Interface) -> tuple[str, ...]:
    return (interface.address, interface.advertised_address, interface.media_address)


def _compile(egress: Interface, own: _Values, others: Iterable[_Values]) -> NeedleSet:
    replacement = egress.advertised_address
    with_port = f"{uri_host(replacement)}:{egress.port}"
    needles: list[Needle] = []
    for side in others:
        for host in side.hosts - own.hosts:
            needles.extend(host_needles(host, replacement))
        # The other side's address:port (longer, so found first) becomes ours with our
        # port; a shared address is only told apart by the other side's port.
        for host, port in side.pairs - own.pairs:
            needles.append(host_port_needle(host, port, with_port))
    return NeedleSet(needles)
