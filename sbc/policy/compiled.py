"""The policy as the runtime uses it: plain frozen objects plus lookup indexes.

Everything the hot path asks ("which trunk sent this packet?", "where does
this call go?") is answered from structures built once here, at load time:
a dict keyed by ``(interface, source IP)`` and, per interface, the CIDR
blocks listed in ``sources``. No YAML, validation or regex work happens per
call.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from sbc.auth.client import DigestCredentials
from sbc.auth.secrets import Secret
from sbc.policy.admission import AdmissionPolicy
from sbc.policy.manipulations import Manipulations
from sbc.policy.routing import Route, RouteContext, first_match
from sbc.policy.schema import (
    InterfaceTls,
    RegistrationRelaySpec,
    RequireAuth,
    Settings,
    TrunkCodecs,
    TrunkRegister,
    TrunkTls,
)
from sbc.policy.security import SecurityPolicy, default_security

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Interface:
    """A listening address of the SBC, with defaults already applied."""

    name: str
    address: str
    port: int
    transports: frozenset[str]
    advertised_address: str
    media_address: str
    media_ports: tuple[int, int]
    tls: InterfaceTls | None = None
    registration: RegistrationRelaySpec | None = None

    def port_for(self, transport: str) -> int:
        """The port this interface listens on for ``transport`` (TLS has its own)."""
        return self.tls.port if transport == "tls" and self.tls is not None else self.port


@dataclass(frozen=True)
class Trunk:
    """A named SIP peer. ``address`` may be a host name, which never matches a source IP."""

    name: str
    interface: str
    address: str
    port: int
    transport: str
    sources: tuple[IPNetwork, ...]
    max_calls: int = 0  # 0 = unlimited
    max_cps: float = 0.0
    options_interval: float = 0.0  # liveness probe period; 0 = always up
    pass_headers: frozenset[str] = frozenset()  # canonical names let through to this trunk
    tls: TrunkTls | None = None
    credentials: DigestCredentials | None = None  # password resolved at load, never printed
    register: TrunkRegister | None = None
    require_auth: RequireAuth | None = None
    auth_users: Mapping[str, Secret] = field(default_factory=dict)  # resolved passwords
    srtp: Literal["off", "optional", "required"] = "off"
    codecs: TrunkCodecs | None = None  # audio codec policy and transcoding
    srtp_keying: Literal["sdes", "dtls"] = "sdes"  # SDES a=crypto or DTLS-SRTP offers
    dtmf: Literal["rfc4733", "info"] = "rfc4733"  # RFC 4733 events, or SIP INFO
    dtmf_info: Literal["dtmf-relay", "dtmf"] = "dtmf-relay"  # INFO body type we send
    peer_may_move: bool = False  # in-dialog requests from it accepted from any address
    trust_route: bool = False  # its Contact/Record-Route may send in-dialog requests anywhere

    @property
    def scheme(self) -> str:
        """``sips`` toward a TLS trunk (RFC 5630), else ``sip``."""
        return "sips" if self.transport == "tls" else "sip"

    def owns_address(self, ip: str) -> bool:
        """Whether ``ip`` is this trunk's: its literal address or in its ``sources``."""
        address = _parse_ip(ip)
        if address is None:
            return False
        if _parse_ip(self.address) == address:
            return True
        return any(address in network for network in self.sources)


@dataclass(frozen=True)
class Policy:
    """A complete, validated policy. Immutable: hot reload swaps whole objects."""

    interfaces: Mapping[str, Interface]
    trunks: Mapping[str, Trunk]
    routes: tuple[Route, ...]
    settings: Settings
    manipulations: Manipulations = field(default_factory=Manipulations.empty)
    security: SecurityPolicy = field(default_factory=default_security)
    admission: AdmissionPolicy = field(default_factory=AdmissionPolicy)
    _by_source: Mapping[tuple[str, str], Trunk] = field(init=False, repr=False, compare=False)
    _by_network: Mapping[str, tuple[tuple[IPNetwork, Trunk], ...]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "interfaces", MappingProxyType(dict(self.interfaces)))
        object.__setattr__(self, "trunks", MappingProxyType(dict(self.trunks)))
        object.__setattr__(self, "_by_source", _index_by_source(self.trunks.values()))
        object.__setattr__(self, "_by_network", _index_by_network(self.trunks.values()))

    def trunk_for_source(self, interface: str, ip: str) -> Trunk | None:
        """Return the trunk that a request from ``ip`` (any port) on ``interface`` belongs to.

        An exact address match wins over a ``sources`` CIDR; CIDRs are tried in
        the order the trunks are declared. Unknown sources return None (403).
        """
        trunk = self._by_source.get((interface, ip))
        if trunk is not None:
            return trunk
        address = _parse_ip(ip)
        if address is None:
            return None
        trunk = self._by_source.get((interface, str(address)))  # non-canonical spelling
        if trunk is not None:
            return trunk
        for network, candidate in self._by_network.get(interface, ()):
            if address in network:
                return candidate
        return None

    def accepts_source(self, trunk: Trunk, interface: str, ip: str) -> bool:
        """Whether a request from ``ip`` on ``interface`` may come from ``trunk``:
        its own address or one of its ``sources`` (whichever trunk the source
        index would pick when several share them)."""
        return trunk.interface == interface and trunk.owns_address(ip)

    def route_for(self, call: RouteContext) -> Route | None:
        """Return the first route (in file order) that matches, or None."""
        return first_match(self.routes, call)

    def describe(self) -> str:
        """One-line summary for ``sbc check`` and startup logs."""
        return (
            f"{len(self.interfaces)} interfaces, {len(self.trunks)} trunks,"
            f" {len(self.routes)} routes, {self.manipulations.rule_count} manipulation rules"
        )


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """Parse a peer address; an IPv4-mapped IPv6 address becomes its IPv4 form."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _index_by_source(trunks: Iterable[Trunk]) -> Mapping[tuple[str, str], Trunk]:
    """Key each trunk whose address is a literal IP by ``(interface, ip)``."""
    index: dict[tuple[str, str], Trunk] = {}
    for trunk in trunks:
        if _parse_ip(trunk.address) is not None:
            index.setdefault((trunk.interface, trunk.address), trunk)
    return MappingProxyType(index)


def _index_by_network(trunks: Iterable[Trunk]) -> Mapping[str, tuple[tuple[IPNetwork, Trunk], ...]]:
    """Group ``sources`` CIDRs by interface, keeping declaration order."""
    index: dict[str, list[tuple[IPNetwork, Trunk]]] = {}
    for trunk in trunks:
        for network in trunk.sources:
            index.setdefault(trunk.interface, []).append((network, trunk))
    return MappingProxyType({name: tuple(pairs) for name, pairs in index.items()})
