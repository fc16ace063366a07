"""``security.yaml``: who may talk to the SBC, how fast, and who gets banned.

The schema (:class:`SecurityFile`) is what the operator writes; every field is
optional, so an empty file gives the production defaults documented in
``docs/security.md``. :func:`compile_security` turns it into a
:class:`SecurityPolicy` with everything the hot path needs precomputed: CIDR
blocks as prefix tables (:class:`NetworkSet`), rate limits indexed by method
class, scanner User-Agents lowercased. The stateful side (buckets, strikes,
bans) lives in :mod:`sbc.guard.guard`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Annotated, Literal

from pydantic import Field, Strict, ValidationInfo, field_validator, model_validator

from sbc.policy.refs import Reference
from sbc.policy.schema import Name, Network, _Strict

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Rate limits are set per method class; RFC 3261 §7.1: method names are
#: case-sensitive, so ``invite`` is an (unknown) extension method, i.e. "other".
METHOD_CLASSES = ("INVITE", "REGISTER", "OPTIONS", "other")
OTHER_CLASS = 3
CLASS_OF_METHOD = {"INVITE": 0, "REGISTER": 1, "OPTIONS": 2}

#: User-Agent substrings of SIP scanners and toll-fraud tools (matched
#: case-insensitively). Left out on purpose: sipsak (a legitimate test tool),
#: "sipv" and "smap" (substrings of ordinary product names) and "PortSIP VoIP
#: SDK" (also used by legitimate softphones); operators may add them.
DEFAULT_SCANNER_USER_AGENTS = (
    "friendly-scanner",  # SIPVicious svmap/svwar default
    "sipvicious",
    "sipcli",  # SIPCLI dialler
    "sip-scan",
    "sundayddr",
    "iwar",  # iWar war dialler
    "sivus",  # SiVuS vulnerability scanner
    "pplsip",  # SIPPTS (Pepelux) default
    "vaxsipuseragent",  # VaxSIP SDK, common in fraud tools
    "siparmyknife",
    "friendly-request",
)

Rate = Annotated[float, Strict(), Field(gt=0, allow_inf_nan=False)]
Count = Annotated[int, Strict(), Field(ge=1)]
ErrorStatus = Annotated[int, Strict(), Field(ge=400, le=699)]
UserAgentPart = Annotated[str, Strict(), Field(min_length=1, pattern=r"\S")]


def method_class(method: str) -> int:
    """Index into :data:`METHOD_CLASSES` for a request method."""
    return CLASS_OF_METHOD.get(method, OTHER_CLASS)


# --- schema -----------------------------------------------------------------


class AccessListSpec(_Strict):
    """CIDR blocks allowed and denied on one interface; deny wins."""

    allow: list[Network] = []
    deny: list[Network] = []


class RateLimitSpec(_Strict):
    """A token bucket: ``rate`` requests per second sustained, ``burst`` at once."""

    rate: Rate
    burst: Count


class SourceLimits(_Strict):
    """Per source IP, per method class; ``null`` switches one limit off.

    The defaults stop a single host from flooding while leaving a busy PBX
    behind one address (hundreds of phones registering) untouched.
    """

    invite: RateLimitSpec | None = Field(default=RateLimitSpec(rate=20, burst=40), alias="INVITE")
    register_: RateLimitSpec | None = Field(
        default=RateLimitSpec(rate=20, burst=100), alias="REGISTER"
    )
    options: RateLimitSpec | None = Field(default=RateLimitSpec(rate=10, burst=20), alias="OPTIONS")
    other: RateLimitSpec | None = RateLimitSpec(rate=100, burst=200)


class TrunkLimits(_Strict):
    """Per trunk (all its addresses together), per method class; unset = unlimited."""

    invite: RateLimitSpec | None = Field(default=None, alias="INVITE")
    register_: RateLimitSpec | None = Field(default=None, alias="REGISTER")
    options: RateLimitSpec | None = Field(default=None, alias="OPTIONS")
    other: RateLimitSpec | None = None


class RateLimitsSpec(_Strict):
    """Token-bucket limits per source IP and per trunk.

    ``per_source_applies_to: non_trunk`` (default) limits per source only the
    requests that match no trunk: a carrier's one address legitimately sends
    hundreds of calls per second, and its ``per_trunk`` entry is the
    operator's statement of how many it may send.
    """

    per_source: SourceLimits = SourceLimits()
    per_trunk: dict[Name, TrunkLimits] = {}
    per_source_applies_to: Literal["non_trunk", "all"] = "non_trunk"
    max_sources: Count = 100_000


class LimitedSpec(_Strict):
    """What a request over its limit gets: 503 + Retry-After, 403, or silence."""

    action: Literal["reject", "forbid", "drop"] = "reject"
    status: ErrorStatus | None = None
    retry_after_s: Count | None = 5

    @field_validator("status")
    @classmethod
    def _status_needs_a_response(cls, status: int | None, info: ValidationInfo) -> int | None:
        if status is not None and info.data.get("action") == "drop":
            raise ValueError("a status makes no sense with action 'drop' (nothing is sent)")
        return status


class RefuseSpec(_Strict):
    """Silence (``drop``, the default: a scanner learns nothing) or 403 (``forbid``)."""

    action: Literal["drop", "forbid"] = "drop"


class BansSpec(_Strict):
    """When a source is banned, for how long, and who never is."""

    duration_s: Count = 600
    strikes: Count | None = 50
    window_s: Count = 60
    scanner_user_agents: list[UserAgentPart] = list(DEFAULT_SCANNER_USER_AGENTS)
    auth_failures: Count | None = 10
    exempt: list[Network] = []
    max_bans: Count = 100_000


class SourcePrefixSpec(_Strict):
    """How much of a source address one set of buckets, strikes and bans covers.

    An IPv6 host owns a /64 (RFC 4941 privacy addresses): per /128 it would
    dodge its limits and bans by changing address.
    """

    ipv4: Annotated[int, Strict(), Field(ge=16, le=32)] = 32
    ipv6: Annotated[int, Strict(), Field(ge=32, le=128)] = 64


class PacketCeilingSpec(_Strict):
    """A per-source packet-rate ceiling in the kernel: ``pps`` sustained, ``burst`` at once."""

    pps: Count
    burst: Count


class KernelFilterSpec(_Strict):
    """The kernel filter (nftables), the first line of defence (docs/security.md).

    ``auto`` uses it when libnftables loads and the SBC may (CAP_NET_ADMIN),
    ``on`` refuses to start without it, ``off`` never touches the kernel.
    The ceilings are packets per second per source (strangers keyed like the
    guard keys them, trunk addresses one by one), far above what the
    per-source buckets admit, so userspace still decides who is banned;
    ``null`` switches one off.
    """

    mode: Literal["auto", "on", "off"] = "auto"
    stranger_pps: Count | None = 500
    stranger_burst: Count = 1000
    trunk_pps: Count | None = 5000
    trunk_burst: Count = 10_000
    per_trunk: dict[Name, PacketCeilingSpec | None] = {}

    @field_validator("mode", mode="before")
    @classmethod
    def _plain_on_off(cls, value: object) -> object:
        """YAML 1.1 reads a plain ``on`` / ``off`` as a boolean."""
        if isinstance(value, bool):
            return "on" if value else "off"
        return value

    @model_validator(mode="after")
    def _burst_holds_a_second(self) -> KernelFilterSpec:
        for name in ("stranger", "trunk"):
            pps, burst = getattr(self, f"{name}_pps"), getattr(self, f"{name}_burst")
            if pps is not None and burst < pps:
                raise ValueError(f"{name}_burst ({burst}) must be at least {name}_pps ({pps})")
        return self


class SecurityFile(_Strict):
    """``security.yaml``; an empty file is valid and gives the defaults."""

    acl: dict[Name, AccessListSpec] = {}
    rate_limits: RateLimitsSpec = RateLimitsSpec()
    limited: LimitedSpec = LimitedSpec()
    bans: BansSpec = BansSpec()
    banned: RefuseSpec = RefuseSpec()
    acl_denied: RefuseSpec = RefuseSpec()
    source_prefix: SourcePrefixSpec = SourcePrefixSpec()
    kernel_filter: KernelFilterSpec = KernelFilterSpec()


# --- compiled form ----------------------------------------------------------


SourceKey = tuple[int, int]
"""A source address as the hot path compares it: (IP version, address as an integer)."""


def source_key(text: str) -> SourceKey | None:
    """Parse a source IP; an IPv4-mapped IPv6 address (``::ffff:a.b.c.d``) counts as IPv4.

    Dotted quads (what the transport hands us) take a fast path that is
    several times cheaper than :mod:`ipaddress`; it only accepts the canonical
    spelling and leaves anything else to :mod:`ipaddress`. None for text that
    is not an address: it then matches no network.
    """
    quad = _dotted_quad(text)
    if quad is not None:
        return 4, quad
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    return _key(address)


def _dotted_quad(text: str) -> int | None:
    """``a.b.c.d`` in canonical decimal as an integer, else None (also for IPv6 text)."""
    parts = text.split(".")
    if len(parts) != 4:
        return None
    try:
        a, b, c, d = map(int, parts)
    except ValueError:  # "::ffff:1.2.3.4" splits into 4 parts too
        return None
    in_range = 0 <= a <= 255 and 0 <= b <= 255 and 0 <= c <= 255 and 0 <= d <= 255
    if not in_range or f"{a}.{b}.{c}.{d}" != text:  # int() also takes " 1", "+1", "1_0"
        return None
    return a << 24 | b << 16 | c << 8 | d


def _key(address: IPAddress) -> SourceKey:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return 4, int(address.ipv4_mapped)
    return address.version, int(address)


def _unmapped(network: IPNetwork) -> IPNetwork:
    """``::ffff:10.0.0.0/104`` is 10.0.0.0/8: mapped sources are compared as IPv4."""
    if isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= 96:
        mapped = network.network_address.ipv4_mapped
        if mapped is not None:
            return ipaddress.IPv4Network((mapped, network.prefixlen - 96))
    return network


PrefixTable = tuple[tuple[int, frozenset[int]], ...]


class NetworkSet:
    """A set of CIDR blocks answering ``address in networks`` in O(prefix lengths).

    Blocks are grouped by prefix length into sets of network numbers, so a
    lookup costs one shift and one set probe per distinct length (at most
    33 for IPv4), however many blocks are listed.
    """

    __slots__ = ("_v4", "_v6", "networks")

    def __init__(self, networks: Iterable[IPNetwork | str] = ()) -> None:
        parsed = [_unmapped(ipaddress.ip_network(n) if isinstance(n, str) else n) for n in networks]
        self.networks: tuple[IPNetwork, ...] = tuple(dict.fromkeys(parsed))
        self._v4 = self._table(n for n in self.networks if n.version == 4)
        self._v6 = self._table(n for n in self.networks if n.version == 6)

    @staticmethod
    def _table(networks: Iterable[IPNetwork]) -> PrefixTable:
        by_shift: dict[int, set[int]] = {}
        for network in networks:
            shift = network.max_prefixlen - network.prefixlen
            by_shift.setdefault(shift, set()).add(int(network.network_address) >> shift)
        return tuple((shift, frozenset(prefixes)) for shift, prefixes in sorted(by_shift.items()))

    def contains_key(self, key: SourceKey | None) -> bool:
        """Whether the address ``key`` (from :func:`source_key`) is in a listed block."""
        if key is None:
            return False
        version, value = key
        for shift, prefixes in self._v4 if version == 4 else self._v6:
            if value >> shift in prefixes:
                return True
        return False

    def __contains__(self, address: object) -> bool:
        if isinstance(address, str):
            return self.contains_key(source_key(address))
        if isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address):
            return self.contains_key(_key(address))
        return False

    def __bool__(self) -> bool:
        return bool(self.networks)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NetworkSet) and set(self.networks) == set(other.networks)

    def __hash__(self) -> int:
        return hash(frozenset(self.networks))

    def __repr__(self) -> str:
        return f"NetworkSet({[str(n) for n in self.networks]})"


@dataclass(frozen=True)
class AccessList:
    """One interface's ACL: denied blocks first, then (if any) the allowed ones."""

    allow: NetworkSet
    deny: NetworkSet

    def permits(self, key: SourceKey | None) -> bool:
        """``key`` from :func:`source_key`; an unparsable source (None) matches no block."""
        if self.deny.contains_key(key):
            return False
        return not self.allow or self.allow.contains_key(key)


@dataclass(frozen=True)
class RateLimit:
    """Token bucket parameters: ``rate`` per second, ``burst`` at once."""

    rate: float
    burst: int


MethodLimits = tuple[RateLimit | None, RateLimit | None, RateLimit | None, RateLimit | None]
"""One optional limit per entry of :data:`METHOD_CLASSES`."""

NO_LIMITS: MethodLimits = (None, None, None, None)


@dataclass(frozen=True)
class Refusal:
    """What a refused request gets: silence (``status`` None) or a response."""

    status: int | None
    reason: str = ""
    retry_after_s: int | None = None


DROP = Refusal(None)
FORBID = Refusal(403, "Forbidden")


@dataclass(frozen=True)
class BanPolicy:
    duration_s: float
    strikes: int | None  # limited requests within window_s that ban; None = never
    window_s: float
    auth_failures: int | None  # failed authentications within window_s that ban
    scanner_agents: tuple[str, ...]  # lowercase substrings
    exempt: NetworkSet
    max_bans: int


@dataclass(frozen=True)
class PacketCeiling:
    """``pps`` packets per second per source, ``burst`` at once (the kernel filter)."""

    pps: int
    burst: int


@dataclass(frozen=True)
class KernelFilterPolicy:
    """``kernel_filter`` compiled: the mode and the ceilings (None: no ceiling)."""

    mode: Literal["auto", "on", "off"] = "auto"
    stranger: PacketCeiling | None = PacketCeiling(500, 1000)
    trunk: PacketCeiling | None = PacketCeiling(5000, 10_000)
    per_trunk: Mapping[str, PacketCeiling | None] = field(
        default_factory=lambda: MappingProxyType({})
    )


@dataclass(frozen=True)
class SecurityPolicy:
    """``security.yaml`` compiled; immutable, swapped whole on reload."""

    acl: Mapping[str, AccessList]
    per_source: MethodLimits
    per_trunk: Mapping[str, MethodLimits]
    limit_trunk_sources: bool
    max_sources: int
    bans: BanPolicy
    limited: Refusal
    banned: Refusal
    acl_denied: Refusal
    source_prefix: tuple[int, int] = (32, 64)  # (IPv4, IPv6) prefix lengths of a source key
    kernel_filter: KernelFilterPolicy = field(default_factory=KernelFilterPolicy)


def compile_security(file: SecurityFile) -> SecurityPolicy:
    """Precompute everything :class:`~sbc.guard.guard.Guard` looks up per request."""
    limits = file.rate_limits
    per_trunk = {name: _method_limits(spec) for name, spec in limits.per_trunk.items()}
    return SecurityPolicy(
        acl=MappingProxyType(
            {
                name: AccessList(NetworkSet(spec.allow), NetworkSet(spec.deny))
                for name, spec in file.acl.items()
            }
        ),
        per_source=_method_limits(limits.per_source),
        per_trunk=MappingProxyType({k: v for k, v in per_trunk.items() if v != NO_LIMITS}),
        limit_trunk_sources=limits.per_source_applies_to == "all",
        max_sources=limits.max_sources,
        bans=_ban_policy(file.bans),
        limited=_limited(file.limited),
        banned=_refusal(file.banned),
        acl_denied=_refusal(file.acl_denied),
        source_prefix=(file.source_prefix.ipv4, file.source_prefix.ipv6),
        kernel_filter=_kernel_filter(file.kernel_filter),
    )


def default_security() -> SecurityPolicy:
    """The policy of an empty (or absent) ``security.yaml``."""
    return compile_security(SecurityFile())


def security_references(file: SecurityFile) -> list[Reference]:
    """Interfaces named by ``acl`` and trunks named by ``rate_limits.per_trunk``."""
    refs = [Reference(("acl", name), "interface", name) for name in file.acl]
    refs += [
        Reference(("rate_limits", "per_trunk", name), "trunk", name)
        for name in file.rate_limits.per_trunk
    ]
    refs += [
        Reference(("kernel_filter", "per_trunk", name), "trunk", name)
        for name in file.kernel_filter.per_trunk
    ]
    return refs


def _method_limits(spec: SourceLimits | TrunkLimits) -> MethodLimits:
    def limit(entry: RateLimitSpec | None) -> RateLimit | None:
        return None if entry is None else RateLimit(entry.rate, entry.burst)

    return limit(spec.invite), limit(spec.register_), limit(spec.options), limit(spec.other)


def _ban_policy(spec: BansSpec) -> BanPolicy:
    agents = tuple(dict.fromkeys(agent.strip().lower() for agent in spec.scanner_user_agents))
    return BanPolicy(
        duration_s=float(spec.duration_s),
        strikes=spec.strikes,
        window_s=float(spec.window_s),
        auth_failures=spec.auth_failures,
        scanner_agents=agents,
        exempt=NetworkSet(spec.exempt),
        max_bans=spec.max_bans,
    )


def _kernel_filter(spec: KernelFilterSpec) -> KernelFilterPolicy:
    def ceiling(pps: int | None, burst: int) -> PacketCeiling | None:
        return None if pps is None else PacketCeiling(pps, burst)

    return KernelFilterPolicy(
        mode=spec.mode,
        stranger=ceiling(spec.stranger_pps, spec.stranger_burst),
        trunk=ceiling(spec.trunk_pps, spec.trunk_burst),
        per_trunk=MappingProxyType(
            {
                name: None if entry is None else PacketCeiling(entry.pps, entry.burst)
                for name, entry in spec.per_trunk.items()
            }
        ),
    )


def _limited(spec: LimitedSpec) -> Refusal:
    if spec.action == "drop":
        return DROP
    if spec.action == "forbid":
        return Refusal(spec.status or 403, "Forbidden")
    # RFC 3261 §21.5.4: 503 tells the client to retry after Retry-After.
    return Refusal(spec.status or 503, "Rate Limit Exceeded", spec.retry_after_s)


def _refusal(spec: RefuseSpec) -> Refusal:
    return DROP if spec.action == "drop" else FORBID
