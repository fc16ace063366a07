"""Transcoding through the relay engine: PCMU <-> Opus packets per second, one stream.

Prints one line:
    transcode_relay: pps=<N> sessions_equivalent=<N / 100> lost=<L> (20 ms, ...)

One :class:`~sbc.media.relay.engine.RelayEngine` stream on loopback whose
legs share no codec (leg A PCMU, leg B Opus, the TranscodeSpec a call would
get): closed loop, bursts of packets sent into one side and waited for on the
other, both directions in turn. This is the whole path a transcoded packet
takes (socket, latch, stats, decode, resample, encode, our RTP header,
socket), in one process, so packets/s / 100 (50 packets each way per call) is
the number of calls one relay process carries at 100 % of a core; the
Opus payloads are real (a speech-like signal encoded beforehand). Wall time:
compare against bench/transcode.py's CPU-only figure within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import struct

from relay_loop import free_port, through, udp_socket
from transcode import speech_like

from sbc.media.control import (
    CodecEnd,
    Endpoint,
    SideSpec,
    StreamSpec,
    TranscodeDirection,
    TranscodeSpec,
)
from sbc.media.relay.engine import RelayEngine
from sbc.media.transcode import Opus, Pcmu

BURST = 20
PCMU = CodecEnd("pcmu", 0, 20, (), 101)
OPUS = CodecEnd("opus", 96, 20, (), 101)
TRANSCODE = TranscodeSpec(TranscodeDirection(PCMU, OPUS), TranscodeDirection(OPUS, PCMU))
HEADER = struct.Struct("!BBHII")


def payloads(count: int) -> tuple[list[bytes], list[bytes]]:
    """``count`` 20 ms PCMU packets (A's) and Opus packets (B's), real audio."""
    narrow, wide = speech_like(8000, count * 0.02), speech_like(48000, count * 0.02)
    pcmu, opus = Pcmu(), Opus()
    to_b = [
        HEADER.pack(0x80, 0, i & 0xFFFF, i * 160, 0xA) + pcmu.encode(narrow[i * 160 :][:160])
        for i in range(count)
    ]
    to_a = [
        HEADER.pack(0x80, 96, i & 0xFFFF, i * 960, 0xB) + opus.encode(wide[i * 960 :][:960])
        for i in range(count)
    ]
    return to_b, to_a


async def transcoded_pps(count: int, session_id: str) -> tuple[float, int]:
    peer_a, peer_b = udp_socket("127.0.0.1"), udp_socket("127.0.0.2")
    sbc_a = Endpoint("127.0.0.1", free_port("127.0.0.1"))
    sbc_b = Endpoint("127.0.0.2", free_port("127.0.0.2"))
    a_host, a_port = peer_a.getsockname()
    b_host, b_port = peer_b.getsockname()
    spec = StreamSpec(
        session_id,
        0,
        SideSpec(sbc_a, Endpoint(a_host, a_port), rtcp_mux=True, allowed_sources=("127.0.0.1",)),
        SideSpec(sbc_b, Endpoint(b_host, b_port), rtcp_mux=True, allowed_sources=("127.0.0.2",)),
        transcode=TRANSCODE,
    )
    to_b, to_a = payloads(count)
    engine = RelayEngine()
    engine.update(spec)
    try:
        seconds_ab, lost_ab = await through(peer_a, peer_b, (sbc_a.host, sbc_a.port), to_b, BURST)
        seconds_ba, lost_ba = await through(peer_b, peer_a, (sbc_b.host, sbc_b.port), to_a, BURST)
    finally:
        engine.close()
        peer_a.close()
        peer_b.close()
    return 2 * count / (seconds_ab + seconds_ba), lost_ab + lost_ba


async def best_of(count: int, rounds: int) -> tuple[float, int]:
    best, lost = 0.0, 0
    for round_ in range(rounds):
        pps, lost_round = await transcoded_pps(count, f"transcode-{round_}")
        best, lost = max(best, pps), lost + lost_round
    return best, lost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=2000, help="packets each way per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    pps, lost = asyncio.run(best_of(args.packets, args.rounds))
    print(
        f"transcode_relay: pps={pps:.0f} sessions_equivalent={pps / 100:.0f} lost={lost}"
        f" (PCMU<->Opus 20 ms, one in-process stream, closed loop, best of {args.rounds})"
    )


if __name__ == "__main__":
    main()
