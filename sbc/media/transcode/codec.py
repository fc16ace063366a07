"""The codec interface the transcoder works through, and PCM conventions.

PCM is mono signed 16-bit native-endian audio held in a numpy ``int16``
array at the codec's *sample rate*, which is not always its RTP *clock
rate*: G.722 samples at 16 kHz but its RTP clock runs at 8 kHz (RFC 3551
§4.5.2), and Opus always uses a 48 kHz RTP clock (RFC 7587 §4.1).
"""

from __future__ import annotations

from typing import Protocol, TypeAlias, runtime_checkable

import numpy as np
import numpy.typing as npt

#: Mono int16 samples at a codec's sample rate.
Pcm: TypeAlias = npt.NDArray[np.int16]


def silence(samples: int) -> Pcm:
    """``samples`` zero samples: what fills a gap when a codec has no PLC."""
    return np.zeros(samples, dtype=np.int16)


class Codec(Protocol):
    """One direction-agnostic codec instance; encoders and decoders may keep state.

    A transcoder owns its codec instances: one decodes one leg, another
    encodes for the other leg, so predictive codecs (G.722 ADPCM, Opus)
    keep their state per stream.
    """

    #: Encoding name as in ``a=rtpmap`` (RFC 8866 §6.6), e.g. ``"PCMU"``.
    name: str
    #: RTP timestamp rate (RFC 3550 §5.1).
    clock_rate: int
    #: Rate of the PCM that :meth:`decode` returns and :meth:`encode` takes.
    sample_rate: int
    channels: int

    def decode(self, payload: bytes) -> Pcm:
        """One RTP payload to PCM; undecodable input gives what could be decoded."""
        ...

    def encode(self, pcm: Pcm) -> bytes:
        """Exactly one packet's worth of PCM (one ptime) to one RTP payload."""
        ...


@runtime_checkable
class ConcealingCodec(Codec, Protocol):
    """A codec that can make up audio for lost packets (packet-loss concealment)."""

    def conceal(self, samples: int) -> Pcm:
        """``samples`` of PCM standing in for a lost stretch of the stream."""
        ...
