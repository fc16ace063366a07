"""The kernel filter at run time: install, follow the bans, count, remove.

:func:`open_filter` decides once, at start, by ``kernel_filter.mode``:
``off`` never touches the kernel; ``auto`` installs the table when
libnftables loads and the kernel lets us (CAP_NET_ADMIN), else logs why
(info) and the SBC goes on in userspace; ``on`` raises
:class:`KernelFilterError`, which stops the start.

:class:`KernelFilter` then owns the table ``inet sbc_<pid>`` (the pid: two
SBCs on one host never fight over it; ``flags owner``: it goes with the
process however the process ends):

- :meth:`KernelFilter.apply` rebuilds it for a policy, with the bans already
  in force, in one transaction (at start and on each reload);
- :meth:`KernelFilter.sync` brings its ban sets to the guard's table (the
  runtime calls it about once a second: :mod:`sbc.kernel.sync`);
- :meth:`KernelFilter.dropped` reads its counters (at scrape time);
- :meth:`KernelFilter.close` deletes it.

A failed sync is retried as a full resync at the next call; errors are
logged once per failure streak, never per packet.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any, Protocol

import structlog

from sbc.guard.guard import Guard
from sbc.kernel.netlink import read_counters
from sbc.kernel.nftables import Nftables, NftablesError, NftablesUnavailableError
from sbc.kernel.ruleset import (
    COUNTERS,
    FilterSpec,
    ban_commands,
    ban_element,
    delete_table,
    ruleset,
)
from sbc.kernel.sync import BanDiff, HasUntil, KernelBans
from sbc.policy.security import KernelFilterPolicy

log = structlog.get_logger("sbc.kernel")


class KernelFilterError(Exception):
    """``kernel_filter: on`` and the filter could not be installed."""


class Binding(Protocol):
    """What the filter needs of libnftables (:class:`~sbc.kernel.nftables.Nftables`)."""

    def run(self, commands: str) -> str: ...

    def close(self) -> None: ...


CounterReader = Callable[[str, tuple[str, ...]], Mapping[str, int]]


def table_name(pid: int | None = None) -> str:
    """``sbc_<pid>``: one table per SBC process."""
    return f"sbc_{os.getpid() if pid is None else pid}"


class KernelFilter:
    """The SBC's nftables table, rebuilt per policy, its ban sets following the guard."""

    def __init__(
        self, binding: Binding, table: str, counters: CounterReader = read_counters
    ) -> None:
        self._nft = binding
        self.table = table
        self._counters = counters
        self._spec: FilterSpec | None = None
        self._bans = KernelBans()
        self._failing = False  # a failed sync: the next one is a full resync
        self.errors = 0
        # Drops counted by the tables a rebuild replaced: the metric never goes back.
        self._carried = dict.fromkeys(COUNTERS, 0)

    @property
    def installed(self) -> bool:
        return self._spec is not None

    @property
    def failing(self) -> bool:
        """The last sync failed: the next one puts every ban in again."""
        return self._failing

    def bans_held(self) -> int:
        """Ban elements this process put in the kernel (lapsed ones aside)."""
        return len(self._bans)

    def apply(self, spec: FilterSpec, bans: Mapping[str, HasUntil], now: float) -> None:
        """(Re)build the table for ``spec`` with ``bans`` in it, as one transaction;
        :class:`NftablesError` if the kernel refuses (the old table, if any, stays)."""
        spec = _with_ban_prefixes(spec, bans)
        diff = self._bans.resync(bans, now)
        adds = ban_commands(self.table, diff.timeouts(), ())
        counted = self.dropped()
        self._nft.run(ruleset(self.table, spec) + adds)
        self._carried = counted
        self._spec = spec
        self._bans.applied(diff)
        self._failing = False

    def sync(
        self, bans: Mapping[str, HasUntil], now: float, keys: Iterable[str] | None = None
    ) -> None:
        """Bring the ban sets to ``bans`` (the guard's, by key), looking at ``keys``
        only (those that changed) or, when None, at all; never raises."""
        spec = self._spec
        if spec is None:
            return
        bans_now = self._bans
        diff = bans_now.resync(bans, now) if self._failing else bans_now.diff(bans, now, keys)
        if not diff:
            return
        try:
            if _new_prefixes(spec, diff):  # a ban key of a length the table has no set for
                self.apply(spec, bans, now)
                return
            flush = spec.ban_prefixes if diff.flush else ()
            commands = ban_commands(self.table, diff.timeouts(), diff.delete, flush=flush)
            if commands:  # nothing when elements only lapsed by themselves
                self._nft.run(commands)
        except NftablesError as exc:
            self.errors += 1
            if not self._failing:
                log.error("kernel_filter.sync_failed", table=self.table, error=str(exc))
            self._failing = True
            return
        if self._failing:
            log.info("kernel_filter.sync_recovered", table=self.table, bans=len(diff.add))
        self._failing = False
        self._bans.applied(diff)

    def dropped(self) -> dict[str, int]:
        """Packets dropped in the kernel since the filter was installed, by reason (the
        counter names); what the table counts now is left out while it cannot be read."""
        total = dict(self._carried)
        if self._spec is None:
            return total
        try:
            now = self._counters(self.table, COUNTERS)
        except OSError:
            return total
        return {name: total[name] + now.get(name, 0) for name in COUNTERS}

    def close(self) -> None:
        """Delete the table and free libnftables (the table would go with it anyway)."""
        if self._spec is not None:
            try:
                self._nft.run(delete_table(self.table))
            except NftablesError as exc:
                log.warning("kernel_filter.delete_failed", table=self.table, error=str(exc))
            self._spec = None
            self._bans.forget()
        self._nft.close()


def kernel_bans(guard: Guard) -> Mapping[str, HasUntil]:
    """The bans the kernel should hold: the guard's, unless a banned source is to be
    answered (``banned.action: forbid``), which only userspace can do."""
    if guard.policy.banned.status is not None:
        return {}
    return guard.ban_table


def _with_ban_prefixes(spec: FilterSpec, bans: Mapping[str, Any]) -> FilterSpec:
    """``spec`` with a ban set for every prefix length among ``bans``."""
    lengths = {
        (element[0], element[1]) for element in map(ban_element, bans) if element is not None
    } - set(spec.ban_prefixes)
    if not lengths:
        return spec
    return replace(spec, other_ban_prefixes=spec.other_ban_prefixes | frozenset(lengths))


def _new_prefixes(spec: FilterSpec, diff: BanDiff) -> bool:
    known = set(spec.ban_prefixes)
    for key, _ in diff.add:
        element = ban_element(key)
        if element is not None and (element[0], element[1]) not in known:
            return True
    return False


def open_filter(
    settings: KernelFilterPolicy,
    spec: FilterSpec,
    bans: Mapping[str, HasUntil],
    now: float,
    *,
    binding: Callable[[], Binding] = Nftables,
    table: str | None = None,
    counters: CounterReader = read_counters,
) -> KernelFilter | None:
    """The kernel filter installed per ``settings.mode`` (module docstring), or None."""
    if settings.mode == "off":
        return None
    name = table or table_name()
    try:
        nft = binding()
    except NftablesError as exc:
        _unavailable(settings, name, exc)
        return None
    kernel = KernelFilter(nft, name, counters)
    try:
        kernel.apply(spec, bans, now)
    except NftablesError as exc:
        nft.close()
        _unavailable(settings, name, exc)
        return None
    log.info(
        "kernel_filter.installed",
        table=name,
        listeners=len(spec.listeners),
        trunk_ceilings=len(spec.trunks),
        bans=kernel.bans_held(),
    )
    return kernel


def _unavailable(settings: KernelFilterPolicy, table: str, exc: NftablesError) -> None:
    expected = exc.permission_denied or isinstance(exc, NftablesUnavailableError)
    reason = "permission denied (needs CAP_NET_ADMIN)" if exc.permission_denied else str(exc)
    if settings.mode == "on":
        raise KernelFilterError(f"kernel_filter is on but table inet {table} failed: {reason}")
    # Not allowed or not installed is a normal way to run (info); anything else is ours.
    report = log.info if expected else log.warning
    report("kernel_filter.unavailable", table=table, reason=reason, mode=settings.mode)
