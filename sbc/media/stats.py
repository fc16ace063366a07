"""A call's media counters, summed over its streams for CDRs and the admin plane.

``packets``/``octets``/``lost`` add both directions of every stream
(RFC 3550 §6.4.1 cumulative loss, from sequence numbers); ``extra`` keeps
per-direction figures, the worst interarrival jitter (RFC 3550 §6.4.1, A.8)
and the shortest idle time (the inactivity timeout's input). ``dtls_failed``
counts the stream sides whose DTLS-SRTP handshake failed (their media is dropped).

The ``reported_*`` keys are what the endpoints' RTCP receiver reports say
(RFC 3550 §6.4.1), so they include the path between the SBC and each
endpoint: ``reported_lost`` adds up like ``lost``; ``reported_jitter_ms`` and
``reported_fraction_lost`` are the worst stream and direction. The
``a_to_b_reported_*`` figures are leg B's reports on what A sent, and
``b_to_a_reported_*`` leg A's reports on what B sent.

The :data:`REJECTED` keys count, per reason, packets a relay port received
and refused as malformed or not ours to answer (docs/security.md): both
directions and every stream added up, as ``sbc_media_packets_rejected_total``.
"""

from __future__ import annotations

from collections.abc import Iterable

from sbc.media.control import DirectionStats, StreamStats
from sbc.media.interface import MediaStats

#: Packets refused by reason: :class:`DirectionStats` fields, and ``extra`` keys here.
REJECTED = (
    "stun_malformed",
    "stun_refused",
    "rtp_malformed",
    "rtcp_malformed",
    "srtp_failed",
    "packet_errors",
)


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
        **{reason: float(sum(getattr(d, reason) for d in both)) for reason in REJECTED},
        "dtls_failed": float(sum((s.dtls_a == "failed") + (s.dtls_b == "failed") for s in streams)),
        "reported_lost": float(sum(d.reported_lost for d in both)),
        "reported_fraction_lost": max((d.reported_fraction_lost for d in both), default=0.0),
        "reported_jitter_ms": max((d.reported_jitter_ms for d in both), default=0.0),
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
        f"{name}_reported_lost": float(sum(d.reported_lost for d in stats)),
        f"{name}_reported_fraction_lost": max(
            (d.reported_fraction_lost for d in stats), default=0.0
        ),
        f"{name}_reported_jitter_ms": max((d.reported_jitter_ms for d in stats), default=0.0),
    }
