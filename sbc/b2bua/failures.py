"""Logging of unexpected exceptions without letting a peer flood the log.

A request that makes the core raise is a bug or a hostile input, and the
same input can be sent a thousand times a second. Each kind of exception
(its class) is logged with its traceback the first time, then at most once
per ``interval`` seconds, with how many were not logged since; the counters
(``request_errors`` in the core's stats) see every one. The kinds are the
code's exception classes, so the table stays small whatever arrives.
"""

from __future__ import annotations

import structlog

log = structlog.get_logger("sbc.core")


class FailureLog:
    """Throttled ``log.error`` with traceback, per exception class."""

    __slots__ = ("_next", "_unlogged", "interval")

    def __init__(self, interval: float = 60.0) -> None:
        self.interval = interval
        self._next: dict[str, float] = {}  # kind -> when it may be logged again
        self._unlogged: dict[str, int] = {}  # kind -> failures not logged since

    def report(self, event: str, exc: BaseException, now: float, **fields: object) -> None:
        kind = type(exc).__qualname__
        if now < self._next.get(kind, float("-inf")):
            self._unlogged[kind] = self._unlogged.get(kind, 0) + 1
            return
        self._next[kind] = now + self.interval
        unlogged = self._unlogged.pop(kind, 0)
        log.error(event, exc_info=exc, kind=kind, not_logged_since=unlogged, **fields)
