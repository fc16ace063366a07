"""Garbage-collector settings for a long-running signalling process.

Per-call objects are acyclic once a call ends (tests check that a full
collection finds nothing), so reference counting frees them at once. What the
cyclic collector's full passes would cost instead is a pause proportional to
*everything alive* — transactions kept 32 s for retransmissions (RFC 3261
Timers J/L/M) at hundreds of calls per second add up to a million objects and
pauses near a second. So: young generations collect often (cheap), the
startup heap is frozen out of every pass, and a full pass runs only on the
runtime's schedule (hourly, a safety net for cycles a bug might create),
where its duration and its finds are logged.
"""

from __future__ import annotations

import gc
import time

#: Young collections: frequent and cheap (they only scan new objects).
GEN0_THRESHOLD = 700  # CPython's default: many short passes beat few long ones
GEN1_THRESHOLD = 10
#: Never let the collector start a full pass by itself.
GEN2_NEVER = 1 << 30
#: How often the runtime runs the full pass itself.
FULL_COLLECTION_INTERVAL_S = 3600.0


def tune_gc() -> None:
    """Call once, after start-up: freeze the start-up heap, tame full passes."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GEN0_THRESHOLD, GEN1_THRESHOLD, GEN2_NEVER)


def full_collection() -> tuple[int, float]:
    """Run a full pass; return (unreachable objects found, seconds taken)."""
    start = time.perf_counter()
    found = gc.collect()
    return found, time.perf_counter() - start
