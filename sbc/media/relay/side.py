"""One side of a relayed stream: its sockets, latches, counters and keys.

A stream has two :class:`Side` values, one per leg, each bound to the
other (``other``). A side owns the RTP socket on its ``local`` endpoint and,
unless rtcp-mux (RFC 5761), an RTCP socket on ``port + 1`` (RFC 3550 §11);
what it receives is relayed from the *other* side's socket. Everything a
drain needs hangs off the side (latches, payload-type table, SRTP context,
DTLS handshake, transcoder, DTMF tap, our own RTCP reporter for a transcoded
stream), so the hot loop does no dict lookups.

:meth:`Side.configure` applies a new :class:`~sbc.media.control.SideSpec`
without touching the sockets: SDP addresses and latching policy, the pt
map, ICE-lite credentials (RFC 8445 §2.5), and the SRTP keys, whose context
is replaced only when they change (a rekey), or taken from
the DTLS-SRTP handshake (RFC 5764), which refuses media until it is done.

:class:`Shared` is what every drain of an engine shares: one receive buffer,
the loop's clock and the :class:`~sbc.media.relay.faults.FaultLog`;
:data:`BATCH` bounds every drain.
"""

from __future__ import annotations

import asyncio
import socket

from sbc.media.control import Endpoint, SideSpec
from sbc.media.relay import dtls_side
from sbc.media.relay.dtls_side import DtlsSide
from sbc.media.relay.events import DtmfTap
from sbc.media.relay.faults import FaultLog
from sbc.media.relay.latch import Address, Latch, rtcp_destination
from sbc.media.relay.rtcp_sender import RtcpSender
from sbc.media.relay.rtp import pt_table
from sbc.media.relay.stats import DirectionCounter
from sbc.media.relay.stun import IceLite
from sbc.media.relay.transcoding import TranscodingDirection
from sbc.media.srtp import SrtpContext, SrtpError

BATCH = 64  # packets drained per socket wake-up (fair to the other sockets)
BUFFER_SIZE = 65536  # one UDP datagram, whatever the MTU


class Shared:
    """What every drain needs: the receive buffer, the loop's clock, and the
    log of packets whose handling raised."""

    __slots__ = ("buf", "faults", "time", "view")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.buf = bytearray(BUFFER_SIZE)
        self.view = memoryview(self.buf)
        self.time = loop.time
        self.faults = FaultLog()


class Side:
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
        "reporter",
        "rtcp",
        "rtcp_latch",
        "rtcp_mux",
        "rtp",
        "rtp_latch",
        "shared",
        "srtp",
        "transcode",
    )

    def __init__(self, shared: Shared, spec: SideSpec, clock_rate: int) -> None:
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
        self.reporter: RtcpSender | None = None  # our own RTCP to the peer (transcoded only)
        self.dtmf: DtmfTap | None = None  # set by the engine (it knows session and leg)
        self.dtmf_event: tuple[int, int] | None = None  # telephone-event number, clock
        self.other: Side = self
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

    def unprotect(self, packet: bytes, *, rtcp: bool = False) -> bytes | None:
        """``packet`` from this side's peer without its SRTP (RFC 3711 §3.3) or
        SRTCP (§3.4) protection, as it is from a plain leg; ``None``, counted in
        ``srtp_failed``, when authentication or the replay check fails."""
        if self.srtp is None:
            return packet
        try:
            if rtcp:
                return self.srtp.inbound.unprotect_rtcp(packet)
            return self.srtp.inbound.unprotect(packet)
        except SrtpError:
            self.counter.srtp_failed += 1
            return None

    def fault(self, error: Exception) -> None:
        """A packet made a drain raise: it is dropped, counted in ``packet_errors``
        and logged at most once a minute (:mod:`sbc.media.relay.faults`); the
        packets still queued are read at the next wake-up (the socket stays readable)."""
        self.counter.packet_errors += 1
        self.shared.faults.record(error, self.shared.time())

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
