"""The calls' next deadlines as one heap, so the core's timer is one lookup.

Theory of operation. Each call knows its own next deadline
(:meth:`sbc.b2bua.call.Call.get_timer`); after every input the core hands it
to :meth:`CallTimers.schedule`. The heap holds ``(deadline, seq, call id)``:
ids, so an ended call is not kept alive by a stale heap entry until its old
deadline. A call's current deadline is kept beside the heap, and an entry
that no longer matches it is stale: skipped (and dropped) when met, never
searched for. ``seq`` breaks ties without comparing ids.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator


class CallTimers:
    """Deadlines per call id, earliest first."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, str]] = []
        self._scheduled: dict[str, float] = {}
        self._seq = itertools.count()

    def schedule(self, call_id: str, deadline: float | None) -> None:
        """The call's next deadline from now on (None: it has none)."""
        if deadline is None:
            self._scheduled.pop(call_id, None)
        elif self._scheduled.get(call_id) != deadline:
            self._scheduled[call_id] = deadline
            heapq.heappush(self._heap, (deadline, next(self._seq), call_id))

    def forget(self, call_id: str) -> None:
        """The call ended: its entries are stale from now on."""
        self._scheduled.pop(call_id, None)

    def next_deadline(self) -> float | None:
        """The earliest live deadline (stale entries on top are dropped)."""
        while self._heap:
            deadline, _, call_id = self._heap[0]
            if self._scheduled.get(call_id) == deadline:
                return deadline
            heapq.heappop(self._heap)  # stale entry
        return None

    def due(self, now: float) -> Iterator[str]:
        """The ids of calls whose deadline has passed, each unscheduled as it
        is yielded; deadlines the caller schedules meanwhile are seen too."""
        while self._heap and self._heap[0][0] <= now:
            deadline, _, call_id = heapq.heappop(self._heap)
            if self._scheduled.get(call_id) != deadline:
                continue
            del self._scheduled[call_id]
            yield call_id
