"""A token bucket kept as one deadline (GCRA), so refill needs no bookkeeping.

The classic bucket stores a token count and adds ``elapsed * rate`` on every
request, accumulating rounding errors. The Generic Cell Rate Algorithm (ITU-T
I.371, the "virtual scheduling" form) stores instead the theoretical arrival
time ``tat`` of the next request at the sustained rate. A request at ``now``
conforms when ``tat - now`` is within the burst tolerance; taking it moves
``tat`` on by one emission interval. Same behaviour as a bucket of ``burst``
tokens refilled at ``rate`` per second, O(1), one float of state, and refill is
implicit: an idle bucket is simply one whose ``tat`` lies in the past.

``now`` must come from a monotonic clock (the caller's; this module reads none).
"""

from __future__ import annotations

import math

#: Rounding slack: ``base + i / rate`` computed by the caller and ``tat``
#: computed here differ in the last bits, and a request due exactly at its
#: refill time must conform. A millionth of an interval, but never below
#: 100 ns: the spacing of floats near 1e8 s (three years of monotonic clock).
_SLACK_INTERVALS = 1e-6
_SLACK_FLOOR_S = 1e-7


class TokenBucket:
    """``burst`` requests at once, then ``rate`` per second."""

    __slots__ = ("_interval", "_slack", "_tat", "_tolerance", "burst", "rate")

    def __init__(self, rate: float, burst: int) -> None:
        if not (rate > 0 and math.isfinite(rate)) or burst < 1:
            raise ValueError(f"need rate > 0 and burst >= 1, got rate={rate} burst={burst}")
        self.rate = rate
        self.burst = burst
        self._interval = 1.0 / rate
        self._slack = max(_SLACK_INTERVALS * self._interval, _SLACK_FLOOR_S)
        self._tolerance = (burst - 1) * self._interval + self._slack
        self._tat = -math.inf

    def take(self, now: float) -> bool:
        """Spend one token if there is one; False (and no change) if not."""
        ahead = self._tat - now
        if ahead <= self._slack:
            # Idle, or due within rounding: restart the schedule from ``now`` so
            # rounding errors never accumulate across requests.
            self._tat = now + self._interval
            return True
        if ahead > self._tolerance:
            return False
        self._tat += self._interval
        return True

    def ready(self, now: float) -> bool:
        """Whether :meth:`take` would succeed at ``now``, without spending."""
        return self._tat - now <= self._tolerance

    def tokens(self, now: float) -> float:
        """Tokens available at ``now`` (fractional while refilling); for metrics and tests."""
        backlog = max(self._tat - now, 0.0) / self._interval
        return max(self.burst - backlog, 0.0)

    def full(self, now: float) -> bool:
        """True once the bucket has refilled completely: it then equals a new one."""
        return self._tat <= now

    def __repr__(self) -> str:
        return f"TokenBucket(rate={self.rate}, burst={self.burst})"
