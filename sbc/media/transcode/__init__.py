"""Audio transcoding building blocks: codecs, resampling, ptime adaptation, capacity.

Pure (no I/O, no clock): the relay calls :meth:`Transcoder.feed` with each
RTP payload and its timestamp and sends what comes back on the other leg.
Codec choice and why: :mod:`sbc.media.transcode.avcodec` (G.722, and Opus
through FFmpeg) and :mod:`sbc.media.transcode.libopus` (Opus directly, the
fast path); G.711 is lookup tables (:mod:`sbc.media.transcode.g711`).
Start from :func:`create_transcoder` (by ``a=rtpmap`` names).
"""

from sbc.media.transcode.avcodec import G722, Opus
from sbc.media.transcode.codec import Codec, ConcealingCodec, Pcm
from sbc.media.transcode.g711 import Pcma, Pcmu
from sbc.media.transcode.libopus import LibOpus, libopus_available
from sbc.media.transcode.pool import TranscodePool
from sbc.media.transcode.registry import TRANSCODABLE, create_codec, create_transcoder
from sbc.media.transcode.resample import Resampler
from sbc.media.transcode.transcoder import Transcoder

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
