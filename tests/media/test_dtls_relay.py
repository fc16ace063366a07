"""The relay with a DTLS-SRTP leg (A) and a plain RTP leg (B), on loopback sockets.

Peer A is one of our own sans-IO DTLS endpoints with its own certificate,
driven over a real socket; what B receives is checked in clear, what A
receives with SRTP keys from A's own handshake. Bounded waits only.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from dataclasses import replace

import pytest
from media_sockets import free_port_pair
from test_relay_engine import address, collect, endpoint_socket, run

from sbc.media.control import DtlsSpec, Endpoint, SideSpec, StreamSpec
from sbc.media.dtls import DtlsEndpoint
from sbc.media.dtls_certificate import DtlsCertificate, DtlsRole, DtlsState
from sbc.media.relay.engine import RelayEngine
from sbc.media.relay.workers import WorkerPool
from sbc.media.srtp import SrtpContext
from sbc.media.stats import aggregate

WAIT = 10.0
NODE = DtlsCertificate.generate()
PEER = DtlsCertificate.generate()
WRONG = ":".join(["00"] * 32)


def rtp(seq: int, ssrc: int) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, seq, seq * 160, ssrc) + bytes([seq % 256]) * 160


class DtlsCall:
    """SBC side A does DTLS-SRTP (``role`` is ours) with peer A; B is plain."""

    def __init__(self, role: DtlsRole = "server", expect: str | None = None) -> None:
        self.a = endpoint_socket("127.0.0.1")
        self.b = endpoint_socket("127.0.0.2")
        self.sbc_a = Endpoint("127.0.0.1", free_port_pair("127.0.0.1"))
        self.sbc_b = Endpoint("127.0.0.2", free_port_pair("127.0.0.2"))
        fingerprint = expect or PEER.fingerprint()
        dtls = DtlsSpec(role, (("sha-256", fingerprint),), NODE.certificate, NODE.private_key)
        self.spec = StreamSpec(
            session="dtls-1",
            index=0,
            a=SideSpec(
                self.sbc_a,
                address(self.a),
                rtcp_mux=True,
                allowed_sources=("127.0.0.1",),
                dtls=dtls,
            ),
            b=SideSpec(self.sbc_b, address(self.b), rtcp_mux=True, allowed_sources=("127.0.0.2",)),
        )
        peer_role: DtlsRole = "client" if role == "server" else "server"
        self.peer = DtlsEndpoint(PEER, peer_role, (("sha-256", NODE.fingerprint()),))

    @property
    def target_a(self) -> tuple[str, int]:
        return self.sbc_a.host, self.sbc_a.port

    @property
    def target_b(self) -> tuple[str, int]:
        return self.sbc_b.host, self.sbc_b.port

    async def handshake(self) -> None:
        """Drive peer A's end until it is done (bounded), over its socket."""
        loop = asyncio.get_running_loop()
        peer = self.peer
        peer.start(loop.time())
        deadline = loop.time() + WAIT
        while peer.state not in (DtlsState.CONNECTED, DtlsState.FAILED):
            assert loop.time() < deadline, "handshake did not finish"
            for datagram in peer.datagrams_to_send():
                self.a.sendto(datagram, self.target_a)
            try:
                data, _ = await asyncio.wait_for(loop.sock_recvfrom(self.a, 4096), 0.2)
            except TimeoutError:
                peer.handle_timer(loop.time())
                continue
            peer.receive_datagram(data, loop.time())
        for datagram in peer.datagrams_to_send():  # the last flight, if ours ends it
            self.a.sendto(datagram, self.target_a)

    def close(self) -> None:
        self.a.close()
        self.b.close()


async def until(check, what: str) -> None:
    """Poll ``check()`` until true (bounded)."""
    for _ in range(200):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never: {what}")


def nothing_waiting(sock: socket.socket) -> bool:
    try:
        sock.recv(4096)
    except BlockingIOError:
        return True
    return False


def test_no_media_either_way_before_the_handshake_then_srtp_both_ways() -> None:
    async def scenario() -> None:
        call = DtlsCall()
        engine = RelayEngine(sweep_interval=0.1)
        try:
            engine.update(call.spec)
            # Before the handshake: plain from B is counted, never sent to A.
            for seq in range(5):
                call.b.sendto(rtp(seq, 0xB), call.target_b)
            await until(lambda: engine.stats("dtls-1")[0].b_to_a.dropped == 5, "B dropped")
            assert nothing_waiting(call.a)
            # ...and RTP from A's address (clear, not SRTP) never reaches B.
            call.a.sendto(rtp(1, 0xA), call.target_a)
            await until(lambda: engine.stats("dtls-1")[0].a_to_b.srtp_failed == 1, "A refused")
            assert nothing_waiting(call.b)
            assert engine.stats("dtls-1")[0].dtls_a == "connecting"

            await call.handshake()
            assert call.peer.state is DtlsState.CONNECTED
            await until(lambda: engine.stats("dtls-1")[0].dtls_a == "connected", "connected")
            assert call.peer.keys is not None
            keys = SrtpContext(call.peer.keys)

            at_b = asyncio.ensure_future(collect(call.b, 3))
            for seq in range(10, 13):
                call.a.sendto(keys.outbound.protect(rtp(seq, 0xA)), call.target_a)
            assert [d for d, _ in await at_b] == [rtp(seq, 0xA) for seq in range(10, 13)]

            at_a = asyncio.ensure_future(collect(call.a, 3))
            for seq in range(20, 23):
                call.b.sendto(rtp(seq, 0xB), call.target_b)
            got = [keys.inbound.unprotect(d) for d, _ in await at_a]
            assert got == [rtp(seq, 0xB) for seq in range(20, 23)]
        finally:
            engine.close()
            call.close()

    run(scenario)


def test_fingerprint_mismatch_drops_media_and_is_reported() -> None:
    async def scenario() -> None:
        call = DtlsCall(expect=WRONG)
        engine = RelayEngine(sweep_interval=0.1)
        try:
            engine.update(call.spec)
            await call.handshake()  # the peer's view completes; ours must not
            await until(lambda: engine.stats("dtls-1")[0].dtls_a == "failed", "failed")
            assert call.peer.keys is not None
            keys = SrtpContext(call.peer.keys)
            for seq in range(3):
                call.a.sendto(keys.outbound.protect(rtp(seq, 0xA)), call.target_a)
            await until(lambda: engine.stats("dtls-1")[0].a_to_b.srtp_failed == 3, "counted")
            assert nothing_waiting(call.b)
            call.b.sendto(rtp(1, 0xB), call.target_b)
            await until(lambda: engine.stats("dtls-1")[0].b_to_a.dropped == 1, "B dropped")
            assert nothing_waiting(call.a)
            assert aggregate(engine.stats("dtls-1")).extra["dtls_failed"] == 1.0
        finally:
            engine.close()
            call.close()

    run(scenario)


def test_as_client_we_start_the_handshake_towards_the_sdp_address() -> None:
    async def scenario() -> None:
        call = DtlsCall(role="client")
        engine = RelayEngine(sweep_interval=0.1)
        try:
            engine.update(call.spec)  # our ClientHello leaves at once
            await call.handshake()
            assert call.peer.state is DtlsState.CONNECTED
            await until(lambda: engine.stats("dtls-1")[0].dtls_a == "connected", "connected")
            assert call.peer.keys is not None
            keys = SrtpContext(call.peer.keys)
            at_b = asyncio.ensure_future(collect(call.b, 1))
            call.a.sendto(keys.outbound.protect(rtp(7, 0xA)), call.target_a)
            assert [d for d, _ in await at_b] == [rtp(7, 0xA)]
        finally:
            engine.close()
            call.close()

    run(scenario)


@pytest.mark.parametrize("role", ["server", "client"])
def test_dtls_spec_crosses_to_worker_processes(role: DtlsRole) -> None:
    async def scenario() -> None:
        call = DtlsCall(role=role)
        pool = WorkerPool(1, stats_interval=0.1)
        await pool.start()
        try:
            pool.update(call.spec)
            await call.handshake()
            assert call.peer.state is DtlsState.CONNECTED
            assert call.peer.keys is not None
            keys = SrtpContext(call.peer.keys)
            got: list[bytes] = []
            for seq in range(1, 50):  # until the worker relays (stats lag behind)
                at_b = asyncio.ensure_future(collect(call.b, 1, timeout=0.1))
                call.a.sendto(keys.outbound.protect(rtp(seq, 0xA)), call.target_a)
                got = [d for d, _ in await at_b]
                if got:
                    break
            assert got == [rtp(seq, 0xA)]
        finally:
            await pool.close()
            call.close()

    run(scenario)


def test_a_client_hello_from_a_stranger_gets_no_answer() -> None:
    """No certificate flight towards a source latching would not trust (reflection)."""

    async def scenario() -> None:
        call = DtlsCall()
        stranger = endpoint_socket("127.0.0.3")
        engine = RelayEngine(sweep_interval=0.1)
        try:
            engine.update(call.spec)
            hello = DtlsEndpoint(PEER, "client", (("sha-256", NODE.fingerprint()),))
            hello.start(0.0)
            [datagram] = hello.datagrams_to_send()
            stranger.sendto(datagram, call.target_a)
            await until(lambda: engine.stats("dtls-1")[0].a_to_b.dropped == 1, "dropped")
            assert nothing_waiting(stranger)
            assert engine.stats("dtls-1")[0].dtls_a == "connecting"
            await call.handshake()  # the real peer still gets through
            assert call.peer.state is DtlsState.CONNECTED
        finally:
            engine.close()
            stranger.close()
            call.close()

    run(scenario)


@pytest.mark.parametrize(("answered", "state"), [(None, "connected"), (WRONG, "failed")])
def test_a_handshake_before_the_answer_is_verified_when_it_arrives(
    answered: str | None, state: str
) -> None:
    """RFC 5763 §6.7.1: after our actpass offer the trunk (active) may finish the
    handshake before its answer with the fingerprint reaches us."""

    async def scenario() -> None:
        call = DtlsCall()
        dtls = call.spec.a.dtls
        assert dtls is not None
        engine = RelayEngine(sweep_interval=0.1)
        try:
            engine.update(
                replace(call.spec, a=replace(call.spec.a, dtls=replace(dtls, fingerprints=())))
            )
            await call.handshake()
            assert call.peer.keys is not None
            keys = SrtpContext(call.peer.keys)
            call.a.sendto(keys.outbound.protect(rtp(1, 0xA)), call.target_a)
            await until(lambda: engine.stats("dtls-1")[0].a_to_b.srtp_failed == 1, "held")
            assert engine.stats("dtls-1")[0].dtls_a == "connecting"
            fingerprint = answered or PEER.fingerprint()
            answer = replace(dtls, fingerprints=(("sha-256", fingerprint),))
            engine.update(replace(call.spec, a=replace(call.spec.a, dtls=answer)))
            assert engine.stats("dtls-1")[0].dtls_a == state
            if answered is not None:  # refused like before, and counted
                call.a.sendto(keys.outbound.protect(rtp(2, 0xA)), call.target_a)
                await until(lambda: engine.stats("dtls-1")[0].a_to_b.srtp_failed == 2, "held")
                assert nothing_waiting(call.b)
                return
            at_b = asyncio.ensure_future(collect(call.b, 1))
            call.a.sendto(keys.outbound.protect(rtp(2, 0xA)), call.target_a)
            assert [d for d, _ in await at_b] == [rtp(2, 0xA)]
        finally:
            engine.close()
            call.close()

    run(scenario)
