"""The in-process relay: asyncio sockets around the pure relay parts.

:class:`RelayEngine` implements :class:`~sbc.media.control.RelayControl`.
Every anchored stream has two sides; each side owns an RTP socket on its
``local`` endpoint and, unless rtcp-mux (RFC 5761), an RTCP socket on
``port + 1`` (RFC 3550 §11). A packet received on one side is relayed from
the *other* side's socket to the other peer's latched (else SDP) address, so
each peer only ever sees the SBC's own address for that leg.

Hot loop (one per ready socket): ``loop.add_reader`` wakes the drain, which
reads into one preallocated buffer with ``recvfrom_into`` until
``BlockingIOError`` (at most :data:`BATCH` packets per wake-up, to stay fair
to other sockets), reads the clock once, and does no logging, no allocation
beyond the unavoidable (source tuple, memoryview slice) and no dict lookups:
the reader is bound to a :class:`_Side` holding everything it needs. STUN
requests are answered on the socket they came in on (RFC 8489 §6.3); on a
side whose peer does ICE they are connectivity checks, answered as an
ICE-lite agent, and a nominated check (USE-CANDIDATE) latches that socket to
its source (RFC 8445 §7.3.1.5, :mod:`sbc.media.relay.stun`);
on a DTLS-SRTP side, DTLS records (RFC 7983) go to its handshake
(:mod:`sbc.media.relay.dtls_side`), and the SRTP path below refuses its
media until the keys exist; anything else is dropped and counted.
RTCP (about 1 % of packets) is relayed as it came, then read for its report
blocks (:mod:`sbc.media.relay.rtcp`): that parsing cost stays off the RTP path.

DTMF (:mod:`sbc.media.relay.events`): a side whose spec has ``dtmf_report``
gets a tap and is drained by the per-packet path, where telephone events from
it are consumed and reported through ``on_dtmf`` (its other traffic relayed
as usual); :meth:`RelayEngine.send_dtmf` injects a digit towards a side.

Inactivity (no RTP in either direction for ``inactivity_timeout`` seconds,
streams on hold excluded) is found by one periodic sweep, and reported once
per session through ``on_inactive``.

A transcoded stream (:mod:`sbc.media.relay.transcoding`) takes the SRTP slow
path too: its packets are decoded and re-encoded, its RTCP counted and dropped.

The stream model keeps sockets and latches per side so a later kernel fast
path can take over a latched plain-RTP stream while the sockets stay bound.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from contextlib import suppress

from sbc.media.control import DtmfCallback, Endpoint, SideSpec, StreamSpec, StreamStats
from sbc.media.relay import dtls_side
from sbc.media.relay.dtls_side import DtlsSide, is_dtls_record, may_handshake
from sbc.media.relay.events import DtmfInjector, DtmfTap
from sbc.media.relay.latch import NO_SSRC, Address, Latch, rtcp_destination
from sbc.media.relay.rtcp import Compound, RtcpError
from sbc.media.relay.rtp import (
    MARKER_BIT,
    PT_MASK,
    RTCP_HEADER_LENGTH,
    RTCP_PT_MAX,
    RTCP_PT_MIN,
    RTCP_SENDER_SSRC,
    RTP_HEADER_LENGTH,
    SEQ_TS_SSRC,
    VERSION_BITS,
    VERSION_MASK,
    pt_table,
)
from sbc.media.relay.stats import DEFAULT_CLOCK_RATE, DirectionCounter
from sbc.media.relay.stun import IceLite, answer_binding, answer_check, is_stun
from sbc.media.relay.transcoding import TranscodingDirection, receive_transcoded, transcoding_pair
from sbc.media.srtp import SrtpContext, SrtpError

log = logging.getLogger(__name__)

BATCH = 64  # packets drained per socket wake-up
BUFFER_SIZE = 65536  # one UDP datagram, whatever the MTU
DEFAULT_INACTIVITY_TIMEOUT = 60.0
DEFAULT_SWEEP_INTERVAL = 1.0

_unpack_rtp = SEQ_TS_SSRC.unpack_from
_unpack_rtcp_ssrc = RTCP_SENDER_SSRC.unpack_from


class _Shared:
    """What every drain needs: the receive buffer and the loop's clock."""

    __slots__ = ("buf", "time", "view")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.buf = bytearray(BUFFER_SIZE)
        self.view = memoryview(self.buf)
        self.time = loop.time


class _Side:
    """One leg's end of a stream: its sockets, latches, counters and pt map."""

    __slots__ = (
        "counter",
        "dtls",
        "dtmf",
        "dtmf_event",
        "ice",
        "local",
        "other",
        "pt_table",
        "rtcp",
        "rtcp_latch",
        "rtcp_mux",
        "rtp",
        "rtp_latch",
        "shared",
        "srtp",
        "transcode",
    )

    def __init__(self, shared: _Shared, spec: SideSpec, clock_rate: int) -> None:
        self.shared = shared
        self.local = spec.local
        self.rtcp_mux = spec.rtcp_mux
        self.rtp = _bind(spec.local)
        self.rtcp: socket.socket | None = None
        if not spec.rtcp_mux:
            try:
                self.rtcp = _bind(Endpoint(spec.local.host, spec.local.port + 1))
            except OSError:
                self.rtp.close()
                raise
        self.counter = DirectionCounter(clock_rate)
        self.rtp_latch = Latch()
        self.rtcp_latch = Latch()
        self.pt_table: bytes | None = None
        self.ice: IceLite | None = None
        self.srtp: SrtpContext | None = None
        self.transcode: TranscodingDirection | None = None  # what this side receives
        self.dtls: DtlsSide | None = None
        self.dtmf: DtmfTap | None = None  # set by the engine (it knows session and leg)
        self.dtmf_event: tuple[int, int] | None = None  # telephone-event number, clock
        self.other: _Side = self
        self.configure(spec)

    def configure(self, spec: SideSpec) -> None:
        """Apply SDP addresses, latching policy and pt map (sockets untouched)."""
        remote = (spec.remote.host, spec.remote.port) if spec.remote else None
        if spec.remote_rtcp is not None:
            remote_rtcp: Address | None = (spec.remote_rtcp.host, spec.remote_rtcp.port)
        elif spec.remote is not None and not spec.rtcp_mux:
            remote_rtcp = (spec.remote.host, spec.remote.port + 1)
        else:
            remote_rtcp = None
        self.rtp_latch.configure(remote, spec.allowed_sources, spec.latch_any)
        self.rtcp_latch.configure(remote_rtcp, spec.allowed_sources, spec.latch_any)
        self.pt_table = pt_table(spec.pt_map)
        self.ice = _ice_lite(spec)
        self.dtmf_event = None if spec.dtmf_pt is None else (spec.dtmf_pt, spec.dtmf_clock)
        now, destination = self.shared.time(), self.rtp_latch.destination
        self.dtls = dtls_side.configure(self.dtls, spec.dtls, self.rtp.sendto, now, destination)
        if self.dtls is not None:
            self.srtp = self.dtls.srtp  # refuses every packet until the handshake is done
        elif spec.srtp is None:
            self.srtp = None
        elif self.srtp is None or self.srtp.keys != spec.srtp:
            self.srtp = SrtpContext(spec.srtp)  # new keys (a rekey): new sessions

    def rtcp_out(self) -> tuple[socket.socket, Address | None]:
        """The socket and destination for RTCP sent to this side's peer."""
        if self.rtcp is None:
            return self.rtp, self.rtp_latch.destination
        return self.rtcp, rtcp_destination(self.rtcp_latch, self.rtp_latch)

    def sockets(self) -> list[socket.socket]:
        return [self.rtp] if self.rtcp is None else [self.rtp, self.rtcp]

    def close(self, loop: asyncio.AbstractEventLoop) -> None:
        for sock in self.sockets():
            loop.remove_reader(sock.fileno())
            sock.close()


def _ice_lite(spec: SideSpec) -> IceLite | None:
    """Our ICE-lite credentials towards this side, when its peer does ICE."""
    if spec.ice_ufrag is None or spec.ice_pwd is None:
        return None
    return IceLite(spec.ice_ufrag, spec.ice_pwd.encode(), spec.ice_remote_ufrag)


def _bind(local: Endpoint) -> socket.socket:
    family = socket.AF_INET6 if ":" in local.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.bind((local.host, local.port))
    except OSError:
        sock.close()
        raise
    return sock


def _drain_rtp(side: _Side) -> None:
    """Relay what is waiting on ``side``'s RTP socket (RTCP too when muxed)."""
    shared = side.shared
    buf = shared.buf
    view = shared.view
    recv = side.rtp.recvfrom_into
    now = shared.time()
    counter = side.counter
    latch = side.rtp_latch
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
        _drain_srtp(side, now)  # off the plain path: one test per wake-up
        return
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
                _relay_rtcp(side, view, n, source, latch)
                continue
            seq, timestamp, ssrc = _unpack_rtp(buf, 2)
            if (source != latch.latched or ssrc != latch.ssrc) and not latch.accept(source, ssrc):
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
            _answer_stun(side, side.rtp, bytes(buf[:n]), source, latch)
        elif n >= RTCP_HEADER_LENGTH and buf[0] & VERSION_MASK == VERSION_BITS:
            _relay_rtcp(side, view, n, source, latch)  # short RTCP (an empty RR)
        else:
            counter.dropped += 1


def _drain_srtp(side: _Side, now: float) -> None:
    """:func:`_drain_rtp` when either leg is SRTP (SDES or DTLS-SRTP, RFC 3711
    §3.3, §3.4), when this side's stream is transcoded, or when its telephone
    events are taken out (a DTMF tap).

    A packet from an SRTP leg is authenticated and decrypted before the
    latch sees it, so a forged packet never moves the latch; one that fails
    (authentication, replay) is dropped and counted in ``srtp_failed``.
    """
    buf = side.shared.buf
    view = side.shared.view
    recv = side.rtp.recvfrom_into
    counter = side.counter
    latch = side.rtp_latch
    other = side.other
    relay = _relay_srtp if side.transcode is None else _relay_transcoded
    for _ in range(BATCH):
        try:
            n, source = recv(buf)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return
        if n >= RTP_HEADER_LENGTH and buf[0] & VERSION_MASK == VERSION_BITS:
            if RTCP_PT_MIN <= buf[1] <= RTCP_PT_MAX:
                _relay_rtcp(side, view, n, source, latch)
                continue
            relay(side, other, bytes(view[:n]), source, now)
        elif is_stun(buf, n):
            _answer_stun(side, side.rtp, bytes(buf[:n]), source, latch)
        elif n >= RTCP_HEADER_LENGTH and buf[0] & VERSION_MASK == VERSION_BITS:
            _relay_rtcp(side, view, n, source, latch)
        elif (
            side.dtls is not None and n and is_dtls_record(buf[0]) and may_handshake(latch, source)
        ):
            side.srtp = side.dtls.receive(bytes(view[:n]), source, now)
        else:
            counter.dropped += 1


def _relay_srtp(side: _Side, other: _Side, packet: bytes, source: Address, now: float) -> None:
    """Unprotect (from an SRTP leg), relay, protect (to an SRTP leg) one RTP packet."""
    counter = side.counter
    size = len(packet)
    if side.srtp is not None:
        try:
            packet = side.srtp.inbound.unprotect(packet)
        except SrtpError:
            counter.srtp_failed += 1
            return
    seq, timestamp, ssrc = _unpack_rtp(packet, 2)
    latch = side.rtp_latch
    if (source != latch.latched or ssrc != latch.ssrc) and not latch.accept(source, ssrc):
        counter.dropped += 1
        return
    counter.on_rtp(seq, timestamp, ssrc, size, now)
    if side.dtmf is not None and side.dtmf.take(packet, now):
        return  # a digit: reported to signalling, never relayed
    destination = other.rtp_latch.destination
    if destination is None:
        return
    table = other.pt_table
    if table is not None:
        second = packet[1]
        packet = b"".join(
            (packet[:1], bytes(((second & MARKER_BIT) | table[second & PT_MASK],)), packet[2:])
        )
    try:
        if other.srtp is not None:
            packet = other.srtp.outbound.protect(packet)
        other.rtp.sendto(packet, destination)
    except (OSError, SrtpError):
        counter.dropped += 1


def _relay_transcoded(
    side: _Side, other: _Side, packet: bytes, source: Address, now: float
) -> None:
    """Send what one received packet became (:mod:`sbc.media.relay.transcoding`)."""
    out, destination = receive_transcoded(side, packet, source, now), other.rtp_latch.destination
    for converted in out:
        if destination is None:
            return
        try:
            other.rtp.sendto(converted, destination)
        except OSError:
            side.counter.dropped += 1


def _drain_rtcp(side: _Side) -> None:
    """Relay what is waiting on ``side``'s RTCP socket (no rtcp-mux)."""
    sock = side.rtcp
    if sock is None:
        return
    buf = side.shared.buf
    view = side.shared.view
    for _ in range(BATCH):
        try:
            n, source = sock.recvfrom_into(buf)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return
        if (
            n >= RTCP_HEADER_LENGTH
            and buf[0] & VERSION_MASK == VERSION_BITS
            and RTCP_PT_MIN <= buf[1] <= RTCP_PT_MAX
        ):
            _relay_rtcp(side, view, n, source, side.rtcp_latch)
        elif is_stun(buf, n):
            _answer_stun(side, sock, bytes(buf[:n]), source, side.rtcp_latch)
        else:
            side.counter.dropped += 1


def _relay_rtcp(side: _Side, view: memoryview, n: int, source: Address, latch: Latch) -> None:
    """Relay one RTCP packet (RFC 3550 §6) to the other side's peer."""
    counter = side.counter
    if latch is side.rtp_latch:  # muxed: follows the RTP latch, never moves it
        accepted = source == latch.latched or (latch.latched is None and latch.may_latch(source))
    else:
        accepted = latch.accept(source, _unpack_rtcp_ssrc(view, 4)[0])
    if not accepted:
        counter.dropped += 1
        return
    if side.transcode is not None:  # its reports describe what the other leg never sees
        counter.rtcp_packets += 1
        return
    if side.srtp is not None or side.other.srtp is not None:
        _relay_srtcp(side, bytes(view[:n]))
        return
    counter.rtcp_packets += 1
    sock, destination = side.other.rtcp_out()
    if destination is not None:
        try:
            sock.sendto(view[:n], destination)
        except OSError:
            counter.dropped += 1
    _read_reports(side, view, n)  # after sending: what is relayed never depends on it


def _relay_srtcp(side: _Side, packet: bytes) -> None:
    """Unprotect (from an SRTP leg), relay, protect (to an SRTP leg) one RTCP compound.

    RFC 3711 §3.4: SRTCP authentication is mandatory, so a failure drops it.
    """
    counter = side.counter
    if side.srtp is not None:
        try:
            packet = side.srtp.inbound.unprotect_rtcp(packet)
        except SrtpError:
            counter.srtp_failed += 1
            return
    counter.rtcp_packets += 1
    other = side.other
    sock, destination = other.rtcp_out()
    if destination is not None:
        try:
            out = packet if other.srtp is None else other.srtp.outbound.protect_rtcp(packet)
            sock.sendto(out, destination)
        except (OSError, SrtpError):
            counter.dropped += 1
    _read_reports(side, memoryview(packet), len(packet))


def _read_reports(side: _Side, view: memoryview, n: int) -> None:
    """Take the report blocks of an RTCP compound that ``side``'s peer sent.

    A peer's SR/RR blocks describe what that peer *receives* (RFC 3550
    §6.4.1), that is the RTP relayed from the other side: RTCP arriving on
    side A feeds side B's counter (``b_to_a``), and the reverse. Only blocks
    about the SSRC that counter relays are taken. A compound that is not
    valid RTCP (RFC 3550 A.2; SRTCP also fails, its blocks being encrypted)
    is counted on the side it came in on.
    """
    try:
        compound = Compound.parse(view, n)
    except RtcpError:
        side.counter.rtcp_malformed += 1
        return
    received = side.other.counter
    for report in compound.reports:
        for block in report.blocks:
            received.on_report(block)


def _answer_stun(
    side: _Side, sock: socket.socket, data: bytes, source: Address, latch: Latch
) -> None:
    """Answer a Binding request on ``sock``: a plain one, or an ICE check (RFC 8445 §7.3)."""
    if side.ice is None:
        response = answer_binding(data, source)
    else:
        answer = answer_check(data, source, side.ice)
        response = answer.response
        if answer.nominated:
            _nominate(latch, source)
    if response is None:
        side.counter.dropped += 1
        return
    try:
        sock.sendto(response, source)
    except OSError:
        side.counter.dropped += 1


def _nominate(latch: Latch, source: Address) -> None:
    """ICE nomination decides the path (RFC 8445 §8.1.1): media goes to ``source``.

    The check proved our ice-pwd, so the source need not be an allowed one;
    the next RTP from it sets the SSRC.
    """
    if latch.latched != source:
        latch.latched = source
        latch.ssrc = NO_SSRC
        latch.destination = source


class _Stream:
    """One anchored m= line: side A, side B and its hold state."""

    __slots__ = ("a", "b", "index", "on_hold", "since")

    def __init__(self, index: int, a: _Side, b: _Side, on_hold: bool, now: float) -> None:
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


def _side_of(stream: _Stream | None, leg: str) -> _Side | None:
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
    ) -> None:
        self._loop = loop if loop is not None else asyncio.get_running_loop()
        self._shared = _Shared(self._loop)
        self._on_inactive = on_inactive
        self._timeout = inactivity_timeout
        self._sweep_interval = sweep_interval
        self._clock_rate = clock_rate
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
            self._tap(stream)
            return
        current.a = self._reconfigure(current.a, stream.a)
        current.b = self._reconfigure(current.b, stream.b)
        current.a.other = current.b
        current.b.other = current.a
        current.a.transcode, current.b.transcode = transcoding_pair(
            stream.transcode, current.a.transcode, current.b.transcode
        )
        self._tap(stream)
        if current.on_hold and not stream.on_hold:
            current.since = now  # the inactivity clock restarts on resume
        current.on_hold = stream.on_hold

    def remove(self, session: str, index: int) -> None:
        """Close one stream's sockets; unknown streams are ignored."""
        streams = self._sessions.get(session)
        stream = streams.pop(index, None) if streams is not None else None
        if stream is not None:
            stream.a.close(self._loop)
            stream.b.close(self._loop)

    def delete(self, session: str) -> None:
        """Close every socket of ``session``; unknown sessions are ignored."""
        self._inactive.discard(session)
        self._injector.forget(session)
        for stream in self._sessions.pop(session, {}).values():
            stream.a.close(self._loop)
            stream.b.close(self._loop)

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

    def _open_side(self, spec: SideSpec) -> _Side:
        side = _Side(self._shared, spec, self._clock_rate)
        self._loop.add_reader(side.rtp.fileno(), _drain_rtp, side)
        if side.rtcp is not None:
            self._loop.add_reader(side.rtcp.fileno(), _drain_rtcp, side)
        return side

    def _reconfigure(self, side: _Side, spec: SideSpec) -> _Side:
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
        now = self._loop.time()
        for stream in (s for streams in self._sessions.values() for s in streams.values()):
            for tap in (stream.a.dtmf, stream.b.dtmf):
                if tap is not None:
                    tap.expire(now)  # a digit whose end packets were lost
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
