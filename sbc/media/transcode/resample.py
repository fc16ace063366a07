"""Sample-rate conversion (8 ↔ 16 ↔ 48 kHz) with FFmpeg's swresample.

swresample's default filter is a windowed-sinc polyphase filter, which is
what a telephone-band conversion needs (no audible aliasing when going
down to 8 kHz). The resampler is stateful: it keeps the filter's history
between packets, so one instance serves one stream direction, and its
output lags its input by the filter's delay (a few samples). That delay is
given back as leading silence on the first chunk, so every chunk out is
as long as the chunk in (in time): otherwise each packet's frame would be
a few samples short and wait for the next packet, adding a whole ptime of
latency per resampling hop.
"""

from __future__ import annotations

import av
import numpy as np

from sbc.media.transcode.codec import Pcm, silence
from sbc.media.transcode.frames import frames_pcm, pcm_frame


class Resampler:
    """Mono int16 PCM from ``from_rate`` to ``to_rate``; identity when they match."""

    def __init__(self, from_rate: int, to_rate: int) -> None:
        self.from_rate = from_rate
        self.to_rate = to_rate
        self._primed = False
        self._resampler = (
            None
            if from_rate == to_rate
            else av.AudioResampler(format="s16", layout="mono", rate=to_rate)
        )

    def convert(self, pcm: Pcm) -> Pcm:
        """Resample the next chunk of the stream (any length, possibly empty)."""
        if self._resampler is None or len(pcm) == 0:
            return pcm if self._resampler is None else np.zeros(0, dtype=np.int16)
        converted = frames_pcm(self._resampler.resample(pcm_frame(pcm, self.from_rate)))
        if not self._primed:
            self._primed = True
            expected = len(pcm) * self.to_rate // self.from_rate
            if len(converted) < expected:
                converted = np.concatenate((silence(expected - len(converted)), converted))
        return converted
