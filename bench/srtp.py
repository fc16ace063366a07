"""SRTP benchmark: libsrtp protect+unprotect packets/s, and the relay's rate with SRTP on one leg.

1. ``protect_unprotect_pps``: 172-byte RTP packets (12-byte header, 160-byte
   payload) protected by one pylibsrtp session and unprotected by another,
   per suite (AES_CM_128_HMAC_SHA1_80, AEAD_AES_128_GCM): one packet = both.
2. Relay ratio, measured in the same run: one in-process
   :class:`~sbc.media.relay.engine.RelayEngine` stream on loopback, driven
   closed-loop (a burst of 32 packets is sent, the next once they all
   arrived), first with both legs plain, then with leg B SRTP (A -> B
   packets protected by the relay, B -> A packets, pre-protected, unprotected
   by it). Rounds alternate plain/SRTP and the best of each is kept; the
   sender and receiver are the same in both, so the ratio is the relay's.

    python bench/srtp.py [--packets 20000] [--rounds 3]

Prints ONE line:
    srtp: protect_unprotect_pps=<AES_CM_80> gcm_pps=<AEAD_AES_128_GCM>
          relay_plain_pps=... relay_srtp_pps=... ratio=<srtp/plain> lost=...
"""

from __future__ import annotations

import argparse
import asyncio
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from relay_loop import free_port, through, udp_socket

from sbc.media.control import Endpoint, SideSpec, SrtpKeys, StreamSpec
from sbc.media.relay.engine import RelayEngine
from sbc.media.sdes import SUITES_BY_NAME, generate_key
from sbc.media.srtp import session

PAYLOAD = bytes(160)
RTP = struct.Struct("!BBHII")
SUITE = "AES_CM_128_HMAC_SHA1_80"


def rtp(seq: int, ssrc: int) -> bytes:
    return RTP.pack(0x80, 0, seq & 0xFFFF, seq * 160, ssrc) + PAYLOAD


def protect_unprotect_pps(suite: str, count: int) -> float:
    key = generate_key(SUITES_BY_NAME[suite])
    sender = session(suite, key, inbound=False)
    receiver = session(suite, key, inbound=True)
    packets = [rtp(i, 0x1234) for i in range(count)]
    start = time.perf_counter()
    for packet in packets:
        receiver.unprotect(sender.protect(packet))
    return count / (time.perf_counter() - start)


async def relay_pps(srtp: bool, count: int, session_id: str) -> tuple[float, int]:
    """Packets/s relayed both ways through one stream; leg B is SRTP when ``srtp``."""
    peer_a, peer_b = udp_socket("127.0.0.1"), udp_socket("127.0.0.2")
    sbc_a = Endpoint("127.0.0.1", free_port("127.0.0.1"))
    sbc_b = Endpoint("127.0.0.2", free_port("127.0.0.2"))
    material = SUITES_BY_NAME[SUITE]
    keys = SrtpKeys(SUITE, generate_key(material), generate_key(material)) if srtp else None
    a_host, a_port = peer_a.getsockname()
    b_host, b_port = peer_b.getsockname()
    spec = StreamSpec(
        session_id,
        0,
        SideSpec(sbc_a, Endpoint(a_host, a_port), rtcp_mux=True, allowed_sources=("127.0.0.1",)),
        SideSpec(
            sbc_b,
            Endpoint(b_host, b_port),
            rtcp_mux=True,
            allowed_sources=("127.0.0.2",),
            srtp=keys,
        ),
    )
    engine = RelayEngine()
    engine.update(spec)
    to_b = [rtp(i, 0xA) for i in range(count)]
    to_a = [rtp(i, 0xB) for i in range(count)]
    if keys is not None:  # what B's own SRTP stack sends, prepared outside the timing
        out = session(SUITE, keys.receive_key, inbound=False)
        to_a = [out.protect(p) for p in to_a]
    try:
        seconds_ab, lost_ab = await through(peer_a, peer_b, (sbc_a.host, sbc_a.port), to_b)
        seconds_ba, lost_ba = await through(peer_b, peer_a, (sbc_b.host, sbc_b.port), to_a)
    finally:
        engine.close()
        peer_a.close()
        peer_b.close()
    return 2 * count / (seconds_ab + seconds_ba), lost_ab + lost_ba


async def relay_ratio(count: int, rounds: int) -> tuple[float, float, int]:
    plain = srtp = 0.0
    lost = 0
    for round_ in range(rounds):
        pps, lost_plain = await relay_pps(False, count, f"plain-{round_}")
        plain = max(plain, pps)
        pps, lost_srtp = await relay_pps(True, count, f"srtp-{round_}")
        srtp = max(srtp, pps)
        lost += lost_plain + lost_srtp
    return plain, srtp, lost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    aes = max(protect_unprotect_pps(SUITE, args.packets) for _ in range(args.rounds))
    gcm = max(protect_unprotect_pps("AEAD_AES_128_GCM", args.packets) for _ in range(args.rounds))
    plain, srtp, lost = asyncio.run(relay_ratio(args.packets, args.rounds))
    print(
        f"srtp: protect_unprotect_pps={aes:.0f} gcm_pps={gcm:.0f}"
        f" relay_plain_pps={plain:.0f} relay_srtp_pps={srtp:.0f}"
        f" ratio={srtp / plain:.2f} lost={lost} packet={len(rtp(0, 0))}"
    )


if __name__ == "__main__":
    main()
