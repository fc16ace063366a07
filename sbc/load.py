"""Event-loop lag: the runtime's measure of overload.

A tick is scheduled every ``interval``; how late it runs is the lag. When
the signalling loop cannot keep up (floods, bursts past the peak rate), the
lag grows and the core sheds *new* calls with 503 + Retry-After while
everything in progress keeps being served — degrading instead of collapsing.
Hysteresis (clear below half the threshold) keeps it from flapping.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

log = structlog.get_logger("sbc.lag")


class LagMonitor:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        threshold: float,
        on_change: Callable[[bool], None],
        interval: float = 0.05,
    ) -> None:
        self.loop = loop
        self.threshold = threshold
        self.on_change = on_change
        self.interval = interval
        self.lag = 0.0
        self.overloaded = False
        self._expected = 0.0
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._expected = self.loop.time() + self.interval
        self._handle = self.loop.call_at(self._expected, self._tick)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _tick(self) -> None:
        now = self.loop.time()
        lag = max(0.0, now - self._expected)
        # Rise at once, decay smoothly: one quiet tick must not end an overload.
        self.lag = lag if lag > self.lag else 0.7 * self.lag + 0.3 * lag
        if not self.overloaded and self.lag > self.threshold:
            self._set(True)
        elif self.overloaded and self.lag < self.threshold / 2:
            self._set(False)
        self._expected = now + self.interval
        self._handle = self.loop.call_at(self._expected, self._tick)

    def _set(self, overloaded: bool) -> None:
        self.overloaded = overloaded
        log.warning("overload", active=overloaded, lag_ms=round(self.lag * 1000, 1))
        self.on_change(overloaded)
