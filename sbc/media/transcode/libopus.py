"""Opus straight through libopus's C API (ctypes): the fast path for Opus.

Why not only PyAV: FFmpeg's libopus decoder always decodes at 48 kHz (so a
G.711 leg needs a 48 → 8 kHz resampling after it), it cannot be asked for
packet-loss concealment, and each call crosses PyAV's frame objects. Asked
directly, libopus decodes at the rate the other leg needs (RFC 6716 §2:
any of 8/12/16/24/48 kHz from any packet), conceals a lost packet
(``opus_decode`` with no data, RFC 6716 §4.4), and costs a few ctypes calls
per packet: about twice the sessions per core (bench/transcode.py).

The library is the libopus that PyAV's wheel bundles (so ``pip install av``
is all it takes), else the system's (Debian ``libopus0``). Codec state lives
in Python-owned buffers (``opus_*_get_size`` + ``opus_*_init``), so nothing
needs an explicit free. Without any libopus, :func:`libopus_available` is
False and the registry falls back to :class:`sbc.media.transcode.avcodec.Opus`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache
from pathlib import Path

import numpy as np

from sbc.media.transcode.avcodec import (
    OPUS_BITRATE_RANGE,
    OPUS_CLOCK_RATE,
    OPUS_FRAME_MS,
    OPUS_SAMPLE_RATES,
)
from sbc.media.transcode.codec import Pcm, silence

# opus_defines.h
_APPLICATION_VOIP = 2048
_SET_BITRATE = 4002
_SET_COMPLEXITY = 4010
_OK = 0
#: RFC 6716 §3.2.1: at most 1275 bytes per frame; a 60 ms packet holds three.
_MAX_PACKET = 3 * 1275
#: RFC 6716 §3.2.5: a packet carries at most 120 ms.
_MAX_PACKET_MS = 120
#: Concealment works in whole 2.5 ms steps (the shortest Opus frame).
_PLC_STEP_PER_SECOND = 400


def _candidates() -> list[str]:
    """PyAV's bundled libopus first (always there with our dependency), then the system's."""
    found: list[str] = []
    try:
        import av

        bundled = Path(av.__file__).resolve().parent.parent / "av.libs"
        found.extend(str(path) for path in sorted(bundled.glob("libopus*.so*")))
    except ImportError:  # pragma: no cover - av is a dependency
        pass
    system = ctypes.util.find_library("opus")
    if system:
        found.append(system)
    return found


@cache
def _library() -> ctypes.CDLL | None:
    for candidate in _candidates():
        try:
            library = ctypes.CDLL(candidate)
        except OSError:
            continue
        _declare(library)
        return library
    return None


def _declare(lib: ctypes.CDLL) -> None:
    pointer, c_int = ctypes.c_void_p, ctypes.c_int
    lib.opus_encoder_get_size.argtypes = [c_int]
    lib.opus_decoder_get_size.argtypes = [c_int]
    lib.opus_encoder_init.argtypes = [pointer, ctypes.c_int32, c_int, c_int]
    lib.opus_decoder_init.argtypes = [pointer, ctypes.c_int32, c_int]
    # opus_encoder_ctl is variadic; every request used here takes one opus_int32.
    lib.opus_encoder_ctl.argtypes = [pointer, c_int, ctypes.c_int32]
    lib.opus_encode.argtypes = [pointer, pointer, c_int, pointer, ctypes.c_int32]
    lib.opus_decode.argtypes = [pointer, ctypes.c_char_p, ctypes.c_int32, pointer, c_int, c_int]


def libopus_available() -> bool:
    """Whether a libopus could be loaded on this machine."""
    return _library() is not None


class LibOpus:
    """Opus (RFC 6716) in RTP (RFC 7587), mono, PCM at ``sample_rate``, with PLC.

    Same parameters and meaning as :class:`sbc.media.transcode.avcodec.Opus`.
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
        lib = _library()
        if lib is None:
            raise RuntimeError("libopus is not available")
        if ptime_ms not in OPUS_FRAME_MS:
            raise ValueError(f"Opus ptime must be one of {OPUS_FRAME_MS} ms, not {ptime_ms}")
        low, high = OPUS_BITRATE_RANGE
        if not low <= bitrate <= high:
            raise ValueError(f"Opus bitrate must be within {low}..{high}, not {bitrate}")
        if not 0 <= complexity <= 10:
            raise ValueError(f"Opus complexity must be within 0..10, not {complexity}")
        if sample_rate not in OPUS_SAMPLE_RATES:
            raise ValueError(f"Opus sample rate must be one of {OPUS_SAMPLE_RATES}")
        self._lib = lib
        self.ptime_ms = ptime_ms
        self.sample_rate = sample_rate
        self.complexity = complexity
        self._frame_samples = sample_rate * ptime_ms // 1000
        self._encoder = ctypes.create_string_buffer(lib.opus_encoder_get_size(1))
        self._decoder = ctypes.create_string_buffer(lib.opus_decoder_get_size(1))
        self._check(lib.opus_encoder_init(self._encoder, sample_rate, 1, _APPLICATION_VOIP))
        self._check(lib.opus_decoder_init(self._decoder, sample_rate, 1))
        self._check(lib.opus_encoder_ctl(self._encoder, _SET_BITRATE, bitrate))
        self._check(lib.opus_encoder_ctl(self._encoder, _SET_COMPLEXITY, complexity))
        self._packet = ctypes.create_string_buffer(_MAX_PACKET)
        self._pcm = np.zeros(sample_rate * _MAX_PACKET_MS // 1000, dtype=np.int16)

    @staticmethod
    def _check(status: int) -> None:
        if status != _OK:
            raise RuntimeError(f"libopus error {status}")

    def decode(self, payload: bytes) -> Pcm:
        if not payload:
            return silence(0)
        decoded = self._lib.opus_decode(
            self._decoder, payload, len(payload), self._pcm.ctypes.data, len(self._pcm), 0
        )
        if decoded < 0:  # corrupt packet (OPUS_INVALID_PACKET...): nothing to play
            return silence(0)
        return self._pcm[:decoded].copy()

    def conceal(self, samples: int) -> Pcm:
        """``samples`` of packet-loss concealment (RFC 6716 §4.4) for a lost stretch."""
        step = self.sample_rate // _PLC_STEP_PER_SECOND
        wanted = min(samples - samples % step, len(self._pcm))
        concealed = silence(0)
        if wanted > 0:
            made = self._lib.opus_decode(self._decoder, None, 0, self._pcm.ctypes.data, wanted, 0)
            concealed = self._pcm[: max(made, 0)].copy()
        if len(concealed) < samples:
            concealed = np.concatenate((concealed, silence(samples - len(concealed))))
        return concealed

    def encode(self, pcm: Pcm) -> bytes:
        if len(pcm) != self._frame_samples:
            raise ValueError(f"Opus frame must be {self._frame_samples} samples, not {len(pcm)}")
        samples = np.ascontiguousarray(pcm, dtype=np.int16)
        size = self._lib.opus_encode(
            self._encoder, samples.ctypes.data, len(samples), self._packet, _MAX_PACKET
        )
        self._check(min(size, 0))
        return ctypes.string_at(self._packet, size)
