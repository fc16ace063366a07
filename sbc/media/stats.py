"""A call's media counters, summed over its streams for CDRs and the admin plane.

``packets``/``octets``/``lost`` add both directions of every stream
(RFC 3550 §6.4.1 cumulative loss, from sequence numbers); ``extra`` keeps
per-direction figures, the worst interarrival jitter (RFC 3550 §6.4.1, A.8)
and the shortest idle time (the inactivity timeout's input).
"""

from __future__ import annotations

from collections.abc import Iterable

from sbc.media.control import DirectionStats, StreamStats
from sbc.media.interface import MediaStats


def aggregate(streams: Iterable[StreamStats]) -> MediaStats:
    """Sum the relay's per-stream statistics of one call."""
    streams = list(streams)
    a_to_b = [s.a_to_b for s in streams]
    b_to_a = [s.b_to_a for s in streams]
    both = a_to_b + b_to_a
    extra = {
        "streams": float(len(streams)),
        "jitter_ms": max((d.jitter_ms for d in both), default=0.0),
        "rtcp_packets": float(sum(d.rtcp_packets for d in both)),
        "dropped": float(sum(d.dropped for d in both)),
        "idle_s": min((s.idle_s for s in streams), default=0.0),
        **_direction("a_to_b", a_to_b),
        **_direction("b_to_a", b_to_a),
    }
    return MediaStats(
        packets=sum(d.packets for d in both),
        octets=sum(d.octets for d in both),
        lost=sum(d.lost for d in both),
        extra=extra,
    )


def _direction(name: str, stats: list[DirectionStats]) -> dict[str, float]:
    return {
        f"{name}_packets": float(sum(d.packets for d in stats)),
        f"{name}_octets": float(sum(d.octets for d in stats)),
        f"{name}_lost": float(sum(d.lost for d in stats)),
        f"{name}_jitter_ms": max((d.jitter_ms for d in stats), default=0.0),
    }
