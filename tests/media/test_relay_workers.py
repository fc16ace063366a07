"""WorkerPool: the relay in worker processes, on real loopback sockets."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import struct
from dataclasses import replace

from media_sockets import endpoint_socket, free_port_pair

from sbc.media.control import Endpoint, SideSpec, StreamSpec
from sbc.media.relay.rtcp import Report, ReportBlock
from sbc.media.relay.workers import WORKER_DIED, WorkerPool

WAIT = 5.0


def rtp(seq: int, ssrc: int) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, seq, seq * 160, ssrc) + bytes(160)


def spec_for(session: str, b: socket.socket) -> StreamSpec:
    b_host, b_port = b.getsockname()
    return StreamSpec(
        session=session,
        index=0,
        a=SideSpec(
            Endpoint("127.0.0.1", free_port_pair("127.0.0.1")),
            Endpoint("127.0.0.99", 40000),  # unreachable SDP address: latching needed
            allowed_sources=("127.0.0.1",),
        ),
        b=SideSpec(
            Endpoint("127.0.0.2", free_port_pair("127.0.0.2")),
            Endpoint(b_host, b_port),
            allowed_sources=(b_host,),
        ),
    )


def receive(sock: socket.socket, count: int) -> list[tuple[str, int]]:
    sources = []
    try:
        for _ in range(count):
            _, source = sock.recvfrom(2048)
            sources.append(source)
    except TimeoutError:
        pass
    return sources


async def exchange(spec: StreamSpec, a: socket.socket, b: socket.socket, count: int) -> None:
    """Two-way media, the blocking endpoint work in threads; ≥ 99 % each way."""
    sbc_a = (spec.a.local.host, spec.a.local.port)
    sbc_b = (spec.b.local.host, spec.b.local.port)
    # The relay's sockets are bound asynchronously: poke until the first packet crosses.
    for seq in range(50):
        a.sendto(rtp(seq, 0xA), sbc_a)
        a.settimeout(0.1)
        b.settimeout(0.1)
        if receive(b, 1):
            break
    a.settimeout(WAIT)
    b.settimeout(WAIT)

    def blast(sock: socket.socket, to: tuple[str, int], ssrc: int) -> None:
        for seq in range(100, 100 + count):
            sock.sendto(rtp(seq, ssrc), to)

    at_b = asyncio.to_thread(receive, b, count)
    at_a = asyncio.to_thread(receive, a, count)
    senders = asyncio.gather(
        asyncio.to_thread(blast, a, sbc_a, 0xA), asyncio.to_thread(blast, b, sbc_b, 0xB)
    )
    sources_b, sources_a, _ = await asyncio.gather(at_b, at_a, senders)
    assert len(sources_b) >= count * 99 // 100
    assert len(sources_a) >= count * 99 // 100
    assert set(sources_b) == {sbc_b}
    assert set(sources_a) == {sbc_a}


def test_two_way_media_through_workers_and_stats_pushed() -> None:
    async def scenario() -> None:
        pool = WorkerPool(2, stats_interval=0.1)
        await pool.start()
        try:
            calls = []
            for n in range(2):
                a, b = endpoint_socket("127.0.0.1"), endpoint_socket("127.0.0.2")
                spec = spec_for(f"call-{n}", b)
                pool.update(spec)
                pool.update(
                    replace(
                        spec,
                        index=1,
                        a=replace(spec.a, local=Endpoint("127.0.0.1", free_port_pair("127.0.0.1"))),
                        b=replace(spec.b, local=Endpoint("127.0.0.2", free_port_pair("127.0.0.2"))),
                    )
                )
                calls.append((spec, a, b))
            assert {pool.pid_of("call-0"), pool.pid_of("call-1")} == set(pool.pids())
            for spec, a, b in calls:
                await exchange(spec, a, b, 200)
            for _ in range(100):
                stats = pool.stats("call-0")
                if stats and stats[0].b_to_a.packets >= 198:
                    break
                await asyncio.sleep(0.05)
            assert [s.index for s in stats] == [0, 1]
            assert stats[0].a_to_b.packets >= 198
            assert stats[0].latched_a == Endpoint(*calls[0][1].getsockname())
            pool.delete("call-0")
            assert pool.stats("call-0") == []
            for _, a, b in calls:
                a.close()
                b.close()
        finally:
            await pool.close()

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_reported_figures_cross_the_worker_channel() -> None:
    """A's RR about B's SSRC, read in the worker, reaches the parent's stats."""

    async def scenario() -> None:
        pool = WorkerPool(1, stats_interval=0.05)
        await pool.start()
        try:
            a, b = endpoint_socket("127.0.0.1"), endpoint_socket("127.0.0.2")
            spec = spec_for("call-rr", b)
            pool.update(spec)
            await exchange(spec, a, b, 20)
            block = ReportBlock(0xB, 128, -1, highest_sequence=0, jitter=40)
            rr = Report(0xA, (block,)).serialize()
            sbc_a_rtcp = (spec.a.local.host, spec.a.local.port + 1)
            a.sendto(rr, sbc_a_rtcp)
            a.sendto(rr[:-4], sbc_a_rtcp)  # truncated: counted, not read
            for _ in range(200):
                stats = pool.stats("call-rr")
                if stats and stats[0].a_to_b.rtcp_malformed:
                    break
                await asyncio.sleep(0.025)
            [stream] = stats
            assert stream.b_to_a.reported_lost == -1  # duplicates: negative, as reported
            assert stream.b_to_a.reported_fraction_lost == 0.5
            assert stream.b_to_a.reported_jitter_ms == 5.0
            assert (stream.a_to_b.rtcp_packets, stream.a_to_b.rtcp_malformed) == (2, 1)
            a.close()
            b.close()
        finally:
            await pool.close()

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_killed_worker_loses_its_sessions() -> None:
    async def scenario() -> None:
        lost: list[tuple[str, str]] = []
        pool = WorkerPool(2, on_lost=lambda s, r: lost.append((s, r)))
        await pool.start()
        try:
            a, b = endpoint_socket("127.0.0.1"), endpoint_socket("127.0.0.2")
            for n in range(4):
                pool.update(spec_for(f"call-{n}", b))
            victim = pool.pid_of("call-0")
            assert victim is not None
            doomed = {s for s in (f"call-{n}" for n in range(4)) if pool.pid_of(s) == victim}
            os.kill(victim, signal.SIGKILL)
            for _ in range(200):
                if len(lost) == len(doomed):
                    break
                await asyncio.sleep(0.025)
            assert sorted(lost) == sorted((s, WORKER_DIED) for s in doomed)
            assert len(pool.pids()) == 2  # respawned
            assert victim not in pool.pids()
            # New sessions still relay (on a survivor or the fresh worker).
            spec = spec_for("call-new", b)
            pool.update(spec)
            await exchange(spec, a, b, 50)
            a.close()
            b.close()
        finally:
            await pool.close()

    asyncio.run(asyncio.wait_for(scenario(), 60))
