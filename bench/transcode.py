"""Transcoding benchmark: PCMU <-> Opus sessions one core carries at 20 ms.

Prints one line:
    transcode: <N> PCMU<->Opus sessions per core (20 ms, Opus complexity C, B kbit/s, ...)

A session is both directions of a call: PCMU decoded and Opus encoded, Opus
decoded and PCMU encoded, 50 packets a second each way. By default Opus is
libopus called directly with its PCM side at 8 kHz, as create_transcoder
sets it up facing G.711 (no resampling); --opus-rate 48000 measures
fullband with swresample, --ffmpeg the PyAV/FFmpeg path. Every packet
goes through :class:`sbc.media.transcode.Transcoder` exactly as the relay
will call it. Sessions per core = (1 s of CPU) / (CPU one session needs per
second of audio), less 5% headroom for the relay's own work. CPU time
(process_time), not wall time; the audio is a speech-like mix (two tones
with a moving pitch plus noise) so Opus does real work.
Compare ratios within one run: the machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from sbc.media.transcode import LibOpus, Opus, Pcm, Pcmu, Transcoder, libopus_available

PACKETS_PER_SECOND = 50
HEADROOM = 0.05


def speech_like(rate: int, seconds: float) -> Pcm:
    t = np.arange(int(rate * seconds)) / rate
    pitch = 180 + 60 * np.sin(2 * np.pi * 0.7 * t)
    voiced = 6000 * np.sin(2 * np.pi * np.cumsum(pitch) / rate)
    formant = 2500 * np.sin(2 * np.pi * 1200 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    noise = np.random.default_rng(7).normal(0, 400, len(t))
    return np.clip(voiced + formant + noise, -32768, 32767).astype(np.int16)


def streams(seconds: int, complexity: int, bitrate: int) -> tuple[list[bytes], list[bytes]]:
    """One session's PCMU payloads (caller) and Opus payloads (the other leg)."""
    pcmu, opus = Pcmu(), Opus(complexity=complexity, bitrate=bitrate)
    narrow, wide = speech_like(8000, seconds), speech_like(48000, seconds)
    packets = seconds * PACKETS_PER_SECOND
    return (
        [pcmu.encode(narrow[i * 160 : (i + 1) * 160]) for i in range(packets)],
        [opus.encode(wide[i * 960 : (i + 1) * 960]) for i in range(packets)],
    )


def cpu_per_session_second(
    sessions: int, seconds: int, complexity: int, bitrate: int, *, pcm_rate: int, ffmpeg: bool
) -> float:
    pcmu_payloads, opus_payloads = streams(seconds, complexity, bitrate)

    def opus() -> Opus | LibOpus:  # create_transcoder picks 8 kHz PCM facing G.711
        kind = Opus if ffmpeg else LibOpus
        return kind(complexity=complexity, bitrate=bitrate, sample_rate=pcm_rate)

    legs = [(Transcoder(Pcmu(), opus()), Transcoder(opus(), Pcmu())) for _ in range(sessions)]
    start = time.process_time()
    for index in range(seconds * PACKETS_PER_SECOND):
        timestamp_8k, timestamp_48k = index * 160, index * 960
        for to_opus, to_pcmu in legs:
            to_opus.feed(pcmu_payloads[index], timestamp_8k)
            to_pcmu.feed(opus_payloads[index], timestamp_48k)
    return (time.process_time() - start) / (sessions * seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=20, help="sessions run side by side")
    parser.add_argument("--seconds", type=int, default=5, help="seconds of audio per session")
    parser.add_argument("--complexity", type=int, default=5, help="Opus encoder complexity 0-10")
    parser.add_argument(
        "--opus-rate", type=int, default=8000, help="Opus PCM rate (48000: fullband)"
    )
    parser.add_argument(
        "--ffmpeg", action="store_true", help="Opus through FFmpeg (PyAV) instead of libopus"
    )
    parser.add_argument("--bitrate", type=int, default=32000, help="Opus bitrate, bit/s")
    args = parser.parse_args()
    cost = cpu_per_session_second(
        args.sessions,
        args.seconds,
        args.complexity,
        args.bitrate,
        pcm_rate=args.opus_rate,
        ffmpeg=args.ffmpeg or not libopus_available(),
    )
    per_core = int((1.0 - HEADROOM) / cost)
    print(
        f"transcode: {per_core} PCMU<->Opus sessions per core (20 ms, Opus complexity "
        f"{args.complexity}, {args.bitrate // 1000} kbit/s, {args.opus_rate // 1000} kHz PCM; "
        f"{'FFmpeg' if args.ffmpeg or not libopus_available() else 'libopus'}; "
        f"{cost * 1e6 / 100:.0f} us per packet)"
    )


if __name__ == "__main__":
    main()
