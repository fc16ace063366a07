"""Codec instances by ``a=rtpmap`` encoding name (RFC 8866 §6.6, case-insensitive),
and transcoders between two named codecs."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from sbc.media.control import DEFAULT_OPUS_COMPLEXITY
from sbc.media.transcode.avcodec import G722, OPUS_CLOCK_RATE, Opus
from sbc.media.transcode.codec import Codec
from sbc.media.transcode.g711 import Pcma, Pcmu
from sbc.media.transcode.libopus import LibOpus, libopus_available
from sbc.media.transcode.transcoder import Transcoder
from sbc.sip.params import parse_number
from sbc.sip.sdp import MAX_SDP_NUMBER


def _opus(ptime_ms: int, fmtp: Mapping[str, str], pcm_rate: int | None, complexity: int) -> Codec:
    """libopus directly when it loads (faster, with PLC), else through FFmpeg."""
    bitrate = parse_number(fmtp.get("maxaveragebitrate", ""), MAX_SDP_NUMBER)
    implementation = LibOpus if libopus_available() else Opus
    return implementation(
        ptime_ms,
        32000 if bitrate is None else bitrate,
        complexity,
        sample_rate=pcm_rate or OPUS_CLOCK_RATE,
    )


_FACTORIES: dict[str, Callable[[int, Mapping[str, str], int | None, int], Codec]] = {
    "pcmu": lambda _ptime, _fmtp, _rate, _complexity: Pcmu(),
    "pcma": lambda _ptime, _fmtp, _rate, _complexity: Pcma(),
    "g722": lambda _ptime, _fmtp, _rate, _complexity: G722(),
    "opus": _opus,
}

#: Encoding names this package can transcode between.
TRANSCODABLE = frozenset(_FACTORIES)
#: PCM rate of the fixed-rate codecs, for choosing Opus's.
_NATIVE_RATE = {"pcmu": 8000, "pcma": 8000, "g722": 16000}


def create_codec(
    name: str,
    ptime_ms: int = 20,
    fmtp: Mapping[str, str] | None = None,
    pcm_rate: int | None = None,
    complexity: int = DEFAULT_OPUS_COMPLEXITY,
) -> Codec:
    """A fresh codec instance.

    ``pcm_rate`` and ``complexity`` only matter to Opus (its PCM rate is free;
    its encoder trades CPU for quality, 0-10). A name
    not in :data:`TRANSCODABLE`, or parameters the codec refuses (an Opus
    ptime of 30 ms, a bitrate out of range) raise ValueError.
    """
    factory = _FACTORIES.get(name.lower())
    if factory is None:
        raise ValueError(f"cannot transcode {name!r}")
    return factory(ptime_ms, fmtp or {}, pcm_rate, complexity)


def create_transcoder(
    src: str,
    dst: str,
    src_ptime_ms: int = 20,
    dst_ptime_ms: int = 20,
    *,
    src_fmtp: Mapping[str, str] | None = None,
    dst_fmtp: Mapping[str, str] | None = None,
    opus_complexity: int = DEFAULT_OPUS_COMPLEXITY,
) -> Transcoder:
    """A transcoder from codec ``src`` to ``dst``; Opus runs at the other side's PCM rate.

    Audio that starts or ends as 8 kHz G.711 has no more than narrowband in
    it, so Opus facing it encodes and decodes at 8 kHz: no 48 kHz
    resampling, and libopus's cheaper narrowband mode (bench/transcode.py).
    """
    src_rate = _NATIVE_RATE.get(src.lower())
    dst_rate = _NATIVE_RATE.get(dst.lower())
    return Transcoder(
        create_codec(src, src_ptime_ms, src_fmtp, dst_rate, opus_complexity),
        create_codec(dst, dst_ptime_ms, dst_fmtp, src_rate, opus_complexity),
        src_ptime_ms,
        dst_ptime_ms,
    )
