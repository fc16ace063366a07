"""Minimal RTP/RTCP header view for the relay (RFC 3550 §5.1, §6.4; RFC 5761 §4).

The plain relay never builds RTP; it only needs to tell RTP from RTCP on a
muxed port, read the few header fields statistics and latching use, and
rewrite the payload type in place (:func:`rtp_payload` serves the slow paths
that look inside: DTMF taps and transcoding). Everything here works on the receive buffer
(``bytearray``/``memoryview``) and a length, without copying.

RTP fixed header (RFC 3550 §5.1)::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |V=2|P|X|  CC   |M|     PT      |       sequence number         |
    |                           timestamp                           |
    |           synchronization source (SSRC) identifier            |
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

RTP_VERSION = 2
RTP_HEADER_LENGTH = 12  # RFC 3550 §5.1, without CSRCs or extension
RTCP_HEADER_LENGTH = 8  # RFC 3550 §6.4.1: V/P/RC, PT, length, SSRC of sender
VERSION_MASK = 0xC0
VERSION_BITS = RTP_VERSION << 6  # 0x80
MARKER_BIT = 0x80
PT_MASK = 0x7F
# RFC 5761 §4: with rtcp-mux, a second octet of 192..223 is RTCP (SR=200, RR=201, ...).
RTCP_PT_MIN = 192
RTCP_PT_MAX = 223

SEQ_TS_SSRC = struct.Struct("!HII")  # at offset 2: sequence, timestamp, SSRC
RTCP_SENDER_SSRC = struct.Struct("!I")  # at offset 4


@dataclass(frozen=True, slots=True)
class RtpHeader:
    """The RTP fixed-header fields the relay cares about (RFC 3550 §5.1)."""

    payload_type: int
    marker: bool
    sequence: int
    timestamp: int
    ssrc: int

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> RtpHeader:
        """Parse the fixed header; :class:`ValueError` when it is not RTP v2."""
        if not is_rtp(data, len(data)):
            raise ValueError("not an RTP version 2 packet")
        sequence, timestamp, ssrc = SEQ_TS_SSRC.unpack_from(data, 2)
        return cls(data[1] & PT_MASK, bool(data[1] & MARKER_BIT), sequence, timestamp, ssrc)


def is_rtp_or_rtcp(buf: bytes | bytearray | memoryview, length: int) -> bool:
    """Version 2 and long enough for a fixed RTP header (RTCP is shorter: 8)."""
    return length >= RTCP_HEADER_LENGTH and buf[0] & VERSION_MASK == VERSION_BITS


def is_rtcp(buf: bytes | bytearray | memoryview, length: int) -> bool:
    """RTCP on a muxed port: packet type 192..223 (RFC 5761 §4)."""
    return (
        length >= RTCP_HEADER_LENGTH
        and buf[0] & VERSION_MASK == VERSION_BITS
        and RTCP_PT_MIN <= buf[1] <= RTCP_PT_MAX
    )


def is_rtp(buf: bytes | bytearray | memoryview, length: int) -> bool:
    """RTP version 2 with a full fixed header, and not RTCP (RFC 5761 §4)."""
    return (
        length >= RTP_HEADER_LENGTH
        and buf[0] & VERSION_MASK == VERSION_BITS
        and not RTCP_PT_MIN <= buf[1] <= RTCP_PT_MAX
    )


def pt_table(pt_map: Iterable[tuple[int, int]]) -> bytes | None:
    """A 128-entry translation table for :func:`rewrite_pt`, or None if no change."""
    table = bytearray(range(128))
    for old, new in pt_map:
        if not (0 <= old <= PT_MASK and 0 <= new <= PT_MASK):
            raise ValueError(f"payload type out of range: {old} -> {new}")
        table[old] = new
    return None if table == bytearray(range(128)) else bytes(table)


def rewrite_pt(buf: bytearray | memoryview, table: bytes) -> None:
    """Rewrite the payload type in place, keeping the marker bit (RFC 3550 §5.1)."""
    second = buf[1]
    buf[1] = (second & MARKER_BIT) | table[second & PT_MASK]


def rtp_payload(packet: bytes | bytearray | memoryview) -> memoryview:
    """The payload of an RTP packet: after CSRCs and extension, before padding
    (RFC 3550 §5.1, §5.3.1); :class:`ValueError` when the lengths do not add up."""
    view = memoryview(packet)
    if len(view) < RTP_HEADER_LENGTH:
        raise ValueError("shorter than an RTP header")
    first = view[0]
    start = RTP_HEADER_LENGTH + 4 * (first & 0x0F)
    if first & 0x10:  # header extension: 4 octets, then its length in words
        if len(view) < start + 4:
            raise ValueError("truncated RTP header extension")
        start += 4 + 4 * int.from_bytes(view[start + 2 : start + 4], "big")
    end = len(view)
    if first & 0x20:  # padding: its count is the last octet
        end -= view[end - 1]
    if start > end:
        raise ValueError("RTP header longer than the packet")
    return view[start:end]
