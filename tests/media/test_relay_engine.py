"""RelayEngine on real loopback sockets: two fake endpoints talk through it.

Bounded waits only; no timing assertions. Addresses are loopback only.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import replace

from aioice import stun
from media_sockets import free_port_pair

from sbc.media.control import Endpoint, SideSpec, StreamSpec
from sbc.media.relay.engine import RelayEngine
from sbc.media.relay.rtcp import Report, ReportBlock, SenderInfo

WAIT = 5.0
UNREACHABLE = Endpoint("127.0.0.99", 40000)  # loopback, nothing listens


def endpoint_socket(host: str) -> socket.socket:
    """A non-blocking peer socket (the tests poll it from the event loop)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.setblocking(False)
    return sock


def address(sock: socket.socket) -> Endpoint:
    host, port = sock.getsockname()
    return Endpoint(host, port)


def rtp(seq: int, ssrc: int = 0x1234, pt: int = 0, size: int = 172) -> bytes:
    header = struct.pack("!BBHII", 0x80, pt, seq & 0xFFFF, seq * 160, ssrc)
    return header + bytes(size - len(header))


async def collect(
    sock: socket.socket, count: int, timeout: float = WAIT
) -> list[tuple[bytes, tuple[str, int]]]:
    """Receive up to ``count`` datagrams, giving up after ``timeout`` of silence."""
    loop = asyncio.get_running_loop()
    got: list[tuple[bytes, tuple[str, int]]] = []
    arrived = asyncio.Event()

    def readable() -> None:
        while True:
            try:
                got.append(sock.recvfrom(65536))
            except BlockingIOError:
                break
        arrived.set()

    loop.add_reader(sock.fileno(), readable)
    try:
        while len(got) < count:
            arrived.clear()
            try:
                await asyncio.wait_for(arrived.wait(), timeout)
            except TimeoutError:
                break
    finally:
        loop.remove_reader(sock.fileno())
    return got


async def send_paced(sock: socket.socket, to: Endpoint, packets: list[bytes]) -> None:
    for i, packet in enumerate(packets):
        sock.sendto(packet, (to.host, to.port))
        if i % 20 == 19:
            await asyncio.sleep(0.002)


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 30))


class Call:
    """Endpoint A (127.0.0.1) and B (127.0.0.2), the SBC's two sides, one spec."""

    def __init__(self, rtcp_mux: bool = False) -> None:
        self.a = endpoint_socket("127.0.0.1")
        self.b = endpoint_socket("127.0.0.2")
        self.sbc_a = Endpoint("127.0.0.1", free_port_pair("127.0.0.1"))
        self.sbc_b = Endpoint("127.0.0.2", free_port_pair("127.0.0.2"))
        self.spec = StreamSpec(
            session="call-1",
            index=0,
            a=SideSpec(
                self.sbc_a, address(self.a), rtcp_mux=rtcp_mux, allowed_sources=("127.0.0.1",)
            ),
            b=SideSpec(
                self.sbc_b, address(self.b), rtcp_mux=rtcp_mux, allowed_sources=("127.0.0.2",)
            ),
        )

    def close(self) -> None:
        self.a.close()
        self.b.close()


async def two_way(call: Call, count: int = 200) -> tuple[list[bytes], list[bytes]]:
    """A and B send ``count`` packets each; return what each side received."""
    at_b = asyncio.ensure_future(collect(call.b, count))
    at_a = asyncio.ensure_future(collect(call.a, count))
    await send_paced(call.a, call.sbc_a, [rtp(i, ssrc=0xA) for i in range(count)])
    await send_paced(call.b, call.sbc_b, [rtp(i, ssrc=0xB) for i in range(count)])
    got_b, got_a = await at_b, await at_a
    assert {source for _, source in got_b} <= {(call.sbc_b.host, call.sbc_b.port)}
    assert {source for _, source in got_a} <= {(call.sbc_a.host, call.sbc_a.port)}
    return [data for data, _ in got_a], [data for data, _ in got_b]


def test_two_way_media_through_the_relay() -> None:
    async def scenario() -> None:
        call = Call()
        engine = RelayEngine()
        engine.update(call.spec)
        at_a, at_b = await two_way(call)
        assert len(at_b) >= 198
        assert len(at_a) >= 198
        [stats] = engine.stats("call-1")
        assert stats.a_to_b.packets == 200
        assert stats.a_to_b.octets == 200 * 172
        assert stats.b_to_a.packets == 200
        assert stats.a_to_b.lost == 0
        assert stats.latched_a == address(call.a)
        assert stats.latched_b == address(call.b)
        engine.close()
        call.close()

    run(scenario)


def test_latching_with_unreachable_sdp_address() -> None:
    async def scenario() -> None:
        call = Call()
        # A's SDP names an unreachable address; it really sends from its own port.
        spec = replace(call.spec, a=replace(call.spec.a, remote=UNREACHABLE))
        engine = RelayEngine()
        engine.update(spec)
        # B talks first: before latching that goes to 127.0.0.99 and is lost.
        call.b.sendto(rtp(0, ssrc=0xB), (call.sbc_b.host, call.sbc_b.port))
        await asyncio.sleep(0.05)
        at_a, at_b = await two_way(call)
        assert len(at_b) >= 198
        assert len(at_a) >= 198
        assert engine.stats("call-1")[0].latched_a == address(call.a)
        engine.close()
        call.close()

    run(scenario)


def test_latch_any_accepts_a_foreign_source() -> None:
    async def scenario() -> None:
        call = Call()
        spec = replace(
            call.spec,
            a=replace(call.spec.a, remote=UNREACHABLE, allowed_sources=("127.0.0.99",)),
        )
        engine = RelayEngine()
        engine.update(spec)
        call.a.sendto(rtp(0), (call.sbc_a.host, call.sbc_a.port))
        assert await collect(call.b, 1, timeout=0.3) == []  # not allowed: dropped
        engine.update(replace(spec, a=replace(spec.a, latch_any=True)))
        at_a, at_b = await two_way(call)
        assert len(at_a) >= 198
        assert len(at_b) >= 198
        assert engine.stats("call-1")[0].a_to_b.dropped == 1
        engine.close()
        call.close()

    run(scenario)


def test_ssrc_change_relatches() -> None:
    async def scenario() -> None:
        call = Call()
        engine = RelayEngine()
        engine.update(call.spec)
        sbc_b = (call.sbc_b.host, call.sbc_b.port)
        call.b.sendto(rtp(0, ssrc=1), sbc_b)
        assert len(await collect(call.a, 1)) == 1
        transferred = endpoint_socket("127.0.0.2")  # a new endpoint after a transfer
        transferred.sendto(rtp(0, ssrc=1), sbc_b)  # same SSRC, other port: ignored
        assert await collect(call.a, 1, timeout=0.3) == []
        transferred.sendto(rtp(0, ssrc=2), sbc_b)  # new SSRC: re-latch
        assert len(await collect(call.a, 1)) == 1
        call.a.sendto(rtp(1, ssrc=0xA), (call.sbc_a.host, call.sbc_a.port))
        assert len(await collect(transferred, 1)) == 1
        assert await collect(call.b, 1, timeout=0.3) == []
        assert engine.stats("call-1")[0].latched_b == address(transferred)
        engine.close()
        transferred.close()
        call.close()

    run(scenario)


def test_payload_types_are_mapped_towards_a_side() -> None:
    async def scenario() -> None:
        call = Call()
        spec = replace(call.spec, b=replace(call.spec.b, pt_map=((101, 96),)))
        engine = RelayEngine()
        engine.update(spec)
        call.a.sendto(rtp(0, pt=101), (call.sbc_a.host, call.sbc_a.port))
        call.a.sendto(rtp(1, pt=0), (call.sbc_a.host, call.sbc_a.port))
        got = await collect(call.b, 2)
        assert [data[1] & 0x7F for data, _ in got] == [96, 0]
        call.b.sendto(rtp(0, pt=101), (call.sbc_b.host, call.sbc_b.port))
        [(data, _)] = await collect(call.a, 1)
        assert data[1] == 101  # A's side has no map
        engine.close()
        call.close()

    run(scenario)


def test_rtcp_relayed_on_port_plus_one_and_muxed() -> None:
    async def scenario() -> None:
        for mux in (False, True):
            call = Call(rtcp_mux=mux)
            engine = RelayEngine()
            engine.update(call.spec)
            report = bytes([0x80, 201, 0, 1]) + struct.pack("!I", 0xA)
            a_rtcp = endpoint_socket("127.0.0.1")
            source = a_rtcp if not mux else call.a
            port = call.sbc_a.port if mux else call.sbc_a.port + 1
            source.sendto(report, (call.sbc_a.host, port))
            if mux:
                [(data, src)] = await collect(call.b, 1)
                assert src == (call.sbc_b.host, call.sbc_b.port)
            else:  # B's SDP RTCP address: its RTP port + 1
                rtcp_b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                rtcp_b.setblocking(False)
                b_host, b_port = call.b.getsockname()
                rtcp_b.bind((b_host, b_port + 1))
                source.sendto(report, (call.sbc_a.host, port))
                got = await collect(rtcp_b, 1)
                rtcp_b.close()
                assert got
                data, src = got[0]
                assert src == (call.sbc_b.host, call.sbc_b.port + 1)
            assert data == report
            assert engine.stats("call-1")[0].a_to_b.rtcp_packets >= 1
            engine.close()
            a_rtcp.close()
            call.close()

    run(scenario)


#: SDES (RFC 3550 §6.5) with one CNAME chunk, as a compound's second packet.
SDES_CNAME = bytes.fromhex("81ca00030000000a0103614062000000")


def rtcp_socket_beside(sock: socket.socket) -> socket.socket:
    """The peer's RTCP socket on its RTP port + 1 (RFC 3550 §11)."""
    host, port = sock.getsockname()
    rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rtcp.setblocking(False)
    rtcp.bind((host, port + 1))
    return rtcp


def test_receiver_reports_feed_the_direction_they_describe() -> None:
    """A's RR is about what A receives: B's RTP, the b_to_a direction (muxed RTCP)."""

    async def scenario() -> None:
        call = Call(rtcp_mux=True)
        engine = RelayEngine(clock_rate=8000)
        engine.update(call.spec)
        call.b.sendto(rtp(0, ssrc=0xB), (call.sbc_b.host, call.sbc_b.port))
        assert len(await collect(call.a, 1)) == 1
        about_b = ReportBlock(
            0xB, fraction_lost=64, cumulative_lost=3, highest_sequence=0, jitter=160
        )
        foreign = ReportBlock(0xF00, 255, 999, 0, 8000)  # some other source A hears
        compound = Report(0xA, (about_b, foreign)).serialize() + SDES_CNAME
        call.a.sendto(compound, (call.sbc_a.host, call.sbc_a.port))
        [(data, source)] = await collect(call.b, 1)
        assert data == compound  # relayed as it came
        assert source == (call.sbc_b.host, call.sbc_b.port)
        [stats] = engine.stats("call-1")
        assert stats.b_to_a.reported_lost == 3
        assert stats.b_to_a.reported_fraction_lost == 0.25
        assert stats.b_to_a.reported_jitter_ms == 20.0  # 160 units at 8 kHz
        assert stats.a_to_b.rtcp_packets == 1  # counted where it came in
        assert (stats.a_to_b.reported_lost, stats.a_to_b.reported_jitter_ms) == (0, 0.0)
        assert stats.a_to_b.rtcp_malformed == 0
        engine.close()
        call.close()

    run(scenario)


def test_sender_report_blocks_on_the_rtcp_port() -> None:
    """B's SR carries a block about A's SSRC: a_to_b's reported figures (no rtcp-mux)."""

    async def scenario() -> None:
        call = Call()
        engine = RelayEngine()
        engine.update(call.spec)
        call.a.sendto(rtp(0, ssrc=0xA), (call.sbc_a.host, call.sbc_a.port))
        assert len(await collect(call.b, 1)) == 1
        b_rtcp = rtcp_socket_beside(call.b)
        a_rtcp = rtcp_socket_beside(call.a)
        sr = Report(0xB, (ReportBlock(0xA, 26, 40, 7, 8),), SenderInfo(1, 2, 3, 4)).serialize()
        b_rtcp.sendto(sr, (call.sbc_b.host, call.sbc_b.port + 1))
        [(data, source)] = await collect(a_rtcp, 1)
        assert data == sr
        assert source == (call.sbc_a.host, call.sbc_a.port + 1)
        [stats] = engine.stats("call-1")
        assert stats.a_to_b.reported_lost == 40
        assert stats.a_to_b.reported_fraction_lost == 26 / 256
        assert stats.a_to_b.reported_jitter_ms == 1.0
        assert stats.b_to_a.rtcp_packets == 1
        engine.close()
        a_rtcp.close()
        b_rtcp.close()
        call.close()

    run(scenario)


def test_malformed_rtcp_is_counted_and_still_relayed_unchanged() -> None:
    async def scenario() -> None:
        call = Call(rtcp_mux=True)
        engine = RelayEngine()
        engine.update(call.spec)
        call.b.sendto(rtp(0, ssrc=0xB), (call.sbc_b.host, call.sbc_b.port))
        assert len(await collect(call.a, 1)) == 1
        whole = Report(0xA, (ReportBlock(0xB, 64, 3, 0, 160),)).serialize() + SDES_CNAME
        truncated = whole[:-3]  # the SDES runs past the datagram (RFC 3550 A.2)
        srtcp = whole + bytes.fromhex("80000001") + bytes(10)  # SRTCP index + 80-bit tag
        for packet in (truncated, srtcp):
            call.a.sendto(packet, (call.sbc_a.host, call.sbc_a.port))
            [(data, _)] = await collect(call.b, 1)
            assert data == packet
        [stats] = engine.stats("call-1")
        assert stats.a_to_b.rtcp_packets == 2
        assert stats.a_to_b.rtcp_malformed == 2
        assert stats.b_to_a.reported_lost == 0  # nothing read from either
        assert stats.b_to_a.reported_jitter_ms == 0.0
        engine.close()
        call.close()

    run(scenario)


def test_stun_binding_answered() -> None:
    async def scenario() -> None:
        call = Call()
        engine = RelayEngine()
        engine.update(call.spec)
        request = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
        call.a.sendto(bytes(request), (call.sbc_a.host, call.sbc_a.port))
        [(data, source)] = await collect(call.a, 1)
        assert source == (call.sbc_a.host, call.sbc_a.port)
        response = stun.parse_message(data)
        assert response.transaction_id == request.transaction_id
        assert response.attributes["XOR-MAPPED-ADDRESS"] == call.a.getsockname()
        call.a.sendto(b"garbage", (call.sbc_a.host, call.sbc_a.port))
        await asyncio.sleep(0.05)
        assert engine.stats("call-1")[0].a_to_b.dropped == 1
        engine.close()
        call.close()

    run(scenario)


def test_inactivity_fires_once_and_not_on_hold() -> None:
    async def scenario() -> None:
        fired: list[str] = []
        engine = RelayEngine(fired.append, inactivity_timeout=0.3, sweep_interval=0.05)
        call = Call()
        held = Call()
        engine.update(call.spec)
        engine.update(replace(held.spec, session="held", on_hold=True))
        for _ in range(100):
            if fired:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        assert fired == ["call-1"]
        assert engine.stats("call-1")[0].idle_s >= 0.3
        engine.close()
        call.close()
        held.close()

    run(scenario)


def test_traffic_keeps_the_session_alive_and_delete_closes() -> None:
    async def scenario() -> None:
        fired: list[str] = []
        engine = RelayEngine(fired.append, inactivity_timeout=0.5, sweep_interval=0.05)
        call = Call()
        engine.update(call.spec)
        for i in range(20):
            call.a.sendto(rtp(i), (call.sbc_a.host, call.sbc_a.port))
            await asyncio.sleep(0.05)
        assert fired == []
        engine.delete("call-1")
        assert engine.stats("call-1") == []
        rebound = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rebound.bind((call.sbc_a.host, call.sbc_a.port))  # the port was released
        rebound.close()
        engine.close()
        call.close()

    run(scenario)


def test_update_keeps_sockets_and_applies_new_remote() -> None:
    async def scenario() -> None:
        call = Call()
        engine = RelayEngine()
        engine.update(replace(call.spec, b=replace(call.spec.b, remote=None)))
        call.a.sendto(rtp(0), (call.sbc_a.host, call.sbc_a.port))
        assert await collect(call.b, 1, timeout=0.3) == []  # no destination yet
        engine.update(call.spec)  # B's answer arrives
        call.a.sendto(rtp(1), (call.sbc_a.host, call.sbc_a.port))
        assert len(await collect(call.b, 1)) == 1
        assert engine.stats("call-1")[0].a_to_b.packets == 2
        engine.close()
        call.close()

    run(scenario)


def test_works_on_uvloop() -> None:
    import uvloop

    async def scenario() -> None:
        call = Call()
        engine = RelayEngine()
        engine.update(call.spec)
        at_a, at_b = await two_way(call)
        assert len(at_a) >= 198
        assert len(at_b) >= 198
        engine.close()
        call.close()

    uvloop.run(asyncio.wait_for(scenario(), 30))


def test_remove_closes_one_stream_and_keeps_the_others() -> None:
    """A stream rejected mid-call is closed; its ports can be bound again."""

    async def scenario() -> None:
        engine = RelayEngine()
        a0 = Endpoint("127.0.0.1", free_port_pair("127.0.0.1"))
        b0 = Endpoint("127.0.0.2", free_port_pair("127.0.0.2"))
        engine.update(StreamSpec("s", 0, SideSpec(a0), SideSpec(b0)))
        a1 = Endpoint("127.0.0.1", free_port_pair("127.0.0.1"))  # a0 is bound now
        b1 = Endpoint("127.0.0.2", free_port_pair("127.0.0.2"))
        engine.update(StreamSpec("s", 1, SideSpec(a1), SideSpec(b1)))
        engine.remove("s", 1)
        engine.remove("s", 7)  # unknown: ignored
        assert [s.index for s in engine.stats("s")] == [0]
        for endpoint in (a1, b1):  # free again
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                probe.bind((endpoint.host, endpoint.port))
        engine.close()

    asyncio.run(scenario())
