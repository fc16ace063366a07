"""The relay's own RTCP toward each leg of a transcoded stream, as the legs receive it.

Leg A (PCMU) has separate RTP and RTCP ports (RFC 3550 §11), leg B (Opus)
uses rtcp-mux (RFC 5761), with or without SRTP. Each leg's sockets get what
a real peer would: the SBC's SRs (RFC 3550 §6.4.1) must come from the SSRC
the leg's RTP comes from, count exactly the RTP packets the leg got, report
on the leg's own SSRC, carry LSR/DLSR for the leg's SR, be followed by an
SDES CNAME, and end with a BYE when the stream is removed. Every compound
is read by the test's own parser (:mod:`test_rtcp_sender`).

Leg B's RTP and RTCP share one socket pair, so UDP on loopback keeps their
order: each SR must count exactly the RTP packets that arrived before it.
For leg A they travel apart, so its SR is taken once its RTP has all
arrived, and must count all of it.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import replace

import pytest
from media_sockets import free_port_pair
from test_relay_engine import address, collect, endpoint_socket, run
from test_rtcp_sender import NTP_1970, Packet, parse_compound, read_cname, read_sr
from test_transcode_relay import (
    PACKETS,
    TRANSCODE,
    SrtpPeer,
    opus_packets,
    pcmu_packets,
    send_slowly,
)

from sbc.media.control import Endpoint, SideSpec, StreamSpec
from sbc.media.relay.engine import RelayEngine
from sbc.media.relay.workers import WorkerPool

WAIT = 5.0
LEG_A_NTP = 0x0000_1111_2222_3333  # in leg A's own SR: LSR is the middle 32 bits
SR, SDES, BYE = 200, 202, 203


def peer_pair(host: str) -> tuple[socket.socket, socket.socket]:
    """A peer's RTP socket on an even port and its RTCP socket on port + 1."""
    port = free_port_pair(host)
    pair = []
    for offset in (0, 1):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((host, port + offset))
        sock.setblocking(False)
        pair.append(sock)
    return pair[0], pair[1]


def is_rtcp(data: bytes) -> bool:
    return 192 <= data[1] <= 223  # RFC 5761 §4


async def receive_until(
    sock: socket.socket, done: Callable[[bytes], bool], got: list[bytes], wait: float = WAIT
) -> bytes:
    """Append what ``sock`` receives to ``got`` up to the first datagram that is ``done``."""
    loop = asyncio.get_running_loop()
    while True:
        data, _ = await asyncio.wait_for(loop.sock_recvfrom(sock, 65536), wait)
        got.append(data)
        if done(data):
            return data


def drain(sock: socket.socket) -> None:
    while True:
        try:
            sock.recv(65536)
        except BlockingIOError:
            return


def rtp_timestamp(packet: bytes) -> int:
    return int(struct.unpack_from("!I", packet, 4)[0])


def rtp_ssrc(packet: bytes) -> int:
    return int(struct.unpack_from("!I", packet, 8)[0])


def check_compound(packets: list[Packet], ssrc: int, leg_ssrc: int, last_seq: int) -> None:
    """SR from ``ssrc`` with one block about ``leg_ssrc``, then our CNAME."""
    assert [p.packet_type for p in packets][:2] == [SR, SDES]
    report = read_sr(packets[0])
    assert report.ssrc == ssrc
    [(about, fraction, cumulative, highest, *_)] = report.blocks
    assert (about, fraction, cumulative, highest) == (leg_ssrc, 0, 0, last_seq)
    cname_ssrc, cname = read_cname(packets[1])
    assert cname_ssrc == ssrc
    assert cname


@pytest.mark.parametrize("srtp", [False, True], ids=["plain", "srtp-on-b"])
def test_each_leg_gets_sender_reports_for_the_rtp_it_receives(srtp: bool) -> None:
    async def scenario() -> None:
        peer = SrtpPeer() if srtp else None
        engine = RelayEngine(sweep_interval=0.05, rtcp_interval=0.4)
        a, a_rtcp = peer_pair("127.0.0.1")
        b = endpoint_socket("127.0.0.2")
        sbc_a = Endpoint("127.0.0.1", free_port_pair("127.0.0.1"))
        sbc_b = Endpoint("127.0.0.2", free_port_pair("127.0.0.2"))
        spec = StreamSpec(
            "call-1",
            0,
            SideSpec(sbc_a, address(a), allowed_sources=("127.0.0.1",)),
            SideSpec(
                sbc_b,
                address(b),
                rtcp_mux=True,
                allowed_sources=("127.0.0.2",),
                srtp=peer.keys if peer else None,
            ),
            transcode=TRANSCODE,
        )

        unprotected: dict[bytes, bytes] = {}  # libsrtp refuses a replay: unprotect once

        def plain_rtcp(data: bytes) -> bytes:
            if data not in unprotected:
                unprotected[data] = peer.into.unprotect_rtcp(data) if peer else data
            return unprotected[data]

        def plain_rtp(data: bytes) -> bytes:
            return peer.into.unprotect(data) if peer else data

        try:
            engine.update(spec)
            # Leg A's own SR (RFC 3550 §6.4.1, no blocks), from its RTCP port.
            leg_a_sr = struct.pack("!BBHIQIII", 0x80, SR, 6, 0xA, LEG_A_NTP, 1, 2, 3)
            a_rtcp.sendto(leg_a_sr, (sbc_a.host, sbc_a.port + 1))
            from_b = opus_packets()
            if peer:
                from_b = [peer.out.protect(p) for p in from_b]
            await send_slowly(a, sbc_a, pcmu_packets())
            await send_slowly(b, sbc_b, from_b)

            # Leg B, muxed: every SR counts the RTP that came before it on the same socket.
            at_b: list[bytes] = []
            rtp_before = 0

            def final_sr_at_b(data: bytes) -> bool:
                nonlocal rtp_before
                if not is_rtcp(data):
                    rtp_before += 1
                    return False
                report = read_sr(parse_compound(plain_rtcp(data))[0])
                assert report.packets == rtp_before
                # Done at the first SR made once leg B's own packets were all in (an
                # earlier one may wait in the socket from while B was still sending).
                return rtp_before >= PACKETS - 3 and report.blocks[0][3] == PACKETS - 1

            last = plain_rtcp(await receive_until(b, final_sr_at_b, at_b))
            rtp_at_b = [plain_rtp(p) for p in at_b if not is_rtcp(p)]
            [ours_to_b] = {rtp_ssrc(p) for p in rtp_at_b}
            check_compound(parse_compound(last), ours_to_b, 0xB, PACKETS - 1)
            report = read_sr(parse_compound(last)[0])
            assert report.octets == sum(len(p) - 12 for p in rtp_at_b)  # payload octets
            # Its timestamps: NTP is now's wall clock (from 1900), and the RTP timestamp
            # continues our Opus timeline (48 kHz) from the last packet, never behind it.
            assert abs((report.ntp >> 32) - NTP_1970 - time.time()) < 60
            ahead = (report.rtp_timestamp - rtp_timestamp(rtp_at_b[-1])) % 2**32
            assert ahead < 60 * 48000

            # Leg A: its RTP all in, then the next SR on its RTCP socket counts it all.
            rtp_at_a = [data for data, _ in await collect(a, PACKETS, timeout=0.5)]
            assert len(rtp_at_a) >= PACKETS - 3
            [ours_to_a] = {rtp_ssrc(p) for p in rtp_at_a}
            drain(a_rtcp)
            sr_at_a = await receive_until(a_rtcp, lambda _: True, [])
            packets = parse_compound(sr_at_a)
            check_compound(packets, ours_to_a, 0xA, PACKETS - 1)
            assert read_sr(packets[0]).packets == len(rtp_at_a)
            *_, lsr, dlsr = read_sr(packets[0]).blocks[0]
            assert lsr == (LEG_A_NTP >> 16) & 0xFFFFFFFF
            assert dlsr > 0

            # Leg A's receiver report about our SSRC is what it says of b_to_a.
            block = struct.pack("!IIIIII", ours_to_a, 3, 1000, 80, 0, 0)
            leg_a_rr = struct.pack("!BBHI", 0x81, 201, 7, 0xA) + block
            a_rtcp.sendto(leg_a_rr, (sbc_a.host, sbc_a.port + 1))
            for _ in range(200):
                if engine.stats("call-1")[0].b_to_a.reported_lost:
                    break
                await asyncio.sleep(0.01)
            assert engine.stats("call-1")[0].b_to_a.reported_lost == 3

            # Removing the stream says BYE to each leg (RFC 3550 §6.6) from our SSRC.
            engine.remove("call-1", 0)
            bye_at_a = await receive_until(a_rtcp, lambda d: d[-8:-4] == b"\x81\xcb\x00\x01", [])
            assert parse_compound(bye_at_a)[-1].body == struct.pack("!I", ours_to_a)
            bye_at_b = plain_rtcp(
                await receive_until(
                    b,
                    lambda d: is_rtcp(d) and parse_compound(plain_rtcp(d))[-1].packet_type == BYE,
                    [],
                )
            )
            assert parse_compound(bye_at_b)[-1].body == struct.pack("!I", ours_to_b)
        finally:
            engine.close()
            for sock in (a, a_rtcp, b):
                sock.close()

    run(scenario)


def test_a_rebuilt_direction_says_bye_for_its_old_ssrc() -> None:
    async def scenario() -> None:
        engine = RelayEngine(sweep_interval=0.05, rtcp_interval=60.0)  # no periodic report
        a, a_rtcp = peer_pair("127.0.0.1")
        b = endpoint_socket("127.0.0.2")
        sbc_a = Endpoint("127.0.0.1", free_port_pair("127.0.0.1"))
        sbc_b = Endpoint("127.0.0.2", free_port_pair("127.0.0.2"))
        spec = StreamSpec(
            "call-1",
            0,
            SideSpec(sbc_a, address(a), allowed_sources=("127.0.0.1",)),
            SideSpec(sbc_b, address(b), allowed_sources=("127.0.0.2",)),
            transcode=TRANSCODE,
        )
        try:
            engine.update(spec)
            await send_slowly(a, sbc_a, pcmu_packets()[:5])  # latches A's RTP (and so RTCP)
            await send_slowly(b, sbc_b, opus_packets()[:5])
            first = [data for data, _ in await collect(a, 5, timeout=1.0)]
            [before] = {rtp_ssrc(p) for p in first}
            # A re-INVITE changes the encoder: both directions are rebuilt with new SSRCs.
            cheaper = replace(
                TRANSCODE,
                a_to_b=replace(TRANSCODE.a_to_b, opus_complexity=3),
                b_to_a=replace(TRANSCODE.b_to_a, opus_complexity=3),
            )
            engine.update(replace(spec, transcode=cheaper))
            bye = parse_compound(await receive_until(a_rtcp, lambda _: True, []))
            assert [p.packet_type for p in bye] == [SR, SDES, BYE]
            assert bye[-1].body == struct.pack("!I", before)
            assert read_sr(bye[0]).ssrc == before
            assert read_sr(bye[0]).packets == len(first)  # all in: collect waited for silence
            await send_slowly(b, sbc_b, opus_packets()[5:10])
            after = {rtp_ssrc(data) for data, _ in await collect(a, 5, timeout=1.0)}
            assert after
            assert before not in after
        finally:
            engine.close()
            for sock in (a, a_rtcp, b):
                sock.close()

    run(scenario)


def test_a_worker_process_reports_at_the_default_interval() -> None:
    async def scenario() -> None:
        pool = WorkerPool(1)  # its engine has the defaults: reports every 2.5-7.5 s
        await pool.start()
        a, a_rtcp = peer_pair("127.0.0.1")
        b = endpoint_socket("127.0.0.2")
        sbc_a = Endpoint("127.0.0.1", free_port_pair("127.0.0.1"))
        sbc_b = Endpoint("127.0.0.2", free_port_pair("127.0.0.2"))
        try:
            pool.update(
                StreamSpec(
                    "call-1",
                    0,
                    SideSpec(sbc_a, address(a), allowed_sources=("127.0.0.1",)),
                    SideSpec(sbc_b, address(b), allowed_sources=("127.0.0.2",)),
                    transcode=TRANSCODE,
                )
            )
            await asyncio.sleep(0.2)  # the worker binds its sockets when the message arrives
            await send_slowly(a, sbc_a, pcmu_packets()[:10])
            await send_slowly(b, sbc_b, opus_packets()[:10])
            rtp_at_a = [data for data, _ in await collect(a, 10, timeout=1.0)]
            [ours_to_a] = {rtp_ssrc(p) for p in rtp_at_a}
            # The next report after all that RTP arrived: 2.5-7.5 s, plus the 1 s sweep.
            drain(a_rtcp)
            report = parse_compound(await receive_until(a_rtcp, lambda _: True, [], wait=10.0))
            check_compound(report, ours_to_a, 0xA, 9)
            assert read_sr(report[0]).packets == len(rtp_at_a)
        finally:
            await pool.close()
            for sock in (a, a_rtcp, b):
                sock.close()

    run(scenario)
