"""Hostile packets at the relay engine (in-process, loopback sockets).

Anyone can send a datagram to a relay port. Whatever arrives, the engine
keeps relaying the call's good packets: a packet that does not parse is
dropped and counted in the side's stats (by reason), never raised out of
the socket reader and never logged one line per packet; and a STUN Binding
request is answered only for a source the stream would take media from, or
an ICE check proving our credentials (no STUN reflection for strangers).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import replace
from typing import Any

import pytest
from aioice import stun
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from media_sockets import WAIT, free_port_pair
from test_relay_engine import (
    Call,
    address,
    collect,
    endpoint_socket,
    rtcp_socket_beside,
    rtp,
    run,
    send_paced,
)
from test_stun_hostile import MALFORMED, stun_like

from sbc.media.control import (
    CodecEnd,
    DtlsSpec,
    Endpoint,
    SideSpec,
    SrtpKeys,
    StreamSpec,
    TranscodeDirection,
    TranscodeSpec,
)
from sbc.media.dtls_certificate import DtlsCertificate
from sbc.media.relay import stun_answer
from sbc.media.relay.engine import RelayEngine, _drain_rtp
from sbc.media.relay.rtcp import Report, ReportBlock
from sbc.media.relay.rtcp_relay import drain_rtcp
from sbc.media.relay.side import Side
from sbc.media.sdes import SUITES_BY_NAME, generate_key
from sbc.media.srtp import session

ATTACKER = "127.0.0.66"


def recorded_errors(loop: asyncio.AbstractEventLoop) -> list[dict[str, Any]]:
    """Exceptions that escaped a callback (each would be a traceback in the log)."""
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    return errors


def binding() -> bytes:
    return bytes(stun.Message(stun.Method.BINDING, stun.Class.REQUEST))


def to(endpoint: Endpoint) -> tuple[str, int]:
    return (endpoint.host, endpoint.port)


@pytest.fixture
def attacker() -> Iterator[socket.socket]:
    sock = endpoint_socket(ATTACKER)
    yield sock
    sock.close()


def test_malformed_packets_are_counted_and_good_media_still_flows() -> None:
    async def scenario() -> None:
        errors = recorded_errors(asyncio.get_running_loop())
        call = Call()
        engine = RelayEngine()
        engine.update(call.spec)
        hostile = [*MALFORMED.values()] * 3
        bad_rtcp = struct.pack("!BBHI", 0x81, 201, 9, 0xA) + bytes(4)  # length runs past the end
        at_b = asyncio.ensure_future(collect(call.b, 60))
        for i in range(20):  # malformed traffic between good packets, from the peer itself
            await send_paced(call.a, call.sbc_a, [*hostile, bad_rtcp, rtp(i, ssrc=0xA)])
        received = await at_b
        assert errors == []
        assert [data for data, _ in received if data[1] != 201] == [
            rtp(i, ssrc=0xA) for i in range(20)
        ]
        stats = engine.stats("call-1")[0].a_to_b
        assert stats.stun_malformed == 20 * len(hostile) - 20 * 3  # not-stun-top-bits: not STUN
        assert stats.rtcp_malformed == 20
        assert stats.packets == 20
        assert stats.packet_errors == 0
        engine.close()
        call.close()

    run(scenario)


def test_plain_stun_is_answered_only_to_the_sources_media_is_taken_from(
    attacker: socket.socket,
) -> None:
    async def scenario() -> None:
        call = Call()
        engine = RelayEngine()
        engine.update(call.spec)
        attacker.sendto(binding(), to(call.sbc_a))  # before any latch
        call.a.sendto(binding(), to(call.sbc_a))  # the expected source (its SDP's IP)
        [(data, _)] = await collect(call.a, 1)
        assert stun.parse_message(data).attributes["XOR-MAPPED-ADDRESS"] == call.a.getsockname()
        call.a.sendto(rtp(1, ssrc=0xA), to(call.sbc_a))  # latches A
        attacker.sendto(binding(), to(call.sbc_a))  # after the latch
        attacker.sendto(binding(), (call.sbc_a.host, call.sbc_a.port + 1))  # the RTCP port
        assert await collect(attacker, 1, timeout=0.3) == []
        stats = engine.stats("call-1")[0].a_to_b
        assert stats.stun_refused == 3
        engine.close()
        call.close()

    run(scenario)


def test_latch_any_answers_any_source(attacker: socket.socket) -> None:
    async def scenario() -> None:
        call = Call()
        engine = RelayEngine()
        engine.update(
            StreamSpec(
                "call-1",
                0,
                SideSpec(call.sbc_a, address(call.a), latch_any=True),
                SideSpec(call.sbc_b, address(call.b), allowed_sources=("127.0.0.2",)),
            )
        )
        attacker.sendto(binding(), to(call.sbc_a))
        [(data, _)] = await collect(attacker, 1)
        assert stun.parse_message(data).message_class == stun.Class.RESPONSE
        engine.close()
        call.close()

    run(scenario)


def ice_check(password: bytes, username: str = "ours:theirs", **extra: object) -> bytes:
    request = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
    request.attributes["USERNAME"] = username
    request.attributes["PRIORITY"] = 1845501695
    request.attributes.update({k.replace("_", "-"): v for k, v in extra.items()})
    request.add_message_integrity(password)
    return bytes(request)


def test_ice_checks_from_a_stranger_need_our_credentials(attacker: socket.socket) -> None:
    """A WebRTC peer's address is learnt from its checks: a check proving our
    ice-pwd is answered from anywhere (and nominates), a failing one only to
    the sources the stream trusts (RFC 8445 §7.3; no reflection of errors)."""

    async def scenario() -> None:
        engine = RelayEngine()
        local_a = Endpoint("127.0.0.1", free_port_pair("127.0.0.1"))
        password = b"ourpasswordourpassword12"
        spec = StreamSpec(
            "call",
            0,
            a=SideSpec(
                local_a,
                remote=Endpoint("192.0.2.10", 6000),
                allowed_sources=("192.0.2.10",),
                ice_ufrag="ours",
                ice_pwd=password.decode(),
                ice_remote_ufrag="theirs",
            ),
            b=SideSpec(Endpoint("127.0.0.2", free_port_pair("127.0.0.2"))),
        )
        engine.update(spec)
        attacker.sendto(ice_check(b"wrongpasswordwrongpassword"), to(local_a))
        attacker.sendto(ice_check(password, username="other:theirs"), to(local_a))
        attacker.sendto(binding(), to(local_a))  # no credentials at all
        assert await collect(attacker, 1, timeout=0.3) == []
        assert engine.stats("call")[0].latched_a is None
        assert engine.stats("call")[0].a_to_b.stun_refused == 3
        attacker.sendto(ice_check(password, USE_CANDIDATE=None), to(local_a))
        [(data, _)] = await collect(attacker, 1)
        response = stun.parse_message(data)
        assert response.message_class == stun.Class.RESPONSE
        assert response.check_message_integrity(password)
        assert engine.stats("call")[0].latched_a == address(attacker)
        engine.close()

    run(scenario)


def test_an_unexpected_error_is_counted_and_logged_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The last line of defence: whatever a packet makes raise drops that
    packet, is counted, and is logged at most once per interval."""

    def broken(*_args: object) -> None:
        raise RuntimeError("a bug in a packet handler")

    monkeypatch.setattr(stun_answer, "answer_binding", broken)

    async def scenario() -> None:
        errors = recorded_errors(asyncio.get_running_loop())
        call = Call()
        engine = RelayEngine()
        engine.update(call.spec)
        at_b = asyncio.ensure_future(collect(call.b, 10))
        await send_paced(call.a, call.sbc_a, [binding() for _ in range(30)])
        await send_paced(call.a, call.sbc_a, [rtp(i, ssrc=0xA) for i in range(10)])
        assert len(await at_b) == 10
        assert errors == []
        assert engine.stats("call-1")[0].a_to_b.packet_errors == 30
        engine.close()
        call.close()

    with caplog.at_level(logging.ERROR):
        run(scenario)
    assert len([r for r in caplog.records if r.exc_info]) == 1


def test_rtcp_port_stun_and_reports_survive_garbage() -> None:
    async def scenario() -> None:
        errors = recorded_errors(asyncio.get_running_loop())
        call = Call()
        engine = RelayEngine()
        engine.update(call.spec)
        rtcp_a, rtcp_b = rtcp_socket_beside(call.a), rtcp_socket_beside(call.b)
        rtcp_port = (call.sbc_a.host, call.sbc_a.port + 1)
        report = Report(0xA, (ReportBlock(0xB, 0, 0, 1, 0),)).serialize()
        for data in [*MALFORMED.values(), b"\x80", bytes(3), report]:
            rtcp_a.sendto(data, rtcp_port)
        at_b = asyncio.ensure_future(collect(rtcp_b, 2))
        rtcp_a.sendto(report, rtcp_port)
        assert [data for data, _ in await at_b] == [report, report]
        assert errors == []
        assert engine.stats("call-1")[0].a_to_b.stun_malformed == len(MALFORMED) - 1
        rtcp_a.close()
        rtcp_b.close()
        engine.close()
        call.close()

    run(scenario)


# --- the slow path: SRTP, DTMF taps, transcoding --------------------------------------

PCMU = CodecEnd("pcmu", 0, 20, (), 101)
PCMA = CodecEnd("pcma", 8, 20, (), 101)
SUITE = "AES_CM_128_HMAC_SHA1_80"
#: RTP whose header extension claims more words than the packet holds (RFC 3550 §5.3.1).
OVERRUN_EXTENSION = struct.pack("!BBHIIHH", 0x90, 0, 7, 1120, 0xA, 0xBEDE, 200) + bytes(8)
#: RTP with padding that counts more octets than the packet has (RFC 3550 §5.1).
OVERRUN_PADDING = struct.pack("!BBHII", 0xA0, 0, 8, 1280, 0xA) + bytes(3) + b"\xff"


def slow_spec(call: Call, **a: Any) -> StreamSpec:
    base = call.spec
    return StreamSpec(base.session, 0, replace(base.a, **a), base.b)


@pytest.mark.parametrize("kind", ["dtmf", "transcode"])
def test_rtp_that_does_not_add_up_is_counted_on_the_slow_path(kind: str) -> None:
    async def scenario() -> None:
        errors = recorded_errors(asyncio.get_running_loop())
        call = Call()
        engine = RelayEngine()
        if kind == "dtmf":
            spec = slow_spec(call, dtmf_pt=101, dtmf_report=True)
            bad = [bytes([b[0], 101]) + b[2:] for b in (OVERRUN_EXTENSION, OVERRUN_PADDING)]
        else:
            spec = replace(
                call.spec,
                transcode=TranscodeSpec(
                    TranscodeDirection(PCMU, PCMA), TranscodeDirection(PCMA, PCMU)
                ),
            )
            bad = [OVERRUN_EXTENSION, OVERRUN_PADDING]
        engine.update(spec)
        at_b = asyncio.ensure_future(collect(call.b, 5))
        good = [struct.pack("!BBHII", 0x80, 0, i, i * 160, 0xA) + bytes(160) for i in range(10, 15)]
        await send_paced(call.a, call.sbc_a, [*bad * 5, *good])
        assert len(await at_b) == 5
        assert errors == []
        stats = engine.stats("call-1")[0].a_to_b
        assert stats.rtp_malformed == 10
        assert stats.packet_errors == 0
        engine.close()
        call.close()

    run(scenario)


def test_srtp_garbage_is_counted_as_failed_authentication() -> None:
    async def scenario() -> None:
        errors = recorded_errors(asyncio.get_running_loop())
        call = Call()
        engine = RelayEngine()
        key = generate_key(SUITES_BY_NAME[SUITE])
        engine.update(slow_spec(call, srtp=SrtpKeys(SUITE, send_key=key, receive_key=key)))
        garbage = [OVERRUN_EXTENSION, OVERRUN_PADDING, rtp(1, ssrc=0xA), b"\x80\x00" + bytes(10)]
        await send_paced(call.a, call.sbc_a, garbage)
        protected = session(SUITE, key, inbound=False).protect(rtp(2, ssrc=0xA))
        at_b = asyncio.ensure_future(collect(call.b, 1))
        call.a.sendto(protected, to(call.sbc_a))
        assert [data for data, _ in await at_b] == [rtp(2, ssrc=0xA)]
        assert errors == []
        stats = engine.stats("call-1")[0].a_to_b
        assert stats.srtp_failed == len(garbage)
        assert stats.packet_errors == 0
        engine.close()
        call.close()

    run(scenario)


# --- fuzzing the packet entry point ------------------------------------------------------


def _packets() -> st.SearchStrategy[bytes]:
    """Raw bytes, and bytes that pass the first-octet demultiplexing (RFC 7983 §7)."""
    tail = st.binary(max_size=300)
    return (
        st.binary(max_size=64)
        | st.builds(
            lambda first, pt, rest: bytes([first, pt]) + rest,
            st.integers(128, 191),
            st.integers(0, 255),
            tail,
        )
        | st.builds(lambda first, rest: bytes([first]) + rest, st.integers(20, 63), tail)
        | stun_like()
    )


class Fuzzed:
    """An engine on a loop that never runs: packets are sent, then drained by
    calling the readers' drains directly, so whatever a packet raises reaches
    the test (the engine's guard would only count it)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.engine = RelayEngine(loop=self.loop)
        self.calls: list[Call] = []
        self.sides: list[Side] = []
        key = generate_key(SUITES_BY_NAME[SUITE])
        keys = SrtpKeys(SUITE, send_key=key, receive_key=key)
        node = DtlsCertificate.generate()
        dtls = DtlsSpec(
            "server", (("sha-256", node.fingerprint()),), node.certificate, node.private_key
        )
        variants: list[dict[str, Any]] = [
            {},
            {"rtcp_mux": True, "ice_ufrag": "ours", "ice_pwd": "ourpasswordourpassword12"},
            {"dtmf_pt": 101, "dtmf_report": True},
            {"srtp": keys},
            {"rtcp_mux": True, "dtls": dtls},
            {"transcode": True},
        ]
        for index, variant in enumerate(variants):
            call = Call(rtcp_mux=bool(variant.get("rtcp_mux")))
            transcode = variant.pop("transcode", False)
            spec = StreamSpec(f"fuzz-{index}", 0, replace(call.spec.a, **variant), call.spec.b)
            if transcode:
                spec = replace(
                    spec,
                    transcode=TranscodeSpec(
                        TranscodeDirection(PCMU, PCMA), TranscodeDirection(PCMA, PCMU)
                    ),
                )
            self.engine.update(spec)
            self.calls.append(call)
            self.sides.append(self.engine._sessions[spec.session][0].a)

    def deliver(self, variant: int, packet: bytes, source: socket.socket, rtcp: bool) -> None:
        call, side = self.calls[variant], self.sides[variant]
        port = call.sbc_a.port + (1 if rtcp and side.rtcp is not None else 0)
        source.sendto(packet, (call.sbc_a.host, port))
        if port != call.sbc_a.port:
            drain_rtcp(side)
        else:
            _drain_rtp(side)
        for sock in (call.b, call.a, source):
            with suppress(BlockingIOError):
                while True:
                    sock.recv(65536)

    def close(self) -> None:
        self.engine.close()
        for call in self.calls:
            call.close()
        self.loop.close()


@pytest.fixture(scope="module")
def fuzzed() -> Iterator[Fuzzed]:
    relay = Fuzzed()
    yield relay
    relay.close()


@settings(
    max_examples=800,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(packet=_packets(), variant=st.integers(0, 5), route=st.tuples(st.booleans(), st.booleans()))
def test_no_packet_raises_out_of_the_relay(
    fuzzed: Fuzzed, attacker: socket.socket, packet: bytes, variant: int, route: tuple[bool, bool]
) -> None:
    """Any packet, from the peer or a stranger, to the RTP or the RTCP port."""
    stranger, rtcp = route
    source = attacker if stranger else fuzzed.calls[variant].a
    fuzzed.deliver(variant, packet, source, rtcp)  # raises if any handler does
    assert fuzzed.sides[variant].counter.packet_errors == 0


def test_the_relay_still_relays_after_the_fuzz(fuzzed: Fuzzed) -> None:
    for variant in (0, 1, 2):  # plain, ICE-lite, DTMF-tapped
        call, side = fuzzed.calls[variant], fuzzed.sides[variant]
        call.a.sendto(rtp(7, ssrc=0xA), to(call.sbc_a))
        _drain_rtp(side)
        call.b.settimeout(WAIT)
        assert call.b.recv(2048) == rtp(7, ssrc=0xA)
        call.b.setblocking(False)
