"""numpy int16 PCM to and from PyAV audio frames (mono, packed s16)."""

from __future__ import annotations

import numpy as np
from av.audio.frame import AudioFrame

from sbc.media.transcode.codec import Pcm


def pcm_frame(pcm: Pcm, sample_rate: int) -> AudioFrame:
    frame = AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = sample_rate
    return frame


def frames_pcm(frames: list[AudioFrame]) -> Pcm:
    """Decoded frames as one mono int16 array (whatever sample format FFmpeg chose)."""
    parts: list[Pcm] = []
    for frame in frames:
        samples = frame.to_ndarray().reshape(-1)
        if samples.dtype != np.int16:  # float formats: [-1, 1] scale
            samples = np.clip(samples * 32768.0, -32768, 32767).astype(np.int16)
        parts.append(samples.astype(np.int16, copy=False))
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)
