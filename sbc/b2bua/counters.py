"""Plain counters the call engine keeps for metrics (read at scrape time).

Incremented on call events, never per packet; the metrics module turns them
into Prometheus families only when scraped, so the hot path pays a dict
increment at most.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

#: Call-setup time buckets (seconds): INVITE in to answer out.
SETUP_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)


@dataclass
class Histogram:
    """Counts per bucket (not cumulative); the last slot is +Inf."""

    bounds: Sequence[float]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value


@dataclass
class CallCounters:
    attempts: Counter[tuple[str, str]] = field(default_factory=Counter)  # (trunk, in/out)
    finals: Counter[tuple[str, int]] = field(default_factory=Counter)  # (egress trunk, status)
    completions: Counter[str] = field(default_factory=Counter)  # disposition
    setup_time: Histogram = field(default_factory=lambda: Histogram(SETUP_BUCKETS))
