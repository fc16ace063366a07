"""RTCP compound parsing for statistics (sbc.media.relay.rtcp), pure."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sbc.media.relay.rtcp import (
    BYE,
    RR,
    SDES,
    SR,
    Compound,
    Report,
    ReportBlock,
    RtcpError,
    SenderInfo,
)

#: An RR written out by hand (RFC 3550 §6.4.2): sender 0x11223344, one block
#: about 0xB0B0B0B0: fraction 0x40, cumulative 3, highest 0x00010005, jitter 80.
RR_ONE_BLOCK = bytes.fromhex(
    "81c90007" "11223344"
    "b0b0b0b0" "40000003" "00010005" "00000050" "12345678" "00010000"
)  # fmt: skip
#: An SR (§6.4.1) from 0x0A0A0A0A: NTP, RTP ts 160, 50 packets, 8000 octets, one
#: block about 0x0B0B0B0B with fraction 0, cumulative -2 (0xFFFFFE), jitter 4.
SR_ONE_BLOCK = bytes.fromhex(
    "81c8000c" "0a0a0a0a"
    "e1f2a3b4c5d6e7f8" "000000a0" "00000032" "00001f40"
    "0b0b0b0b" "00fffffe" "0000ffff" "00000004" "00000000" "00000000"
)  # fmt: skip
#: SDES (§6.5) with one chunk: SSRC 0x0A0A0A0A, CNAME "a@b", END, padded to a word.
SDES_CNAME = bytes.fromhex("81ca00030a0a0a0a0103614062000000")
#: BYE (§6.6) from 0x0A0A0A0A, no reason.
BYE_ONE = bytes.fromhex("81cb00010a0a0a0a")


def test_rr_with_one_block() -> None:
    compound = Compound.parse(RR_ONE_BLOCK)
    assert compound.packet_types == (RR,)
    [report] = compound.reports
    assert report.packet_type == RR
    assert report.ssrc == 0x11223344
    assert report.sender_info is None
    assert report.blocks == (
        ReportBlock(0xB0B0B0B0, 0x40, 3, 0x00010005, 80, 0x12345678, 0x00010000),
    )
    assert report.blocks[0].loss_ratio == 0.25


def test_sr_with_one_block_and_negative_cumulative_loss() -> None:
    [report] = Compound.parse(SR_ONE_BLOCK).reports
    assert report.packet_type == SR
    assert report.ssrc == 0x0A0A0A0A
    assert report.sender_info == SenderInfo(0xE1F2A3B4C5D6E7F8, 160, 50, 8000)
    [block] = report.blocks
    assert (block.ssrc, block.fraction_lost, block.cumulative_lost) == (0x0B0B0B0B, 0, -2)
    assert (block.highest_sequence, block.jitter) == (0xFFFF, 4)


def test_sr_with_two_blocks_round_trips() -> None:
    blocks = (
        ReportBlock(1, 255, 0x7FFFFF, 70000, 123, 5, 6),
        ReportBlock(2, 1, -0x800000, 3, 0, 0, 0),
    )
    sr = Report(0xCAFE, blocks, SenderInfo(1 << 63, 2, 3, 4))
    data = sr.serialize()
    assert data[:4] == bytes([0x82, SR, 0, 18])  # RC=2; (8 + 20 + 48) / 4 - 1 words
    assert Compound.parse(data).reports == (sr,)
    assert blocks[0].loss_ratio == 255 / 256


def test_serializer_matches_the_hand_written_rr() -> None:
    block = ReportBlock(0xB0B0B0B0, 0x40, 3, 0x00010005, 80, 0x12345678, 0x00010000)
    assert Report(0x11223344, (block,)).serialize() == RR_ONE_BLOCK


def test_empty_rr_is_valid() -> None:
    """The smallest RR (RC=0), what a receiver sends before it hears anyone."""
    compound = Compound.parse(Report(7).serialize())
    assert compound.reports == (Report(7),)


def test_compound_sr_and_sdes() -> None:
    compound = Compound.parse(SR_ONE_BLOCK + SDES_CNAME)
    assert compound.packet_types == (SR, SDES)
    assert [r.ssrc for r in compound.reports] == [0x0A0A0A0A]


def test_compound_with_bye_and_a_bye_alone() -> None:
    compound = Compound.parse(RR_ONE_BLOCK + SDES_CNAME + BYE_ONE)
    assert compound.packet_types == (RR, SDES, BYE)
    assert len(compound.reports) == 1
    alone = Compound.parse(BYE_ONE)  # reduced-size RTCP (RFC 5506): not SR/RR first
    assert alone == Compound((BYE,), ())


def test_reads_only_the_given_length_of_a_larger_buffer() -> None:
    """The relay's receive buffer is 64 KiB; only ``n`` octets are this packet."""
    buffer = bytearray(RR_ONE_BLOCK + SDES_CNAME) + bytearray(b"\xff" * 100)
    compound = Compound.parse(memoryview(buffer), len(RR_ONE_BLOCK) + len(SDES_CNAME))
    assert compound.packet_types == (RR, SDES)


def test_rr_with_a_profile_extension_after_its_blocks() -> None:
    """§6.4.1: profile-specific extensions may follow the report blocks."""
    data = bytearray(RR_ONE_BLOCK + b"\x00" * 8)
    data[3] += 2
    [report] = Compound.parse(bytes(data)).reports
    assert report.blocks[0].jitter == 80


def test_padding_on_the_last_packet() -> None:
    padded = bytearray(BYE_ONE + b"\x00\x00\x00\x04")
    padded[0] |= 0x20
    padded[3] = 2
    assert Compound.parse(RR_ONE_BLOCK + bytes(padded)).packet_types == (RR, BYE)


def test_padding_that_eats_the_report_blocks() -> None:
    padded = bytearray(RR_ONE_BLOCK)
    padded[0] |= 0x20
    padded[-1] = 8  # the block's last 8 octets would be padding: it no longer fits
    with pytest.raises(RtcpError, match="do not fit"):
        Compound.parse(bytes(padded))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "length 0"),
        (b"\x81\xc9\x00", "truncated"),
        (b"\x41\xc9\x00\x01\x00\x00\x00\x00", "version"),
        (b"\x80\x00\x00\x01\x00\x00\x00\x00", "not RTCP"),  # an RTP payload type
        (b"\x80\xc9\x00\x05\x00\x00\x00\x00", "runs past"),
        (b"\x83\xc9\x00\x07" + bytes(28), "do not fit"),  # RC=3 in a 1-block packet
        (b"\x81\xc8\x00\x07" + bytes(28), "do not fit"),  # SR sender info missing
        (b"\xa0\xcb\x00\x01\x00\x00\x00\x00" + BYE_ONE, "padding before"),
        (b"\xa0\xcb\x00\x01\x00\x00\x00\x00", "padding count 0"),
        (b"\xa0\xcb\x00\x01\x00\x00\x00\x09", "padding count 9"),
        (RR_ONE_BLOCK + b"\x00\x00", "truncated"),
    ],
)
def test_malformed_packets_raise_rtcp_error(data: bytes, reason: str) -> None:
    with pytest.raises(RtcpError, match=reason):
        Compound.parse(data)


def test_every_truncation_inside_a_packet_is_rejected() -> None:
    """Cut at a packet boundary it is a shorter compound; anywhere else, invalid."""
    whole = SR_ONE_BLOCK + SDES_CNAME + BYE_ONE
    boundaries = {len(SR_ONE_BLOCK): (SR,), len(SR_ONE_BLOCK + SDES_CNAME): (SR, SDES)}
    for cut in range(len(whole)):
        if cut in boundaries:
            assert Compound.parse(whole, cut).packet_types == boundaries[cut]
            continue
        with pytest.raises(RtcpError):
            Compound.parse(whole, cut)
    assert Compound.parse(whole).packet_types == (SR, SDES, BYE)


def test_length_beyond_the_buffer_is_rejected() -> None:
    with pytest.raises(RtcpError, match="outside"):
        Compound.parse(RR_ONE_BLOCK, len(RR_ONE_BLOCK) + 4)


@pytest.mark.parametrize(
    "trailer",
    [
        b"\x80\x00\x00\x05" + bytes(10),  # E flag + SRTCP index 5, 80-bit tag
        b"\x80\x00\x00\x01" + bytes(4),  # the same with a 32-bit tag
        bytes(16) + b"\x80\x00\x00\x02",  # AEAD (RFC 7714 §9.2): 16-octet tag, then index
    ],
)
def test_srtcp_trailer_fails_the_length_walk(trailer: bytes) -> None:
    """RFC 3711 §3.4: SRTCP ends with index and tag; its blocks are never figures."""
    with pytest.raises(RtcpError):
        Compound.parse(SR_ONE_BLOCK + SDES_CNAME + trailer)


def test_more_than_31_blocks_cannot_be_serialized() -> None:
    with pytest.raises(ValueError, match="31"):
        Report(1, (ReportBlock(1, 0, 0, 0, 0),) * 32).serialize()


@given(st.binary(max_size=200))
def test_arbitrary_bytes_parse_or_raise_rtcp_error(data: bytes) -> None:
    try:
        compound = Compound.parse(data)
    except RtcpError:
        return
    assert len(compound.packet_types) >= len(compound.reports)


@given(st.integers(0, len(SR_ONE_BLOCK + SDES_CNAME) - 1), st.integers(0, 255))
def test_one_corrupted_octet_never_escapes_as_another_error(index: int, value: int) -> None:
    data = bytearray(SR_ONE_BLOCK + SDES_CNAME)
    data[index] = value
    with contextlib.suppress(RtcpError):
        compound = Compound.parse(memoryview(data))
        assert sum(len(r.blocks) for r in compound.reports) <= 1  # never more than fits


blocks_strategy = st.builds(
    ReportBlock,
    st.integers(0, 2**32 - 1),
    st.integers(0, 255),
    st.integers(-(2**23), 2**23 - 1),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
)
senders_strategy = st.none() | st.builds(
    SenderInfo,
    st.integers(0, 2**64 - 1),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
)


@given(
    st.lists(
        st.builds(
            Report,
            st.integers(0, 2**32 - 1),
            st.lists(blocks_strategy, max_size=31).map(tuple),
            senders_strategy,
        ),
        min_size=1,
        max_size=3,
    )
)
def test_reports_round_trip(reports: list[Report]) -> None:
    data = b"".join(report.serialize() for report in reports)
    compound = Compound.parse(data)
    assert compound.reports == tuple(reports)
    assert struct.unpack_from("!B", data, 1)[0] == reports[0].packet_type
