"""Overload detection for the signalling loop: queueing delay and loop lag.

Two symptoms, either of which means new calls must wait:
- *queueing delay*: how long received datagrams sat in the kernel's buffer
  before we read them (kernel arrival stamps, see sbc/transport/udp.py). Past
  the peak rate the backlog grows there, while the loop itself looks fine;
- *lag*: a tick scheduled every ``interval`` runs late (the loop is blocked).
While overloaded, the core sheds *new* INVITEs with 503 + Retry-After and
keeps serving everything in progress: degrading instead of collapsing.
Both signals are smoothed, and hysteresis (clear below half the limit) keeps
the state from flapping.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

log = structlog.get_logger("sbc.load")

#: Weight of the newest tick in the moving averages.
SMOOTHING = 0.3
#: Leave overload only once both signals are below this share of the limit.
HYSTERESIS = 0.5


class LoadMonitor:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        max_delay: float,
        on_change: Callable[[bool], None],
        interval: float = 0.05,
    ) -> None:
        self.loop = loop
        self.max_delay = max_delay
        self.on_change = on_change
        self.interval = interval
        self.lag = 0.0
        self.queued = 0.0
        self.overloaded = False
        self._worst_queued = 0.0
        self._expected = 0.0
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._expected = self.loop.time() + self.interval
        self._handle = self.loop.call_at(self._expected, self._tick)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def observe_queued(self, seconds: float) -> None:
        """The runtime reports each message's queueing delay."""
        self._worst_queued = max(self._worst_queued, seconds)

    def _tick(self) -> None:
        now = self.loop.time()
        lag = max(0.0, now - self._expected)
        self.lag += SMOOTHING * (lag - self.lag)
        self.queued += SMOOTHING * (self._worst_queued - self.queued)
        self._worst_queued = 0.0
        worst = max(self.lag, self.queued)
        if worst > self.max_delay and not self.overloaded:
            self._set(True)
        elif worst < HYSTERESIS * self.max_delay and self.overloaded:
            self._set(False)
        self._expected = now + self.interval
        self._handle = self.loop.call_at(self._expected, self._tick)

    def _set(self, overloaded: bool) -> None:
        self.overloaded = overloaded
        log.warning(
            "overload",
            active=overloaded,
            lag_ms=round(self.lag * 1000, 1),
            queued_ms=round(self.queued * 1000, 1),
        )
        self.on_change(overloaded)
