"""The SBC's own RTCP toward one leg of a transcoded stream (RFC 3550 §6).

A transcoded stream is two RTP sessions glued by a codec: toward each leg
the relay is the sender (its own SSRC, sequence numbers and timestamps,
:mod:`sbc.media.relay.transcoding`) and the receiver of what that leg
sends. The legs' own RTCP describes streams the other leg never sees, so
it is not relayed (:mod:`sbc.media.relay.rtcp_relay`); instead one
:class:`RtcpSender` per leg plays the RTCP participant RFC 3550 §6 expects.

Pure (sans-IO): times are passed in. ``now`` is the relay's monotonic
clock, ``wallclock`` the Unix time taken at the same instant (for the NTP
timestamp, RFC 3550 §4).

Each report is a compound packet (§6.1): an SR (§6.4.1; an RR, §6.4.2, until
we sent the leg any RTP) from the SSRC we send the leg, with

- sender info: the NTP time and the RTP timestamp of that same instant on
  our outgoing clock (extrapolated from the last audio packet we sent),
  and our packet and payload-octet counts;
- one report block about the SSRC the leg sends us, from the relay's
  :class:`~sbc.media.relay.stats.DirectionCounter` for that side: fraction
  lost since our previous report and cumulative loss (A.3), extended
  highest sequence number (A.1), interarrival jitter (A.8), and LSR/DLSR
  from the last SR the leg sent us (:meth:`RtcpSender.on_sender_report`);

then an SDES with our CNAME (§6.5.1; random per stream as RFC 7022
recommends). :meth:`RtcpSender.bye` adds a BYE (§6.6) when the stream ends.

Interval (§6.2, §6.3): with one sender and one receiver per session and
audio's few kbit/s, the bandwidth formula always gives less than the
5-second minimum, so the interval is that minimum (configurable), halved
for the first report (§6.2 "initial"), and each one randomised over
0.5-1.5 times it so that reports of many calls do not synchronise. Timer
reconsideration is left out: the membership never changes (two members).
"""

from __future__ import annotations

import base64
import random
import secrets
import struct
from collections.abc import Callable
from typing import Protocol

from sbc.media.relay.rtcp import BYE, FRACTION_SCALE, SDES, Report, ReportBlock, SenderInfo
from sbc.media.relay.rtp import VERSION_BITS
from sbc.media.relay.stats import DirectionCounter

MIN_INTERVAL = 5.0  # seconds, RFC 3550 §6.2
NTP_UNIX_OFFSET = 2_208_988_800  # seconds from 1900-01-01 (NTP) to 1970-01-01 (Unix)
NTP_FRACTION = 1 << 32
DLSR_UNIT = 65536  # DLSR counts 1/65536 s (RFC 3550 §6.4.1)
TS_MOD = 1 << 32
CNAME_ITEM = 1  # SDES item type (RFC 3550 §6.5.1)
CUMULATIVE_MAX = 0x7FFFFF  # 24-bit signed field (§6.4.1): clamped, not wrapped
CUMULATIVE_MIN = -0x800000

_HEADER = struct.Struct("!BBH")  # V/P/count, packet type, length in words minus one
_SSRC = struct.Struct("!I")


def ntp_timestamp(wallclock: float) -> int:
    """The 64-bit NTP timestamp (RFC 3550 §4) of a Unix time."""
    return int((wallclock + NTP_UNIX_OFFSET) * NTP_FRACTION) & (1 << 64) - 1


def ntp_middle(ntp: int) -> int:
    """The middle 32 bits of an NTP timestamp: what LSR carries (§6.4.1)."""
    return (ntp >> 16) & 0xFFFFFFFF


class SentStream(Protocol):
    """What we sent the leg (a :class:`~sbc.media.relay.transcoding.TranscodingDirection`)."""

    @property
    def ssrc(self) -> int: ...
    @property
    def sent_packets(self) -> int: ...
    @property
    def sent_octets(self) -> int: ...
    @property
    def last_timestamp(self) -> int: ...
    @property
    def last_sent_at(self) -> float | None: ...
    @property
    def clock_rate(self) -> int: ...


def rtp_timestamp_at(sent: SentStream, now: float) -> int:
    """Our outgoing RTP timestamp at ``now``: the last audio packet's, plus the
    time since it left on that clock (RFC 3550 §6.4.1: the same instant as the NTP)."""
    if sent.last_sent_at is None:
        return sent.last_timestamp
    elapsed = max(0.0, now - sent.last_sent_at)
    return (sent.last_timestamp + round(elapsed * sent.clock_rate)) % TS_MOD


def sdes_cname(ssrc: int, cname: str) -> bytes:
    """An SDES packet with one chunk: ``ssrc`` and its CNAME (RFC 3550 §6.5)."""
    text = cname.encode()
    if len(text) > 255:
        raise ValueError("a CNAME is at most 255 octets")
    chunk = _SSRC.pack(ssrc) + bytes((CNAME_ITEM, len(text))) + text
    chunk += bytes(4 - len(chunk) % 4)  # the null item ending the list, then to a word
    words = (_HEADER.size + len(chunk)) // 4 - 1
    return _HEADER.pack(VERSION_BITS | 1, SDES, words) + chunk


def bye(ssrc: int) -> bytes:
    """A BYE for ``ssrc`` with no reason (RFC 3550 §6.6)."""
    return _HEADER.pack(VERSION_BITS | 1, BYE, 1) + _SSRC.pack(ssrc)


def new_cname() -> str:
    """A random 96-bit CNAME, base64 (RFC 7022 §4.2): nothing about the host leaks."""
    return base64.b64encode(secrets.token_bytes(12)).decode()


class RtcpSender:
    """Our RTCP participant toward one leg: when to report and what to say."""

    __slots__ = (
        "_expected_prior",
        "_lsr",
        "_lsr_at",
        "_lsr_ssrc",
        "_prior_ssrc",
        "_random",
        "_received_prior",
        "cname",
        "due",
        "interval",
    )

    def __init__(
        self,
        now: float,
        interval: float = MIN_INTERVAL,
        rng: Callable[[], float] = random.random,
        cname: str | None = None,
    ) -> None:
        self.interval = interval
        self.cname = cname if cname is not None else new_cname()
        self._random = rng
        self._prior_ssrc = -1
        self._expected_prior = 0
        self._received_prior = 0
        self._lsr = 0
        self._lsr_at = 0.0
        self._lsr_ssrc = -1
        self.due = now + self._next_interval(initial=True)

    def _next_interval(self, *, initial: bool = False) -> float:
        base = self.interval / 2 if initial else self.interval
        return base * (0.5 + self._random())

    def is_due(self, now: float) -> bool:
        return now >= self.due

    def on_sender_report(self, ssrc: int, ntp: int, now: float) -> None:
        """The leg sent an SR at ``now``: its LSR/DLSR go in our next block."""
        self._lsr_ssrc = ssrc
        self._lsr = ntp_middle(ntp)
        self._lsr_at = now

    def report(
        self, now: float, wallclock: float, sent: SentStream, received: DirectionCounter
    ) -> bytes:
        """The compound (SR or RR, SDES CNAME) to send now; schedules the next one."""
        self.due = now + self._next_interval()
        blocks = () if (block := self._block(now, received)) is None else (block,)
        info = None
        if sent.sent_packets:
            info = SenderInfo(
                ntp_timestamp(wallclock),
                rtp_timestamp_at(sent, now),
                sent.sent_packets % TS_MOD,
                sent.sent_octets % TS_MOD,
            )
        report = Report(sent.ssrc, blocks, info).serialize()
        return report + sdes_cname(sent.ssrc, self.cname)

    def bye(
        self, now: float, wallclock: float, sent: SentStream, received: DirectionCounter
    ) -> bytes:
        """The last compound for our SSRC: a final report, the CNAME and a BYE (§6.6)."""
        return self.report(now, wallclock, sent, received) + bye(sent.ssrc)

    def _block(self, now: float, received: DirectionCounter) -> ReportBlock | None:
        """About the SSRC the leg sends us (RFC 3550 §6.4.1, A.3); None before any RTP."""
        tracker = received.seq
        if tracker is None:
            return None
        ssrc = received.ssrc
        if ssrc != self._prior_ssrc:  # a new source: its interval starts at its base
            self._prior_ssrc = ssrc
            self._expected_prior = self._received_prior = 0
        expected, count = tracker.expected, tracker.received
        expected_interval = expected - self._expected_prior
        lost_interval = expected_interval - (count - self._received_prior)
        self._expected_prior, self._received_prior = expected, count
        fraction = 0
        if expected_interval > 0 and lost_interval > 0:
            fraction = min(FRACTION_SCALE - 1, lost_interval * FRACTION_SCALE // expected_interval)
        lsr = dlsr = 0
        if self._lsr_ssrc == ssrc:
            lsr = self._lsr
            dlsr = min(0xFFFFFFFF, int((now - self._lsr_at) * DLSR_UNIT))
        return ReportBlock(
            ssrc=ssrc,
            fraction_lost=fraction,
            cumulative_lost=max(CUMULATIVE_MIN, min(CUMULATIVE_MAX, expected - count)),
            highest_sequence=(tracker.cycles + tracker.max_seq) % TS_MOD,
            jitter=int(received.jitter),
            last_sr=lsr,
            delay_since_last_sr=dlsr,
        )
