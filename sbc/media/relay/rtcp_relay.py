"""RTCP through the relay: relayed as it came, then read for its reports.

RTCP (RFC 3550 §6, about 1 % of the packets) reaches a side on its own
socket (:func:`drain_rtcp`, no rtcp-mux) or muxed with RTP (RFC 5761,
handed over by the RTP drains). :func:`relay_rtcp` checks its source
against the side's latch (a muxed packet follows the RTP latch and never
moves it; a separate RTCP socket latches on its own), relays it to the
other side's peer (:meth:`~sbc.media.relay.side.Side.rtcp_out`), and only
*after sending* parses its report blocks (:mod:`sbc.media.relay.rtcp`), so
the parsing cost and outcome never touch what is relayed.

SRTCP (RFC 3711 §3.4): from an SRTP leg a compound is authenticated and
decrypted first (authentication is mandatory: a failure drops it), and
protected again towards an SRTP leg.

Transcoded streams (:mod:`sbc.media.relay.transcoding`): a leg's reports
describe a stream the other leg never sees, so they are not relayed but
read (after SRTCP) for the relay's own RTCP toward that leg
(:mod:`sbc.media.relay.rtcp_sender`): its SRs give LSR/DLSR, and its
blocks about the SSRC we send it are that direction's ``reported_*``
figures. :func:`send_own_report` sends our compound to a side's peer,
protected as SRTCP for an SRTP leg; the engine's sweep decides when.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import replace

from sbc.media.relay.latch import Address, Latch
from sbc.media.relay.rtcp import Compound, RtcpError
from sbc.media.relay.rtp import (
    RTCP_HEADER_LENGTH,
    RTCP_PT_MAX,
    RTCP_PT_MIN,
    RTCP_SENDER_SSRC,
    VERSION_BITS,
    VERSION_MASK,
)
from sbc.media.relay.side import BATCH, Side
from sbc.media.relay.stun import is_stun
from sbc.media.relay.stun_answer import answer_stun
from sbc.media.relay.transcoding import TranscodingDirection
from sbc.media.srtp import SrtpError

_unpack_rtcp_ssrc = RTCP_SENDER_SSRC.unpack_from


def drain_rtcp(side: Side) -> None:
    """Relay what is waiting on ``side``'s RTCP socket (no rtcp-mux); what a
    packet makes raise is :meth:`~sbc.media.relay.side.Side.fault`."""
    sock = side.rtcp
    if sock is None:
        return
    buf = side.shared.buf
    view = side.shared.view
    try:
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
                relay_rtcp(side, view, n, source, side.rtcp_latch)
            elif is_stun(buf, n):
                answer_stun(side, sock, bytes(buf[:n]), source, side.rtcp_latch)
            else:
                side.counter.dropped += 1
    except Exception as error:  # one packet's: dropped and counted, the reader lives
        side.fault(error)


def relay_rtcp(side: Side, view: memoryview, n: int, source: Address, latch: Latch) -> None:
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
        _take_own_reports(side, bytes(view[:n]))
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


def _relay_srtcp(side: Side, packet: bytes) -> None:
    """Unprotect (from an SRTP leg), relay, protect (to an SRTP leg) one RTCP compound.

    RFC 3711 §3.4: SRTCP authentication is mandatory, so a failure drops it.
    """
    unprotected = side.unprotect(packet, rtcp=True)
    if unprotected is None:
        return
    packet = unprotected
    counter = side.counter
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


def _read_reports(side: Side, view: memoryview, n: int) -> None:
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


def _take_own_reports(side: Side, packet: bytes) -> None:
    """Read a transcoded leg's RTCP for our own reports; nothing is relayed."""
    plain = side.unprotect(packet, rtcp=True)
    if plain is None:
        return  # SRTCP authentication failed: counted by the side
    side.counter.rtcp_packets += 1
    try:
        compound = Compound.parse(plain)
    except RtcpError:
        side.counter.rtcp_malformed += 1
        return
    now = side.shared.time()
    ours = side.other.transcode  # what we send this leg
    sent = side.other.counter
    for report in compound.reports:
        if report.sender_info is not None and side.reporter is not None:
            side.reporter.on_sender_report(report.ssrc, report.sender_info.ntp_timestamp, now)
        for block in report.blocks:
            if ours is not None and block.ssrc == ours.ssrc:  # about our SSRC: that direction's
                sent.on_report(replace(block, ssrc=sent.ssrc))


def send_own_report(
    side: Side,
    now: float,
    wallclock: float,
    *,
    final: bool = False,
    sent: TranscodingDirection | None = None,
) -> None:
    """Our RTCP compound (with a BYE when ``final``) to ``side``'s peer, when
    the stream toward it is transcoded (RFC 3550 §6; SRTCP, RFC 3711 §3.4);
    ``sent`` is the direction it speaks for, the current one by default."""
    reporter = side.reporter
    sent = side.other.transcode if sent is None else sent
    sock, destination = side.rtcp_out()
    if reporter is None or sent is None or destination is None:
        return  # not transcoded, or the leg's SDP is not known yet
    if final:
        packet = reporter.bye(now, wallclock, sent, side.counter)
    else:
        packet = reporter.report(now, wallclock, sent, side.counter)
    with suppress(OSError, SrtpError):  # a lost report: the next one says it all again
        if side.srtp is not None:
            packet = side.srtp.outbound.protect_rtcp(packet)
        sock.sendto(packet, destination)
