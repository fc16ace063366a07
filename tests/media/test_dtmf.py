"""RFC 4733 telephone events: payload, detection dedupe, generation (sbc.media.dtmf)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sbc.media.dtmf import (
    END_REPEATS,
    MAX_DURATION,
    Digit,
    EventDetector,
    EventSender,
    TelephoneEvent,
    digit_of,
    event_of,
)
from sbc.media.relay.rtp import rtp_payload


def payload(event: int, end: bool, duration: int, volume: int = 10) -> bytes:
    """Written by hand from RFC 4733 §2.3, independently of the module."""
    return struct.pack("!BBH", event, (0x80 if end else 0) | volume, duration)


def test_payload_parse_and_pack_match_the_rfc_layout() -> None:
    event = TelephoneEvent.parse(payload(11, True, 1280, volume=7))
    assert event == TelephoneEvent(event=11, end=True, volume=7, duration=1280)
    assert event.pack() == payload(11, True, 1280, volume=7)
    assert TelephoneEvent(5, False, 10, 400).pack() == b"\x05\x0a\x01\x90"
    with pytest.raises(ValueError, match="shorter"):
        TelephoneEvent.parse(b"\x05\x0a\x01")


def test_digits_and_event_codes() -> None:
    assert [digit_of(n) for n in (0, 9, 10, 11, 12, 15, 16)] == ["0", "9", "*", "#", "A", "D", None]
    assert event_of("#") == 11
    assert event_of("*") == 10
    assert event_of("d") == 15
    for bad in ("", "E", "12", "x"):
        with pytest.raises(ValueError, match="not a DTMF digit"):
            event_of(bad)


def test_rtp_payload_skips_csrcs_extension_and_padding() -> None:
    body = payload(1, False, 160)
    plain = struct.pack("!BBHII", 0x80, 101, 1, 1000, 7) + body
    assert bytes(rtp_payload(plain)) == body
    csrc = struct.pack("!BBHII", 0x82, 101, 1, 1000, 7) + b"\0" * 8 + body
    assert bytes(rtp_payload(csrc)) == body
    extension = struct.pack("!BBHIIHH", 0x90, 101, 1, 1000, 7, 0xBEDE, 1) + b"\0" * 4 + body
    assert bytes(rtp_payload(extension)) == body
    padded = struct.pack("!BBHII", 0xA0, 101, 1, 1000, 7) + body + b"\0\0\x03"
    assert bytes(rtp_payload(padded)) == body
    with pytest.raises(ValueError, match="longer than the packet"):
        rtp_payload(struct.pack("!BBHII", 0x8F, 101, 1, 1000, 7))


def feed_event(
    detector: EventDetector, timestamp: int, event: int, durations: list[int], now: float = 0.0
) -> list[Digit]:
    """An event as a sender emits it: updates, then three end packets."""
    reports = [detector.feed(timestamp, payload(event, False, d), now) for d in durations]
    end = payload(event, True, durations[-1] + 160)
    reports += [detector.feed(timestamp, end, now) for _ in range(3)]
    return [r for r in reports if r is not None]


def test_one_report_per_event_at_its_end_with_the_final_duration() -> None:
    detector = EventDetector()
    assert feed_event(detector, 1000, 1, [160, 320, 480, 640, 800]) == [Digit("1", 120)]
    assert feed_event(detector, 9000, 11, [400]) == [Digit("#", 70)]


def test_retransmitted_end_packets_and_updates_are_not_reported_again() -> None:
    detector = EventDetector()
    assert feed_event(detector, 1000, 5, [160, 320]) == [Digit("5", 60)]
    # late duplicates of that event, updates and ends alike
    assert detector.feed(1000, payload(5, False, 320), 0.1) is None
    assert detector.feed(1000, payload(5, True, 480), 0.1) is None
    # the same digit again is a new event: a new timestamp
    assert feed_event(detector, 5000, 5, [160]) == [Digit("5", 40)]


def test_a_long_event_with_many_updates_is_one_digit() -> None:
    detector = EventDetector()
    durations = list(range(400, 16000, 400))  # 2 s of updates every 50 ms
    assert feed_event(detector, 42, 0, durations) == [Digit("0", (durations[-1] + 160) // 8)]


def test_lost_end_packets_still_report_the_digit() -> None:
    detector = EventDetector()
    assert detector.feed(1000, payload(3, False, 160), 0.0) is None
    assert detector.feed(1000, payload(3, False, 800), 0.1) is None
    # the next event starts: the first one is over
    assert detector.feed(9000, payload(4, False, 160), 0.2) == Digit("3", 100)
    # the last event goes silent: the sweep reports it
    assert detector.expire(0.3) is None
    assert detector.expire(1.0) == Digit("4", 20)
    assert detector.expire(2.0) is None


def test_segments_of_a_very_long_event_extend_it() -> None:
    detector = EventDetector()
    assert detector.feed(1000, payload(7, False, MAX_DURATION), 0.0) is None
    # RFC 4733 §2.5.1.3: the next segment starts where the full one ended
    assert detector.feed(1000 + MAX_DURATION, payload(7, False, 800), 0.1) is None
    assert detector.feed(1000 + MAX_DURATION, payload(7, True, 8000), 0.2) == Digit(
        "7", (MAX_DURATION + 8000) // 8
    )


def test_non_digit_events_and_short_payloads_are_not_reported() -> None:
    detector = EventDetector()
    assert feed_event(detector, 1000, 16, [160]) == []  # flash
    assert detector.feed(2000, b"\x01", 0.0) is None


def parse_rtp(packet: bytes) -> tuple[bool, int, int, int, int, bool, int, int]:
    """(marker, pt, seq, ts, ssrc, end, volume, duration), by hand."""
    first, second, seq, ts, ssrc = struct.unpack("!BBHII", packet[:12])
    assert first == 0x80
    _event, flags, duration = struct.unpack("!BBH", packet[12:])
    return (
        bool(second & 0x80),
        second & 0x7F,
        seq,
        ts,
        ssrc,
        bool(flags & 0x80),
        flags & 0x3F,
        duration,
    )


def test_generated_event_follows_rfc4733_2_5() -> None:
    sender = EventSender(ssrc=0x1234)
    packets = sender.packets(101, "#", 200, now=10.0)
    parsed = [parse_rtp(p.packet) for p in packets]
    markers = [p[0] for p in parsed]
    assert markers == [True] + [False] * (len(parsed) - 1)
    assert {p[1] for p in parsed} == {101}
    seqs = [p[2] for p in parsed]
    assert [(s - seqs[0]) & 0xFFFF for s in seqs] == list(range(len(seqs)))
    assert len({p[3] for p in parsed}) == 1  # one timestamp for the whole event
    assert {p[4] for p in parsed} == {0x1234}
    assert {p[6] for p in parsed} == {10}
    updates = [p for p in parsed if not p[5]]
    ends = [p for p in parsed if p[5]]
    assert [u[7] for u in updates] == [400, 800, 1200, 1600]  # every 50 ms, growing
    assert len(ends) == END_REPEATS
    assert {e[7] for e in ends} == {1600}  # 200 ms at 8000 Hz
    assert all(struct.unpack("!B", p.packet[12:13])[0] == 11 for p in packets)
    delays = [p.delay for p in packets]
    assert delays == sorted(delays)
    assert delays[0] == 0
    assert delays[-3:] == pytest.approx([0.2, 0.25, 0.3])


def test_digits_back_to_back_are_queued_with_later_timestamps() -> None:
    sender = EventSender(ssrc=1)
    first = sender.packets(96, "1", 100, now=0.0)
    second = sender.packets(96, "2", 100, now=0.01)
    assert second[0].delay >= first[-1].delay
    ts1 = parse_rtp(first[0].packet)[3]
    ts2 = parse_rtp(second[0].packet)[3]
    assert (ts2 - ts1) & 0xFFFFFFFF >= 800 + 3 * 400  # after the first digit's end packets
    assert (parse_rtp(second[0].packet)[2] - parse_rtp(first[-1].packet)[2]) & 0xFFFF == 1


def test_out_of_range_durations_are_clamped() -> None:
    sender = EventSender()
    ends = [
        parse_rtp(p.packet) for p in sender.packets(96, "5", 0, now=0.0) if parse_rtp(p.packet)[5]
    ]
    assert ends[0][7] == 40 * 8
    long = [parse_rtp(p.packet) for p in sender.packets(96, "5", 3_600_000, now=0.0)]
    assert long[-1][7] == 5000 * 8
    with pytest.raises(ValueError, match="not a DTMF digit"):
        sender.packets(96, "x", 100, now=0.0)


@given(st.integers(0, 255), st.booleans(), st.integers(0, 63), st.integers(0, MAX_DURATION))
def test_payload_round_trip(event: int, end: bool, volume: int, duration: int) -> None:
    original = TelephoneEvent(event, end, volume, duration)
    assert TelephoneEvent.parse(original.pack()) == original


@given(st.binary(max_size=64))
def test_rtp_payload_never_fails_otherwise(data: bytes) -> None:
    try:
        payload = rtp_payload(data)
    except ValueError:
        return
    assert len(payload) <= max(0, len(data) - 12)


@given(
    st.lists(st.sampled_from("0123456789*#ABCD"), min_size=1, max_size=6),
    st.data(),
)
def test_each_digit_is_reported_once_whatever_the_repeats(
    digits: list[str], data: st.DataObject
) -> None:
    """Each event: its packets in order, any of them repeated (retransmissions),
    the end packet three times; the digits come out once each, in order."""
    sender = EventSender(ssrc=5)
    detector = EventDetector()
    reported = []
    now = 0.0
    for digit in digits:
        for item in sender.packets(101, digit, data.draw(st.integers(40, 400)), now):
            repeats = data.draw(st.integers(1, 3))
            for _ in range(repeats):
                timestamp = int.from_bytes(item.packet[4:8], "big")
                found = detector.feed(timestamp, rtp_payload(item.packet), now + item.delay)
                if found is not None:
                    reported.append(found.digit)
        now += 1.0
    assert reported == digits


def test_events_at_48khz_beside_opus() -> None:
    """RFC 4733 §2.3.1: the event clock follows the rtpmap (telephone-event/48000)."""
    sender = EventSender(48000, ssrc=9)
    parsed = [parse_rtp(p.packet) for p in sender.packets(110, "6", 120, now=0.0)]
    assert [p[7] for p in parsed if not p[5]] == [2400, 4800, 5760]  # 50 ms steps at 48 kHz
    assert {p[7] for p in parsed if p[5]} == {120 * 48}
    detector = EventDetector(48000)
    reports = feed_event(detector, 7, 6, [2400, 4800])
    assert reports == [Digit("6", (4800 + 160) // 48)]
