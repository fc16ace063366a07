"""The kernel filter's nftables ruleset, as text: pure functions of the policy.

One table of the SBC's own (``inet sbc_<pid>``, ``flags owner``: the kernel
deletes it when the process that made it goes, however it goes) holds:

- **ban sets** ``banned4_32``, ``banned6_64``... (one per address family and
  prefix length, hash sets with timeouts): a banned source's packets to the
  SIP listeners (UDP, TCP and TLS ports) are dropped. Elements are the
  guard's ban keys (``192.0.2.7``, ``2001:db8:1:2::/64``: :mod:`sbc.guard.keys`)
  as the network address in the set of their length, matched against the
  source masked to that length; put there by :mod:`sbc.kernel.sync`, each
  timing out when its ban ends. Not interval sets: nft checks an interval
  set's every element for overlaps on each change (20 ms at 10,000 bans),
  a hash set costs the same ~100 µs whatever it holds.
- **packet-rate ceilings** for UDP to the SIP listeners, per source: a
  dynamic set per ceiling (``update @set { key limit rate over N/second
  burst M packets } drop``). Strangers are keyed like the guard keys them
  (an IPv6 source per /64 by default: a masked key); a trunk's addresses
  (``address`` and ``sources`` in ``trunks.yaml``) each have their own
  meter, at the trunk's ceiling. A full meter set admits newcomers
  unmetered (nftables cannot add their element): userspace still limits them.
- **counters** ``banned``, ``rate`` and ``trunk_rate``: what was dropped, read
  at scrape time (:func:`dropped_counts`).

The hook is ``prerouting`` at ``raw`` priority (-300): before conntrack
makes an entry for a flood and before routing. Checked on Linux 6.18 with
nft 1.0.6: datagrams to local addresses on ``lo`` (from ordinary sockets and
from raw sockets forging their source, as the tests' attackers do) traverse
it like those arriving on a NIC, so one hook serves both.

A trunk's meter is per address: trunks are not matched per interface here
(a trunk's address gets its ceiling on every listener), and when trunks
overlap, the first in ``trunks.yaml`` order with its own ceiling wins.
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sbc.policy.compiled import Policy
from sbc.policy.security import PacketCeiling

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Wildcard listen addresses: every local address of the family (``::`` is dual-stack).
_ANY = {"0.0.0.0": (4,), "::": (4, 6)}
_PROTOCOL = {"udp": "udp", "tcp": "tcp", "tls": "tcp"}
#: Counter names, which are also the ``reason`` label of the dropped-packets metric.
COUNTERS = ("banned", "rate", "trunk_rate")
#: Longest element timeout written (the syncer puts a longer ban back when it lapses).
MAX_TIMEOUT_S = 30 * 86_400
#: A meter element idle this long is forgotten; a returning source starts with a full
#: burst, as it would after refilling (at least burst/rate seconds).
_METER_IDLE_S = 10


@dataclass(frozen=True)
class Listener:
    """One SIP listening socket: ``address`` may be a wildcard (every local address)."""

    address: str
    transport: str  # udp | tcp | tls
    port: int


@dataclass(frozen=True)
class TrunkCeiling:
    """The ceiling of some trunks' addresses (None: no ceiling), first match wins."""

    label: str  # which trunks, for people reading the ruleset
    ceiling: PacketCeiling | None
    networks: tuple[IPNetwork, ...]


@dataclass(frozen=True)
class FilterSpec:
    """Everything the ruleset is built from."""

    listeners: tuple[Listener, ...]
    stranger: PacketCeiling | None
    trunks: tuple[TrunkCeiling, ...] = ()
    source_prefix: tuple[int, int] = (32, 64)  # how sources are keyed (IPv4, IPv6)
    meter_size: int = 65_536  # sources metered at once per family and ceiling
    #: ban keys of other lengths than ``source_prefix`` (made before it changed)
    other_ban_prefixes: frozenset[tuple[int, int]] = frozenset()

    @property
    def ban_prefixes(self) -> tuple[tuple[int, int], ...]:
        """(family, prefix length) of each ban set."""
        mine = {(4, self.source_prefix[0]), (6, self.source_prefix[1])}
        return tuple(sorted(mine | self.other_ban_prefixes))


def spec_for(policy: Policy, listeners: Iterable[Listener]) -> FilterSpec:
    """The filter for ``policy`` on the sockets the SBC listens on: trunks with a
    ceiling of their own (``kernel_filter.per_trunk``) first, in ``trunks.yaml``
    order, then every other trunk at ``trunk_pps``."""
    settings = policy.security.kernel_filter
    own: list[TrunkCeiling] = []
    shared: list[IPNetwork] = []
    for trunk in policy.trunks.values():
        networks = _trunk_networks(trunk.address, trunk.sources)
        if not networks:
            continue  # a host name and no sources: nothing the kernel can match
        if trunk.name in settings.per_trunk:
            own.append(TrunkCeiling(trunk.name, settings.per_trunk[trunk.name], networks))
        else:
            shared += networks
    if shared:
        own.append(TrunkCeiling("trunks", settings.trunk, tuple(dict.fromkeys(shared))))
    return FilterSpec(
        listeners=tuple(dict.fromkeys(listeners)),
        stranger=settings.stranger,
        trunks=tuple(own),
        source_prefix=policy.security.source_prefix,
        meter_size=policy.security.max_sources,
    )


def _trunk_networks(address: str, sources: Iterable[IPNetwork]) -> tuple[IPNetwork, ...]:
    """A trunk's literal address (as a host network) and its ``sources``, IPv4-mapped
    ones as IPv4 (what the kernel sees on the wire)."""
    found: list[IPNetwork] = []
    with contextlib.suppress(ValueError):  # a host name matches no packet
        found.append(ipaddress.ip_network(address))
    found += sources
    return tuple(dict.fromkeys(_unmapped(network) for network in found))


def _unmapped(network: IPNetwork) -> IPNetwork:
    if isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= 96:
        mapped = network.network_address.ipv4_mapped
        if mapped is not None:
            return ipaddress.IPv4Network((mapped, network.prefixlen - 96))
    return network


def ruleset(table: str, spec: FilterSpec) -> str:
    """The whole table, replacing any table of that name, as one transaction."""
    lines = [
        f"add table inet {table} {{ flags owner; }}",  # so that the delete always finds one
        f"delete table inet {table}",
        f"table inet {table} {{",
        "\tflags owner",
    ]
    lines += [f"\tcounter {name} {{ }}" for name in COUNTERS]
    lines += [
        f"\tset {_ban_set(family, length)} {{ type ipv{family}_addr; flags timeout; }}"
        for family, length in spec.ban_prefixes
    ]
    lines += _listener_sets(spec.listeners)
    lines += _meter_sets(spec)
    lines += _prerouting(spec.listeners)
    lines += _family_chain(4, spec)
    lines += _family_chain(6, spec)
    lines += _trunk_chains(spec)
    lines.append("}")
    return "\n".join(lines) + "\n"


def delete_table(table: str) -> str:
    return f"delete table inet {table}\n"


# --- listeners ---------------------------------------------------------------------


def _listener_sets(listeners: Sequence[Listener]) -> list[str]:
    exact: dict[int, set[str]] = {4: set(), 6: set()}
    anywhere: dict[int, set[str]] = {4: set(), 6: set()}
    for listener in listeners:
        protocol = _PROTOCOL[listener.transport]
        families = _ANY.get(listener.address)
        if families is not None:
            for family in families:
                anywhere[family].add(f"{protocol} . {listener.port}")
            continue
        address = ipaddress.ip_address(listener.address.split("%", 1)[0])  # no zone
        exact[address.version].add(f"{address} . {protocol} . {listener.port}")
    lines = []
    for family in (4, 6):
        key = f"ipv{family}_addr . inet_proto . inet_service"
        lines.append(f"\tset sip{family} {{ type {key};{_elements(exact[family])} }}")
        ports = _elements(anywhere[family])
        lines.append(f"\tset sip_any{family} {{ type inet_proto . inet_service;{ports} }}")
    return lines


def _prerouting(listeners: Sequence[Listener]) -> list[str]:
    lines = [
        "\tchain prerouting {",
        "\t\ttype filter hook prerouting priority raw; policy accept;",
        "\t\tip daddr . meta l4proto . th dport @sip4 jump sip4",
        "\t\tip6 daddr . meta l4proto . th dport @sip6 jump sip6",
    ]
    wildcards = {family for each in listeners for family in _ANY.get(each.address, ())}
    lines += [
        f"\t\tmeta nfproto ipv{family} meta l4proto . th dport @sip_any{family}"
        f" fib daddr type local jump sip{family}"
        for family in sorted(wildcards)
    ]
    lines.append("\t}")
    return lines


# --- bans and ceilings ----------------------------------------------------------------


def _family_chain(family: int, spec: FilterSpec) -> list[str]:
    ip = "ip" if family == 4 else "ip6"
    lines = [f"\tchain sip{family} {{"]
    lines += [
        f"\t\t{ip} saddr{_mask(family, length)} @{_ban_set(family, length)}"
        ' counter name "banned" drop'
        for each, length in spec.ban_prefixes
        if each == family
    ]
    lines.append("\t\tmeta l4proto != udp accept")  # the ceilings are for datagrams only
    for index, group in enumerate(spec.trunks):
        if any(network.version == family for network in group.networks):
            lines.append(f"\t\t{ip} saddr @trunks{family}_{index} goto trunk{family}_{index}")
    if spec.stranger is not None:
        key = f"{ip} saddr{_mask(family, spec.source_prefix[0 if family == 4 else 1])}"
        lines.append(
            f"\t\tupdate @meter{family} {{ {key} {_limit(spec.stranger)} }}"
            ' counter name "rate" drop'
        )
    lines.append("\t}")
    return lines


def _trunk_chains(spec: FilterSpec) -> list[str]:
    lines = []
    for index, group in enumerate(spec.trunks):
        for family in (4, 6):
            if not any(network.version == family for network in group.networks):
                continue
            ip = "ip" if family == 4 else "ip6"
            lines.append(f"\tchain trunk{family}_{index} {{  # {group.label}")
            if group.ceiling is None:
                lines.append("\t\taccept")
            else:
                lines.append(
                    f"\t\tupdate @meter{family}_trunk_{index}"
                    f" {{ {ip} saddr {_limit(group.ceiling)} }}"
                    ' counter name "trunk_rate" drop'
                )
            lines.append("\t}")
    return lines


def _meter_sets(spec: FilterSpec) -> list[str]:
    lines = []
    if spec.stranger is not None:
        lines += [_meter(f"meter{family}", family, spec.stranger, spec) for family in (4, 6)]
    for index, group in enumerate(spec.trunks):
        for family in (4, 6):
            networks = [_network(n) for n in group.networks if n.version == family]
            if not networks:
                continue
            lines.append(
                f"\tset trunks{family}_{index} {{ type ipv{family}_addr;"
                f" flags interval; auto-merge;{_elements(networks)} }}"
            )
            if group.ceiling is not None:
                lines.append(_meter(f"meter{family}_trunk_{index}", family, group.ceiling, spec))
    return lines


def _meter(name: str, family: int, ceiling: PacketCeiling, spec: FilterSpec) -> str:
    idle = max(_METER_IDLE_S, math.ceil(ceiling.burst / ceiling.pps) + 1)
    return (
        f"\tset {name} {{ type ipv{family}_addr; size {spec.meter_size};"
        f" flags dynamic, timeout; timeout {idle}s; }}"
    )


def _network(network: IPNetwork) -> str:
    """A block as nft writes it: a single host as its address."""
    if network.prefixlen == network.max_prefixlen:
        return str(network.network_address)
    return str(network)


def _limit(ceiling: PacketCeiling) -> str:
    return f"limit rate over {ceiling.pps}/second burst {ceiling.burst} packets"


def _mask(family: int, prefix: int) -> str:
    """`` & <netmask>`` keying a source by its prefix, or nothing for a whole address."""
    if prefix >= (32 if family == 4 else 128):
        return ""
    network = ipaddress.ip_network(("0.0.0.0" if family == 4 else "::", prefix))
    return f" & {network.netmask}"


def _elements(items: Iterable[str]) -> str:
    ordered = sorted(items)
    return f" elements = {{ {', '.join(ordered)} }};" if ordered else ""


# --- ban elements -------------------------------------------------------------------


def _ban_set(family: int, length: int) -> str:
    return f"banned{family}_{length}"


#: A canonical dotted quad, as the guard writes IPv4 keys (checked without ipaddress:
#: a rebuild with 100,000 bans parses every key).
_QUAD = re.compile(
    r"(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
)


def ban_element(key: str) -> tuple[int, int, str] | None:
    """(family, prefix length, network address) of a guard ban key; None for a key
    that is no address."""
    if _QUAD.fullmatch(key) is not None:
        return 4, 32, key  # the usual key (source_prefix.ipv4: 32), the fast way
    try:
        network = ipaddress.ip_network(key)
    except ValueError:
        return None
    return network.version, network.prefixlen, str(network.network_address)


def ban_commands(
    table: str,
    add: Iterable[tuple[str, float]],
    delete: Iterable[str],
    *,
    flush: Iterable[tuple[int, int]] = (),
) -> str:
    """Commands putting bans in (``(key, seconds left)``) and taking them out, in one
    transaction, after emptying the ban sets of ``flush`` (family, length)."""
    lines = [f"flush set inet {table} {_ban_set(*prefix)}" for prefix in flush]
    for verb, elements in (
        ("delete", _by_set((key, "") for key in delete)),
        ("add", _by_set((key, _timeout(seconds)) for key, seconds in add)),
    ):
        for (family, length), items in sorted(elements.items()):
            text = ", ".join(items)
            lines.append(f"{verb} element inet {table} {_ban_set(family, length)} {{ {text} }}")
    return "".join(line + "\n" for line in lines)


def _timeout(seconds: float) -> str:
    return f" timeout {max(1, math.ceil(min(seconds, MAX_TIMEOUT_S) * 1000))}ms"


def _by_set(items: Iterable[tuple[str, str]]) -> dict[tuple[int, int], list[str]]:
    """Elements (with their suffix) grouped by ban set; keys that are no address left out."""
    grouped: dict[tuple[int, int], list[str]] = {}
    for key, suffix in items:
        element = ban_element(key)
        if element is not None:
            family, length, address = element
            grouped.setdefault((family, length), []).append(address + suffix)
    return grouped


# --- counters --------------------------------------------------------------------------


def dropped_counts(listing: Mapping[str, Any]) -> dict[str, int]:
    """Packets dropped per counter, from ``list counters table ...`` in JSON."""
    counts = dict.fromkeys(COUNTERS, 0)
    for item in listing.get("nftables", ()):
        counter = item.get("counter") if isinstance(item, dict) else None
        if isinstance(counter, dict) and counter.get("name") in counts:
            counts[counter["name"]] = int(counter.get("packets", 0))
    return counts
