"""Audio for media tests, made and checked independently of the SBC's own codecs.

Shared by tests/media and tests/integration (pytest puts tests/ on the path).
A tone (1 kHz unless asked otherwise); G.711 μ-law by its formula (ITU-T G.711); Opus by FFmpeg's
libopus through PyAV; the tone's frequency (interpolated FFT peak) and its
SNR (a fitted sinusoid at the measured frequency; the rest is noise).
"""

from __future__ import annotations

import av
import numpy as np
import numpy.typing as npt
from av.audio.codeccontext import AudioCodecContext

TONE_HZ = 1000.0
OPUS_RATE = 48000
OPUS_FRAME = 960  # 20 ms at 48 kHz


def tone(
    rate: int, seconds: float, freq: float = TONE_HZ, amplitude: float = 10000.0
) -> npt.NDArray[np.int16]:
    t = np.arange(int(rate * seconds)) / rate
    return np.round(amplitude * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def ulaw_encode(pcm: npt.NDArray[np.int16]) -> bytes:
    """G.711 μ-law (ITU-T G.711 §2), written out here to stay independent of the SBC."""
    x = pcm.astype(np.int32)
    sign = np.where(x < 0, 0x80, 0)
    magnitude = np.minimum(np.abs(x), 32635) + 0x84
    exponent = np.floor(np.log2(magnitude)).astype(np.int32) - 7
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return bytes((~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8))


def ulaw_decode(data: bytes) -> npt.NDArray[np.float64]:
    u = ~np.frombuffer(data, dtype=np.uint8).astype(np.int32) & 0xFF
    exponent, mantissa = (u >> 4) & 0x07, u & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(u & 0x80, -magnitude, magnitude).astype(np.float64)


def _opus(mode: str) -> AudioCodecContext:
    context = av.CodecContext.create("libopus", mode)
    assert isinstance(context, AudioCodecContext)
    context.sample_rate = OPUS_RATE
    context.layout = "mono"
    return context


def opus_decode(payloads: list[bytes]) -> npt.NDArray[np.float64]:
    decoder = _opus("r")
    chunks: list[npt.NDArray[np.float64]] = []
    for payload in payloads:
        frames = decoder.decode(av.Packet(payload))
        chunks.extend(frame.to_ndarray().reshape(-1).astype(np.float64) for frame in frames)
    return np.concatenate(chunks) if chunks else np.zeros(0)


def opus_encode(pcm: npt.NDArray[np.int16]) -> list[bytes]:
    """48 kHz PCM as 20 ms Opus payloads."""
    encoder = _opus("w")
    encoder.format = "s16"
    encoder.bit_rate = 64000
    encoder.options = {"application": "audio", "frame_duration": "20"}
    encoder.open()
    payloads: list[bytes] = []
    for start in range(0, len(pcm), OPUS_FRAME):
        chunk = pcm[start : start + OPUS_FRAME].reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(chunk, "s16", "mono")
        frame.sample_rate = OPUS_RATE
        frame.pts = start
        payloads += [bytes(p) for p in encoder.encode(frame)]
    payloads += [bytes(p) for p in encoder.encode(None)]
    return payloads


def frequency(signal: npt.NDArray[np.float64], rate: int) -> float:
    """Peak of the Hann-windowed spectrum, refined by parabolic interpolation."""
    spectrum = np.log(np.abs(np.fft.rfft(signal * np.hanning(len(signal)))) + 1e-12)
    k = int(np.argmax(spectrum[1:-1])) + 1
    left, mid, right = spectrum[k - 1 : k + 2]
    shift = 0.5 * (left - right) / (left - 2 * mid + right)
    return float((k + shift) * rate / len(signal))


def snr_db(signal: npt.NDArray[np.float64], rate: int, freq: float) -> float:
    t = np.arange(len(signal)) / rate
    basis = np.column_stack(
        (np.sin(2 * np.pi * freq * t), np.cos(2 * np.pi * freq * t), np.ones_like(t))
    )
    coefficients, *_ = np.linalg.lstsq(basis, signal, rcond=None)
    fitted = basis @ coefficients
    noise = signal - fitted
    return float(10 * np.log10(np.sum(fitted**2) / max(np.sum(noise**2), 1e-9)))
