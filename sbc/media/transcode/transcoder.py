"""One direction of a transcoded stream: RTP payloads of one codec in, another's out.

Theory of operation (per direction, pure: no clock, no I/O):

1. Each payload is decoded to PCM at the source codec's sample rate.
2. The RTP timestamp tells whether anything was lost (RFC 3550 §5.1: it
   advances by the samples carried, in clock units). A gap up to
   ``max_conceal_ms`` is filled so the output keeps its pace: with the
   codec's packet-loss concealment when it has one (libopus, RFC 6716
   §4.4), else with silence (G.711, G.722; FFmpeg's Opus). A longer gap
   (the peer stopped sending: hold, silence suppression) is not filled:
   the output timestamp jumps by the same duration instead. A packet
   a little older than the next expected one (late, reordered, duplicate)
   is dropped: its time has already been played out. One far older means
   the source restarted its timeline (a new SSRC, RFC 3550 §8.2): input is
   re-anchored there and the output timeline simply goes on.
3. PCM is resampled to the destination codec's sample rate.
4. PCM is buffered and cut into frames of the destination ptime (ptime
   adaptation, e.g. 20 ms in and 30 ms out: two packets in give one out,
   then one in gives one out). Each frame is encoded into one payload.
5. Output timestamps run on the destination clock, starting from the first
   input timestamp scaled to it, and advance by exactly one frame per
   payload, so the far leg sees a clean, gap-free stream.

Telephone events (RFC 4733) are not audio: :meth:`Transcoder.feed_event`
passes their payload through, only placing it on the destination timeline
(and rescaling its duration field when the clocks differ, §2.5.1.4).
"""

from __future__ import annotations

import numpy as np

from sbc.media.transcode.codec import Codec, ConcealingCodec, Pcm, silence
from sbc.media.transcode.resample import Resampler

_TIMESTAMP_MOD = 1 << 32
_HALF_TIMESTAMP = 1 << 31
#: RFC 4733 §2.3: event (8) E|R|volume (8) duration (16).
_EVENT_HEADER = 4


def timestamp_delta(later: int, earlier: int) -> int:
    """``later - earlier`` in RFC 3550's modulo-2^32 timestamp space, signed."""
    delta = (later - earlier) % _TIMESTAMP_MOD
    return delta - _TIMESTAMP_MOD if delta >= _HALF_TIMESTAMP else delta


class Transcoder:
    """Transcode one stream direction from ``src`` to ``dst``."""

    def __init__(
        self,
        src: Codec,
        dst: Codec,
        src_ptime_ms: int = 20,
        dst_ptime_ms: int = 20,
        *,
        max_conceal_ms: int = 100,
    ) -> None:
        if src_ptime_ms <= 0 or dst_ptime_ms <= 0:
            raise ValueError("ptime must be positive")
        # Codecs with a fixed frame duration (Opus) must have been made for this ptime.
        if getattr(dst, "ptime_ms", dst_ptime_ms) != dst_ptime_ms:
            raise ValueError(f"{dst.name} encoder was set up for another ptime than {dst_ptime_ms}")
        self.src = src
        self.dst = dst
        self.src_ptime_ms = src_ptime_ms
        self.dst_ptime_ms = dst_ptime_ms
        self._frame_samples = dst.sample_rate * dst_ptime_ms // 1000
        self._frame_clock = dst.clock_rate * dst_ptime_ms // 1000
        self._max_conceal = src.clock_rate * max_conceal_ms // 1000
        self._resampler = Resampler(src.sample_rate, dst.sample_rate)
        self._buffer: Pcm = np.zeros(0, dtype=np.int16)
        self._next_in_ts: int | None = None
        self._out_ts = 0
        #: Counters for stats: payloads dropped as late, and gaps concealed / skipped.
        self.late_dropped = 0
        self.gaps_concealed = 0
        self.gaps_skipped = 0
        self.restarts = 0

    def feed(self, payload: bytes, timestamp: int) -> list[tuple[bytes, int]]:
        """One source RTP payload in; zero or more ``(payload, timestamp)`` out."""
        expected = self._anchor(timestamp)
        gap = timestamp_delta(timestamp, expected)
        if -self._max_conceal <= gap < 0:
            self.late_dropped += 1
            return []
        if gap < 0:  # far behind: the source restarted its timeline (new SSRC, RFC 3550 §8.2)
            self.restarts += 1
            self._next_in_ts = timestamp
            gap = 0
        pcm = self.src.decode(payload)
        if len(pcm) == 0:  # undecodable: treated as lost, the next packet fills the gap
            return []
        self._next_in_ts = (timestamp + self._src_clock(len(pcm))) % _TIMESTAMP_MOD
        if gap > self._max_conceal:
            self._skip(gap)
        elif gap > 0:
            self.gaps_concealed += 1
            pcm = np.concatenate((self._conceal(self._src_samples(gap)), pcm))
        self._buffer = np.concatenate((self._buffer, self._resampler.convert(pcm)))
        return self._drain()

    def feed_event(self, payload: bytes, timestamp: int) -> tuple[bytes, int]:
        """An RFC 4733 telephone-event payload, placed on the destination timeline."""
        expected = self._anchor(timestamp)
        offset = timestamp_delta(timestamp, expected) * self.dst.clock_rate // self.src.clock_rate
        buffered = len(self._buffer) * self.dst.clock_rate // self.dst.sample_rate
        out_ts = (self._out_ts + buffered + offset) % _TIMESTAMP_MOD
        if self.src.clock_rate == self.dst.clock_rate or len(payload) < _EVENT_HEADER:
            return payload, out_ts
        duration = int.from_bytes(payload[2:4], "big") * self.dst.clock_rate // self.src.clock_rate
        rescaled = payload[:2] + min(duration, 0xFFFF).to_bytes(2, "big") + payload[4:]
        return rescaled, out_ts

    def _anchor(self, timestamp: int) -> int:
        """The next expected input timestamp, set from the first packet seen."""
        if self._next_in_ts is None:
            self._next_in_ts = timestamp
            self._out_ts = timestamp * self.dst.clock_rate // self.src.clock_rate % _TIMESTAMP_MOD
        return self._next_in_ts

    def _skip(self, gap: int) -> None:
        """A long gap: drop the partial frame and move the output timeline past the gap."""
        self.gaps_skipped += 1
        buffered = len(self._buffer) * self.dst.clock_rate // self.dst.sample_rate
        skipped = gap * self.dst.clock_rate // self.src.clock_rate
        self._out_ts = (self._out_ts + buffered + skipped) % _TIMESTAMP_MOD
        self._buffer = self._buffer[:0]

    def _drain(self) -> list[tuple[bytes, int]]:
        out: list[tuple[bytes, int]] = []
        frame = self._frame_samples
        while len(self._buffer) >= frame:
            chunk, self._buffer = self._buffer[:frame], self._buffer[frame:]
            out.append((self.dst.encode(np.ascontiguousarray(chunk)), self._out_ts))
            self._out_ts = (self._out_ts + self._frame_clock) % _TIMESTAMP_MOD
        return out

    def _conceal(self, samples: int) -> Pcm:
        """The source codec's packet-loss concealment when it has one, else silence."""
        if isinstance(self.src, ConcealingCodec):
            return self.src.conceal(samples)
        return silence(samples)

    def _src_samples(self, clock_units: int) -> int:
        return clock_units * self.src.sample_rate // self.src.clock_rate

    def _src_clock(self, samples: int) -> int:
        return samples * self.src.clock_rate // self.src.sample_rate
