"""Pure relay parts: RTP header view, statistics, latching, STUN answers."""

from __future__ import annotations

import struct

import pytest
from aioice import stun

from sbc.media.relay.latch import Latch, rtcp_destination
from sbc.media.relay.rtcp import ReportBlock
from sbc.media.relay.rtp import RtpHeader, is_rtcp, is_rtp, pt_table, rewrite_pt
from sbc.media.relay.stats import DirectionCounter, SequenceTracker
from sbc.media.relay.stun import answer_binding, is_stun


def rtp(seq: int, ts: int = 0, ssrc: int = 1, pt: int = 0, marker: bool = False) -> bytearray:
    return bytearray(struct.pack("!BBHII", 0x80, pt | (0x80 if marker else 0), seq, ts, ssrc))


# -- rtp ----------------------------------------------------------------------


def test_header_fields() -> None:
    header = RtpHeader.parse(rtp(65535, 1234, 0xDEADBEEF, pt=8, marker=True) + b"x" * 160)
    assert header == RtpHeader(8, True, 65535, 1234, 0xDEADBEEF)


def test_not_rtp() -> None:
    with pytest.raises(ValueError, match="not an RTP"):
        RtpHeader.parse(b"\x40" + bytes(11))
    assert not is_rtp(b"\x80\x00", 2)


def test_rtcp_mux_demultiplexing_by_packet_type() -> None:
    receiver_report = bytes([0x80, 201, 0, 1]) + bytes(4)
    assert is_rtcp(receiver_report, 8)
    assert not is_rtp(receiver_report + bytes(4), 12)
    assert is_rtp(rtp(1, pt=96), 12)
    assert not is_rtcp(rtp(1, pt=96), 12)


def test_pt_rewrite_keeps_marker() -> None:
    table = pt_table([(101, 96)])
    assert table is not None
    packet = rtp(1, pt=101, marker=True)
    rewrite_pt(packet, table)
    assert RtpHeader.parse(packet).payload_type == 96
    assert RtpHeader.parse(packet).marker
    other = rtp(1, pt=0)
    rewrite_pt(memoryview(other), table)
    assert RtpHeader.parse(other).payload_type == 0


def test_pt_table_identity_and_range() -> None:
    assert pt_table([]) is None
    assert pt_table([(0, 0)]) is None
    with pytest.raises(ValueError, match="out of range"):
        pt_table([(200, 0)])


# -- stats --------------------------------------------------------------------


def test_loss_from_gaps() -> None:
    tracker = SequenceTracker(10)
    for seq in (11, 12, 15, 16):
        tracker.update(seq)
    assert tracker.expected == 7
    assert tracker.lost == 2


def test_loss_across_wrap() -> None:
    tracker = SequenceTracker(65530)
    for seq in (65531, 65533, 65535, 0, 2, 3):
        tracker.update(seq)
    assert tracker.cycles == 65536
    assert tracker.expected == 10
    assert tracker.lost == 3


def test_reordering_is_not_loss() -> None:
    tracker = SequenceTracker(65534)
    for seq in (0, 65535, 2, 1, 3):
        tracker.update(seq)
    assert tracker.lost == 0
    assert tracker.expected == 6


def test_large_jump_restarts_after_confirmation() -> None:
    tracker = SequenceTracker(100)
    tracker.update(30000)  # one stray packet: ignored
    assert tracker.max_seq == 100
    tracker.update(30001)  # confirmed: a restarted source
    assert tracker.base_seq == 30001
    assert tracker.lost == 0


def test_counter_counts_and_snapshot() -> None:
    counter = DirectionCounter()
    for i in range(10):
        if i != 5:
            counter.on_rtp(i, i * 160, 7, 172, now=i * 0.02)
    counter.rtcp_packets += 1
    snap = counter.snapshot()
    assert (snap.packets, snap.octets, snap.lost, snap.rtcp_packets) == (9, 9 * 172, 1, 1)
    assert snap.jitter_ms == pytest.approx(0.0, abs=0.2)


def test_jitter_follows_a8() -> None:
    counter = DirectionCounter(clock_rate=8000)
    # Packets stamped 20 ms apart arrive alternately 0 and 10 ms late: |D| = 80 units.
    for i in range(200):
        counter.on_rtp(i, i * 160, 1, 172, now=i * 0.02 + (0.01 if i % 2 else 0.0))
    assert counter.snapshot().jitter_ms == pytest.approx(10.0, rel=0.05)


def test_new_ssrc_keeps_earlier_loss() -> None:
    counter = DirectionCounter()
    for seq in (1, 2, 4):
        counter.on_rtp(seq, 0, 1, 12, 0.0)
    for seq in (500, 501):
        counter.on_rtp(seq, 0, 2, 12, 0.0)
    assert counter.lost == 1


def test_report_block_about_the_relayed_ssrc_is_recorded() -> None:
    counter = DirectionCounter(clock_rate=8000)
    counter.on_rtp(1, 0, 0xB, 172, 0.0)
    block = ReportBlock(0xB, fraction_lost=64, cumulative_lost=12, highest_sequence=1, jitter=80)
    assert counter.on_report(block)
    snap = counter.snapshot()
    assert snap.reported_lost == 12
    assert snap.reported_fraction_lost == 0.25
    assert snap.reported_jitter_ms == 10.0  # 80 units at 8 kHz
    assert (snap.packets, snap.lost) == (1, 0)  # the SBC's own figures are untouched
    counter.on_report(ReportBlock(0xB, 0, 15, 2, 8))  # the latest report wins
    assert (counter.snapshot().reported_lost, counter.snapshot().reported_fraction_lost) == (15, 0)


def test_reported_jitter_uses_the_counters_clock_rate() -> None:
    counter = DirectionCounter(clock_rate=48000)
    counter.on_rtp(1, 0, 3, 100, 0.0)
    counter.on_report(ReportBlock(3, 0, 0, 1, jitter=480))
    assert counter.snapshot().reported_jitter_ms == 10.0


def test_report_block_about_another_ssrc_is_ignored() -> None:
    counter = DirectionCounter()
    assert not counter.on_report(ReportBlock(0xB, 64, 5, 1, 80))  # no RTP relayed yet
    counter.on_rtp(1, 0, 0xB, 172, 0.0)
    assert not counter.on_report(ReportBlock(0xC, 64, 5, 1, 80))
    assert counter.snapshot().reported_lost == 0
    assert counter.snapshot().reported_jitter_ms == 0.0


def test_reported_loss_of_an_earlier_ssrc_is_kept() -> None:
    """Cumulative loss restarts with a new source (RFC 3550 §6.4.1): keep the old total."""
    counter = DirectionCounter()
    counter.on_rtp(1, 0, 1, 12, 0.0)
    counter.on_report(ReportBlock(1, 0, 4, 1, 0))
    counter.on_report(ReportBlock(1, 0, 6, 1, 0))
    counter.on_rtp(900, 0, 2, 12, 0.0)
    counter.on_report(ReportBlock(2, 0, 1, 1, 0))
    counter.on_report(ReportBlock(1, 0, 50, 1, 0))  # late, about the old source: ignored
    assert counter.snapshot().reported_lost == 7


# -- latch --------------------------------------------------------------------


def test_before_latching_send_to_sdp() -> None:
    latch = Latch(("127.0.0.99", 40000), allowed=["127.0.0.5"])
    assert latch.destination == ("127.0.0.99", 40000)


def test_latch_on_allowed_source_only() -> None:
    latch = Latch(("127.0.0.99", 40000), allowed=["127.0.0.5"])
    assert not latch.accept(("127.0.0.6", 1000), 1)
    assert latch.destination == ("127.0.0.99", 40000)
    assert latch.accept(("127.0.0.5", 1000), 1)
    assert latch.destination == ("127.0.0.5", 1000)


def test_latch_any() -> None:
    latch = Latch(None, latch_any=True)
    assert latch.accept(("127.0.0.7", 9), 1)
    assert latch.latched == ("127.0.0.7", 9)


def test_relatch_on_ssrc_change_only() -> None:
    latch = Latch(None, allowed=["127.0.0.5", "127.0.0.6"])
    assert latch.accept(("127.0.0.5", 1000), 1)
    assert not latch.accept(("127.0.0.6", 2000), 1)  # same stream, second address
    assert latch.latched == ("127.0.0.5", 1000)
    assert latch.accept(("127.0.0.6", 2000), 2)  # a new source: transfer
    assert latch.destination == ("127.0.0.6", 2000)
    assert not latch.accept(("127.0.0.9", 3000), 3)  # not allowed at all


def test_configure_keeps_latch() -> None:
    latch = Latch(("127.0.0.99", 1), latch_any=True)
    latch.accept(("127.0.0.5", 5), 1)
    latch.configure(("127.0.0.98", 2), (), False)
    assert latch.destination == ("127.0.0.5", 5)


def test_rtcp_follows_rtp_latch() -> None:
    rtp_latch = Latch(("127.0.0.99", 4000), latch_any=True)
    rtcp_latch = Latch(("127.0.0.99", 4001), latch_any=True)
    assert rtcp_destination(rtcp_latch, rtp_latch) == ("127.0.0.99", 4001)
    rtp_latch.accept(("127.0.0.5", 7000), 1)
    assert rtcp_destination(rtcp_latch, rtp_latch) == ("127.0.0.5", 7001)
    rtcp_latch.accept(("127.0.0.5", 7100), 1)
    assert rtcp_destination(rtcp_latch, rtp_latch) == ("127.0.0.5", 7100)


# -- stun ---------------------------------------------------------------------


def binding_request(password: bytes | None = None) -> stun.Message:
    request = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
    if password is not None:
        request.attributes["USERNAME"] = "sbc:peer"
        request.add_message_integrity(password)
    return request


def test_binding_answer_carries_xor_mapped_address() -> None:
    request = binding_request()
    data = bytes(request)
    assert is_stun(data, len(data))
    answer = answer_binding(data, ("127.0.0.5", 40002)).response
    assert answer is not None
    response = stun.parse_message(answer)  # checks FINGERPRINT
    assert response.message_class == stun.Class.RESPONSE
    assert response.transaction_id == request.transaction_id
    assert response.attributes["XOR-MAPPED-ADDRESS"] == ("127.0.0.5", 40002)


def test_short_term_credentials() -> None:
    password = b"ice-password-0123456789"
    good = answer_binding(bytes(binding_request(password)), ("127.0.0.5", 1), password).response
    assert good is not None
    assert stun.parse_message(good).check_message_integrity(password)
    wrong = answer_binding(bytes(binding_request(b"wrong")), ("127.0.0.5", 1), password)
    assert wrong.response is None
    assert wrong.refusal == "refused"
    unsigned = answer_binding(bytes(binding_request()), ("127.0.0.5", 1), password)
    assert unsigned.response is None


def test_non_requests_are_dropped() -> None:
    response = stun.Message(stun.Method.BINDING, stun.Class.RESPONSE)
    assert answer_binding(bytes(response), ("127.0.0.5", 1)).refusal == "ignored"
    assert answer_binding(b"\x00\x01" + bytes(30), ("127.0.0.5", 1)).refusal == "malformed"
    assert not is_stun(bytes(rtp(1)) + bytes(8), 20)
