"""Compiled routes: what a new call must look like to match, and where it goes.

Everything here is built once at load (regexes compiled, ranges parsed, time
zones resolved); matching a call costs a few string operations per route.
Regexes are the operator's, run on what callers send: RE2, linear in the
subject (:mod:`sbc.policy.regex`).
The wall clock (for time-of-day routes) and the random source (for weighted
groups) are passed in, so the core stays deterministic under test.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo

from sbc.policy.regex import LinearRegex, Replacement, compile_regex
from sbc.sip.headers import Headers
from sbc.sip.params import is_digits

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # datetime.weekday() order


@dataclass(frozen=True, slots=True)
class RouteContext:
    """What routing looks at in a new call (after inbound manipulations)."""

    trunk: str | None
    interface: str
    ruri_user: str
    from_user: str
    headers: Headers
    wall: datetime  # timezone-aware


@dataclass(frozen=True, slots=True)
class NumberRange:
    """Numbers of exactly ``len(first)`` characters between first and last."""

    first: str
    last: str

    def __contains__(self, number: str) -> bool:
        if len(number) != len(self.first):
            return False
        digits = number[1:] if number.startswith("+") else number
        if not is_digits(digits) or number.startswith("+") != self.first.startswith("+"):
            return False
        return self.first <= number <= self.last  # same length and form: text order is numeric


@dataclass(frozen=True, slots=True)
class TimeWindow:
    days: frozenset[int]  # 0 = Monday
    start: time
    end: time
    zone: ZoneInfo

    def __contains__(self, moment: datetime) -> bool:
        local = moment.astimezone(self.zone)
        clock = local.time().replace(second=0, microsecond=0)
        if self.start <= self.end:
            return local.weekday() in self.days and self.start <= clock <= self.end
        # Across midnight: the early part belongs to the window opened the day before.
        if clock >= self.start:
            return local.weekday() in self.days
        return clock <= self.end and (local.weekday() - 1) % 7 in self.days


@dataclass(frozen=True, slots=True)
class Group:
    """Trunks chosen by weight; a call tries all of them, the weighted pick first."""

    members: tuple[tuple[str, int], ...]

    def order(self, rng: random.Random) -> list[str]:
        """A weighted random permutation (each pick by weight among those left)."""
        left = list(self.members)
        ordered: list[str] = []
        while left:
            total = sum(weight for _, weight in left)
            point = rng.random() * total
            for index, (name, weight) in enumerate(left):
                point -= weight
                if point < 0 or index == len(left) - 1:
                    ordered.append(name)
                    del left[index]
                    break
        return ordered


@dataclass(frozen=True, slots=True)
class Translation:
    pattern: LinearRegex
    replacement: Replacement

    def apply(self, user: str) -> str:
        return self.pattern.sub(self.replacement, user, count=1)


@dataclass(frozen=True, slots=True)
class Route:
    """One entry of ``routes.yaml``; criteria left as None match anything."""

    name: str
    from_trunk: str | None = None
    from_interface: str | None = None
    prefix: str = ""
    ruri_regex: LinearRegex | None = None
    ruri_range: NumberRange | None = None
    from_prefix: str = ""
    from_regex: LinearRegex | None = None
    headers: tuple[tuple[str, LinearRegex], ...] = ()
    time: TimeWindow | None = None
    to: tuple[str | Group, ...] = ()
    reject: tuple[int, str | None] | None = None
    to_registered: bool = False
    translate: Translation | None = None
    failover_on: frozenset[int] = frozenset()

    def matches(self, call: RouteContext) -> bool:
        """True when every criterion this route sets holds for the call."""
        if self.from_trunk is not None and call.trunk != self.from_trunk:
            return False
        if self.from_interface is not None and call.interface != self.from_interface:
            return False
        if not call.ruri_user.startswith(self.prefix):
            return False
        if self.ruri_regex is not None and not self.ruri_regex.search(call.ruri_user):
            return False
        if self.ruri_range is not None and call.ruri_user not in self.ruri_range:
            return False
        if not call.from_user.startswith(self.from_prefix):
            return False
        if self.from_regex is not None and not self.from_regex.search(call.from_user):
            return False
        for name, pattern in self.headers:
            value = call.headers.get(name)
            if value is None or not pattern.search(value):
                return False
        return self.time is None or call.wall in self.time

    def trunks(self, rng: random.Random) -> list[str]:
        """The trunks to try, in order (groups ordered by weighted draw), each once."""
        ordered: list[str] = []
        for entry in self.to:
            names = entry.order(rng) if isinstance(entry, Group) else [entry]
            ordered.extend(name for name in names if name not in ordered)
        return ordered


def first_match(routes: Sequence[Route], call: RouteContext) -> Route | None:
    """The first route in file order that matches, or None (404)."""
    for route in routes:
        if route.matches(call):
            return route
    return None


def time_window(days: Sequence[str], start: str, end: str, zone: str) -> TimeWindow:
    return TimeWindow(
        frozenset(DAYS.index(day) for day in days),
        time.fromisoformat(start),
        time.fromisoformat(end),
        ZoneInfo(zone),
    )


def header_patterns(headers: Mapping[str, str]) -> tuple[tuple[str, LinearRegex], ...]:
    return tuple((name, compile_regex(pattern)) for name, pattern in headers.items())


def translation(regex: str, replacement: str) -> Translation:
    """A validated ``translate`` (the schema checked both) compiled for calls."""
    pattern = compile_regex(regex)
    return Translation(pattern, pattern.replacement(replacement))
