"""G.711 µ-law (PCMU) and A-law (PCMA), ITU-T G.711 §3, with lookup tables.

Both are stateless companding of 16-bit linear PCM to 8 bits, so a pair of
numpy tables (256 entries to decode, 65,536 to encode) makes each packet
one indexing operation. The tables are computed once at import from the
segment algorithm of the ITU reference (as in Sun's public ``g711.c``);
the tests check them against known values (µ-law of 0 is 0xFF, A-law of 0
is 0xD5) and against Python's ``audioop`` where it still exists.
RTP payload format: RFC 3551 §4.5.14 (8 kHz clock, one byte per sample).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from sbc.media.transcode.codec import Pcm

_ULAW_BIAS = 0x84  # G.711 µ-law bias (132), on 16-bit values
_ULAW_CLIP = 8159  # largest 14-bit magnitude µ-law represents
_ULAW_SEGMENT_ENDS = (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF)
_ALAW_SEGMENT_ENDS = (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)


def _segment(value: int, ends: tuple[int, ...]) -> int:
    for segment, end in enumerate(ends):
        if value <= end:
            return segment
    return len(ends)


def linear_to_ulaw(sample: int) -> int:
    """One 16-bit sample to its µ-law byte (G.711 Table 2a, 14-bit input)."""
    value = sample >> 2
    mask = 0xFF
    if value < 0:
        value, mask = -value, 0x7F
    value = min(value, _ULAW_CLIP) + (_ULAW_BIAS >> 2)
    segment = _segment(value, _ULAW_SEGMENT_ENDS)
    if segment >= 8:
        return 0x7F ^ mask
    return ((segment << 4) | ((value >> (segment + 1)) & 0x0F)) ^ mask


def ulaw_to_linear(code: int) -> int:
    """One µ-law byte to its 16-bit sample."""
    code = ~code & 0xFF
    magnitude = (((code & 0x0F) << 3) + _ULAW_BIAS) << ((code & 0x70) >> 4)
    return (_ULAW_BIAS - magnitude) if code & 0x80 else (magnitude - _ULAW_BIAS)


def linear_to_alaw(sample: int) -> int:
    """One 16-bit sample to its A-law byte (G.711 Table 1a, 13-bit input, even bits inverted)."""
    value = sample >> 3
    mask = 0xD5
    if value < 0:
        value, mask = -value - 1, 0x55
    segment = _segment(value, _ALAW_SEGMENT_ENDS)
    if segment >= 8:
        return 0x7F ^ mask
    mantissa = (value >> 1) & 0x0F if segment < 2 else (value >> segment) & 0x0F
    return ((segment << 4) | mantissa) ^ mask


def alaw_to_linear(code: int) -> int:
    """One A-law byte to its 16-bit sample."""
    code ^= 0x55
    value = (code & 0x0F) << 4
    segment = (code & 0x70) >> 4
    if segment == 0:
        value += 8
    elif segment == 1:
        value += 0x108
    else:
        value = (value + 0x108) << (segment - 1)
    return value if code & 0x80 else -value


def _decode_table(convert: object) -> npt.NDArray[np.int16]:
    assert callable(convert)
    return np.array([convert(code) for code in range(256)], dtype=np.int16)


def _encode_table(convert: object) -> npt.NDArray[np.uint8]:
    """Indexed by the sample's bits as uint16 (so negatives wrap to the top half)."""
    assert callable(convert)
    samples = np.arange(65536, dtype=np.uint16).view(np.int16)
    return np.array([convert(int(s)) for s in samples], dtype=np.uint8)


ULAW_DECODE = _decode_table(ulaw_to_linear)
ULAW_ENCODE = _encode_table(linear_to_ulaw)
ALAW_DECODE = _decode_table(alaw_to_linear)
ALAW_ENCODE = _encode_table(linear_to_alaw)


class _G711:
    clock_rate = 8000
    sample_rate = 8000
    channels = 1
    name: str
    _decode_table: npt.NDArray[np.int16]
    _encode_table: npt.NDArray[np.uint8]

    def decode(self, payload: bytes) -> Pcm:
        codes = np.frombuffer(payload, dtype=np.uint8)
        decoded: Pcm = self._decode_table[codes]
        return decoded

    def encode(self, pcm: Pcm) -> bytes:
        return self._encode_table[pcm.view(np.uint16)].tobytes()


class Pcmu(_G711):
    """G.711 µ-law, RTP static payload type 0."""

    name = "PCMU"
    _decode_table = ULAW_DECODE
    _encode_table = ULAW_ENCODE


class Pcma(_G711):
    """G.711 A-law, RTP static payload type 8."""

    name = "PCMA"
    _decode_table = ALAW_DECODE
    _encode_table = ALAW_ENCODE
