"""Media relay benchmark: relayed RTP packets/s through the WorkerPool.

N concurrent two-way streams of 172-byte RTP (12-byte header, 160-byte
G.711 payload) at 20 ms pacing, from a blaster in a separate process
(non-blocking sockets, epoll), through :class:`sbc.media.relay.WorkerPool`
with rtcp-mux (2 relay sockets per stream). N steps up (default 100, 250,
500, 1000, 1500), 5 s per step. A step passes when loss < 0.1 % in total
and the blaster kept the offered rate (>= 99 %: a backlogged blaster does
not count). Added latency is receive time minus the send timestamp carried
in the payload (so it includes the blaster's own scheduling).

    python bench/media.py [--steps 100,250,500,1000,1500] [--duration 5] [--workers N]

Prints ONE line:
    media: pps=<relayed packets/s> streams=<N> loss_pct=... p50_us=... p99_us=...
           cpu_s_per_1000_streams=<worker CPU seconds per second per 1000 streams> ...

The rtpengine comparison of issue 3 is not run yet (see the closing note).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import select
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sbc.media.control import Endpoint, SideSpec, StreamSpec
from sbc.media.relay.workers import WorkerPool

RELAY_A, RELAY_B = "127.0.0.51", "127.0.0.52"  # the SBC's two media interfaces
PEER_A, PEER_B = "127.0.0.53", "127.0.0.54"  # the blaster's endpoints
BASE_PORT = 21000
PACKET = 172
PTIME = 0.020
HEADER = struct.Struct("!BBHIIq")  # RTP header + send time (ns)
DRAIN = 0.5


# -- blaster (separate process) ------------------------------------------------


def blast(streams: int, duration: float) -> dict[str, float]:
    """Send both directions of every stream at 20 ms pacing; receive and time them."""
    senders: list[tuple[socket.socket, tuple[str, int], socket.socket, tuple[str, int]]] = []
    owner: dict[int, socket.socket] = {}
    poller = select.epoll()
    for i in range(streams):
        a = _socket(PEER_A, BASE_PORT + i)
        b = _socket(PEER_B, BASE_PORT + i)
        senders.append((a, (RELAY_A, BASE_PORT + i), b, (RELAY_B, BASE_PORT + i)))
        for sock in (a, b):
            owner[sock.fileno()] = sock
            poller.register(sock.fileno(), select.EPOLLIN)
    packet = bytearray(PACKET)
    buf = bytearray(2048)
    latencies: list[int] = []
    received = sent = 0
    slot = PTIME / streams
    start = time.monotonic()
    end = start + duration
    k = seq = 0
    next_due = start
    while True:
        now = time.monotonic()
        while next_due <= now and next_due < end:
            a, to_a, b, to_b = senders[k]
            HEADER.pack_into(packet, 0, 0x80, 0, seq & 0xFFFF, seq * 160, k, time.monotonic_ns())
            try:
                a.sendto(packet, to_a)
                sent += 1
                b.sendto(packet, to_b)
                sent += 1
            except BlockingIOError:
                pass
            k += 1
            if k == streams:
                k = 0
                seq += 1
            next_due = start + seq * PTIME + k * slot
        if now >= end + DRAIN:
            break
        timeout = max(0.0, min(next_due, end + DRAIN) - time.monotonic())
        for fd, _ in poller.poll(timeout):
            recv = owner[fd].recv_into
            while True:
                try:
                    n = recv(buf)
                except BlockingIOError:
                    break
                received += 1
                if n >= HEADER.size and received % 8 == 0:
                    latencies.append(time.monotonic_ns() - HEADER.unpack_from(buf)[5])
    latencies.sort()

    def pick(q: float) -> float:
        return latencies[int(q * (len(latencies) - 1))] / 1000 if latencies else 0.0

    return {
        "sent": sent,
        "received": received,
        "offered": 2 * streams * duration / PTIME,
        "p50_us": pick(0.50),
        "p99_us": pick(0.99),
    }


def _socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.bind((host, port))
    sock.setblocking(False)
    return sock


# -- driver -------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def spec(i: int) -> StreamSpec:
    def side(relay: str, peer: str) -> SideSpec:
        return SideSpec(
            Endpoint(relay, BASE_PORT + i),
            Endpoint(peer, BASE_PORT + i),
            rtcp_mux=True,
            allowed_sources=(peer,),
        )

    return StreamSpec(f"bench-{i}", 0, side(RELAY_A, PEER_A), side(RELAY_B, PEER_B))


async def step(pool: WorkerPool, streams: int, duration: float) -> dict[str, float]:
    for i in range(streams):
        pool.update(spec(i))
    for _ in range(200):  # until the last session shows up in pushed stats
        if pool.stats(f"bench-{streams - 1}"):
            break
        await asyncio.sleep(0.05)
    pids = pool.pids()
    cpu0 = sum(cpu_seconds(p) for p in pids)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--blast", str(streams), "--duration", str(duration),
        stdout=subprocess.PIPE,
    )  # fmt: skip
    out, _ = await proc.communicate()
    cpu = sum(cpu_seconds(p) for p in pids) - cpu0
    for i in range(streams):
        pool.delete(f"bench-{i}")
    await asyncio.sleep(0.3)
    result: dict[str, float] = json.loads(out)
    result["streams"] = streams
    result["loss_pct"] = 100.0 * (1 - result["received"] / max(1, result["sent"]))
    result["pps"] = result["received"] / duration
    result["cpu_per_1000"] = cpu / (duration + DRAIN) * 1000 / streams
    result["passed"] = result["loss_pct"] < 0.1 and result["sent"] >= 0.99 * result["offered"]
    return result


async def main(steps: list[int], duration: float, workers: int | None) -> None:
    pool = WorkerPool(workers, stats_interval=0.5)
    await pool.start()
    worker_count = len(pool.pids())
    best: dict[str, float] | None = None
    trail = []
    try:
        for streams in steps:
            result = await step(pool, streams, duration)
            trail.append(f"{streams}:{result['loss_pct']:.2f}%")
            if not result["passed"]:
                break
            best = result
    finally:
        await pool.close()
    if best is None:
        print(f"media: no step passed (steps {' '.join(trail)})")
        return
    print(
        f"media: pps={best['pps']:.0f} streams={best['streams']:.0f} "
        f"loss_pct={best['loss_pct']:.3f} p50_us={best['p50_us']:.0f} p99_us={best['p99_us']:.0f} "
        f"cpu_s_per_1000_streams={best['cpu_per_1000']:.2f} workers={worker_count} "
        f"steps={' '.join(trail)} rtpengine=not-run"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default="100,250,500,1000,1500")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--blast", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.blast:
        print(json.dumps(blast(args.blast, args.duration)))
    else:
        try:
            import uvloop
        except ImportError:
            asyncio.run(main([int(s) for s in args.steps.split(",")], args.duration, args.workers))
        else:
            uvloop.run(main([int(s) for s in args.steps.split(",")], args.duration, args.workers))
