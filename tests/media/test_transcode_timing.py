"""Ptime adaptation, RTP timestamps, lost and late packets, telephone events."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sbc.media.transcode import G722, Opus, Pcm, Pcma, Pcmu, Transcoder, create_transcoder
from sbc.media.transcode.transcoder import timestamp_delta

PACKET = 160


def ramp(packets: int, size: int = PACKET) -> list[Pcm]:
    """Distinct, loud-enough PCM per packet so content can be followed through."""
    samples = (np.arange(packets * size) % 2000 * 10 - 10000).astype(np.int16)
    return [samples[i * size : (i + 1) * size] for i in range(packets)]


def feed_all(
    leg: Transcoder, payloads: list[bytes], timestamps: list[int]
) -> list[tuple[bytes, int]]:
    out: list[tuple[bytes, int]] = []
    for payload, timestamp in zip(payloads, timestamps, strict=True):
        out.extend(leg.feed(payload, timestamp))
    return out


def test_20ms_to_30ms_and_back_keeps_duration_and_timestamps() -> None:
    encoder = Pcmu()
    sent = [encoder.encode(chunk) for chunk in ramp(150)]  # 3 s of 20 ms packets
    to_30 = feed_all(Transcoder(Pcmu(), Pcma(), 20, 30), sent, [1000 + i * 160 for i in range(150)])
    assert len(to_30) == 100
    assert all(len(payload) == 240 for payload, _ in to_30)
    assert [ts for _, ts in to_30] == [1000 + i * 240 for i in range(100)]
    back = feed_all(Transcoder(Pcma(), Pcmu(), 30, 20), *map(list, zip(*to_30, strict=True)))
    assert len(back) == 150
    assert [ts for _, ts in back] == [1000 + i * 160 for i in range(150)]
    # Same audio within G.711 re-quantisation (µ-law → A-law → µ-law).
    original = np.concatenate([encoder.decode(p) for p in sent]).astype(np.int32)
    returned = np.concatenate([Pcmu().decode(p) for p, _ in back]).astype(np.int32)
    assert np.max(np.abs(original - returned)) <= 0.07 * np.max(np.abs(original))


def test_30ms_output_waits_for_enough_input() -> None:
    leg = Transcoder(Pcmu(), Pcmu(), 20, 30)
    payload = b"\xff" * 160
    assert leg.feed(payload, 0) == []
    assert len(leg.feed(payload, 160)) == 1  # 40 ms in: one 30 ms frame, 10 ms kept
    assert len(leg.feed(payload, 320)) == 1  # 60 ms in: two frames
    assert leg.feed(payload, 480) == []


def test_clock_rates_are_mapped_for_opus_and_g722() -> None:
    encoder = Pcmu()
    sent = [encoder.encode(chunk) for chunk in ramp(10)]
    to_opus = feed_all(Transcoder(Pcmu(), Opus()), sent, [800 + i * 160 for i in range(10)])
    assert [ts for _, ts in to_opus] == [4800 + i * 960 for i in range(10)]
    to_g722 = feed_all(Transcoder(Pcmu(), G722()), sent, [800 + i * 160 for i in range(10)])
    # G.722: 16 kHz audio, 8 kHz RTP clock (RFC 3551 §4.5.2): 160 bytes, +160 per packet.
    assert [ts for _, ts in to_g722] == [800 + i * 160 for i in range(10)]
    assert all(len(payload) == 160 for payload, _ in to_g722)


def test_short_loss_is_filled_so_the_output_keeps_its_pace() -> None:
    leg = Transcoder(Pcmu(), Pcmu())
    loud = Pcmu().encode(np.full(PACKET, 8000, dtype=np.int16))
    timestamps = [0, 160, 800, 960]  # 3 packets (60 ms) lost between 160 and 800
    out = feed_all(leg, [loud] * 4, timestamps)
    assert [ts for _, ts in out] == [i * 160 for i in range(7)]
    assert leg.gaps_concealed == 1
    levels = [int(np.max(np.abs(Pcmu().decode(p)))) for p, _ in out]
    assert levels[2:5] == [0, 0, 0]  # silence where packets were lost
    assert min(levels[:2] + levels[5:]) > 7000


def test_long_gap_moves_the_timeline_instead_of_filling_it() -> None:
    leg = Transcoder(Pcmu(), Opus(), max_conceal_ms=100)
    payload = Pcmu().encode(ramp(1)[0])
    first = leg.feed(payload, 0)
    resumed = leg.feed(payload, 160 + 8000)  # one second of nothing (e.g. hold)
    assert [ts for _, ts in first] == [0]
    assert [ts for _, ts in resumed] == [960 + 48000]
    assert leg.gaps_skipped == 1
    assert [ts for _, ts in leg.feed(payload, 8320)] == [960 + 48000 + 960]


def test_late_and_duplicate_packets_are_dropped() -> None:
    leg = Transcoder(Pcmu(), Pcmu())
    payload = b"\xff" * PACKET
    assert len(leg.feed(payload, 0)) == 1
    assert len(leg.feed(payload, 320)) == 2  # 160 concealed, then 320
    assert leg.feed(payload, 160) == []  # arrives after its slot was played out
    assert leg.feed(payload, 320) == []  # duplicate
    assert leg.late_dropped == 2
    assert [ts for _, ts in leg.feed(payload, 480)] == [480]


def test_timestamps_wrap_around_2_to_the_32() -> None:
    leg = Transcoder(Pcmu(), Pcmu())
    start = (1 << 32) - 320
    timestamps = [(start + i * 160) % (1 << 32) for i in range(4)]
    out = feed_all(leg, [b"\xff" * PACKET] * 4, timestamps)
    assert [ts for _, ts in out] == timestamps
    assert leg.gaps_concealed == 0
    assert timestamp_delta(5, (1 << 32) - 5) == 10
    assert timestamp_delta((1 << 32) - 5, 5) == -10


def test_undecodable_payload_counts_as_lost() -> None:
    leg = Transcoder(Opus(), Pcmu())
    good = Opus().encode(np.zeros(960, dtype=np.int16))
    assert len(leg.feed(good, 0)) == 1
    assert leg.feed(b"", 960) == []
    out = leg.feed(good, 1920)
    assert [ts for _, ts in out] == [160, 320]  # the lost 20 ms filled, then the packet


def test_telephone_event_passes_through_untouched_on_the_same_clock() -> None:
    leg = Transcoder(Pcmu(), Pcma())
    leg.feed(b"\xff" * PACKET, 1600)
    event = bytes([5, 0x0A, 0x01, 0x40])  # digit 5, volume 10, duration 320
    assert leg.feed_event(event, 1760) == (event, 1760)


def test_telephone_event_duration_follows_the_destination_clock() -> None:
    leg = Transcoder(Pcmu(), Opus())
    leg.feed(b"\xff" * PACKET, 1600)
    event = bytes([5, 0x8A, 0x01, 0x40])  # end bit set, duration 320 at 8 kHz
    payload, timestamp = leg.feed_event(event, 1760)
    assert timestamp == 1760 * 6
    assert payload == bytes([5, 0x8A]) + (320 * 6).to_bytes(2, "big")


def test_opus_refuses_a_ptime_it_cannot_encode() -> None:
    with pytest.raises(ValueError, match="ptime"):
        Opus(30)
    with pytest.raises(ValueError, match="ptime"):
        Transcoder(Pcmu(), Opus(20), 20, 40)
    with pytest.raises(ValueError, match="bitrate"):
        Opus(bitrate=1000)


def test_source_timeline_restart_is_followed_not_dropped() -> None:
    leg = Transcoder(Pcmu(), Pcmu())
    payload = b"\xff" * PACKET
    out = feed_all(leg, [payload] * 3, [500_000, 500_160, 500_320])
    restarted = feed_all(leg, [payload] * 2, [1000, 1160])  # new SSRC, new random base
    assert leg.restarts == 1
    assert [ts for _, ts in out + restarted] == [500_000 + i * 160 for i in range(5)]


@settings(max_examples=60, deadline=None)
@given(
    packets=st.lists(
        st.tuples(st.binary(max_size=400), st.integers(0, (1 << 32) - 1)), max_size=12
    ),
    kind=st.sampled_from(["PCMU", "G722", "opus"]),
)
def test_any_payloads_and_timestamps_never_raise(
    packets: list[tuple[bytes, int]], kind: str
) -> None:
    leg = create_transcoder(kind, "PCMA")
    for payload, timestamp in packets:
        for out_payload, out_ts in leg.feed(payload, timestamp):
            assert len(out_payload) == 160
            assert 0 <= out_ts < 1 << 32
        leg.feed_event(payload, timestamp)
