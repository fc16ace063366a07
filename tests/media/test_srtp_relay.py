"""The relay with an SRTP leg (A) and a plain RTP leg (B) on real loopback sockets.

The far ends are checked with independent pylibsrtp sessions keyed as the
peer on leg A would be. Bounded waits only; no timing assertions.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from dataclasses import replace

import pylibsrtp
from media_sockets import free_port_pair
from test_relay_engine import address, collect, endpoint_socket, run, send_paced

from sbc.media.control import Endpoint, SideSpec, SrtpKeys, StreamSpec
from sbc.media.relay.engine import RelayEngine
from sbc.media.relay.workers import WorkerPool
from sbc.media.sdes import SUITES_BY_NAME, generate_key
from sbc.media.srtp import session

SUITE = "AES_CM_128_HMAC_SHA1_80"


def rtp(seq: int, ssrc: int, payload: bytes) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, seq, seq * 160, ssrc) + payload


def payload(seq: int, size: int = 160) -> bytes:
    return bytes((seq + i) % 256 for i in range(size))


def rtcp_sr(ssrc: int) -> bytes:
    # RFC 3550 §6.4.1 sender report, no report blocks: 28 octets, length 6.
    return struct.pack("!BBHIIIIII", 0x80, 200, 6, ssrc, 1, 2, 3, 4, 5)


class SrtpCall:
    """Peer A speaks SRTP with the SBC's side A; peer B speaks plain RTP."""

    def __init__(self, suite: str = SUITE, rtcp_mux: bool = True) -> None:
        material = SUITES_BY_NAME[suite]
        self.suite = suite
        self.sbc_key = generate_key(material)  # what the SBC sends to A with
        self.peer_key = generate_key(material)  # what A sends with
        self.a = endpoint_socket("127.0.0.1")
        self.b = endpoint_socket("127.0.0.2")
        self.sbc_a = Endpoint("127.0.0.1", free_port_pair("127.0.0.1"))
        self.sbc_b = Endpoint("127.0.0.2", free_port_pair("127.0.0.2"))
        keys = SrtpKeys(suite, send_key=self.sbc_key, receive_key=self.peer_key)
        self.spec = StreamSpec(
            session="srtp-1",
            index=0,
            a=SideSpec(
                self.sbc_a,
                address(self.a),
                rtcp_mux=rtcp_mux,
                allowed_sources=("127.0.0.1",),
                srtp=keys,
            ),
            b=SideSpec(
                self.sbc_b, address(self.b), rtcp_mux=rtcp_mux, allowed_sources=("127.0.0.2",)
            ),
        )
        # Peer A's own libsrtp: protects with its key, unprotects with the SBC's.
        self.peer_out = session(suite, self.peer_key, inbound=False)
        self.peer_in = session(suite, self.sbc_key, inbound=True)

    def close(self) -> None:
        self.a.close()
        self.b.close()


def test_plain_rtp_from_b_arrives_protected_at_a() -> None:
    async def scenario() -> None:
        call = SrtpCall()
        engine = RelayEngine()
        engine.update(call.spec)
        sent = [rtp(i, 0xB, payload(i)) for i in range(50)]
        at_a = asyncio.ensure_future(collect(call.a, 50))
        await send_paced(call.b, call.sbc_b, sent)
        got = [data for data, _ in await at_a]
        assert len(got) >= 48
        for packet in got:
            assert len(packet) == 172 + 10  # the 80-bit auth tag
            plain = call.peer_in.unprotect(packet)
            assert plain in sent
            assert packet[12:172] != plain[12:]  # encrypted on the wire
        engine.close()
        call.close()

    run(scenario)


def test_srtp_from_a_arrives_decrypted_at_b() -> None:
    async def scenario() -> None:
        call = SrtpCall()
        engine = RelayEngine()
        engine.update(call.spec)
        plain = [rtp(i, 0xA, payload(i)) for i in range(50)]
        at_b = asyncio.ensure_future(collect(call.b, 50))
        await send_paced(call.a, call.sbc_a, [call.peer_out.protect(p) for p in plain])
        got = [data for data, _ in await at_b]
        assert len(got) >= 48
        assert set(got) <= set(plain)
        [stats] = engine.stats("srtp-1")
        assert stats.a_to_b.packets == 50
        assert stats.a_to_b.srtp_failed == 0
        engine.close()
        call.close()

    run(scenario)


def test_gcm_suite_both_ways() -> None:
    async def scenario() -> None:
        call = SrtpCall("AEAD_AES_128_GCM")
        engine = RelayEngine()
        engine.update(call.spec)
        at_b = asyncio.ensure_future(collect(call.b, 1))
        call.a.sendto(
            call.peer_out.protect(rtp(1, 0xA, payload(1))), (call.sbc_a.host, call.sbc_a.port)
        )
        assert [d for d, _ in await at_b] == [rtp(1, 0xA, payload(1))]
        at_a = asyncio.ensure_future(collect(call.a, 1))
        call.b.sendto(rtp(7, 0xB, payload(7)), (call.sbc_b.host, call.sbc_b.port))
        [(packet, _)] = await at_a
        assert call.peer_in.unprotect(packet) == rtp(7, 0xB, payload(7))
        engine.close()
        call.close()

    run(scenario)


def test_tampered_auth_tag_is_dropped_and_counted() -> None:
    async def scenario() -> None:
        call = SrtpCall()
        engine = RelayEngine()
        engine.update(call.spec)
        good = call.peer_out.protect(rtp(1, 0xA, payload(1)))
        bad = bytearray(call.peer_out.protect(rtp(2, 0xA, payload(2))))
        bad[-1] ^= 0x01  # one bit of the auth tag
        target = (call.sbc_a.host, call.sbc_a.port)
        at_b = asyncio.ensure_future(collect(call.b, 2, timeout=1.0))
        call.a.sendto(bytes(bad), target)
        call.a.sendto(good, target)
        call.a.sendto(good, target)  # a replay: dropped as well
        got = [d for d, _ in await at_b]
        assert got == [rtp(1, 0xA, payload(1))]
        [stats] = engine.stats("srtp-1")
        assert stats.a_to_b.srtp_failed == 2
        assert stats.a_to_b.packets == 1
        engine.close()
        call.close()

    run(scenario)


def test_srtcp_both_ways_without_mux() -> None:
    async def scenario() -> None:
        call = SrtpCall(rtcp_mux=False)
        engine = RelayEngine()
        engine.update(call.spec)
        a_rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        a_rtcp.bind(("127.0.0.1", 0))
        a_rtcp.setblocking(False)
        b_rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        b_rtcp.bind(("127.0.0.2", 0))
        b_rtcp.setblocking(False)
        spec = replace(
            call.spec,
            a=replace(call.spec.a, remote_rtcp=address(a_rtcp)),
            b=replace(call.spec.b, remote_rtcp=address(b_rtcp)),
        )
        engine.update(spec)
        at_b = asyncio.ensure_future(collect(b_rtcp, 1))
        a_rtcp.sendto(
            call.peer_out.protect_rtcp(rtcp_sr(0xA)), (call.sbc_a.host, call.sbc_a.port + 1)
        )
        assert [d for d, _ in await at_b] == [rtcp_sr(0xA)]
        at_a = asyncio.ensure_future(collect(a_rtcp, 1))
        b_rtcp.sendto(rtcp_sr(0xB), (call.sbc_b.host, call.sbc_b.port + 1))
        [(packet, _)] = await at_a
        assert packet != rtcp_sr(0xB)
        assert call.peer_in.unprotect_rtcp(packet) == rtcp_sr(0xB)
        # A tampered SRTCP compound is dropped and counted.
        bad = bytearray(call.peer_out.protect_rtcp(rtcp_sr(0xA)))
        bad[-1] ^= 0x80
        nothing = asyncio.ensure_future(collect(b_rtcp, 1, timeout=0.5))
        a_rtcp.sendto(bytes(bad), (call.sbc_a.host, call.sbc_a.port + 1))
        assert await nothing == []
        [stats] = engine.stats("srtp-1")
        assert stats.a_to_b.srtp_failed == 1
        assert stats.a_to_b.rtcp_packets == 1
        engine.close()
        a_rtcp.close()
        b_rtcp.close()
        call.close()

    run(scenario)


def test_srtcp_muxed_on_the_rtp_port() -> None:
    async def scenario() -> None:
        call = SrtpCall(rtcp_mux=True)
        engine = RelayEngine()
        engine.update(call.spec)
        at_b = asyncio.ensure_future(collect(call.b, 1))
        call.a.sendto(call.peer_out.protect_rtcp(rtcp_sr(0xA)), (call.sbc_a.host, call.sbc_a.port))
        assert [d for d, _ in await at_b] == [rtcp_sr(0xA)]
        engine.close()
        call.close()

    run(scenario)


def test_rekey_replaces_the_sessions() -> None:
    async def scenario() -> None:
        call = SrtpCall()
        engine = RelayEngine()
        engine.update(call.spec)
        target = (call.sbc_a.host, call.sbc_a.port)
        new_peer_key = generate_key(SUITES_BY_NAME[SUITE])
        new_sbc_key = generate_key(SUITES_BY_NAME[SUITE])
        keys = SrtpKeys(SUITE, send_key=new_sbc_key, receive_key=new_peer_key)
        engine.update(replace(call.spec, a=replace(call.spec.a, srtp=keys)))
        old = call.peer_out.protect(rtp(1, 0xA, payload(1)))
        new_out = session(SUITE, new_peer_key, inbound=False)
        fresh = new_out.protect(rtp(2, 0xA, payload(2)))
        at_b = asyncio.ensure_future(collect(call.b, 2, timeout=1.0))
        call.a.sendto(old, target)  # the old key no longer authenticates
        call.a.sendto(fresh, target)
        assert [d for d, _ in await at_b] == [rtp(2, 0xA, payload(2))]
        at_a = asyncio.ensure_future(collect(call.a, 1))
        call.b.sendto(rtp(3, 0xB, payload(3)), (call.sbc_b.host, call.sbc_b.port))
        [(packet, _)] = await at_a
        new_in = session(SUITE, new_sbc_key, inbound=True)
        assert new_in.unprotect(packet) == rtp(3, 0xB, payload(3))
        [stats] = engine.stats("srtp-1")
        assert stats.a_to_b.srtp_failed == 1
        engine.close()
        call.close()

    run(scenario)


def test_same_keys_keep_the_sessions() -> None:
    async def scenario() -> None:
        call = SrtpCall()
        engine = RelayEngine()
        engine.update(call.spec)
        target = (call.sbc_a.host, call.sbc_a.port)
        first = call.peer_out.protect(rtp(1, 0xA, payload(1)))
        at_b = asyncio.ensure_future(collect(call.b, 1))
        call.a.sendto(first, target)
        assert len(await at_b) == 1
        engine.update(replace(call.spec, on_hold=True))  # same keys: replay state kept
        at_b = asyncio.ensure_future(collect(call.b, 1, timeout=0.5))
        call.a.sendto(first, target)
        assert await at_b == []
        [stats] = engine.stats("srtp-1")
        assert stats.a_to_b.srtp_failed == 1
        engine.close()
        call.close()

    run(scenario)


def test_libsrtp_error_type_is_what_we_catch() -> None:
    # Guard on the dependency: a failed unprotect raises pylibsrtp.Error.
    inbound = session(SUITE, bytes(30), inbound=True)
    try:
        inbound.unprotect(rtp(1, 1, bytes(20)))
    except pylibsrtp.Error:
        return
    raise AssertionError("unprotect of a plain packet succeeded")


def test_srtp_keys_cross_to_worker_processes() -> None:
    """The spec (keys included) is pickled to a worker; SRTP works there too."""

    async def scenario() -> None:
        call = SrtpCall()
        pool = WorkerPool(1, stats_interval=0.1)
        await pool.start()
        try:
            pool.update(call.spec)
            target_a = (call.sbc_a.host, call.sbc_a.port)
            target_b = (call.sbc_b.host, call.sbc_b.port)
            # The worker binds asynchronously: poke until a packet crosses.
            got: list[bytes] = []
            for seq in range(1, 50):
                at_a = asyncio.ensure_future(collect(call.a, 1, timeout=0.1))
                call.b.sendto(rtp(seq, 0xB, payload(seq)), target_b)
                got = [data for data, _ in await at_a]
                if got:
                    break
            assert got
            assert call.peer_in.unprotect(got[0])[12:] == payload(seq)
            bad = bytearray(call.peer_out.protect(rtp(1, 0xA, payload(1))))
            bad[-2] ^= 0xFF
            call.a.sendto(bytes(bad), target_a)
            at_b = asyncio.ensure_future(collect(call.b, 1))
            call.a.sendto(call.peer_out.protect(rtp(2, 0xA, payload(2))), target_a)
            assert [d for d, _ in await at_b] == [rtp(2, 0xA, payload(2))]
            failed = 0
            for _ in range(100):
                stats = pool.stats("srtp-1")
                failed = stats[0].a_to_b.srtp_failed if stats else 0
                if failed:
                    break
                await asyncio.sleep(0.05)
            assert failed == 1
        finally:
            await pool.close()
            call.close()

    run(scenario)
