"""Per-direction relay statistics: counts, loss and jitter (RFC 3550 A.1, A.3, A.8).

Pure: the caller passes the arrival time ``now`` (seconds, any monotonic
origin). One :class:`DirectionCounter` counts what one side *receives*;
:meth:`DirectionCounter.snapshot` freezes it into the contract's
:class:`~sbc.media.control.DirectionStats`.

Loss follows RFC 3550 A.3: ``expected = extended_max - base_seq + 1``,
``lost = expected - received`` (clamped at 0: duplicates can make it
negative). Sequence tracking follows A.1 without the probation period (the
relay counts from the first packet): a jump of more than ``MAX_DROPOUT``
ahead or ``MAX_MISORDER`` behind is taken as a restarted source, once two
consecutive packets confirm it. A new SSRC restarts the tracking.

The ``reported_*`` figures are the other end of the same direction: what
the peer that *receives* this direction's RTP says about it in its RTCP
report blocks (RFC 3550 §6.4.1). The relay feeds them from the RTCP that
arrives on the opposite side (see :mod:`sbc.media.relay.rtcp_relay`); only
blocks about the SSRC this counter is relaying are taken, so a peer's
report on some other source never lands here.
"""

from __future__ import annotations

from sbc.media.control import DirectionStats
from sbc.media.relay.rtcp import FRACTION_SCALE, ReportBlock

RTP_SEQ_MOD = 1 << 16  # RFC 3550 A.1
MAX_DROPOUT = 3000
MAX_MISORDER = 100
TS_MOD = 1 << 32
TS_HALF = 1 << 31
DEFAULT_CLOCK_RATE = 8000  # Hz: G.711 and most narrow-band audio
NEVER = float("-inf")


class SequenceTracker:
    """Extended highest sequence number, base and received count (RFC 3550 A.1)."""

    __slots__ = ("bad_seq", "base_seq", "cycles", "max_seq", "received")

    def __init__(self, seq: int) -> None:
        self.restart(seq)

    def restart(self, seq: int) -> None:
        """Start counting from ``seq`` (A.1 ``init_seq``)."""
        self.base_seq = seq
        self.max_seq = seq
        self.cycles = 0
        self.bad_seq = RTP_SEQ_MOD + 1  # "so seq == bad_seq is false"
        self.received = 1

    def update(self, seq: int) -> None:
        """Account for one packet with sequence number ``seq`` (A.1 ``update_seq``)."""
        udelta = (seq - self.max_seq) % RTP_SEQ_MOD
        if udelta < MAX_DROPOUT:
            if seq < self.max_seq:  # wrapped: count another 64K cycle
                self.cycles += RTP_SEQ_MOD
            self.max_seq = seq
        elif udelta <= RTP_SEQ_MOD - MAX_MISORDER:  # a very large jump
            if seq != self.bad_seq:
                self.bad_seq = (seq + 1) % RTP_SEQ_MOD
                return  # not counted until confirmed by the next packet
            self.restart(seq)  # two in a row: the source restarted
            return
        # else: duplicate or reordered packet, counted as received
        self.received += 1

    @property
    def expected(self) -> int:
        return self.cycles + self.max_seq - self.base_seq + 1

    @property
    def lost(self) -> int:
        """Cumulative packets lost (A.3), never negative."""
        return max(0, self.expected - self.received)


class DirectionCounter:
    """What one side received: packets, octets, loss, jitter, RTCP, drops;
    and what the far end reports having received of it."""

    __slots__ = (
        "clock_rate",
        "dropped",
        "jitter",
        "last_rtp",
        "octets",
        "packet_errors",
        "packets",
        "past_lost",
        "reported_fraction",
        "reported_jitter",
        "reported_lost",
        "reported_past_lost",
        "reported_ssrc",
        "rtcp_malformed",
        "rtcp_packets",
        "rtp_malformed",
        "seq",
        "srtp_failed",
        "ssrc",
        "stun_malformed",
        "stun_refused",
        "transit",
    )

    def __init__(self, clock_rate: int = DEFAULT_CLOCK_RATE) -> None:
        self.clock_rate = clock_rate
        self.packets = 0
        self.octets = 0
        self.rtcp_packets = 0
        self.dropped = 0
        self.jitter = 0.0  # in timestamp units, RFC 3550 A.8
        self.last_rtp = NEVER
        self.ssrc = -1
        self.seq: SequenceTracker | None = None
        self.transit = 0
        self.past_lost = 0  # loss of earlier SSRCs
        self.rtcp_malformed = 0  # relayed, but not a valid compound (RFC 3550 A.2)
        self.srtp_failed = 0  # dropped: SRTP/SRTCP authentication or replay failure
        # Dropped, by reason (what a hostile network sends; docs/security.md).
        self.stun_malformed = 0  # STUN that does not parse (RFC 8489 §5, §14)
        self.stun_refused = 0  # Binding requests not ours to answer (a stranger's)
        self.rtp_malformed = 0  # RTP whose lengths or payload do not add up, where read
        self.packet_errors = 0  # anything else a packet made raise (a bug: logged, rarely)
        # The latest report block about this direction (RFC 3550 §6.4.1), raw units.
        self.reported_ssrc = -1
        self.reported_lost = 0
        self.reported_past_lost = 0  # last cumulative loss reported for earlier SSRCs
        self.reported_fraction = 0
        self.reported_jitter = 0

    def on_rtp(self, seq: int, timestamp: int, ssrc: int, size: int, now: float) -> None:
        """One RTP packet of ``size`` octets arrived at ``now`` (seconds)."""
        self.packets += 1
        self.octets += size
        self.last_rtp = now
        arrival = int(now * self.clock_rate)
        tracker = self.seq
        if tracker is None or ssrc != self.ssrc:
            if tracker is not None:
                self.past_lost += tracker.lost
            self.seq = SequenceTracker(seq)
            self.ssrc = ssrc
            self.transit = arrival - timestamp
            return
        tracker.update(seq)
        # RFC 3550 A.8: D(i-1,i) = (Rj - Ri) - (Sj - Si), modulo the 32-bit timestamp.
        transit = arrival - timestamp
        d = (transit - self.transit + TS_HALF) % TS_MOD - TS_HALF
        self.transit = transit
        self.jitter += (abs(d) - self.jitter) / 16.0

    def on_report(self, block: ReportBlock) -> bool:
        """A receiver's report block; taken only when it is about the SSRC relayed here.

        Each figure is the latest one: cumulative loss is already cumulative
        per SSRC (RFC 3550 §6.4.1), so when the source changes the last
        figure for the old one is kept aside, as :attr:`past_lost` does.
        """
        if block.ssrc != self.ssrc:
            return False
        if block.ssrc != self.reported_ssrc:
            self.reported_past_lost += self.reported_lost
            self.reported_ssrc = block.ssrc
        self.reported_lost = block.cumulative_lost
        self.reported_fraction = block.fraction_lost
        self.reported_jitter = block.jitter
        return True

    @property
    def lost(self) -> int:
        return self.past_lost + (self.seq.lost if self.seq is not None else 0)

    def snapshot(self) -> DirectionStats:
        """A frozen copy for the control interface (jitters in milliseconds)."""
        return DirectionStats(
            packets=self.packets,
            octets=self.octets,
            lost=self.lost,
            jitter_ms=self.jitter * 1000.0 / self.clock_rate,
            rtcp_packets=self.rtcp_packets,
            dropped=self.dropped,
            reported_lost=self.reported_past_lost + self.reported_lost,
            reported_fraction_lost=self.reported_fraction / FRACTION_SCALE,
            reported_jitter_ms=self.reported_jitter * 1000.0 / self.clock_rate,
            rtcp_malformed=self.rtcp_malformed,
            srtp_failed=self.srtp_failed,
            stun_malformed=self.stun_malformed,
            stun_refused=self.stun_refused,
            rtp_malformed=self.rtp_malformed,
            packet_errors=self.packet_errors,
        )
