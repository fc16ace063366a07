"""Media relay benchmark: relayed RTP packets/s through the WorkerPool, and rtpengine.

N concurrent two-way streams of 172-byte RTP (12-byte header, 160-byte
G.711 payload) at 20 ms pacing, from a blaster in a separate process (one
process, non-blocking sockets, epoll, every due packet sent in one pass),
through :class:`sbc.media.relay.WorkerPool` with rtcp-mux (2 relay sockets
per stream). N steps up (default 500, 750, ..., 1750), 5 s per step, then
bisects twice between the last pass and the first failure; a failing step
is run a second time before it counts (other work shares the cores). A step passes
when loss < 0.1 % in total, the blaster kept the offered rate (>= 99 %: a
backlogged blaster does not count) and the relay is not backlogged: a
median probe latency of a whole packet interval (20 ms) means it only
kept up by queueing in deep socket buffers, which a 5 s run hides as 0 loss.

The same blaster then runs through rtpengine in the same invocation (Debian
``rtpengine-daemon``, installed with apt-get when missing, started
userspace-only with ``table = -1`` on loopback, calls set up over its ng
protocol: see :mod:`media_rtpengine`), and the ratio of the two maxima is
printed. rtpengine gets 4 ports per call (no rtcp-mux), as a plain SIP call
would.

Latency: only a few *probe* streams carry a send timestamp
(``time.perf_counter_ns()``), and only when the blaster sends them on time
(<= 1 ms behind schedule). Right after sending a probe pair the blaster
waits on an epoll holding only the probe sockets (<= 2 ms) and stamps the
arrival at once, so the figure is not the blaster's own backlog of the
other streams. The same measurement on a direct peer-to-peer loopback run
(no relay, same N) gives the baseline; p50_us/p99_us are the relay's
percentiles minus the baseline's (``base@N_p50_us``/``base@N_p99_us``;
``raw_p50_us``/``raw_p99_us`` are the relay's own).

    python bench/media.py [--steps 250,500,...] [--refine 2] [--duration 5] [--workers N]
                          [--no-rtpengine]

Prints ONE line:
    media: pps=<relayed packets/s> streams=<N> loss_pct=... p50_us=... p99_us=...
           cpu_s_per_1000_streams=<worker CPU s per s per 1000 streams> workers=...
           rtpengine_pps=... ratio=<sbc/rtpengine> rtpengine_streams=... ...
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
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from media_rtpengine import NgError, Rtpengine, ensure_installed

from sbc.media.control import Endpoint, SideSpec, StreamSpec
from sbc.media.relay.workers import WorkerPool

RELAY_A, RELAY_B = "127.0.0.51", "127.0.0.52"  # the SBC's two media interfaces
PEER_A, PEER_B = "127.0.0.53", "127.0.0.54"  # the blaster's endpoints
RTPENGINE_IP = "127.0.0.1"
RTPENGINE_NG_PORT = 22290
RTPENGINE_PORT_MIN = 42000
BASE_PORT = 21000
PACKET = 172
PTIME_NS = 20_000_000
DRAIN_NS = 500_000_000
RTP = struct.Struct("!BBHII")  # the 12-byte RTP header
STAMP = struct.Struct("!q")  # send time (perf_counter_ns) of a probe; 0 otherwise
PROBES = 4  # probe streams, spread over the N
ON_TIME_NS = 1_000_000  # a probe sent later than this behind schedule is not timed
PROBE_WAIT_S = 0.002  # longest wait for a probe pair before going on
LOSS_LIMIT_PCT = 0.1
BACKLOG_NS = PTIME_NS  # median probe latency of a whole packet interval: only queueing keeps up
REFINE_MIN = 50  # bisection stops when pass and fail are this close
OFFERED_RATIO = 0.99

# a_port, a_dest_host, a_dest_port, b_port, b_dest_host, b_dest_port (per stream)
Route = tuple[int, str, int, int, str, int]


# -- blaster (separate process) ------------------------------------------------


def probe_indices(streams: int) -> list[int]:
    count = min(PROBES, streams)
    return sorted({i * streams // count for i in range(count)})


def blast(routes: list[Route], duration: float) -> dict[str, float]:
    """Send both directions of every stream at 20 ms pacing; count and time arrivals."""
    clock = time.perf_counter_ns
    streams = len(routes)
    poller = select.epoll()
    probe_poller = select.epoll()
    senders: list[tuple[socket.socket, tuple[str, int], socket.socket, tuple[str, int]]] = []
    readers: dict[int, socket.socket] = {}
    probe_socks: dict[int, socket.socket] = {}
    probing = [False] * streams
    for k in probe_indices(streams):
        probing[k] = True
    for k, (a_port, a_host, a_dport, b_port, b_host, b_dport) in enumerate(routes):
        a = _socket(PEER_A, a_port)
        b = _socket(PEER_B, b_port)
        senders.append((a, (a_host, a_dport), b, (b_host, b_dport)))
        for sock in (a, b):
            if probing[k]:
                probe_socks[sock.fileno()] = sock
                probe_poller.register(sock.fileno(), select.EPOLLIN)
            readers[sock.fileno()] = sock
            poller.register(sock.fileno(), select.EPOLLIN)
    packet = bytearray(PACKET)
    buf = bytearray(2048)
    latencies: list[int] = []
    counts = {"received": 0}

    def drain_probe(sock: socket.socket) -> int:
        """Read a probe socket dry; returns the number of timed packets."""
        timed = 0
        while True:
            try:
                n = sock.recv_into(buf)
            except BlockingIOError:
                return timed
            arrived = clock()
            if n != PACKET:
                continue
            counts["received"] += 1
            stamp = STAMP.unpack_from(buf, RTP.size)[0]
            if stamp:
                latencies.append(arrived - stamp)
                timed += 1

    sent = received = late_probes = 0
    slot = PTIME_NS / streams
    pack_header = RTP.pack_into
    pack_stamp = STAMP.pack_into
    start = clock()
    end = start + int(duration * 1e9)
    stop = end + DRAIN_NS
    k = seq = 0
    due = start
    while True:
        now = clock()
        while due <= now and due < end:
            a, to_a, b, to_b = senders[k]
            pack_header(packet, 0, 0x80, 0, seq & 0xFFFF, (seq * 160) & 0xFFFFFFFF, k)
            if probing[k]:
                sent_at = clock()
                if sent_at - due <= ON_TIME_NS:
                    pack_stamp(packet, RTP.size, sent_at)
                    sent += _send(a, packet, to_a)
                    pack_stamp(packet, RTP.size, clock())
                    sent += _send(b, packet, to_b)
                    pack_stamp(packet, RTP.size, 0)
                    deadline = clock() + PROBE_WAIT_S * 1e9
                    timed = 0
                    while timed < 2:
                        left = (deadline - clock()) / 1e9
                        if left <= 0:
                            break
                        for fd, _ in probe_poller.poll(left):
                            timed += drain_probe(probe_socks[fd])
                else:
                    late_probes += 1
                    sent += _send(a, packet, to_a) + _send(b, packet, to_b)
            else:
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
            due = start + int(seq * PTIME_NS + k * slot)
        if now >= stop:
            break
        timeout = max(0, min(due, stop) - clock()) / 1e9
        for fd, _ in poller.poll(timeout):
            probe = probe_socks.get(fd)
            if probe is not None:
                drain_probe(probe)
                continue
            recv = readers[fd].recv_into
            while True:
                try:
                    n = recv(buf)
                except BlockingIOError:
                    break
                if n == PACKET:
                    received += 1
    latencies.sort()

    def pick(q: float) -> float:
        return latencies[int(q * (len(latencies) - 1))] / 1000 if latencies else 0.0

    return {
        "sent": sent,
        "received": received + counts["received"],
        "offered": 2 * streams * duration * 1e9 / PTIME_NS,
        "p50_us": pick(0.50),
        "p99_us": pick(0.99),
        "samples": len(latencies),
        "late_probes": late_probes,
    }


def _send(sock: socket.socket, packet: bytearray, to: tuple[str, int]) -> int:
    try:
        sock.sendto(packet, to)
    except BlockingIOError:
        return 0
    return 1


def _socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.bind((host, port))
    sock.setblocking(False)
    return sock


# -- driver -------------------------------------------------------------------


@dataclass
class Step:
    target: str
    streams: int
    duration: float
    sent: float
    received: float
    offered: float
    p50_us: float
    p99_us: float
    samples: float
    late_probes: float
    cpu_s: float

    @property
    def loss_pct(self) -> float:
        return 100.0 * (1 - self.received / max(1.0, self.sent))

    @property
    def pps(self) -> float:
        return self.received / self.duration

    @property
    def cpu_per_1000(self) -> float:
        """CPU seconds per second of run per 1000 streams (of the relay under test)."""
        return self.cpu_s / (self.duration + DRAIN_NS / 1e9) * 1000 / self.streams

    @property
    def verdict(self) -> str:
        """``ok``, or why the step does not count."""
        if self.sent < OFFERED_RATIO * self.offered:
            return "blaster-behind"
        if self.loss_pct >= LOSS_LIMIT_PCT:
            return "loss"
        if self.samples == 0 or self.p50_us * 1000 >= BACKLOG_NS:
            return "backlog"
        return "ok"

    @property
    def passed(self) -> bool:
        return self.verdict == "ok"


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, all its threads included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run_blaster(target: str, routes: list[Route], duration: float, pids: list[int]) -> Step:
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="bench-media-") as file:
        json.dump(routes, file)
        file.flush()
        cpu0 = sum(cpu_seconds(p) for p in pids)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--blast", file.name, "--duration", str(duration),
            stdout=subprocess.PIPE,
        )  # fmt: skip
        out, _ = await proc.communicate()
        cpu = sum(cpu_seconds(p) for p in pids) - cpu0
    if proc.returncode != 0:
        raise RuntimeError(f"blaster exited with {proc.returncode}")
    r = json.loads(out)
    return Step(
        target, len(routes), duration, r["sent"], r["received"], r["offered"],
        r["p50_us"], r["p99_us"], r["samples"], r["late_probes"], cpu,
    )  # fmt: skip


async def stepping(
    target: str,
    *,
    steps: list[int],
    refine: int,
    duration: float,
    prepare: Callable[[int], Awaitable[list[Route]]],
    release: Callable[[int], Awaitable[None]],
    pids: Callable[[], list[int]],
) -> tuple[Step | None, list[str]]:
    """Step N up until a step fails, then bisect ``refine`` times between the
    last pass and the first failure; the best passing step and the trail."""
    best: Step | None = None
    trail: list[str] = []

    async def attempt(streams: int) -> Step:
        routes = await prepare(streams)
        try:
            step = await run_blaster(target, routes, duration, pids())
        finally:
            await release(streams)
        mark = "" if step.passed else f"({step.verdict})"
        trail.append(f"{streams}:{step.loss_pct:.2f}%{mark}")
        print(
            f"# {target} streams={streams} pps={step.pps:.0f} loss_pct={step.loss_pct:.3f} "
            f"sent/offered={step.sent / step.offered:.3f} p50_us={step.p50_us:.0f} "
            f"p99_us={step.p99_us:.0f} samples={step.samples:.0f} "
            f"late_probes={step.late_probes:.0f} cpu_s={step.cpu_s:.2f} {step.verdict}",
            file=sys.stderr,
            flush=True,
        )
        return step

    async def confirmed(streams: int) -> Step:
        """A failure counts once a second attempt fails too (the cores are shared)."""
        step = await attempt(streams)
        return step if step.passed else await attempt(streams)

    failed: int | None = None
    for streams in steps:
        step = await confirmed(streams)
        if not step.passed:
            failed = streams
            break
        best = step
    low = best.streams if best is not None else 0
    for _ in range(refine):
        if failed is None or failed - low < REFINE_MIN * 2:
            break
        middle = (low + failed) // 2
        step = await confirmed(middle)
        if step.passed:
            best, low = step, middle
        else:
            failed = middle
    return best, trail


# -- targets ------------------------------------------------------------------


def spec(session: str, i: int) -> StreamSpec:
    def side(relay: str, peer: str) -> SideSpec:
        return SideSpec(
            Endpoint(relay, BASE_PORT + i),
            Endpoint(peer, BASE_PORT + i),
            rtcp_mux=True,
            allowed_sources=(peer,),
        )

    return StreamSpec(session, 0, side(RELAY_A, PEER_A), side(RELAY_B, PEER_B))


async def run_sbc(
    steps: list[int], refine: int, duration: float, workers: int | None
) -> tuple[Step | None, list[str], int]:
    pool = WorkerPool(workers)  # production stats interval (1 s)
    await pool.start()
    worker_count = len(pool.pids())
    attempts = [0]  # fresh session names per attempt: stale stats never match

    async def prepare(streams: int) -> list[Route]:
        attempts[0] += 1
        for i in range(streams):
            pool.update(spec(f"bench-{attempts[0]}-{i}", i))
        for _ in range(300):  # until the last session shows up in pushed stats
            if pool.stats(f"bench-{attempts[0]}-{streams - 1}"):
                break
            await asyncio.sleep(0.05)
        return [
            (BASE_PORT + i, RELAY_A, BASE_PORT + i, BASE_PORT + i, RELAY_B, BASE_PORT + i)
            for i in range(streams)
        ]

    async def release(streams: int) -> None:
        for i in range(streams):
            pool.delete(f"bench-{attempts[0]}-{i}")
        await asyncio.sleep(0.3)

    try:
        best, trail = await stepping(
            "sbc",
            steps=steps,
            refine=refine,
            duration=duration,
            prepare=prepare,
            release=release,
            pids=pool.pids,
        )
    finally:
        await pool.close()
    return best, trail, worker_count


async def run_rtpengine(
    steps: list[int], refine: int, duration: float
) -> tuple[Step | None, list[str], str]:
    """Returns (best, trail, status); status is ``ok(<version>)`` or ``unavailable(<reason>)``."""
    try:
        binary = ensure_installed()
    except RuntimeError as exc:
        return None, [], f"unavailable({exc})"
    most = max(steps)
    engine = Rtpengine(
        binary,
        interface=RTPENGINE_IP,
        ng_port=RTPENGINE_NG_PORT,
        port_min=RTPENGINE_PORT_MIN,
        port_max=RTPENGINE_PORT_MIN + 8 * most + 1000,  # 4 per call, room for its random pick
    )
    try:
        version = engine.start()
    except (RuntimeError, OSError) as exc:
        engine.stop()
        return None, [], f"unavailable({exc})"
    routes: list[Route] = []  # calls are kept across steps and grown as N steps up

    async def prepare(streams: int) -> list[Route]:
        while len(routes) < streams:
            i = len(routes)
            port = BASE_PORT + i
            to_a_side, to_b_side = engine.call(f"bench-{i}", (PEER_A, port), (PEER_B, port))
            routes.append((port, *to_a_side, port, *to_b_side))
            if i % 100 == 99:
                await asyncio.sleep(0)
        return routes[:streams]

    async def release(streams: int) -> None:
        await asyncio.sleep(0.3)

    try:
        best, trail = await stepping(
            "rtpengine",
            steps=steps,
            refine=refine,
            duration=duration,
            prepare=prepare,
            release=release,
            pids=lambda: [engine.pid],
        )
    except NgError as exc:
        return None, [], f"unavailable(ng:{exc})"
    finally:
        engine.stop()
    return best, trail, f"ok({version})"


async def baseline(streams: int, duration: float) -> Step:
    """Direct peer-to-peer loopback, no relay: what the blaster and kernel alone add."""
    routes = [
        (BASE_PORT + i, PEER_B, BASE_PORT + i, BASE_PORT + i, PEER_A, BASE_PORT + i)
        for i in range(streams)
    ]
    step = await run_blaster("direct", routes, duration, [])
    print(
        f"# direct streams={streams} p50_us={step.p50_us:.0f} p99_us={step.p99_us:.0f} "
        f"samples={step.samples:.0f} loss_pct={step.loss_pct:.3f}",
        file=sys.stderr,
        flush=True,
    )
    return step


def figures(prefix: str, best: Step | None, base: Step | None) -> list[str]:
    """The per-target figures; latency is added latency (relay minus direct baseline)."""
    if best is None or base is None:
        return [f"{prefix}pps=0", f"{prefix}streams=0"]
    return [
        f"{prefix}pps={best.pps:.0f}",
        f"{prefix}streams={best.streams}",
        f"{prefix}loss_pct={best.loss_pct:.3f}",
        f"{prefix}p50_us={best.p50_us - base.p50_us:.0f}",
        f"{prefix}p99_us={best.p99_us - base.p99_us:.0f}",
        f"{prefix}cpu_s_per_1000_streams={best.cpu_per_1000:.2f}",
    ]


def latency_detail(prefix: str, best: Step | None) -> list[str]:
    if best is None:
        return []
    return [
        f"{prefix}raw_p50_us={best.p50_us:.0f}",
        f"{prefix}raw_p99_us={best.p99_us:.0f}",
        f"{prefix}latency_samples={best.samples:.0f}",
    ]


async def main(
    steps: list[int], refine: int, duration: float, workers: int | None, rtpengine: bool
) -> None:
    started = time.monotonic()
    sbc, sbc_trail, worker_count = await run_sbc(steps, refine, duration, workers)
    engine: Step | None = None
    engine_trail: list[str] = []
    status = "not-run"
    if rtpengine:
        engine, engine_trail, status = await run_rtpengine(steps, refine, duration)
    bases: dict[int, Step] = {}
    for best in (sbc, engine):
        if best is not None and best.streams not in bases:
            bases[best.streams] = await baseline(best.streams, duration)
    sbc_base = bases.get(sbc.streams) if sbc is not None else None
    engine_base = bases.get(engine.streams) if engine is not None else None
    ratio = "n/a"
    if engine is not None:
        ratio = f"{(sbc.pps if sbc is not None else 0.0) / engine.pps:.2f}"
    parts = [
        "media:",
        *figures("", sbc, sbc_base),
        f"workers={worker_count}",
        f"rtpengine_pps={engine.pps:.0f}" if engine is not None else "rtpengine_pps=n/a",
        f"ratio={ratio}",
        *figures("rtpengine_", engine, engine_base)[1:],
        f"rtpengine={status}",
        *latency_detail("", sbc),
        *latency_detail("rtpengine_", engine),
    ]
    for streams, base in sorted(bases.items()):
        parts.append(f"base@{streams}_p50_us={base.p50_us:.0f}")
        parts.append(f"base@{streams}_p99_us={base.p99_us:.0f}")
    parts.append(f"steps={','.join(sbc_trail) or 'none'}")
    if engine_trail:
        parts.append(f"rtpengine_steps={','.join(engine_trail)}")
    parts.append(f"run_s={time.monotonic() - started:.0f}")
    print(" ".join(parts), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default="500,750,1000,1250,1500,1750")
    parser.add_argument("--refine", type=int, default=2, help="bisection steps after a failure")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--no-rtpengine", action="store_true")
    parser.add_argument("--blast", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.blast:
        routes: list[Route] = [
            (int(r[0]), str(r[1]), int(r[2]), int(r[3]), str(r[4]), int(r[5]))
            for r in json.loads(Path(args.blast).read_text())
        ]
        print(json.dumps(blast(routes, args.duration)))
    else:
        steps = [int(s) for s in args.steps.split(",")]
        coroutine = main(steps, args.refine, args.duration, args.workers, not args.no_rtpengine)
        try:
            import uvloop
        except ImportError:
            asyncio.run(coroutine)
        else:
            uvloop.run(coroutine)
