"""The relay's slow path: SRTP, DTLS-SRTP, transcoded and DTMF-tapped sides.

The plain-RTP drain (:func:`sbc.media.relay.engine._drain_rtp`) tests once
per wake-up whether either side of the stream needs more than a header
rewrite, and hands the whole wake-up to :func:`drain_slow` when one does:

- SRTP on either leg (SDES, or keys from DTLS-SRTP, RFC 3711 §3.3): a
  packet from an SRTP leg is unprotected *before* the latch sees it, so a
  forged packet never moves the latch; one towards an SRTP leg is
  protected after the pt rewrite.
- DTLS records (RFC 7983 demultiplexing) go to the side's handshake
  (:mod:`sbc.media.relay.dtls_side`), whose SRTP context refuses media
  until the keys exist.
- A transcoded side (:mod:`sbc.media.relay.transcoding`): what one packet
  becomes (zero or more packets) is sent to the other leg.
- A DTMF tap (:mod:`sbc.media.relay.events`): telephone events are
  reported, never relayed; the side's other traffic goes as usual.

A packet whose RTP the DTMF tap or the transcoder cannot read (lengths
that do not add up, a payload the decoder refuses) raises ``ValueError``
there: it is dropped and counted in ``rtp_malformed``; anything else a
packet makes raise drops that packet (:meth:`~sbc.media.relay.side.Side.fault`).

Every packet is copied out of the shared buffer (``bytes``): libsrtp and
the transcoder need their own, and this path is not the hot one.
"""

from __future__ import annotations

from sbc.media.relay.dtls_side import is_dtls_record, may_handshake
from sbc.media.relay.latch import Address
from sbc.media.relay.rtcp_relay import relay_rtcp
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
from sbc.media.relay.side import BATCH, Side
from sbc.media.relay.stun import is_stun
from sbc.media.relay.stun_answer import answer_stun
from sbc.media.relay.transcoding import receive_transcoded
from sbc.media.srtp import SrtpError

_unpack_rtp = SEQ_TS_SSRC.unpack_from


def drain_slow(side: Side, now: float) -> None:
    """The RTP drain when either leg is SRTP (SDES or DTLS-SRTP, RFC 3711
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
        try:
            if n >= RTP_HEADER_LENGTH and buf[0] & VERSION_MASK == VERSION_BITS:
                if RTCP_PT_MIN <= buf[1] <= RTCP_PT_MAX:
                    relay_rtcp(side, view, n, source, latch)
                    continue
                try:
                    relay(side, other, bytes(view[:n]), source, now)
                except ValueError:  # lengths or a payload that do not add up (tap, transcoder)
                    counter.rtp_malformed += 1
            elif is_stun(buf, n):
                answer_stun(side, side.rtp, bytes(buf[:n]), source, latch)
            elif n >= RTCP_HEADER_LENGTH and buf[0] & VERSION_MASK == VERSION_BITS:
                relay_rtcp(side, view, n, source, latch)
            elif side.dtls is not None and n and is_dtls_record(buf[0]):
                if may_handshake(latch, source):
                    side.srtp = side.dtls.receive(bytes(view[:n]), source, now)
                else:
                    counter.dropped += 1
            else:
                counter.dropped += 1
        except Exception as error:  # this packet only: dropped, counted, the drain goes on
            side.fault(error)


def _relay_srtp(side: Side, other: Side, packet: bytes, source: Address, now: float) -> None:
    """Unprotect (from an SRTP leg), relay, protect (to an SRTP leg) one RTP packet."""
    counter = side.counter
    size = len(packet)
    unprotected = side.unprotect(packet)
    if unprotected is None:
        return
    packet = unprotected
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


def _relay_transcoded(side: Side, other: Side, packet: bytes, source: Address, now: float) -> None:
    """Send what one received packet became (:mod:`sbc.media.relay.transcoding`)."""
    out = receive_transcoded(side, packet, source, now)
    destination = other.rtp_latch.destination
    if destination is None:  # the far leg's address is not known yet (out is [] then)
        return
    for converted in out:
        try:
            other.rtp.sendto(converted, destination)
        except OSError:
            side.counter.dropped += 1
