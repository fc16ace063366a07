"""Which ban elements to put in the kernel and take out: a diff, pure.

The guard's ban table (:mod:`sbc.guard.bans`) is the truth; the kernel's ban
sets follow it, a second or so behind (:class:`~sbc.kernel.filter.KernelFilter`
asks for a :meth:`KernelBans.diff` when the table changed, over the keys that
changed: the guard keeps a journal of them, so a sync costs what changed). Each element times
out in the kernel when its ban ends, so an expired ban needs no command; a
ban lifted early (``DELETE /bans``) is deleted; a ban whose end moved (a
source banned again) is replaced. Element timeouts are capped
(:data:`~sbc.kernel.ruleset.MAX_TIMEOUT_S`): a longer ban is put back when
its kernel copy lapses.

An element is never touched within :data:`MARGIN_S` of lapsing in the kernel:
deleting one that has just timed out would fail the whole transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from sbc.kernel.ruleset import MAX_TIMEOUT_S

#: Seconds around an element's lapse in the kernel when it is left alone.
MARGIN_S = 1.0


class HasUntil(Protocol):
    """A ban as the diff needs it (:class:`sbc.guard.bans.Ban`)."""

    @property
    def until(self) -> float: ...


@dataclass(frozen=True)
class BanDiff:
    """Elements to delete, then elements to add (``(key, ban until)``), at ``now``."""

    now: float
    add: tuple[tuple[str, float], ...] = ()
    delete: tuple[str, ...] = ()
    flush: bool = False  # empty the sets first (a full resync)
    lapsed: tuple[str, ...] = ()  # timed out in the kernel by themselves: just forget them

    def __bool__(self) -> bool:
        return bool(self.add or self.delete or self.flush or self.lapsed)

    def timeouts(self) -> Iterator[tuple[str, float]]:
        """``(key, seconds left)`` of each element to add."""
        for key, until in self.add:
            yield key, until - self.now


class KernelBans:
    """The ban elements this process put in the kernel, and when each lapses there."""

    __slots__ = ("_held",)

    def __init__(self) -> None:
        self._held: dict[str, tuple[float, float]] = {}  # key -> (ban until, kernel until)

    def __len__(self) -> int:
        return len(self._held)

    def __contains__(self, key: object) -> bool:
        return key in self._held

    def diff(
        self, bans: Mapping[str, HasUntil], now: float, keys: Iterable[str] | None = None
    ) -> BanDiff:
        """What brings the kernel to ``bans`` (the guard's, by key) at ``now``, looking
        only at ``keys`` (those that changed, :meth:`Guard.ban_changes
        <sbc.guard.guard.Guard.ban_changes>`) or, when None, at every key."""
        if keys is None:
            keys = bans.keys() | self._held.keys()
        add: list[tuple[str, float]] = []
        delete: list[str] = []
        lapsed: list[str] = []
        for key in keys:
            ban = bans.get(key)
            until = ban.until if ban is not None and ban.until > now else None
            held = self._held.get(key)
            if held is None:
                if until is not None:
                    add.append((key, until))
                continue
            ban_until, kernel_until = held
            alive = kernel_until > now + MARGIN_S
            if until is None:
                if alive:
                    delete.append(key)  # lifted early
                elif kernel_until <= now - MARGIN_S:
                    lapsed.append(key)
                continue
            if ban_until == until and (alive or kernel_until >= until):
                continue  # in place, lasting as long as the ban
            if not alive and kernel_until > now - MARGIN_S:
                continue  # lapsing right now: next round
            if alive:
                delete.append(key)  # its end moved: replace it
            add.append((key, until))
        return BanDiff(now, tuple(add), tuple(delete), lapsed=tuple(lapsed))

    def resync(self, bans: Mapping[str, HasUntil], now: float) -> BanDiff:
        """Empty the sets and put every ban in (after a failed diff, or a new table)."""
        wanted = tuple((key, ban.until) for key, ban in bans.items() if ban.until > now)
        return BanDiff(now, wanted, flush=True)

    def applied(self, diff: BanDiff) -> None:
        """``diff`` is in the kernel now."""
        now = diff.now
        if diff.flush:
            self._held.clear()
        for key in (*diff.delete, *diff.lapsed):
            self._held.pop(key, None)
        for key, until in diff.add:
            self._held[key] = (until, now + min(until - now, MAX_TIMEOUT_S))

    def forget(self) -> None:
        """The sets were emptied (the table was made again)."""
        self._held.clear()
