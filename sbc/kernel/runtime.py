"""What the SBC's runtime holds of the kernel filter, across policy reloads.

The runtime (``sbc/app.py``) calls :meth:`KernelFilterRuntime.start` once its
sockets are bound, :meth:`~KernelFilterRuntime.reload` with each new policy,
:meth:`~KernelFilterRuntime.follow` every :data:`SYNC_INTERVAL_S` and
:meth:`~KernelFilterRuntime.close` at shutdown. ``follow`` costs one integer
comparison unless the guard's ban table changed (its version moved); then it
looks at the sources that changed (the guard's journal of them). Once a
minute it compares the whole table (a ban longer than an element's longest
timeout is put back).

A reload that turns the filter ``off`` deletes the table; one that turns it
back on installs it again. A reload never stops the SBC: with ``on``, a
failure there is logged as an error (the start is where ``on`` refuses).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import structlog

from sbc.guard.guard import Guard
from sbc.kernel.filter import KernelFilter, KernelFilterError, kernel_bans, open_filter
from sbc.kernel.nftables import NftablesError
from sbc.kernel.ruleset import COUNTERS, Listener, spec_for
from sbc.policy.compiled import Policy

log = structlog.get_logger("sbc.kernel")

#: How often the runtime calls :meth:`KernelFilterRuntime.follow`: a ban is in the
#: kernel within about this long (the userspace path handles its packets until then).
SYNC_INTERVAL_S = 1.0
#: A full comparison at least this often, even when the ban table did not change.
_FULL_SYNC_S = 60.0

Opener = Callable[..., KernelFilter | None]


class KernelFilterRuntime:
    """The kernel filter (or None when off or unavailable) and when to sync it."""

    def __init__(self, opener: Opener = open_filter) -> None:
        self._open = opener
        self.filter: KernelFilter | None = None
        self._listeners: tuple[Listener, ...] = ()
        self._mode = "off"
        self._version = -1
        self._next_full = 0.0

    def start(
        self, policy: Policy, listeners: Iterable[Listener], guard: Guard, now: float
    ) -> None:
        """Install per ``kernel_filter.mode``; :class:`KernelFilterError` if ``on`` fails."""
        self._listeners = tuple(listeners)
        self._mode = policy.security.kernel_filter.mode
        self._install(policy, guard, now)

    def reload(self, policy: Policy, guard: Guard, now: float) -> None:
        """Rebuild the table for ``policy`` (or remove it, or install it); never raises."""
        mode, self._mode = self._mode, policy.security.kernel_filter.mode
        kernel = self.filter
        if kernel is None:
            if mode == "off" and self._mode != "off":  # turned on: try again
                try:
                    self._install(policy, guard, now)
                except KernelFilterError as exc:
                    log.error("kernel_filter.reload_failed", error=str(exc))
            return
        if self._mode == "off":
            kernel.close()
            self.filter = None
            log.info("kernel_filter.removed", table=kernel.table)
            return
        guard.ban_changes()  # the rebuilt table holds every ban: start the journal afresh
        try:
            kernel.apply(spec_for(policy, self._listeners), kernel_bans(guard), now)
        except NftablesError as exc:  # the old table stays, whole
            log.error("kernel_filter.reload_failed", table=kernel.table, error=str(exc))
            self._version, self._next_full = -1, now  # compare everything next time
            return
        self._version = guard.ban_version

    def follow(self, guard: Guard, now: float) -> None:
        """Bring the ban sets to the guard's table if it changed (or once a minute)."""
        kernel = self.filter
        if kernel is None:
            return
        version = guard.ban_version
        if version == self._version and now < self._next_full and not kernel.failing:
            return
        self._version = version
        changed = guard.ban_changes()
        if changed is None or now >= self._next_full:
            changed = None  # compare everything
            self._next_full = now + _FULL_SYNC_S
        kernel.sync(kernel_bans(guard), now, changed)

    def stats(self) -> dict[str, int]:
        """For metrics: ``installed`` (0/1), ``bans`` held, and drops per reason."""
        kernel = self.filter
        if kernel is None:
            return {"installed": 0, "bans": 0, **dict.fromkeys(COUNTERS, 0)}
        return {"installed": 1, "bans": kernel.bans_held(), **kernel.dropped()}

    def close(self) -> None:
        if self.filter is not None:
            self.filter.close()
            self.filter = None

    def _install(self, policy: Policy, guard: Guard, now: float) -> None:
        settings = policy.security.kernel_filter
        spec = spec_for(policy, self._listeners)
        guard.ban_changes()  # the new table holds every ban: start the journal afresh
        self.filter = self._open(settings, spec, kernel_bans(guard), now)
        self._version = guard.ban_version
        self._next_full = now + _FULL_SYNC_S
