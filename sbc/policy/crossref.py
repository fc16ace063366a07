"""Checks that need more than one entry or more than one file.

Pydantic validates each file in isolation; this module checks what only the
whole policy can tell: names are unique, references name something that
exists, and no two interfaces claim the same socket or media ports. Each
finding carries the path of the offending value so the loader can turn it
into a line number.

Only entries that passed schema validation are checked, but names of broken
entries still count as *known*: one typo in a trunk's port must not also
report every route to that trunk as "unknown trunk".
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from sbc.policy.refs import Reference
from sbc.policy.schema import InterfaceSpec, RouteSpec, TrunkSpec
from sbc.policy.source import Loc

T = TypeVar("T")

INTERFACES_FILE = "interfaces.yaml"
TRUNKS_FILE = "trunks.yaml"
ROUTES_FILE = "routes.yaml"


@dataclass(frozen=True)
class Finding:
    """A cross-reference problem, located by file and document path."""

    file: str
    loc: Loc
    message: str


@dataclass(frozen=True)
class Entries(Generic[T]):
    """The schema-valid entries of one list (with their index) and all names declared.

    ``names`` is None when the file could not be read as a list at all: then
    nothing can be said about references to it (its own issue says why).
    """

    valid: Sequence[tuple[int, T]]
    names: frozenset[str] | None


def check_policy(
    interfaces: Entries[InterfaceSpec],
    trunks: Entries[TrunkSpec],
    routes: Entries[RouteSpec],
) -> list[Finding]:
    """Run every cross-entry check and return all findings."""
    return [
        *_duplicate_names(INTERFACES_FILE, "interfaces", interfaces.valid),
        *_duplicate_names(TRUNKS_FILE, "trunks", trunks.valid),
        *_duplicate_names(ROUTES_FILE, "routes", routes.valid),
        *_listen_overlaps(interfaces.valid),
        *_media_overlaps(interfaces.valid),
        *_trunk_references(trunks.valid, interfaces.names),
        *_registrar_references(interfaces.valid, trunks.names),
        *_trunk_source_clashes(trunks.valid),
        *_route_references(routes.valid, trunks.names, interfaces.names),
    ]


def _duplicate_names(
    file: str, key: str, entries: Iterable[tuple[int, InterfaceSpec | TrunkSpec | RouteSpec]]
) -> Iterable[Finding]:
    first: dict[str, int] = {}
    for index, spec in entries:
        if spec.name in first:
            message = f"duplicate name '{spec.name}' (already used by {key}[{first[spec.name]}])"
            yield Finding(file, (key, index, "name"), message)
        first.setdefault(spec.name, index)


def _listen_overlaps(entries: Sequence[tuple[int, InterfaceSpec]]) -> Iterable[Finding]:
    """Two interfaces may not bind the same address, port and transport."""
    for later, (index, spec) in enumerate(entries):
        for _, other in entries[:later]:
            shared = sorted(set(spec.transports) & set(other.transports))
            if spec.port == other.port and shared and _same_bind(spec.address, other.address):
                message = (
                    f"{spec.address}:{spec.port}/{shared[0]} overlaps interface '{other.name}'"
                    f" ({other.address}:{other.port})"
                )
                yield Finding(INTERFACES_FILE, ("interfaces", index, "port"), message)
                break


def _media_overlaps(entries: Sequence[tuple[int, InterfaceSpec]]) -> Iterable[Finding]:
    """Two interfaces relaying media on one address need disjoint port ranges."""
    for later, (index, spec) in enumerate(entries):
        for _, other in entries[:later]:
            mine, theirs = spec.media_ports, other.media_ports
            address, other_address = _media_address(spec), _media_address(other)
            if _same_bind(address, other_address) and mine[0] <= theirs[1] and theirs[0] <= mine[1]:
                message = (
                    f"media ports {mine[0]}-{mine[1]} on {address} overlap interface"
                    f" '{other.name}' ({theirs[0]}-{theirs[1]})"
                )
                yield Finding(INTERFACES_FILE, ("interfaces", index, "media_ports"), message)
                break


def _registrar_references(
    entries: Iterable[tuple[int, InterfaceSpec]], trunks: frozenset[str] | None
) -> Iterable[Finding]:
    for index, spec in entries:
        relay = spec.registration
        if relay is not None and _unknown(relay.registrar, trunks):
            message = f"unknown trunk '{relay.registrar}'{_known(trunks)}"
            yield Finding(
                INTERFACES_FILE, ("interfaces", index, "registration", "registrar"), message
            )


def _trunk_references(
    entries: Iterable[tuple[int, TrunkSpec]], interfaces: frozenset[str] | None
) -> Iterable[Finding]:
    for index, spec in entries:
        if _unknown(spec.interface, interfaces):
            message = f"unknown interface '{spec.interface}'{_known(interfaces)}"
            yield Finding(TRUNKS_FILE, ("trunks", index, "interface"), message)


def _trunk_source_clashes(entries: Iterable[tuple[int, TrunkSpec]]) -> Iterable[Finding]:
    """One source IP on one interface must identify exactly one trunk."""
    owners: dict[tuple[str, str], str] = {}
    for index, spec in entries:
        key = (spec.interface, spec.address)
        if key in owners and spec.name != owners[key]:
            message = (
                f"{spec.address} on interface '{spec.interface}'"
                f" already identifies trunk '{owners[key]}'"
            )
            yield Finding(TRUNKS_FILE, ("trunks", index, "address"), message)
        owners.setdefault(key, spec.name)


def _route_references(
    entries: Iterable[tuple[int, RouteSpec]],
    trunks: frozenset[str] | None,
    interfaces: frozenset[str] | None,
) -> Iterable[Finding]:
    for index, spec in entries:
        loc: Loc = ("routes", index)
        if _unknown(spec.from_trunk, trunks):
            message = f"unknown trunk '{spec.from_trunk}'{_known(trunks)}"
            yield Finding(ROUTES_FILE, (*loc, "from_trunk"), message)
        if _unknown(spec.from_interface, interfaces):
            message = f"unknown interface '{spec.from_interface}'{_known(interfaces)}"
            yield Finding(ROUTES_FILE, (*loc, "from_interface"), message)
        for position, entry in enumerate(spec.to):
            if isinstance(entry, str):
                if _unknown(entry, trunks):
                    message = f"unknown trunk '{entry}'{_known(trunks)}"
                    yield Finding(ROUTES_FILE, (*loc, "to", position), message)
                continue
            for member_index, member in enumerate(entry.group):
                if _unknown(member.trunk, trunks):
                    message = f"unknown trunk '{member.trunk}'{_known(trunks)}"
                    member_loc = (*loc, "to", position, "group", member_index, "trunk")
                    yield Finding(ROUTES_FILE, member_loc, message)


def check_references(
    file: str,
    references: Iterable[Reference],
    interfaces: frozenset[str] | None,
    trunks: frozenset[str] | None,
) -> list[Finding]:
    """Unknown interface or trunk names used by one of the optional files."""
    findings = []
    for ref in references:
        names = interfaces if ref.kind == "interface" else trunks
        if _unknown(ref.name, names):
            message = f"unknown {ref.kind} '{ref.name}'{_known(names)}"
            findings.append(Finding(file, ref.loc, message))
    return findings


def _same_bind(first: str, second: str) -> bool:
    """Equal addresses, or a wildcard (0.0.0.0 / ::) of the same family as the other."""
    a, b = ipaddress.ip_address(first), ipaddress.ip_address(second)
    return a == b or (a.version == b.version and (a.is_unspecified or b.is_unspecified))


def _media_address(spec: InterfaceSpec) -> str:
    return spec.media_address or spec.address


def _unknown(name: str | None, names: frozenset[str] | None) -> bool:
    """True when ``name`` is set, the names are known, and it is not among them."""
    return name is not None and names is not None and name not in names


def _known(names: frozenset[str] | None) -> str:
    return f" (known: {', '.join(sorted(names))})" if names else ""
