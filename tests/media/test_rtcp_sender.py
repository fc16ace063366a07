"""The relay's own RTCP for transcoded streams, packet by packet (RFC 3550 §6).

Every compound is read back by :func:`parse_compound`, written here from
RFC 3550 §6.4.1, §6.5 and §6.6 with ``struct`` and independent of the
SBC's own parser, and its fields are checked against figures worked out
by hand from known inputs.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import pytest

from sbc.media.control import SrtpKeys
from sbc.media.relay.rtcp_sender import RtcpSender, ntp_timestamp
from sbc.media.relay.stats import DirectionCounter
from sbc.media.sdes import SUITES_BY_NAME, generate_key
from sbc.media.srtp import SrtpContext, session

NTP_1970 = 2_208_988_800  # RFC 868: seconds from 1900 to 1970


@dataclass
class Packet:
    """One RTCP packet of a compound: the common header, then the rest."""

    padding: bool
    count: int  # RC or SC
    packet_type: int
    body: bytes  # after the 4-octet header


def parse_compound(data: bytes) -> list[Packet]:
    """Split a compound by its length fields; they must add up exactly (RFC 3550 A.2)."""
    packets, offset = [], 0
    while offset < len(data):
        first, packet_type, length = struct.unpack_from("!BBH", data, offset)
        assert first >> 6 == 2  # version
        size = (length + 1) * 4
        assert offset + size <= len(data)
        packets.append(
            Packet(bool(first & 0x20), first & 0x1F, packet_type, data[offset + 4 : offset + size])
        )
        offset += size
    assert offset == len(data)
    return packets


@dataclass
class SenderReport:
    ssrc: int
    ntp: int
    rtp_timestamp: int
    packets: int
    octets: int
    blocks: list[tuple[int, int, int, int, int, int, int]]


def block_fields(data: bytes, offset: int) -> tuple[int, int, int, int, int, int, int]:
    """SSRC, fraction, cumulative lost (signed 24 bits), highest, jitter, LSR, DLSR."""
    ssrc, loss, highest, jitter, lsr, dlsr = struct.unpack_from("!IIIIII", data, offset)
    cumulative = loss & 0xFFFFFF
    if cumulative & 0x800000:
        cumulative -= 1 << 24
    return ssrc, loss >> 24, cumulative, highest, jitter, lsr, dlsr


def read_sr(packet: Packet) -> SenderReport:
    assert packet.packet_type == 200
    assert len(packet.body) == 4 + 20 + 24 * packet.count
    ssrc, ntp_high, ntp_low, rtp_ts, count, octets = struct.unpack_from("!IIIIII", packet.body)
    blocks = [block_fields(packet.body, 24 + 24 * i) for i in range(packet.count)]
    return SenderReport(ssrc, ntp_high << 32 | ntp_low, rtp_ts, count, octets, blocks)


def read_cname(packet: Packet) -> tuple[int, str]:
    """The one chunk of an SDES: its SSRC and CNAME (item 1), null-terminated (§6.5)."""
    assert (packet.packet_type, packet.count) == (202, 1)
    ssrc = struct.unpack_from("!I", packet.body)[0]
    item, length = packet.body[4], packet.body[5]
    assert item == 1
    cname = packet.body[6 : 6 + length].decode()
    rest = packet.body[6 + length :]
    assert 1 <= len(rest) <= 4  # the null item ending the list, then padding to a word
    assert set(rest) == {0}
    return ssrc, cname


@dataclass
class Sent:
    """What the transcoder sent the leg (stands for a TranscodingDirection)."""

    ssrc: int = 0x11111111
    sent_packets: int = 50
    sent_octets: int = 8000
    last_timestamp: int = 1000
    last_sent_at: float | None = 10.0
    clock_rate: int = 8000


def counter_with(sequences: list[int], ssrc: int = 0x22) -> DirectionCounter:
    counter = DirectionCounter(8000)
    for i, seq in enumerate(sequences):
        counter.on_rtp(seq, seq * 160, ssrc, 172, i * 0.02)
    return counter


def test_ntp_timestamp_counts_from_1900_in_32_bit_fractions() -> None:
    assert ntp_timestamp(0.0) == NTP_1970 << 32
    assert ntp_timestamp(1.5) == (NTP_1970 + 1) << 32 | 0x80000000


def test_sender_report_block_and_cname() -> None:
    # 100..109 without 104 and 105: 10 expected, 8 received (RFC 3550 A.3).
    received = counter_with([100, 101, 102, 103, 106, 107, 108, 109])
    sender = RtcpSender(now=0.0, cname="sbc-cname-1")
    sender.on_sender_report(0x22, 0x0001_2345_6789_ABCD, now=11.0)
    data = sender.report(now=12.0, wallclock=1000.25, sent=Sent(), received=received)

    sr, sdes = parse_compound(data)
    assert (sr.padding, sr.count, sdes.padding) == (False, 1, False)
    report = read_sr(sr)
    assert report.ssrc == 0x11111111
    assert report.ntp == (NTP_1970 + 1000) << 32 | 0x40000000
    assert report.rtp_timestamp == 1000 + 2 * 8000  # two seconds after the last packet
    assert (report.packets, report.octets) == (50, 8000)
    [(ssrc, fraction, cumulative, highest, jitter, lsr, dlsr)] = report.blocks
    assert ssrc == 0x22
    assert fraction == 2 * 256 // 10
    assert cumulative == 2
    assert highest == 109
    assert jitter == int(received.jitter)
    assert lsr == 0x23456789  # the middle 32 bits of the leg's NTP timestamp
    assert dlsr == 65536  # one second, in 1/65536 s
    assert read_cname(sdes) == (0x11111111, "sbc-cname-1")


def test_fraction_lost_is_per_interval_and_cumulative_stays() -> None:
    received = counter_with([1, 2, 4])
    sender = RtcpSender(now=0.0)
    first = read_sr(parse_compound(sender.report(1.0, 1.0, Sent(), received))[0])
    assert first.blocks[0][1:4] == (256 // 4, 1, 4)
    for i, seq in enumerate(range(5, 13)):  # eight more, none lost
        received.on_rtp(seq, seq * 160, 0x22, 172, 1.0 + i * 0.02)
    second = read_sr(parse_compound(sender.report(6.0, 6.0, Sent(), received))[0])
    assert second.blocks[0][1:4] == (0, 1, 12)


def test_duplicates_give_a_negative_cumulative_loss() -> None:
    received = counter_with([1, 2, 2, 3])  # 3 expected, 4 received
    sender = RtcpSender(now=0.0)
    block = read_sr(parse_compound(sender.report(1.0, 1.0, Sent(), received))[0]).blocks[0]
    assert block[1:3] == (0, -1)


def test_no_lsr_for_another_source_and_no_block_before_any_rtp() -> None:
    sender = RtcpSender(now=0.0)
    sender.on_sender_report(0x99, 0x0001_2345_6789_ABCD, now=1.0)
    block = read_sr(parse_compound(sender.report(2.0, 2.0, Sent(), counter_with([7])))[0])
    assert block.blocks[0][5:] == (0, 0)
    empty = read_sr(parse_compound(sender.report(3.0, 3.0, Sent(), DirectionCounter()))[0])
    assert empty.blocks == []


def test_receiver_report_until_we_sent_any_rtp() -> None:
    sent = Sent(sent_packets=0, sent_octets=0, last_sent_at=None)
    rr, sdes = parse_compound(RtcpSender(0.0).report(1.0, 1.0, sent, counter_with([5, 6])))
    assert (rr.packet_type, rr.count, len(rr.body)) == (201, 1, 4 + 24)
    assert struct.unpack_from("!I", rr.body)[0] == sent.ssrc
    assert block_fields(rr.body, 4)[:4] == (0x22, 0, 0, 6)
    assert read_cname(sdes)[0] == sent.ssrc


def test_bye_ends_the_last_compound() -> None:
    packets = parse_compound(RtcpSender(0.0).bye(1.0, 1.0, Sent(), counter_with([1])))
    assert [p.packet_type for p in packets] == [200, 202, 203]
    bye = packets[2]
    assert (bye.count, bye.body) == (1, struct.pack("!I", Sent().ssrc))


@pytest.mark.parametrize(("draw", "first", "then"), [(0.0, 1.25, 2.5), (1.0, 3.75, 7.5)])
def test_interval_is_randomised_and_the_first_one_halved(
    draw: float, first: float, then: float
) -> None:
    sender = RtcpSender(now=100.0, interval=5.0, rng=lambda: draw)
    assert sender.due == pytest.approx(100.0 + first)
    assert not sender.is_due(100.0 + first - 0.01)
    assert sender.is_due(100.0 + first)
    sender.report(110.0, 0.0, Sent(), DirectionCounter())
    assert sender.due == pytest.approx(110.0 + then)


def test_cname_is_random_per_sender() -> None:
    assert RtcpSender(0.0).cname != RtcpSender(0.0).cname


def test_srtcp_round_trip_with_pylibsrtp() -> None:
    suite = "AES_CM_128_HMAC_SHA1_80"
    ours, theirs = (generate_key(SUITES_BY_NAME[suite]) for _ in range(2))
    context = SrtpContext(SrtpKeys(suite, send_key=ours, receive_key=theirs))
    plain = RtcpSender(0.0).report(1.0, 1.0, Sent(), counter_with([1, 2]))
    protected = context.outbound.protect_rtcp(plain)
    assert protected[8:] != plain[8:]  # encrypted after the first header (RFC 3711 §3.4)
    peer = session(suite, ours, inbound=True)  # the leg, with the key we send with
    assert peer.unprotect_rtcp(protected) == plain


def test_our_timeline_runs_on_the_destination_codecs_rtp_clock() -> None:
    from sbc.media.relay.transcoding import rtp_clock

    # RFC 7587 §4.1: Opus always 48 kHz; RFC 3551 §4.5.2: G.722 8 kHz despite 16 kHz audio.
    assert [rtp_clock(name) for name in ("opus", "PCMU", "pcma", "g722")] == [
        48000,
        8000,
        8000,
        8000,
    ]
