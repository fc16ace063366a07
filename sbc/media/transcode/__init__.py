"""Audio transcoding building blocks: codecs, resampling, ptime adaptation, capacity.

Pure (no I/O, no clock): the relay calls :meth:`Transcoder.feed` with each
RTP payload and its timestamp and sends what comes back on the other leg.
Codec choice and why: :mod:`sbc.media.transcode.avcodec`.
"""

from sbc.media.transcode.avcodec import G722, Opus
from sbc.media.transcode.codec import Codec, Pcm
from sbc.media.transcode.g711 import Pcma, Pcmu
from sbc.media.transcode.pool import TranscodePool
from sbc.media.transcode.registry import TRANSCODABLE, create_codec, create_transcoder
from sbc.media.transcode.resample import Resampler
from sbc.media.transcode.transcoder import Transcoder

__all__ = [
    "G722",
    "TRANSCODABLE",
    "Codec",
    "Opus",
    "Pcm",
    "Pcma",
    "Pcmu",
    "Resampler",
    "TranscodePool",
    "Transcoder",
    "create_codec",
    "create_transcoder",
]
