"""RTCP compound packets, read for statistics (RFC 3550 §6.1, §6.4; RFC 5506).

The relay forwards RTCP untouched; this module only *reads* a received
compound packet where it lies (``bytes``/``bytearray``/``memoryview`` and a
length: no slice, no copy) to learn what each endpoint reports about the
stream it receives. Serializers sit beside the parsers for tests and for a
later RTCP-generating SBC.

Common header, then for SR the sender info (RFC 3550 §6.4.1; RR, §6.4.2,
has no sender info), then ``RC`` report blocks::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |V=2|P|    RC   |   PT=SR=200   |             length            |
    |                         SSRC of sender                        |
    +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
    |              NTP timestamp, most significant word             |
    |             NTP timestamp, least significant word             |
    |                         RTP timestamp                         |
    |                     sender's packet count                     |
    |                      sender's octet count                     |
    +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
    |                 SSRC_1 (SSRC of first source)                 |
    | fraction lost |       cumulative number of packets lost       |
    |           extended highest sequence number received           |
    |                      interarrival jitter                      |
    |                         last SR (LSR)                         |
    |                   delay since last SR (DLSR)                  |

Validity follows RFC 3550 A.2, relaxed for reduced-size RTCP (RFC 5506
§3.4.2, so the first packet need not be SR or RR): every packet is version
2 with a type in 192..223 (RFC 5761 §4), only the last one pads, SR/RR
blocks fit in their packet, and the lengths add up to exactly the datagram.
A compound that fails is rejected whole: none of its figures can be
trusted. SRTCP (RFC 3711 §3.4) fails the length walk because of its trailer
(SRTCP index and authentication tag), so encrypted report blocks are never
taken for figures.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from sbc.media.relay.rtp import RTCP_PT_MAX, RTCP_PT_MIN, VERSION_BITS, VERSION_MASK

# Packet types (RFC 3550 §12.1, RFC 4585 §6.1, RFC 3611 §2).
SR = 200
RR = 201
SDES = 202
BYE = 203
APP = 204
RTPFB = 205
PSFB = 206
XR = 207

PADDING_BIT = 0x20
COUNT_MASK = 0x1F  # RC: report blocks in an SR/RR (§6.4.1)
WORD = 4  # ``length`` counts 32-bit words minus one (§6.4.1)
MIN_HEADER = 4  # V/P/RC, PT, length: the smallest packet (length 0)
FRACTION_SCALE = 256  # fraction lost is a fixed point number, binary point at the left
CUMULATIVE_LOST_MASK = 0xFFFFFF  # 24 bits, signed (§6.4.1)
CUMULATIVE_LOST_SIGN = 0x800000

HEADER = struct.Struct("!BBHI")  # V/P/RC, PT, length, SSRC of sender
SENDER_INFO = struct.Struct("!QIII")  # NTP, RTP timestamp, packet count, octet count
REPORT_BLOCK = struct.Struct("!IIIIII")  # SSRC, fraction|cumulative, highest, jitter, LSR, DLSR


class RtcpError(ValueError):
    """Not a valid RTCP compound packet (RFC 3550 A.2)."""


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """What a receiver reports about one source it hears (RFC 3550 §6.4.1).

    ``fraction_lost`` is the raw 8-bit fixed-point value (lost/expected
    since the previous report, times 256); ``cumulative_lost`` may be
    negative (duplicates); ``jitter`` is in RTP timestamp units.
    """

    ssrc: int
    fraction_lost: int
    cumulative_lost: int
    highest_sequence: int
    jitter: int
    last_sr: int = 0
    delay_since_last_sr: int = 0

    @property
    def loss_ratio(self) -> float:
        """The fraction lost as 0.0 .. 255/256."""
        return self.fraction_lost / FRACTION_SCALE

    @classmethod
    def parse(cls, buf: bytes | bytearray | memoryview, offset: int) -> ReportBlock:
        """The 24-octet block at ``offset`` (the caller checked it fits)."""
        ssrc, loss, highest, jitter, lsr, dlsr = REPORT_BLOCK.unpack_from(buf, offset)
        cumulative = loss & CUMULATIVE_LOST_MASK
        if cumulative & CUMULATIVE_LOST_SIGN:
            cumulative -= CUMULATIVE_LOST_MASK + 1
        return cls(ssrc, loss >> 24, cumulative, highest, jitter, lsr, dlsr)

    def serialize(self) -> bytes:
        loss = (self.fraction_lost & 0xFF) << 24 | self.cumulative_lost & CUMULATIVE_LOST_MASK
        return REPORT_BLOCK.pack(
            self.ssrc,
            loss,
            self.highest_sequence,
            self.jitter,
            self.last_sr,
            self.delay_since_last_sr,
        )


@dataclass(frozen=True, slots=True)
class SenderInfo:
    """An SR's account of what its sender sent (RFC 3550 §6.4.1)."""

    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int

    def serialize(self) -> bytes:
        return SENDER_INFO.pack(
            self.ntp_timestamp, self.rtp_timestamp, self.packet_count, self.octet_count
        )


@dataclass(frozen=True, slots=True)
class Report:
    """One SR (with ``sender_info``) or RR (without) of a compound (RFC 3550 §6.4)."""

    ssrc: int  # of the packet's sender
    blocks: tuple[ReportBlock, ...] = ()
    sender_info: SenderInfo | None = None

    @property
    def packet_type(self) -> int:
        return RR if self.sender_info is None else SR

    def serialize(self) -> bytes:
        """The packet with no padding and no profile extension."""
        if len(self.blocks) > COUNT_MASK:
            raise ValueError(f"at most {COUNT_MASK} report blocks per packet")
        body = b"".join(block.serialize() for block in self.blocks)
        if self.sender_info is not None:
            body = self.sender_info.serialize() + body
        words = (HEADER.size + len(body)) // WORD - 1
        first = VERSION_BITS | len(self.blocks)
        return HEADER.pack(first, self.packet_type, words, self.ssrc) + body


@dataclass(frozen=True, slots=True)
class Compound:
    """A valid compound RTCP packet: every packet type in order, and its reports."""

    packet_types: tuple[int, ...]
    reports: tuple[Report, ...]

    @classmethod
    def parse(cls, buf: bytes | bytearray | memoryview, length: int | None = None) -> Compound:
        """Read the first ``length`` octets of ``buf`` (all of it when None).

        Raises :class:`RtcpError`, and nothing else, when they are not one
        valid compound packet (see the module docstring).
        """
        end = len(buf) if length is None else length
        if not 0 < end <= len(buf):
            raise RtcpError(f"length {end} outside a {len(buf)}-octet buffer")
        types: list[int] = []
        reports: list[Report] = []
        offset = 0
        while offset < end:
            packet_type, size, usable = _packet_bounds(buf, offset, end)
            types.append(packet_type)
            if packet_type in (SR, RR):
                reports.append(_report(buf, offset, usable, packet_type))
            offset += size
        return cls(tuple(types), tuple(reports))


def _packet_bounds(
    buf: bytes | bytearray | memoryview, offset: int, end: int
) -> tuple[int, int, int]:
    """Packet type, size and size without padding of the packet at ``offset``."""
    if end - offset < MIN_HEADER:
        raise RtcpError(f"truncated header at octet {offset}")
    first = buf[offset]
    packet_type = buf[offset + 1]
    if first & VERSION_MASK != VERSION_BITS:
        raise RtcpError(f"not version 2 at octet {offset}")
    if not RTCP_PT_MIN <= packet_type <= RTCP_PT_MAX:
        raise RtcpError(f"packet type {packet_type} is not RTCP (RFC 5761 §4)")
    size = ((buf[offset + 2] << 8 | buf[offset + 3]) + 1) * WORD
    if offset + size > end:
        raise RtcpError(f"packet at octet {offset} runs past the datagram")
    usable = size
    if first & PADDING_BIT:
        if offset + size != end:
            raise RtcpError("padding before the last packet (RFC 3550 A.2)")
        padding = buf[offset + size - 1]
        if not 0 < padding <= size - MIN_HEADER:
            raise RtcpError(f"bad padding count {padding}")
        usable -= padding
    return packet_type, size, usable


def _report(
    buf: bytes | bytearray | memoryview, offset: int, usable: int, packet_type: int
) -> Report:
    """The SR or RR at ``offset``; its blocks must fit in ``usable`` octets."""
    count = buf[offset] & COUNT_MASK
    fixed = HEADER.size + (SENDER_INFO.size if packet_type == SR else 0)
    if fixed + count * REPORT_BLOCK.size > usable:
        raise RtcpError(f"{count} report blocks do not fit in a {usable}-octet packet")
    ssrc = HEADER.unpack_from(buf, offset)[3]
    sender_info = None
    if packet_type == SR:
        sender_info = SenderInfo(*SENDER_INFO.unpack_from(buf, offset + HEADER.size))
    start = offset + fixed
    blocks = tuple(ReportBlock.parse(buf, start + i * REPORT_BLOCK.size) for i in range(count))
    return Report(ssrc, blocks, sender_info)
