"""Transcoded streams in the relay: decode what one leg sends, encode what the other expects.

A stream whose legs share no codec carries a
:class:`~sbc.media.control.TranscodeSpec`; each side of it (in
:mod:`sbc.media.relay.side`) then holds a :class:`TranscodingDirection`
for the packets it receives, and its RTP socket is drained by the relay's
slow path (:mod:`sbc.media.relay.slow_path`), which calls
:func:`receive_transcoded` per packet and sends what it returns instead of
the packet itself (pure: no sockets here).
The plain hot path never sees these streams.

Per packet (RFC 3550 §5.1 header, RFC 3711 for SRTP legs):

1. From an SRTP leg: authenticate and decrypt first, so a forged packet
   never moves the latch (as for relayed SRTP).
2. Latching and receive statistics work on the packet as received; a
   side whose telephone events go to signalling as digits (a DTMF tap,
   :mod:`sbc.media.relay.events`) has them taken out here, as when relayed.
3. The payload (after CSRCs, header extension and padding, RFC 3550
   §5.1, §5.3.1) goes to the :class:`~sbc.media.transcode.Transcoder` if
   its payload type is the source codec's; a telephone event (RFC 4733)
   goes through ``feed_event`` and leaves with the destination leg's event
   payload type and the marker bit it came with; anything else (comfort
   noise, another codec) is dropped: the far leg could not decode it. A
   packet whose lengths do not add up, or whose payload the decoder
   refuses, raises :class:`ValueError` (the slow path counts it in
   ``rtp_malformed``).
4. Each payload out gets our own RTP header: our SSRC (random, one per
   direction, RFC 3550 §8), our sequence numbers (random start, +1 per
   packet), the transcoder's timestamps on the destination clock, and the
   marker bit on the first audio packet (start of a talkspurt, RFC 3551 §4.1).
   Then it is protected for an SRTP leg and sent.

RTCP of a transcoded stream is not relayed: a sender report describes an
SSRC, a timeline and octet counts the other leg never sees (ours differ), so
relaying it would mislead that leg's statistics. The relay sends its own
instead (:mod:`sbc.media.relay.rtcp_sender`), from the figures each
direction keeps here: packets and payload octets sent, and the RTP
timestamp and time of the last audio packet on the destination clock.

Transcoders are built here, in the relay's process (a worker receives only
the picklable spec), and rebuilt only when the spec changes.
"""

from __future__ import annotations

import secrets
import struct
from typing import TYPE_CHECKING, Protocol

from sbc.media.codec_negotiation import ADDED_RTPMAP
from sbc.media.control import TranscodeDirection, TranscodeSpec
from sbc.media.relay.latch import Address, Latch
from sbc.media.relay.rtp import (
    MARKER_BIT,
    PT_MASK,
    SEQ_TS_SSRC,
    VERSION_BITS,
    rtp_payload,
)
from sbc.media.relay.stats import DirectionCounter
from sbc.media.srtp import SrtpContext, SrtpError

if TYPE_CHECKING:
    from sbc.media.relay.events import DtmfTap
    from sbc.media.transcode import Transcoder

_HEADER = struct.Struct("!BBHII")  # V/P/X/CC, M/PT, sequence, timestamp, SSRC
_unpack_rtp = SEQ_TS_SSRC.unpack_from
_PADDING = 0x20
_EXTENSION = 0x10
_CSRC_COUNT = 0x0F
_SEQUENCE_MOD = 1 << 16
DEFAULT_RTP_CLOCK = 8000


def rtp_clock(codec: str) -> int:
    """The RTP clock rate of a transcodable codec, as the SBC writes its rtpmap."""
    rtpmap = ADDED_RTPMAP.get(codec.lower())
    return int(rtpmap[1].split("/")[1]) if rtpmap is not None else DEFAULT_RTP_CLOCK


class TranscodingDirection:
    """One direction of a transcoded stream: RTP packets in, RTP packets out."""

    __slots__ = (
        "_marker",
        "_sequence",
        "clock_rate",
        "dropped",
        "last_sent_at",
        "last_timestamp",
        "sent_octets",
        "sent_packets",
        "spec",
        "ssrc",
        "transcoder",
    )

    def __init__(self, spec: TranscodeDirection) -> None:
        from sbc.media.transcode.registry import create_transcoder  # codecs load on first use

        source, destination = spec.source, spec.destination
        self.spec = spec
        self.transcoder: Transcoder = create_transcoder(
            source.name,
            destination.name,
            source.ptime,
            destination.ptime,
            src_fmtp=dict(source.fmtp),
            dst_fmtp=dict(destination.fmtp),
            opus_complexity=spec.opus_complexity,
        )
        self.ssrc = secrets.randbits(32)
        self._sequence = secrets.randbits(16)
        self._marker = True
        self.dropped = 0  # packets of a payload type neither codec nor event (comfort noise)
        # For our sender reports (RFC 3550 §6.4.1): counts, and one point of our timeline.
        self.clock_rate = rtp_clock(destination.name)
        self.sent_packets = 0
        self.sent_octets = 0  # payload octets only
        self.last_timestamp = 0
        self.last_sent_at: float | None = None

    @property
    def source_clock_rate(self) -> int:
        return rtp_clock(self.spec.source.name)

    def convert(self, packet: bytes, now: float) -> list[bytes]:
        """One received RTP packet (plain) in at ``now``; the packets to send out (plain).

        :class:`ValueError` for a packet whose lengths do not add up or whose
        payload the decoder refuses (the caller drops and counts it)."""
        second = packet[1]
        payload_type = second & PT_MASK
        timestamp = _unpack_rtp(packet, 2)[1]
        payload = bytes(rtp_payload(packet))
        source, destination = self.spec.source, self.spec.destination
        if payload_type == source.payload:
            try:
                frames = self.transcoder.feed(payload, timestamp)
            except (ValueError, RuntimeError) as error:  # a payload the decoder refuses
                raise ValueError(f"undecodable {source.name} payload") from error
            out = [self._packet(destination.payload, self._marker, p, t) for p, t in frames]
            if out:
                self._marker = False
                self.last_timestamp, self.last_sent_at = frames[-1][1], now
            return out
        event_in, event_out = source.event_payload, destination.event_payload
        if payload_type == event_in and event_out is not None:
            event, event_ts = self.transcoder.feed_event(payload, timestamp)
            return [self._packet(event_out, bool(second & MARKER_BIT), event, event_ts)]
        self.dropped += 1
        return []

    def _packet(self, payload_type: int, marker: bool, payload: bytes, timestamp: int) -> bytes:
        self._sequence = (self._sequence + 1) % _SEQUENCE_MOD
        self.sent_packets += 1
        self.sent_octets += len(payload)
        second = payload_type | (MARKER_BIT if marker else 0)
        header = _HEADER.pack(VERSION_BITS, second, self._sequence, timestamp, self.ssrc)
        return header + payload


def transcoding_for(
    current: TranscodingDirection | None, spec: TranscodeDirection | None
) -> TranscodingDirection | None:
    """The direction for ``spec``: the current one while the spec is unchanged."""
    if spec is None:
        return None
    if current is not None and current.spec == spec:
        return current
    return TranscodingDirection(spec)


Direction = TranscodingDirection | None


def transcoding_pair(
    spec: TranscodeSpec | None, a: Direction, b: Direction
) -> tuple[Direction, Direction]:
    """Side A's and side B's directions for a stream's spec (kept while unchanged)."""
    if spec is None:
        return None, None
    return transcoding_for(a, spec.a_to_b), transcoding_for(b, spec.b_to_a)


class TranscodingSide(Protocol):
    """What :func:`receive_transcoded` reads of the relay's side (kept free of sockets)."""

    @property
    def counter(self) -> DirectionCounter: ...
    @property
    def srtp(self) -> SrtpContext | None: ...
    @property
    def rtp_latch(self) -> Latch: ...
    @property
    def transcode(self) -> TranscodingDirection | None: ...
    @property
    def other(self) -> TranscodingSide: ...
    @property
    def dtmf(self) -> DtmfTap | None: ...
    def unprotect(self, packet: bytes, *, rtcp: bool = False) -> bytes | None: ...


def receive_transcoded(
    side: TranscodingSide, packet: bytes, source: Address, now: float
) -> list[bytes]:
    """One RTP packet received on ``side``: unprotected, latched, counted,
    transcoded; what comes back is ready (protected) for the other side's peer."""
    counter = side.counter
    size = len(packet)
    plain = side.unprotect(packet)
    if plain is None:
        return []  # failed SRTP authentication: counted by the side
    packet = plain
    seq, timestamp, ssrc = _unpack_rtp(packet, 2)
    latch = side.rtp_latch
    if (source != latch.latched or ssrc != latch.ssrc) and not latch.accept(source, ssrc):
        counter.dropped += 1
        return []
    counter.on_rtp(seq, timestamp, ssrc, size, now)
    if side.dtmf is not None and side.dtmf.take(packet, now):
        return []  # a digit for a leg that takes DTMF as SIP INFO: reported, never sent
    direction = side.transcode
    other = side.other
    if direction is None or other.rtp_latch.destination is None:
        return []  # the other leg's SDP is not known yet
    packets = direction.convert(packet, now)
    if other.srtp is None:
        return packets
    protected = []
    for plain in packets:
        try:
            protected.append(other.srtp.outbound.protect(plain))
        except SrtpError:
            counter.dropped += 1
    return protected
