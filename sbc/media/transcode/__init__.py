"""Audio transcoding building blocks: codecs, resampling, ptime adaptation, capacity.

Pure (no I/O, no clock): the relay calls :meth:`Transcoder.feed` with each
RTP payload and its timestamp and sends what comes back on the other leg.
Codec choice and why: :mod:`sbc.media.transcode.avcodec` (G.722, and Opus
through FFmpeg) and :mod:`sbc.media.transcode.libopus` (Opus directly, the
fast path); G.711 is lookup tables (:mod:`sbc.media.transcode.g711`).
Start from :func:`create_transcoder` (by ``a=rtpmap`` names).

The names below are loaded on first use (PEP 562): the signalling process
only needs :class:`TranscodePool` and codec names, not NumPy, FFmpeg or
libopus (about 30 MB of RSS and 0.4 s of start-up); the relay loads them
when it builds its first transcoder.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sbc.media.transcode.avcodec import G722, Opus
    from sbc.media.transcode.codec import Codec, ConcealingCodec, Pcm
    from sbc.media.transcode.g711 import Pcma, Pcmu
    from sbc.media.transcode.libopus import LibOpus, libopus_available
    from sbc.media.transcode.pool import TranscodePool
    from sbc.media.transcode.registry import TRANSCODABLE, create_codec, create_transcoder
    from sbc.media.transcode.resample import Resampler
    from sbc.media.transcode.transcoder import Transcoder

#: Public name -> the submodule defining it.
_HOMES = {
    "G722": "avcodec",
    "Opus": "avcodec",
    "Codec": "codec",
    "ConcealingCodec": "codec",
    "Pcm": "codec",
    "Pcma": "g711",
    "Pcmu": "g711",
    "LibOpus": "libopus",
    "libopus_available": "libopus",
    "TranscodePool": "pool",
    "TRANSCODABLE": "registry",
    "create_codec": "registry",
    "create_transcoder": "registry",
    "Resampler": "resample",
    "Transcoder": "transcoder",
}

__all__ = [
    "G722",
    "TRANSCODABLE",
    "Codec",
    "ConcealingCodec",
    "LibOpus",
    "Opus",
    "Pcm",
    "Pcma",
    "Pcmu",
    "Resampler",
    "TranscodePool",
    "Transcoder",
    "create_codec",
    "create_transcoder",
    "libopus_available",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # once loaded, a plain module attribute
    return value
