"""Audio through transcoding: a 1 kHz tone sent as PCMU comes back as a 1 kHz tone.

Each chain goes PCMU → codec → PCMU through two :class:`Transcoder` objects,
as the two legs of a call would. The received signal is checked for its
frequency (within 2% of 1 kHz; interpolated FFT peak) and its SNR: a
sinusoid is fitted (least squares, at the measured frequency, any phase, so
the chain's delay does not matter) and whatever the fit leaves is noise.
Thresholds: ≥ 20 dB through Opus (measured ~32 dB at 32 kbit/s), ≥ 25 dB
through G.722 and A-law (measured ~37 dB; G.711 alone allows ~38 dB).
The first 200 ms are skipped (codec start-up, resampler delay).
"""

from __future__ import annotations

import numpy as np
import pytest
from audio_check import TONE_HZ, frequency, snr_db, tone

from sbc.media.transcode import (
    G722,
    Codec,
    LibOpus,
    Opus,
    Pcm,
    Pcma,
    Pcmu,
    Resampler,
    Transcoder,
)

RATE = 8000
PACKET = 160  # 20 ms at 8 kHz
SKIP = RATE // 5


def through(middle: Codec, back: Codec, ptime_ms: int = 20, seconds: float = 1.0) -> Pcm:
    """PCMU packets → ``middle`` leg → PCMU leg; the PCM the far PCMU end hears."""
    source = tone(RATE, seconds)
    sender, receiver = Pcmu(), Pcmu()
    out_leg = Transcoder(Pcmu(), middle, 20, ptime_ms)
    back_leg = Transcoder(back, Pcmu(), ptime_ms, 20)
    heard: list[Pcm] = []
    for index in range(len(source) // PACKET):
        payload = sender.encode(source[index * PACKET : (index + 1) * PACKET])
        for mid_payload, mid_ts in out_leg.feed(payload, 5000 + index * PACKET):
            heard.extend(receiver.decode(p) for p, _ in back_leg.feed(mid_payload, mid_ts))
    return np.concatenate(heard)


def assert_tone(pcm: Pcm, min_snr_db: float) -> None:
    signal = pcm[SKIP:].astype(np.float64)
    measured = frequency(signal, RATE)
    assert abs(measured - TONE_HZ) <= 0.02 * TONE_HZ, measured
    assert snr_db(signal, RATE, measured) >= min_snr_db


OPUS_KINDS = [Opus, LibOpus]


@pytest.mark.parametrize("kind", OPUS_KINDS, ids=["ffmpeg", "libopus"])
@pytest.mark.parametrize("rate", [48000, 8000])
def test_tone_through_opus_and_back(kind: type[Opus] | type[LibOpus], rate: int) -> None:
    heard = through(kind(sample_rate=rate), kind(sample_rate=rate))
    assert len(heard) == RATE  # nothing lost, nothing added: one second in, one second out
    assert_tone(heard, min_snr_db=20.0)


def test_tone_through_g722_and_back() -> None:
    heard = through(G722(), G722())
    assert len(heard) == RATE
    assert_tone(heard, min_snr_db=25.0)


def test_tone_through_pcma_and_back_at_30ms() -> None:
    heard = through(Pcma(), Pcma(), ptime_ms=30, seconds=1.2)
    assert_tone(heard, min_snr_db=25.0)


@pytest.mark.parametrize("kind", OPUS_KINDS, ids=["ffmpeg", "libopus"])
def test_tone_through_opus_at_40ms_ptime(kind: type[Opus] | type[LibOpus]) -> None:
    assert_tone(through(kind(40), kind(40), ptime_ms=40), min_snr_db=20.0)


def test_opus_receiver_hears_the_tone_at_48khz() -> None:
    """PCMU → Opus receiver: the Opus end decodes 1 kHz at 48 kHz."""
    source = tone(RATE, 1.0)
    leg = Transcoder(Pcmu(), Opus())
    receiver = Opus()
    decoded: list[Pcm] = []
    for index in range(RATE // PACKET):
        payload = Pcmu().encode(source[index * PACKET : (index + 1) * PACKET])
        decoded.extend(receiver.decode(p) for p, _ in leg.feed(payload, index * PACKET))
    pcm = np.concatenate(decoded)[48000 // 5 :].astype(np.float64)
    measured = frequency(pcm, 48000)
    assert abs(measured - TONE_HZ) <= 0.02 * TONE_HZ
    assert snr_db(pcm, 48000, measured) >= 20.0


def test_wideband_tone_survives_g722_to_opus() -> None:
    """16 kHz → 48 kHz resampling keeps a 5 kHz tone that narrowband would lose."""
    source = tone(16000, 1.0, freq=5000.0)
    encoder, leg, receiver = G722(), Transcoder(G722(), Opus()), Opus()
    decoded: list[Pcm] = []
    for index in range(50):
        payload = encoder.encode(source[index * 320 : (index + 1) * 320])
        decoded.extend(receiver.decode(p) for p, _ in leg.feed(payload, index * 160))
    pcm = np.concatenate(decoded)[48000 // 5 :].astype(np.float64)
    assert abs(frequency(pcm, 48000) - 5000.0) <= 100.0


@pytest.mark.parametrize(
    "codec", [Pcmu(), Pcma(), G722(), Opus(), LibOpus()], ids=lambda c: type(c).__name__
)
def test_decode_of_garbage_never_raises(codec: Codec) -> None:
    for junk in (b"", b"\x00", bytes(range(256)) * 3, b"\xff" * 7):
        pcm = codec.decode(junk)
        assert pcm.dtype == np.int16


@pytest.mark.parametrize("make", [G722, Opus, LibOpus], ids=["G722", "opus", "libopus"])
def test_decoder_keeps_working_after_garbage(make: type[G722] | type[Opus] | type[LibOpus]) -> None:
    codec = make()
    samples = codec.sample_rate // 50
    good = make().encode(tone(codec.sample_rate, 0.02)[:samples])
    for junk in (b"", b"\x00", b"\xff" * 7, bytes(range(256))):
        codec.decode(junk)
    assert len(codec.decode(good)) == samples


def test_libopus_conceals_a_lost_packet_with_the_tone() -> None:
    """PLC (RFC 6716 §4.4) continues the tone instead of a hole of silence."""
    source = tone(RATE, 0.5)
    sender = LibOpus(sample_rate=RATE)
    leg = Transcoder(LibOpus(sample_rate=RATE), Pcmu())
    heard: list[Pcm] = []
    for index in range(25):
        payload = sender.encode(source[index * PACKET : (index + 1) * PACKET])
        if index == 20:
            continue  # lost
        heard.extend(Pcmu().decode(p) for p, _ in leg.feed(payload, index * 960))
    assert leg.gaps_concealed == 1
    lost = np.concatenate(heard)[20 * PACKET : 21 * PACKET].astype(np.float64)
    assert np.sqrt(np.mean(lost**2)) > 1000  # not silence: the tone goes on


@pytest.mark.parametrize(("from_rate", "to_rate"), [(8000, 48000), (48000, 8000), (16000, 8000)])
def test_resampler_keeps_every_chunk_its_duration(from_rate: int, to_rate: int) -> None:
    """Filter delay comes out as leading silence once, not as a short first frame."""
    resampler = Resampler(from_rate, to_rate)
    source = tone(from_rate, 0.2)
    chunk = from_rate // 50
    lengths = [len(resampler.convert(source[i * chunk : (i + 1) * chunk])) for i in range(10)]
    assert lengths == [to_rate // 50] * 10
    assert len(resampler.convert(source[:0])) == 0
