"""The ban table: one dict lookup per message, bounded, and hard to flush.

A ban is keyed by its source key (an address, or its prefix: see
:mod:`sbc.guard.keys`). The table holds at most ``max_bans``. When it is full,
room is made in this order:

1. bans that have expired, oldest first;
2. the *newest* automatic ban (scanner, rate, malformed, auth): under a flood of forged
   sources the table churns in its last slot, so bans already in force (a
   persistent attacker's) stay until they expire;
3. for a manual ban only, when every ban is manual: the oldest manual one.

Automatic bans never push out manual ones: when only manual bans are left,
an automatic ban finds no room and is not made (the source stays rate
limited). Expiry is lazy: a ban is dropped when looked up after its end.
:attr:`BanTable.version` moves on every change, so a follower (the kernel
filter) can tell in O(1) whether there is anything to copy, and
:meth:`BanTable.drain_changes` tells it which sources changed, so copying
costs what changed, not the size of the table.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

BanReason = Literal["scanner", "rate", "malformed", "auth", "manual"]

#: Changed sources remembered for a follower at most; past that it compares everything.
JOURNAL_LIMIT = 65_536


@dataclass(frozen=True)
class Ban:
    source: str
    reason: BanReason
    since: float
    until: float


class BanTable:
    """Bans by source key, with the eviction order above."""

    __slots__ = ("_auto", "_journal", "_manual", "by_source", "version")

    def __init__(self) -> None:
        #: the hot path's one lookup: source key -> ban
        self.by_source: dict[str, Ban] = {}
        #: bumped whenever a ban is made, lifted, expired or pushed out
        self.version = 0
        # Sources changed since drain_changes(); None until a follower asks, or on overflow.
        self._journal: set[str] | None = None
        self._auto: OrderedDict[str, None] = OrderedDict()  # in the order they were made
        self._manual: OrderedDict[str, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self.by_source)

    def add(self, ban: Ban, now: float, max_bans: int) -> bool:
        """Put ``ban`` in force (replacing one for the same source); False if no room."""
        self.lift(ban.source)
        manual = ban.reason == "manual"
        if len(self.by_source) >= max_bans and not self._make_room(now, max_bans, manual):
            return False
        self.by_source[ban.source] = ban
        (self._manual if manual else self._auto)[ban.source] = None
        self._changed(ban.source)
        return True

    def lift(self, source: str) -> bool:
        if self.by_source.pop(source, None) is None:
            return False
        self._auto.pop(source, None)
        self._manual.pop(source, None)
        self._changed(source)
        return True

    def in_force(self, now: float) -> list[Ban]:
        """Bans in force at ``now``, oldest first; expired ones are forgotten."""
        for source in [s for s, ban in self.by_source.items() if ban.until <= now]:
            self.lift(source)
        return sorted(self.by_source.values(), key=lambda ban: ban.since)

    def trim(self, max_bans: int) -> None:
        """Shrink to ``max_bans`` (a reload lowered it): newest automatic first."""
        while len(self.by_source) > max_bans:
            order = self._auto or self._manual
            source, _ = order.popitem(last=order is self._auto)
            del self.by_source[source]
            self._changed(source)

    def drain_changes(self) -> set[str] | None:
        """Sources whose ban changed since the last call; None when that is not known
        (the first call, or more than :data:`JOURNAL_LIMIT` changes since)."""
        changes, self._journal = self._journal, set()
        return changes

    def _changed(self, source: str) -> None:
        self.version += 1
        journal = self._journal
        if journal is not None:
            journal.add(source)
            if len(journal) > JOURNAL_LIMIT:
                self._journal = None  # bounded: the follower compares everything

    def _make_room(self, now: float, max_bans: int, manual: bool) -> bool:
        self._expire_front(self._auto, now)
        self._expire_front(self._manual, now)
        while len(self.by_source) >= max_bans:
            if self._auto:
                source, _ = self._auto.popitem(last=True)
            elif manual and self._manual:
                source, _ = self._manual.popitem(last=False)
            else:
                return False
            del self.by_source[source]
            self._changed(source)
        return True

    def _expire_front(self, order: OrderedDict[str, None], now: float) -> None:
        """Drop expired bans from the front (oldest first): amortized O(1) per ban."""
        while order:
            source = next(iter(order))
            if self.by_source[source].until > now:
                return
            order.popitem(last=False)
            del self.by_source[source]
            self._changed(source)
