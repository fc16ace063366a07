"""DTMF in the relay: events taken out and reported, digits injected (loopback only)."""

from __future__ import annotations

import asyncio
import socket
import struct
from dataclasses import replace

import pylibsrtp
from media_sockets import free_port_pair

from sbc.media.control import (
    CodecEnd,
    Endpoint,
    SideSpec,
    SrtpKeys,
    StreamSpec,
    TranscodeDirection,
    TranscodeSpec,
)
from sbc.media.relay.engine import RelayEngine
from sbc.media.relay.workers import WorkerPool
from sbc.media.sdes import SUITES_BY_NAME, generate_key
from sbc.media.srtp import session

WAIT = 5.0
EVENT_PT = 101


def peer_socket(host: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.setblocking(False)
    return sock


def endpoint(sock: socket.socket) -> Endpoint:
    host, port = sock.getsockname()
    return Endpoint(host, port)


def audio(seq: int, ssrc: int = 0xA) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, seq, seq * 160, ssrc) + bytes(160)


def event_packet(seq: int, timestamp: int, event: int, end: bool, duration: int) -> bytes:
    marker = 0x80 if duration == 160 and not end else 0
    header = struct.pack("!BBHII", 0x80, marker | EVENT_PT, seq, timestamp, 0xA)
    return header + struct.pack("!BBH", event, (0x80 if end else 0) | 10, duration)


def digit_packets(first_seq: int, timestamp: int, event: int) -> list[bytes]:
    """An event as a phone sends it, with a retransmitted update and three end packets."""
    packets = [
        event_packet(first_seq + i, timestamp, event, False, d)
        for i, d in enumerate((160, 320, 480))
    ]
    packets.append(packets[-1])  # a duplicate on the way
    end = [event_packet(first_seq + 3 + i, timestamp, event, True, 640) for i in range(3)]
    return packets + end


def spec_for(a: socket.socket, b: socket.socket, *, report_a: bool) -> StreamSpec:
    return StreamSpec(
        session="call",
        index=0,
        a=SideSpec(
            Endpoint("127.0.0.1", free_port_pair("127.0.0.1")),
            endpoint(a),
            allowed_sources=("127.0.0.1",),
            dtmf_pt=EVENT_PT,
            dtmf_report=report_a,
        ),
        b=SideSpec(
            Endpoint("127.0.0.2", free_port_pair("127.0.0.2")),
            endpoint(b),
            allowed_sources=("127.0.0.2",),
            dtmf_pt=EVENT_PT,
        ),
    )


async def drain(
    sock: socket.socket, until: asyncio.Event | None = None, quiet: float = 0.3
) -> list[bytes]:
    """Everything ``sock`` receives until ``until`` is set (bounded) and it stays quiet."""
    got: list[bytes] = []
    for _ in range(int(WAIT / 0.02)):
        await asyncio.sleep(0.02)
        while True:
            try:
                got.append(sock.recv(2048))
            except BlockingIOError:
                break
        if until is None or until.is_set():
            break
    await asyncio.sleep(quiet)
    while True:
        try:
            got.append(sock.recv(2048))
        except BlockingIOError:
            return got


async def drain_event(sock: socket.socket) -> list[bytes]:
    """Packets until the third end packet of an event (bounded wait)."""
    got: list[bytes] = []
    for _ in range(int(WAIT / 0.02)):
        await asyncio.sleep(0.02)
        while True:
            try:
                got.append(sock.recv(2048))
            except BlockingIOError:
                break
        if sum(1 for p in got if len(p) == 16 and p[13] & 0x80) >= 3:
            break
    return got


def parse_event(packet: bytes) -> tuple[bool, int, int, int, int, bool, int, int]:
    """(marker, pt, seq, timestamp, ssrc, end, volume, duration): RFC 3550 §5.1 + RFC 4733 §2.3."""
    first, second, seq, timestamp, ssrc = struct.unpack("!BBHII", packet[:12])
    assert first == 0x80  # version 2, no padding, extension or CSRC
    event, flags, duration = struct.unpack("!BBH", packet[12:16])
    assert len(packet) == 16
    return (
        bool(second & 0x80),
        second & 0x7F,
        seq,
        timestamp,
        ssrc,
        bool(flags & 0x80),
        event,
        duration,
    )


def check_injected(packets: list[bytes], event: int, duration_ms: int, clock: int = 8000) -> None:
    parsed = [parse_event(p) for p in packets]
    assert parsed, "no event packet arrived"
    assert {p[1] for p in parsed} == {EVENT_PT}
    assert {p[6] for p in parsed} == {event}
    assert parsed[0][0]
    assert not any(p[0] for p in parsed[1:])
    assert len({p[3] for p in parsed}) == 1  # one timestamp
    assert len({p[4] for p in parsed}) == 1  # one SSRC
    ends = [p for p in parsed if p[5]]
    assert len(ends) == 3
    assert {e[7] for e in ends} == {duration_ms * clock // 1000}
    durations = [p[7] for p in parsed if not p[5]]
    assert durations == sorted(durations)
    assert durations[-1] <= duration_ms * clock // 1000


def test_events_are_reported_once_per_digit_and_not_relayed() -> None:
    async def scenario() -> None:
        a, b = peer_socket("127.0.0.1"), peer_socket("127.0.0.2")
        reports: list[tuple[str, str, str, int]] = []
        two = asyncio.Event()

        def on_dtmf(session: str, leg: str, digit: str, duration_ms: int) -> None:
            reports.append((session, leg, digit, duration_ms))
            if len(reports) >= 2:
                two.set()

        engine = RelayEngine(on_dtmf=on_dtmf)
        spec = spec_for(a, b, report_a=True)
        engine.update(spec)
        sbc_a = (spec.a.local.host, spec.a.local.port)
        packets = [
            audio(1),
            *digit_packets(2, 160, 1),
            audio(9),
            *digit_packets(10, 8000, 11),
            audio(20),
        ]
        for packet in packets:
            a.sendto(packet, sbc_a)
        got = await drain(b, two)
        assert reports == [("call", "a", "1", 80), ("call", "a", "#", 80)]
        assert [p[1] & 0x7F for p in got] == [0, 0, 0]  # the audio crossed, no event did
        engine.close()
        a.close()
        b.close()

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_events_cross_unchanged_without_reporting() -> None:
    async def scenario() -> None:
        a, b = peer_socket("127.0.0.1"), peer_socket("127.0.0.2")
        reports: list[object] = []
        engine = RelayEngine(on_dtmf=lambda *r: reports.append(r))
        spec = spec_for(a, b, report_a=False)
        engine.update(spec)
        packets = digit_packets(2, 160, 5)
        for packet in packets:
            a.sendto(packet, (spec.a.local.host, spec.a.local.port))
        got = await drain(b)
        assert got == packets
        assert reports == []
        engine.close()
        a.close()
        b.close()

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_events_from_a_transcoded_side_are_reported_not_transcoded() -> None:
    """A G.711 carrier whose PBX takes Opus and DTMF as INFO: the carrier's
    events leave the transcoded stream as digits, its audio still crosses."""

    async def scenario() -> None:
        a, b = peer_socket("127.0.0.1"), peer_socket("127.0.0.2")
        reports: list[tuple[str, str, str, int]] = []
        one = asyncio.Event()

        def on_dtmf(session: str, leg: str, digit: str, duration_ms: int) -> None:
            reports.append((session, leg, digit, duration_ms))
            one.set()

        pcmu = CodecEnd("pcmu", 0, 20, (), EVENT_PT)
        opus = CodecEnd("opus", 96, 20, (), None)  # the INFO leg has no telephone-event
        transcode = TranscodeSpec(TranscodeDirection(pcmu, opus), TranscodeDirection(opus, pcmu))
        spec = replace(spec_for(a, b, report_a=True), transcode=transcode)
        spec = replace(spec, b=replace(spec.b, dtmf_pt=None))
        engine = RelayEngine(on_dtmf=on_dtmf)
        engine.update(spec)
        sbc_a = (spec.a.local.host, spec.a.local.port)
        for packet in [audio(1), *digit_packets(2, 320, 4), audio(9), audio(10)]:
            a.sendto(packet, sbc_a)
        got = await drain(b, one)
        assert reports == [("call", "a", "4", 80)]
        assert got, "no audio crossed"
        assert {p[1] & 0x7F for p in got} == {96}  # Opus only: no event went to the INFO leg
        engine.close()
        a.close()
        b.close()

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_injected_digit_is_well_formed_rfc4733_towards_the_leg() -> None:
    async def scenario() -> None:
        a, b = peer_socket("127.0.0.1"), peer_socket("127.0.0.2")
        engine = RelayEngine()
        spec = spec_for(a, b, report_a=True)
        engine.update(spec)
        engine.send_dtmf("call", 0, "b", "*", 150)
        check_injected(await drain_event(b), 10, 150)
        engine.send_dtmf("call", 0, "a", "9", 100)  # the other way too
        check_injected(await drain_event(a), 9, 100)
        engine.send_dtmf("call", 0, "b", "x", 100)  # not a digit: nothing
        engine.send_dtmf("other", 0, "b", "1", 100)  # unknown session: nothing
        assert await drain(b, quiet=0.3) == []
        engine.close()
        a.close()
        b.close()

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_through_worker_processes_both_ways() -> None:
    async def scenario() -> None:
        a, b = peer_socket("127.0.0.1"), peer_socket("127.0.0.2")
        reports: list[tuple[str, str, str, int]] = []
        reported = asyncio.Event()

        def on_dtmf(session: str, leg: str, digit: str, duration_ms: int) -> None:
            reports.append((session, leg, digit, duration_ms))
            reported.set()

        pool = WorkerPool(1, on_dtmf=on_dtmf)
        await pool.start()
        try:
            spec = spec_for(a, b, report_a=True)
            spec = replace(spec, session="wcall")
            pool.update(spec)
            sbc_a = (spec.a.local.host, spec.a.local.port)
            # the worker binds asynchronously: audio until it crosses
            for seq in range(100):
                a.sendto(audio(seq), sbc_a)
                await asyncio.sleep(0.02)
                try:
                    b.recv(2048)
                    break
                except BlockingIOError:
                    continue
            for packet in digit_packets(200, 32000, 4):
                a.sendto(packet, sbc_a)
            await asyncio.wait_for(reported.wait(), WAIT)
            assert reports == [("wcall", "a", "4", 80)]
            await drain(b, quiet=0.1)
            pool.send_dtmf("wcall", 0, "b", "0", 120)
            check_injected(await drain_event(b), 0, 120)
        finally:
            await pool.close()
            a.close()
            b.close()

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_event_without_end_packets_is_reported_by_the_sweep() -> None:
    async def scenario() -> None:
        a, b = peer_socket("127.0.0.1"), peer_socket("127.0.0.2")
        reported = asyncio.Event()
        reports: list[tuple[str, str, str, int]] = []

        def on_dtmf(session: str, leg: str, digit: str, duration_ms: int) -> None:
            reports.append((session, leg, digit, duration_ms))
            reported.set()

        engine = RelayEngine(on_dtmf=on_dtmf, sweep_interval=0.05)
        spec = spec_for(a, b, report_a=True)
        engine.update(spec)
        for seq, duration in enumerate((160, 320, 480)):  # the end packets are lost
            a.sendto(
                event_packet(seq, 4000, 12, False, duration), (spec.a.local.host, spec.a.local.port)
            )
        await asyncio.wait_for(reported.wait(), WAIT)
        assert reports == [("call", "a", "A", 60)]
        engine.close()
        a.close()
        b.close()

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_events_from_an_srtp_leg_are_detected_and_digits_to_it_protected() -> None:
    async def scenario() -> None:
        suite = "AES_CM_128_HMAC_SHA1_80"
        material = SUITES_BY_NAME[suite]
        sbc_key, peer_key = generate_key(material), generate_key(material)
        a, b = peer_socket("127.0.0.1"), peer_socket("127.0.0.2")
        reports: list[tuple[str, str, str, int]] = []
        done = asyncio.Event()

        def on_dtmf(session: str, leg: str, digit: str, duration_ms: int) -> None:
            reports.append((session, leg, digit, duration_ms))
            done.set()

        engine = RelayEngine(on_dtmf=on_dtmf)
        spec = spec_for(a, b, report_a=True)
        spec = replace(spec, a=replace(spec.a, srtp=SrtpKeys(suite, sbc_key, peer_key)))
        engine.update(spec)
        peer_out = session(suite, peer_key, inbound=False)
        peer_in = session(suite, sbc_key, inbound=True)
        for packet in digit_packets(1, 800, 2):
            a.sendto(peer_out.protect(packet), (spec.a.local.host, spec.a.local.port))
        await asyncio.wait_for(done.wait(), WAIT)
        assert reports == [("call", "a", "2", 80)]
        assert await drain(b, quiet=0.1) == []
        engine.send_dtmf("call", 0, "a", "3", 100)
        protected = await drain_event_srtp(a, peer_in)
        check_injected(protected, 3, 100)
        engine.close()
        a.close()
        b.close()

    asyncio.run(asyncio.wait_for(scenario(), 30))


async def drain_event_srtp(sock: socket.socket, peer_in: pylibsrtp.Session) -> list[bytes]:
    """SRTP packets until the third end packet, unprotected as the peer would."""
    got: list[bytes] = []
    for _ in range(int(WAIT / 0.02)):
        await asyncio.sleep(0.02)
        while True:
            try:
                got.append(peer_in.unprotect(sock.recv(2048)))
            except BlockingIOError:
                break
        if sum(1 for p in got if len(p) == 16 and p[13] & 0x80) >= 3:
            break
    return got


def test_injection_follows_the_legs_event_clock() -> None:
    async def scenario() -> None:
        a, b = peer_socket("127.0.0.1"), peer_socket("127.0.0.2")
        engine = RelayEngine()
        spec = spec_for(a, b, report_a=False)
        engine.update(replace(spec, b=replace(spec.b, dtmf_clock=48000)))
        engine.send_dtmf("call", 0, "b", "#", 100)
        check_injected(await drain_event(b), 11, 100, clock=48000)
        engine.close()
        a.close()
        b.close()

    asyncio.run(asyncio.wait_for(scenario(), 30))
