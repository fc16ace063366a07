"""G.722 and Opus through FFmpeg's codecs, by way of PyAV (the ``av`` package).

Why PyAV: its wheels on PyPI bundle FFmpeg built with libopus, so
``pip install av`` brings a maintained G.722 (FFmpeg's ``g722``) and the
reference Opus implementation (``libopus``) without a Debian package or a
compiler, on every machine the project runs on. It also brings
swresample for rate conversion (:mod:`sbc.media.transcode.resample`).
aiortc's own codecs wrap the same PyAV/libopus pieces behind a
video-oriented API with no G.722, and ``opuslib`` needs the system libopus
and covers Opus only.

Each instance owns one FFmpeg codec context, so its predictor state belongs
to one stream direction.
"""

from __future__ import annotations

from typing import Literal

import av
import numpy as np
from av.audio.codeccontext import AudioCodecContext

from sbc.media.transcode.codec import Pcm
from sbc.media.transcode.frames import frames_pcm, pcm_frame
from sbc.media.transcode.resample import Resampler

#: RFC 7587 §4.1: the Opus RTP clock is always 48 kHz.
OPUS_CLOCK_RATE = 48000
#: Frame durations libopus accepts (RFC 6716 §2.1.4); 30 ms is not one of them.
OPUS_FRAME_MS = (10, 20, 40, 60)
#: PCM rates libopus encodes from (RFC 6716 §2: internal bandwidths NB..FB).
OPUS_SAMPLE_RATES = (8000, 12000, 16000, 24000, 48000)
#: RFC 7587 §6.1: the fmtp ``maxaveragebitrate`` range.
OPUS_BITRATE_RANGE = (6000, 510000)


def _context(codec: str, mode: Literal["r", "w"], sample_rate: int) -> AudioCodecContext:
    context = av.CodecContext.create(codec, mode)
    assert isinstance(context, AudioCodecContext)
    context.sample_rate = sample_rate
    context.layout = "mono"
    return context


def _decode(context: AudioCodecContext, payload: bytes) -> Pcm:
    if not payload:  # an empty packet would tell FFmpeg to drain: the decoder would stop for good
        return np.zeros(0, dtype=np.int16)
    try:
        frames = context.decode(av.Packet(payload))
    except av.FFmpegError:  # a corrupt payload from the wire: nothing to play
        return np.zeros(0, dtype=np.int16)
    return frames_pcm(frames)


class G722:
    """G.722 (ITU-T G.722 at 64 kbit/s), RTP static payload type 9.

    RFC 3551 §4.5.2: 16 kHz audio, but the RTP clock and ``a=rtpmap`` say
    8000 for historical reasons; one payload byte carries two samples.
    """

    name = "G722"
    clock_rate = 8000
    sample_rate = 16000
    channels = 1

    def __init__(self) -> None:
        self._decoder = _context("g722", "r", self.sample_rate)
        self._encoder = _context("g722", "w", self.sample_rate)
        self._encoder.format = "s16"
        self._encoder.open()

    def decode(self, payload: bytes) -> Pcm:
        return _decode(self._decoder, payload)

    def encode(self, pcm: Pcm) -> bytes:
        packets = self._encoder.encode(pcm_frame(pcm, self.sample_rate))
        return b"".join(bytes(packet) for packet in packets)


class Opus:
    """Opus (RFC 6716) in RTP (RFC 7587), mono, through libopus.

    The RTP clock is 48 kHz whatever the audio bandwidth (RFC 7587 §4.1),
    but the PCM side runs at ``sample_rate`` (8, 12, 16, 24 or 48 kHz, the
    rates libopus takes): facing a G.711 leg, encoding 8 kHz PCM skips an
    8 → 48 kHz resampling and lets libopus code narrowband, about half the
    CPU of fullband. FFmpeg's libopus decoder always returns 48 kHz, so
    decoded audio is resampled to ``sample_rate`` here.

    ``bitrate`` follows the peer's fmtp ``maxaveragebitrate`` when it has
    one (RFC 7587 §6.1); ``complexity`` (0-10) trades encoder CPU for
    quality, and per-node capacity depends on it (bench/transcode.py).
    """

    name = "opus"
    clock_rate = OPUS_CLOCK_RATE
    channels = 1

    def __init__(
        self,
        ptime_ms: int = 20,
        bitrate: int = 32000,
        complexity: int = 5,
        sample_rate: int = OPUS_CLOCK_RATE,
    ) -> None:
        if ptime_ms not in OPUS_FRAME_MS:
            raise ValueError(f"Opus ptime must be one of {OPUS_FRAME_MS} ms, not {ptime_ms}")
        low, high = OPUS_BITRATE_RANGE
        if not low <= bitrate <= high:
            raise ValueError(f"Opus bitrate must be within {low}..{high}, not {bitrate}")
        if not 0 <= complexity <= 10:
            raise ValueError(f"Opus complexity must be within 0..10, not {complexity}")
        if sample_rate not in OPUS_SAMPLE_RATES:
            raise ValueError(f"Opus sample rate must be one of {OPUS_SAMPLE_RATES}")
        self.ptime_ms = ptime_ms
        self.sample_rate = sample_rate
        self._decoder = _context("libopus", "r", OPUS_CLOCK_RATE)
        self._to_rate = Resampler(OPUS_CLOCK_RATE, sample_rate)
        self._encoder = _context("libopus", "w", sample_rate)
        self._encoder.format = "s16"
        self._encoder.bit_rate = bitrate
        self._encoder.options = {
            "application": "voip",
            "frame_duration": str(ptime_ms),
            "compression_level": str(complexity),
        }
        self._encoder.open()

    def decode(self, payload: bytes) -> Pcm:
        return self._to_rate.convert(_decode(self._decoder, payload))

    def encode(self, pcm: Pcm) -> bytes:
        packets = self._encoder.encode(pcm_frame(pcm, self.sample_rate))
        return b"".join(bytes(packet) for packet in packets)
