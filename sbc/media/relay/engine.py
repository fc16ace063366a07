"""The in-process relay: asyncio sockets around the pure relay parts.

:class:`RelayEngine` implements :class:`~sbc.media.control.RelayControl`.
Every anchored stream has two sides; each side owns an RTP socket on its
``local`` endpoint and, unless rtcp-mux (RFC 5761), an RTCP socket on
``port + 1`` (RFC 3550 §11). A packet received on one side is relayed from
the *other* side's socket to the other peer's latched (else SDP) address, so
each peer only ever sees the SBC's own address for that leg.

Hot loop (one per ready socket, :func:`_drain_rtp`): ``loop.add_reader``
wakes the drain, which reads into one preallocated buffer with
``recvfrom_into`` until ``BlockingIOError`` (at most
:data:`~sbc.media.relay.side.BATCH` packets per wake-up, to stay fair to
other sockets), reads the clock once, and does no logging, no allocation
beyond the unavoidable (source tuple, memoryview slice) and no dict lookups:
the reader is bound to a :class:`~sbc.media.relay.side.Side` holding
everything it needs. What is not plain RTP leaves the hot loop:

- STUN requests are answered on the socket they came in on, as plain
  Bindings or ICE-lite checks (:mod:`sbc.media.relay.stun_answer`);
- RTCP (about 1 % of packets) is relayed as it came, then read for its
  report blocks (:mod:`sbc.media.relay.rtcp_relay`): that parsing cost
  stays off the RTP path;
- a stream with SRTP or DTLS-SRTP on either leg, a transcoded side or a
  DTMF-tapped side is drained by the slow path
  (:mod:`sbc.media.relay.slow_path`), chosen by one test per wake-up;
- anything else is dropped and counted.

Anyone may send anything to a relay port: every parser on the way refuses
bad bytes with a counted reason (``stun_malformed``, ``stun_refused``,
``rtp_malformed``, ``rtcp_malformed``, ``srtp_failed`` in the stream's
stats), and each reader catches what a packet still makes raise
(:meth:`~sbc.media.relay.side.Side.fault`): that packet is dropped and
counted (``packet_errors``), the reader lives on, and the log gets at most
one line a minute about it.

DTMF (:mod:`sbc.media.relay.events`): a side whose spec has ``dtmf_report``
gets a tap, and telephone events from it are reported through ``on_dtmf``
instead of relayed; :meth:`RelayEngine.send_dtmf` injects a digit towards a
side.

Transcoded streams get the relay's own RTCP toward each leg (RFC 3550 §6,
:mod:`sbc.media.relay.rtcp_sender`): each side of one holds a reporter,
and the sweep sends what is due (SR, SDES CNAME; a BYE when the stream
goes), every ``rtcp_interval`` seconds randomised, at sweep granularity.

Inactivity (no RTP in either direction for ``inactivity_timeout`` seconds,
streams on hold excluded) is found by one periodic sweep, and reported once
per session through ``on_inactive``.

The stream model keeps sockets and latches per side so a later kernel fast
path can take over a latched plain-RTP stream while the sockets stay bound.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from contextlib import suppress

from sbc.media.control import DtmfCallback, Endpoint, SideSpec, StreamSpec, StreamStats
from sbc.media.relay.events import DtmfInjector, DtmfTap
from sbc.media.relay.latch import Address
from sbc.media.relay.rtcp_relay import drain_rtcp, relay_rtcp, send_own_report
from sbc.media.relay.rtcp_sender import MIN_INTERVAL, RtcpSender
from sbc.media.relay.rtp import (
    MARKER_BIT,
    PT_MASK,
    RTCP_HEADER_LENGTH,
    RTCP_PT_MAX,
    RTCP_PT_MIN,
    RTP_HEADER_LENGTH,
    SEQ_TS_SSRC,
    VERSION_BITS,
    VERSION_MASK,
)
from sbc.media.relay.side import BATCH, Shared, Side
from sbc.media.relay.slow_path import drain_slow
from sbc.media.relay.stats import DEFAULT_CLOCK_RATE
from sbc.media.relay.stun import is_stun
from sbc.media.relay.stun_answer import answer_stun
from sbc.media.relay.transcoding import TranscodingDirection, transcoding_pair
from sbc.media.srtp import SrtpError

log = logging.getLogger(__name__)

DEFAULT_INACTIVITY_TIMEOUT = 60.0
DEFAULT_SWEEP_INTERVAL = 1.0

_unpack_rtp = SEQ_TS_SSRC.unpack_from


def _drain_rtp(side: Side) -> None:
    """Relay what is waiting on ``side``'s RTP socket (RTCP too when muxed).

    Whatever a packet makes raise drops that packet only (:meth:`Side.fault`);
    the next wake-up reads on. The try costs nothing until something raises
    (zero-cost exceptions), so the hot loop is as fast as without it.
    """
    shared = side.shared
    buf = shared.buf
    view = shared.view
    recv = side.rtp.recvfrom_into
    now = shared.time()
    counter = side.counter
    latch = side.rtp_latch
    accept = latch.accept
    other = side.other
    out = other.rtp
    peer = other.rtp_latch
    table = other.pt_table
    if (
        side.srtp is not None
        or other.srtp is not None
        or side.transcode is not None
        or side.dtmf is not None
    ):
        drain_slow(side, now)  # off the plain path: one test per wake-up
        return
    try:
        for _ in range(BATCH):
            try:
                n, source = recv(buf)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # a queued ICMP error; the socket stays readable if more is waiting
            if n >= RTP_HEADER_LENGTH and buf[0] & VERSION_MASK == VERSION_BITS:
                second = buf[1]
                if RTCP_PT_MIN <= second <= RTCP_PT_MAX:
                    relay_rtcp(side, view, n, source, latch)
                    continue
                seq, timestamp, ssrc = _unpack_rtp(buf, 2)
                if (source != latch.latched or ssrc != latch.ssrc) and not accept(source, ssrc):
                    counter.dropped += 1
                    continue
                counter.on_rtp(seq, timestamp, ssrc, n, now)
                destination = peer.destination
                if destination is None:
                    continue  # the other leg's SDP is not known yet
                if table is not None:
                    buf[1] = (second & MARKER_BIT) | table[second & PT_MASK]
                try:
                    out.sendto(view[:n], destination)
                except OSError:
                    counter.dropped += 1
            elif is_stun(buf, n):
                answer_stun(side, side.rtp, bytes(buf[:n]), source, latch)
            elif n >= RTCP_HEADER_LENGTH and buf[0] & VERSION_MASK == VERSION_BITS:
                relay_rtcp(side, view, n, source, latch)  # short RTCP (an empty RR)
            else:
                counter.dropped += 1
    except Exception as error:  # a bug or an unforeseen input: never the reader's end
        side.fault(error)


class _Stream:
    """One anchored m= line: side A, side B and its hold state."""

    __slots__ = ("a", "b", "index", "on_hold", "since")

    def __init__(self, index: int, a: Side, b: Side, on_hold: bool, now: float) -> None:
        self.index = index
        self.a = a
        self.b = b
        a.other = b
        b.other = a
        self.on_hold = on_hold
        self.since = now  # activity baseline: creation, or coming off hold

    def last_activity(self) -> float:
        return max(self.since, self.a.counter.last_rtp, self.b.counter.last_rtp)

    def snapshot(self, now: float) -> StreamStats:
        return StreamStats(
            index=self.index,
            a_to_b=self.a.counter.snapshot(),
            b_to_a=self.b.counter.snapshot(),
            latched_a=_endpoint(self.a.rtp_latch.latched),
            latched_b=_endpoint(self.b.rtp_latch.latched),
            idle_s=max(0.0, now - self.last_activity()),
            dtls_a=self.a.dtls.state if self.a.dtls is not None else "",
            dtls_b=self.b.dtls.state if self.b.dtls is not None else "",
        )

    def poll_dtls(self, now: float) -> None:
        """DTLS retransmissions and client starts (RFC 6347 §4.2.4), from the sweep."""
        for side in (self.a, self.b):
            if side.dtls is not None:
                side.dtls.poll(now, side.rtp_latch.destination)


def _side_of(stream: _Stream | None, leg: str) -> Side | None:
    if stream is None:
        return None
    return stream.a if leg == "a" else stream.b


def _endpoint(address: Address | None) -> Endpoint | None:
    return None if address is None else Endpoint(address[0], address[1])


class RelayEngine:
    """In-process :class:`~sbc.media.control.RelayControl` on the running loop.

    ``on_inactive(session)`` is called once per session whose streams (those
    not on hold) saw no RTP for ``inactivity_timeout`` seconds.
    """

    def __init__(
        self,
        on_inactive: Callable[[str], None] | None = None,
        inactivity_timeout: float = DEFAULT_INACTIVITY_TIMEOUT,
        *,
        sweep_interval: float = DEFAULT_SWEEP_INTERVAL,
        clock_rate: int = DEFAULT_CLOCK_RATE,
        loop: asyncio.AbstractEventLoop | None = None,
        on_dtmf: DtmfCallback | None = None,
        rtcp_interval: float = MIN_INTERVAL,
    ) -> None:
        self._loop = loop if loop is not None else asyncio.get_running_loop()
        self._shared = Shared(self._loop)
        self._on_inactive = on_inactive
        self._timeout = inactivity_timeout
        self._sweep_interval = sweep_interval
        self._clock_rate = clock_rate
        self._rtcp_interval = rtcp_interval  # our own RTCP on transcoded streams
        self._sessions: dict[str, dict[int, _Stream]] = {}
        self._inactive: set[str] = set()  # already reported
        self._on_dtmf = on_dtmf
        self._injector = DtmfInjector(self._loop.time, self._loop.call_later, self._inject)
        self._sweeper: asyncio.TimerHandle | None = self._loop.call_later(
            sweep_interval, self._sweep
        )

    # -- RelayControl ---------------------------------------------------------

    def update(self, stream: StreamSpec) -> None:
        """Create or change a stream; sockets are bound once and kept.

        Raises :class:`OSError` when a local endpoint cannot be bound.
        """
        streams = self._sessions.setdefault(stream.session, {})
        current = streams.get(stream.index)
        now = self._loop.time()
        if current is None:
            a = self._open_side(stream.a)
            try:
                b = self._open_side(stream.b)
            except OSError:
                a.close(self._loop)
                if not streams:
                    del self._sessions[stream.session]
                raise
            current = streams[stream.index] = _Stream(stream.index, a, b, stream.on_hold, now)
            current.a.transcode, current.b.transcode = transcoding_pair(
                stream.transcode, current.a.transcode, current.b.transcode
            )
            self._own_rtcp(current, now)
            self._tap(stream)
            return
        current.a = self._reconfigure(current.a, stream.a)
        current.b = self._reconfigure(current.b, stream.b)
        current.a.other = current.b
        current.b.other = current.a
        sent_before = (current.b.transcode, current.a.transcode)  # to leg A, to leg B
        current.a.transcode, current.b.transcode = transcoding_pair(
            stream.transcode, current.a.transcode, current.b.transcode
        )
        self._own_rtcp(current, now, sent_before)
        self._tap(stream)
        if current.on_hold and not stream.on_hold:
            current.since = now  # the inactivity clock restarts on resume
        current.on_hold = stream.on_hold

    def remove(self, session: str, index: int) -> None:
        """Close one stream's sockets; unknown streams are ignored."""
        streams = self._sessions.get(session)
        stream = streams.pop(index, None) if streams is not None else None
        if stream is not None:
            self._close(stream)

    def delete(self, session: str) -> None:
        """Close every socket of ``session``; unknown sessions are ignored."""
        self._inactive.discard(session)
        self._injector.forget(session)
        for stream in self._sessions.pop(session, {}).values():
            self._close(stream)

    def stats(self, session: str) -> list[StreamStats]:
        now = self._loop.time()
        streams = self._sessions.get(session, {})
        return [streams[index].snapshot(now) for index in sorted(streams)]

    def send_dtmf(self, session: str, index: int, leg: str, digit: str, duration_ms: int) -> None:
        """Inject ``digit`` towards ``leg`` as RFC 4733 events (:class:`DtmfInjector`)."""
        stream = self._sessions.get(session, {}).get(index)
        side = _side_of(stream, leg)
        if side is None or side.dtmf_event is None:
            return  # the anchor only asks for a leg that negotiated telephone-event
        self._injector.send((session, index, leg), side.dtmf_event, (digit, duration_ms))

    # -- beyond the contract --------------------------------------------------

    def sessions(self) -> list[str]:
        return list(self._sessions)

    def all_stats(self) -> dict[str, list[StreamStats]]:
        """Statistics of every session (what a worker pushes to its parent)."""
        return {session: self.stats(session) for session in self._sessions}

    def close(self) -> None:
        """Delete every session and stop the sweep."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for session in list(self._sessions):
            self.delete(session)

    # -- internals ------------------------------------------------------------

    def _open_side(self, spec: SideSpec) -> Side:
        side = Side(self._shared, spec, self._clock_rate)
        self._loop.add_reader(side.rtp.fileno(), _drain_rtp, side)
        if side.rtcp is not None:
            self._loop.add_reader(side.rtcp.fileno(), drain_rtcp, side)
        return side

    def _reconfigure(self, side: Side, spec: SideSpec) -> Side:
        if spec.local == side.local and spec.rtcp_mux == side.rtcp_mux:
            side.configure(spec)
            return side
        if spec.local == side.local:
            side.close(self._loop)  # rtcp-mux changed: free the port before binding it again
        fresh = self._open_side(spec)  # moved or changed rtcp-mux: rebind
        fresh.counter = side.counter
        if spec.local != side.local:
            side.close(self._loop)
        return fresh

    def _own_rtcp(
        self,
        stream: _Stream,
        now: float,
        sent_before: tuple[TranscodingDirection | None, TranscodingDirection | None] = (None, None),
    ) -> None:
        """A reporter toward each leg of a transcoded stream (kept while it stays so),
        and receive jitter counted in the leg's own clock units, as its block needs.

        A direction rebuilt or gone (a re-INVITE changed the codecs) takes its
        SSRC with it: that leg gets a BYE for the old one (RFC 3550 §8.2)."""
        for side, before in zip((stream.a, stream.b), sent_before, strict=True):
            if before is not None and before is not side.other.transcode:
                send_own_report(side, now, time.time(), final=True, sent=before)
            if side.other.transcode is None:
                side.reporter = None
            elif side.reporter is None:
                side.reporter = RtcpSender(now, self._rtcp_interval)
            if side.transcode is not None:
                side.counter.clock_rate = side.transcode.source_clock_rate
            else:
                side.counter.clock_rate = self._clock_rate

    def _close(self, stream: _Stream) -> None:
        """Close a stream's sockets, after our BYE toward each transcoded leg (RFC 3550 §6.6)."""
        now, wallclock = self._loop.time(), time.time()
        for side in (stream.a, stream.b):
            send_own_report(side, now, wallclock, final=True)
            side.close(self._loop)

    def _tap(self, spec: StreamSpec) -> None:
        """Give each side its DTMF tap when its spec asks for one (kept while unchanged)."""
        stream = self._sessions[spec.session][spec.index]
        stream.a.dtmf = DtmfTap.renew(stream.a.dtmf, spec.a, (spec.session, "a"), self._on_dtmf)
        stream.b.dtmf = DtmfTap.renew(stream.b.dtmf, spec.b, (spec.session, "b"), self._on_dtmf)

    def _inject(self, session: str, index: int, leg: str, packet: bytes) -> None:
        """One injected packet to ``leg``'s peer, if the stream is still there."""
        side = _side_of(self._sessions.get(session, {}).get(index), leg)
        destination = side.rtp_latch.destination if side is not None else None
        if side is None or destination is None:
            return
        with suppress(OSError, SrtpError):  # a lost digit packet; the end repeats
            side.rtp.sendto(
                packet if side.srtp is None else side.srtp.outbound.protect(packet), destination
            )

    def _sweep(self) -> None:
        self._sweeper = self._loop.call_later(self._sweep_interval, self._sweep)
        now, wallclock = self._loop.time(), time.time()
        for stream in (s for streams in self._sessions.values() for s in streams.values()):
            for side in (stream.a, stream.b):
                if side.dtmf is not None:
                    side.dtmf.expire(now)  # a digit whose end packets were lost
                if side.reporter is not None and side.reporter.is_due(now):
                    send_own_report(side, now, wallclock)
        for session, streams in list(self._sessions.items()):
            for stream in streams.values():
                stream.poll_dtls(now)
            if session in self._inactive:
                continue
            active = [s.last_activity() for s in streams.values() if not s.on_hold]
            if active and now - max(active) >= self._timeout:
                self._inactive.add(session)
                self._report_inactive(session)

    def _report_inactive(self, session: str) -> None:
        if self._on_inactive is None:
            return
        try:
            self._on_inactive(session)
        except Exception:
            log.exception("on_inactive failed for session %s", session)
