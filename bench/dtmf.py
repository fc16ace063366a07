"""DTMF benchmark: the relay's rate on a side whose events are tapped, and the detector.

1. Relay ratio: one in-process :class:`~sbc.media.relay.engine.RelayEngine`
   stream on loopback, driven closed-loop (bursts of 32, as in
   ``bench/srtp.py``), first plain, then with leg A's telephone events tapped
   (``dtmf_report``: every packet from A takes the per-packet path and has its
   payload type checked; the audio is still relayed). Rounds alternate; the
   best of each is kept.
2. ``detector_pps``: telephone-event packets (an event = start, updates,
   three end packets) fed to :class:`~sbc.media.dtmf.EventDetector`.

    python bench/dtmf.py [--packets 20000] [--rounds 3]

Prints ONE line:
    dtmf: relay_plain_pps=... relay_tapped_pps=... ratio=<tapped/plain> lost=... detector_pps=...
"""

from __future__ import annotations

import argparse
import asyncio
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from relay_loop import free_port, through, udp_socket
from srtp import rtp

from sbc.media.control import Endpoint, SideSpec, StreamSpec
from sbc.media.dtmf import EventDetector
from sbc.media.relay.engine import RelayEngine

EVENT_PT = 101


async def relay_pps(tapped: bool, count: int, session_id: str) -> tuple[float, int]:
    """Packets/s relayed both ways through one stream; A's events tapped when ``tapped``."""
    peer_a, peer_b = udp_socket("127.0.0.1"), udp_socket("127.0.0.2")
    sbc_a = Endpoint("127.0.0.1", free_port("127.0.0.1"))
    sbc_b = Endpoint("127.0.0.2", free_port("127.0.0.2"))
    a_host, a_port = peer_a.getsockname()
    b_host, b_port = peer_b.getsockname()
    spec = StreamSpec(
        session_id,
        0,
        SideSpec(
            sbc_a,
            Endpoint(a_host, a_port),
            rtcp_mux=True,
            allowed_sources=("127.0.0.1",),
            dtmf_pt=EVENT_PT,
            dtmf_report=tapped,
        ),
        SideSpec(sbc_b, Endpoint(b_host, b_port), rtcp_mux=True, allowed_sources=("127.0.0.2",)),
    )
    engine = RelayEngine()
    engine.update(spec)
    try:
        seconds_ab, lost_ab = await through(
            peer_a, peer_b, (sbc_a.host, sbc_a.port), [rtp(i, 0xA) for i in range(count)]
        )
        seconds_ba, lost_ba = await through(
            peer_b, peer_a, (sbc_b.host, sbc_b.port), [rtp(i, 0xB) for i in range(count)]
        )
    finally:
        engine.close()
        peer_a.close()
        peer_b.close()
    return 2 * count / (seconds_ab + seconds_ba), lost_ab + lost_ba


def detector_pps(count: int) -> float:
    payloads = []
    for n in range(count // 8):
        event = n % 16
        payloads += [
            (n * 2000, struct.pack("!BBH", event, 10, duration))
            for duration in (160, 320, 480, 640, 800)
        ]
        payloads += [(n * 2000, struct.pack("!BBH", event, 0x8A, 960))] * 3
    detector = EventDetector()
    start = time.perf_counter()
    for timestamp, payload in payloads:
        detector.feed(timestamp, payload, 0.0)
    return len(payloads) / (time.perf_counter() - start)


async def relay_ratio(count: int, rounds: int) -> tuple[float, float, int]:
    plain = tapped = 0.0
    lost = 0
    for round_ in range(rounds):
        pps, lost_plain = await relay_pps(False, count, f"plain-{round_}")
        plain = max(plain, pps)
        pps, lost_tapped = await relay_pps(True, count, f"tapped-{round_}")
        tapped = max(tapped, pps)
        lost += lost_plain + lost_tapped
    return plain, tapped, lost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    plain, tapped, lost = asyncio.run(relay_ratio(args.packets, args.rounds))
    detector = max(detector_pps(args.packets) for _ in range(args.rounds))
    print(
        f"dtmf: relay_plain_pps={plain:.0f} relay_tapped_pps={tapped:.0f}"
        f" ratio={tapped / plain:.2f} lost={lost} detector_pps={detector:.0f}"
    )


if __name__ == "__main__":
    main()
