"""ICE-lite towards legs that do ICE (RFC 8445 §2.5, RFC 8839, RFC 8489 §9.1).

Pure parts: the SDP each leg sees and the connectivity-check answers. Then
a real full agent (aioice, controlling, loopback only) connects to a relay
stream set up by the anchor, and media crosses to a plain RTP endpoint.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Awaitable, Callable

import aioice.ice
import pytest
from aioice import Candidate, Connection, stun
from media_sockets import free_port_pair

from sbc.media.anchor import MediaAnchor
from sbc.media.control import Endpoint, SideSpec, StreamSpec, StreamStats
from sbc.media.interface import LegMedia
from sbc.media.ports import PortPool
from sbc.media.relay.engine import RelayEngine
from sbc.media.relay.stun import IceLite, answer_check
from sbc.media.sdp_rewrite import (
    ICE_CHARS,
    PWD_LENGTH,
    UFRAG_LENGTH,
    IceCredentials,
    host_priority,
)
from sbc.sip.sdp import SessionDescription, parse_sdp

LEG_A = LegMedia("127.0.0.1", "198.51.100.1", (20000, 20099), peer_ip="127.0.0.10")
LEG_B = LegMedia("127.0.0.2", "198.51.100.2", (30000, 30099), peer_ip="127.0.0.20")
ICE_NAMES = ("ice-lite", "ice-ufrag", "ice-pwd", "candidate", "end-of-candidates")


def offer_text(
    ip: str = "192.0.2.10",
    port: int = 6000,
    *,
    ufrag: str | None = "peerA",
    pwd: str = "peerApasswordpeerApassword",
    mux: bool = False,
    candidates: tuple[str, ...] = ("1 1 UDP 2130706431 192.0.2.10 6000 typ host",),
) -> bytes:
    lines = [
        "v=0",
        f"o=peer 1 1 IN IP4 {ip}",
        "s=-",
        f"c=IN IP4 {ip}",
        "t=0 0",
        f"m=audio {port} RTP/AVP 0",
        "a=rtpmap:0 PCMU/8000",
    ]
    if mux:
        lines.append("a=rtcp-mux")
    if ufrag is not None:
        lines += [f"a=ice-ufrag:{ufrag}", f"a=ice-pwd:{pwd}"]
        lines += [f"a=candidate:{c}" for c in candidates]
    return ("\r\n".join(lines) + "\r\n").encode()


PLAIN_ANSWER = offer_text("192.0.2.20", 7000, ufrag=None)


class FakeRelay:
    """Keeps the last spec per stream."""

    def __init__(self) -> None:
        self.specs: dict[tuple[str, int], StreamSpec] = {}

    def update(self, stream: StreamSpec) -> None:
        self.specs[stream.session, stream.index] = stream

    def remove(self, session: str, index: int) -> None:
        self.specs.pop((session, index), None)

    def delete(self, session: str) -> None:
        self.specs.clear()

    def stats(self, session: str) -> list[StreamStats]:
        return []


def anchored() -> tuple[MediaAnchor, FakeRelay]:
    relay = FakeRelay()
    anchor = MediaAnchor(relay, PortPool(), first_session_id=1)
    anchor.open("call", LEG_A, LEG_B)
    return anchor, relay


def ice_lines(body: bytes) -> list[tuple[str, str | None]]:
    sdp = parse_sdp(body)
    found = [(a.name, a.value) for a in sdp.attributes if a.name in ICE_NAMES]
    for media in sdp.media:
        found += [(a.name, a.value) for a in media.attributes if a.name in ICE_NAMES]
    return found


def credentials(body: bytes) -> tuple[str | None, str | None]:
    media = parse_sdp(body).media[0]
    ufrag, pwd = media.attribute("ice-ufrag"), media.attribute("ice-pwd")
    assert ufrag is not None
    assert pwd is not None
    return ufrag.value, pwd.value


# --- SDP -----------------------------------------------------------------------


def test_the_ice_leg_gets_ice_lite_credentials_and_our_candidates() -> None:
    anchor, relay = anchored()
    to_b = anchor.offer("call", "a", "b", offer_text())
    to_a = anchor.answer("call", "b", "a", PLAIN_ANSWER)
    spec = relay.specs["call", 0]
    sdp = parse_sdp(to_a)
    assert sdp.attribute("ice-lite") is not None  # session level (RFC 8839 §5.3)
    media = sdp.media[0]
    port = spec.a.local.port
    assert media.port == port
    ufrag, pwd = credentials(to_a)
    assert ufrag is not None
    assert pwd is not None
    assert len(ufrag) == UFRAG_LENGTH
    assert len(pwd) == PWD_LENGTH
    assert set(ufrag + pwd) <= set(ICE_CHARS)
    assert media.attribute_values("candidate") == [
        f"1 1 UDP {host_priority(1)} 198.51.100.1 {port} typ host",
        f"1 2 UDP {host_priority(2)} 198.51.100.1 {port + 1} typ host",
    ]
    assert media.attribute("end-of-candidates") is not None
    assert "peerA" not in to_a.decode()
    # The relay knows what the leg's checks must prove; the other side does no ICE.
    assert (spec.a.ice_ufrag, spec.a.ice_pwd, spec.a.ice_remote_ufrag) == (ufrag, pwd, "peerA")
    assert (spec.b.ice_ufrag, spec.b.ice_pwd, spec.b.ice_remote_ufrag) == (None, None, None)
    assert ice_lines(to_b) == []


def test_rtcp_mux_means_one_component() -> None:
    anchor, _ = anchored()
    anchor.offer("call", "a", "b", offer_text(mux=True))
    to_a = anchor.answer("call", "b", "a", offer_text("192.0.2.20", 7000, ufrag=None, mux=True))
    candidates = parse_sdp(to_a).media[0].attribute_values("candidate")
    assert len(candidates) == 1
    assert candidates[0] is not None
    assert candidates[0].split()[1] == "1"


def test_a_leg_without_ice_sees_no_ice_at_all() -> None:
    anchor, relay = anchored()
    to_b = anchor.offer("call", "a", "b", offer_text(ufrag=None))
    to_a = anchor.answer("call", "b", "a", PLAIN_ANSWER)
    assert ice_lines(to_b) == []
    assert ice_lines(to_a) == []
    assert relay.specs["call", 0].a.ice_ufrag is None


def test_session_level_credentials_count_and_half_credentials_do_not() -> None:
    anchor, relay = anchored()
    body = offer_text().replace(b"a=ice-ufrag:peerA\r\n", b"")
    body = body.replace(b"t=0 0\r\n", b"t=0 0\r\na=ice-ufrag:sessA\r\n")
    anchor.offer("call", "a", "b", body)
    assert relay.specs["call", 0].a.ice_remote_ufrag == "sessA"
    other, relay2 = anchored()
    other.offer("call", "a", "b", offer_text().replace(b"a=ice-pwd:", b"a=x-pwd:"))
    assert relay2.specs["call", 0].a.ice_ufrag is None  # no ice-pwd: no ICE


def test_credentials_differ_per_leg_and_stay_across_re_offers() -> None:
    anchor, _ = anchored()
    anchor.offer("call", "a", "b", offer_text())
    b_answer = offer_text("192.0.2.20", 7000, ufrag="peerB", pwd="peerBpasswordpeerBpassword")
    to_a = anchor.answer("call", "b", "a", b_answer)
    # A re-offer from B (it did ICE in its answer): B now sees our ICE-lite too.
    to_a_again = anchor.offer("call", "b", "a", b_answer)
    to_b = anchor.answer("call", "a", "b", offer_text())
    assert credentials(to_a) == credentials(to_a_again)  # RFC 8839 §4.4
    assert credentials(to_a) != credentials(to_b)
    anchor.offer("call", "a", "b", offer_text())  # and once more from A
    assert credentials(anchor.answer("call", "b", "a", b_answer)) == credentials(to_a)


def test_a_new_ufrag_in_an_offer_restarts_ice() -> None:
    anchor, relay = anchored()
    anchor.offer("call", "a", "b", offer_text())
    first = credentials(anchor.answer("call", "b", "a", PLAIN_ANSWER))
    restart = offer_text(ufrag="peerA2", pwd="peerA2passwordpeerA2password")
    anchor.offer("call", "a", "b", restart)
    second = credentials(anchor.answer("call", "b", "a", PLAIN_ANSWER))
    assert second[0] != first[0]
    assert second[1] != first[1]
    assert relay.specs["call", 0].a.ice_remote_ufrag == "peerA2"


def test_secrets_stay_out_of_reprs() -> None:
    creds = IceCredentials.generate()
    spec = SideSpec(Endpoint("127.0.0.1", 20000), ice_ufrag=creds.ufrag, ice_pwd=creds.pwd)
    assert creds.pwd not in repr(creds)
    assert creds.pwd not in repr(spec)
    assert IceCredentials.generate() != creds


# --- connectivity checks -----------------------------------------------------------

ICE = IceLite("ours", b"ourpasswordourpassword12", "theirs")
SOURCE = ("203.0.113.5", 40000)


def check(
    username: str | None = "ours:theirs",
    key: bytes | None = ICE.password,
    **attributes: object,
) -> stun.Message:
    request = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
    if username is not None:
        request.attributes["USERNAME"] = username
    request.attributes["PRIORITY"] = 1845501695
    request.attributes.update({k.replace("_", "-"): v for k, v in attributes.items()})
    if key is not None:
        request.add_message_integrity(key)
    else:
        request.add_fingerprint()
    return request


def answered(request: stun.Message) -> tuple[stun.Message | None, bool]:
    answer = answer_check(bytes(request), SOURCE, ICE, trusted=True)
    if answer.response is None:
        return None, answer.nominated
    return stun.parse_message(answer.response), answer.nominated


def test_a_valid_check_is_answered_and_signed_with_our_password() -> None:
    request = check(ICE_CONTROLLING=7)
    response, nominated = answered(request)
    assert response is not None
    assert response.message_class == stun.Class.RESPONSE
    assert response.transaction_id == request.transaction_id
    assert response.attributes["XOR-MAPPED-ADDRESS"] == SOURCE
    assert response.check_message_integrity(ICE.password)
    assert "FINGERPRINT" in response.attributes
    assert not nominated


def test_use_candidate_nominates() -> None:
    _, nominated = answered(check(ICE_CONTROLLING=7, USE_CANDIDATE=None))
    assert nominated


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (check(key=b"wrongpasswordwrongpassword"), 401),
        (check(username="other:theirs"), 401),
        (check(username="ours:stranger"), 401),
        (check(username="ours"), 401),
        (check(key=None), 400),
        (check(username=None), 400),
        (check(ICE_CONTROLLED=7), 487),
    ],
    ids=["bad-integrity", "our-ufrag", "their-ufrag", "no-colon", "no-mi", "no-user", "role"],
)
def test_a_bad_check_gets_an_error_never_success(request_: stun.Message, code: int) -> None:
    response, nominated = answered(request_)
    assert response is not None
    assert response.message_class == stun.Class.ERROR
    assert response.error_code == code
    assert "XOR-MAPPED-ADDRESS" not in response.attributes
    assert not nominated


def test_responses_and_garbage_are_dropped() -> None:
    response = stun.Message(stun.Method.BINDING, stun.Class.RESPONSE)
    assert answer_check(bytes(response), SOURCE, ICE, trusted=True).response is None
    truncated = b"\x00\x01\x00\x08\x21\x12\xa4\x42" + b"\x00" * 12  # 8 bytes promised
    assert answer_check(truncated, SOURCE, ICE, trusted=True).response is None


@pytest.mark.parametrize(
    "request_",
    [check(key=b"wrongpasswordwrongpassword"), check(username="other:theirs"), check(key=None)],
    ids=["bad-integrity", "our-ufrag", "no-mi"],
)
def test_a_stranger_gets_no_error(request_: stun.Message) -> None:
    """Errors go only to a source the stream trusts: no reflection (rule 3)."""
    answer = answer_check(bytes(request_), SOURCE, ICE, trusted=False)
    assert answer.response is None
    assert answer.refusal == "refused"


def test_a_stranger_proving_our_password_is_answered() -> None:
    answer = answer_check(bytes(check(USE_CANDIDATE=None)), SOURCE, ICE, trusted=False)
    assert answer.response is not None
    assert answer.nominated
    conflict = answer_check(bytes(check(ICE_CONTROLLED=7)), SOURCE, ICE, trusted=False)
    assert conflict.response is not None  # signed: the request proved our password
    assert stun.parse_message(conflict.response).error_code == 487


def test_unknown_remote_ufrag_accepts_any() -> None:
    early = IceLite("ours", ICE.password)
    assert early.accepts("ours:anyone")
    assert not early.accepts("ours:")


# --- on the wire -------------------------------------------------------------------


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 30))


def rtp(seq: int, ssrc: int = 0x1234) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, seq, seq * 160, ssrc) + b"\xff" * 160


async def receive(sock: socket.socket, count: int) -> list[bytes]:
    loop = asyncio.get_running_loop()
    got = []
    for _ in range(count):
        data, _ = await asyncio.wait_for(loop.sock_recvfrom(sock, 2048), 5)
        got.append(data)
    return got


def test_wire_checks_error_bad_integrity_and_nomination_latches() -> None:
    async def scenario() -> None:
        engine = RelayEngine()
        a, b = _pair("127.0.0.1")[0], _pair("127.0.0.2")[0]
        creds = IceCredentials("ours", "ourpasswordourpassword12")
        spec = StreamSpec(
            "call",
            0,
            a=SideSpec(
                Endpoint("127.0.0.1", a),
                remote=Endpoint("192.0.2.10", 6000),
                # The peer's signalling IP is trusted: its failing checks get errors.
                allowed_sources=("192.0.2.10", "127.0.0.1"),
                ice_ufrag=creds.ufrag,
                ice_pwd=creds.pwd,
                ice_remote_ufrag="theirs",
            ),
            b=SideSpec(Endpoint("127.0.0.2", b)),
        )
        engine.update(spec)
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        peer.bind(("127.0.0.1", 0))
        peer.setblocking(False)
        to_relay = ("127.0.0.1", a)
        peer.sendto(bytes(check(key=b"wrongpasswordwrongpassword", USE_CANDIDATE=None)), to_relay)
        [data] = await receive(peer, 1)
        assert stun.parse_message(data).message_class == stun.Class.ERROR
        assert engine.stats("call")[0].latched_a is None
        peer.sendto(bytes(check(key=creds.pwd.encode(), USE_CANDIDATE=None)), to_relay)
        [data] = await receive(peer, 1)
        assert stun.parse_message(data).message_class == stun.Class.RESPONSE
        host, port = peer.getsockname()
        assert engine.stats("call")[0].latched_a == Endpoint(host, port)
        peer.close()
        engine.close()

    run(scenario)


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """aioice gathers host candidates on 127.0.0.1 only (it skips loopback by default)."""
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda **_: ["127.0.0.1"])


async def full_agent_offer(agent: Connection) -> bytes:
    await agent.gather_candidates()
    candidate = agent.get_default_candidate(1)
    assert candidate is not None
    assert candidate.host == "127.0.0.1"
    # c= names an address nothing sends from: only ICE nomination can latch.
    return offer_text(
        "192.0.2.10",
        candidate.port,
        ufrag=agent.local_username,
        pwd=agent.local_password,
        mux=True,
        candidates=tuple(c.to_sdp() for c in agent.local_candidates),
    )


async def connect_to(agent: Connection, body: SessionDescription) -> None:
    """What a full agent does with our ICE-lite answer (RFC 8445 §6.1.1: it controls)."""
    media = body.media[0]
    ufrag, pwd = media.attribute("ice-ufrag"), media.attribute("ice-pwd")
    assert ufrag is not None
    assert pwd is not None
    agent.remote_username, agent.remote_password = ufrag.value, pwd.value
    agent.remote_is_lite = body.attribute("ice-lite") is not None
    for value in media.attribute_values("candidate"):
        assert value is not None
        await agent.add_remote_candidate(Candidate.from_sdp(value))
    await agent.add_remote_candidate(None)  # a=end-of-candidates
    await asyncio.wait_for(agent.connect(), 10)


@pytest.mark.usefixtures("loopback_only")
def test_a_full_agent_connects_and_media_crosses_the_relay() -> None:
    async def scenario() -> None:
        engine = RelayEngine()
        pool = PortPool()
        leg_a = LegMedia("127.0.0.1", "127.0.0.1", _pair("127.0.0.1"), peer_ip="127.0.0.10")
        leg_b = LegMedia("127.0.0.2", "127.0.0.2", _pair("127.0.0.2"), peer_ip="127.0.0.1")
        anchor = MediaAnchor(engine, pool, first_session_id=1)
        anchor.open("call", leg_a, leg_b)
        agent = Connection(ice_controlling=True, components=1, use_ipv6=False)
        plain = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        plain.bind(("127.0.0.1", 0))
        plain.setblocking(False)
        try:
            to_b = anchor.offer("call", "a", "b", await full_agent_offer(agent))
            assert ice_lines(to_b) == []
            answer = offer_text("127.0.0.1", plain.getsockname()[1], ufrag=None, mux=True)
            to_a = parse_sdp(anchor.answer("call", "b", "a", answer))
            await connect_to(agent, to_a)
            ours = agent.get_default_candidate(1)
            assert ours is not None
            assert engine.stats("call")[0].latched_a == Endpoint(ours.host, ours.port)

            for seq in range(20):  # A (ICE) -> B (plain)
                await agent.send(rtp(seq))
            got = await receive(plain, 20)
            assert got == [rtp(seq) for seq in range(20)]

            sbc_b = ("127.0.0.2", to_b_port(to_b))
            for seq in range(20):  # B (plain) -> A (ICE), to the nominated address
                plain.sendto(rtp(seq, ssrc=0x5678), sbc_b)
            back = [await asyncio.wait_for(agent.recv(), 5) for _ in range(20)]
            assert back == [rtp(seq, ssrc=0x5678) for seq in range(20)]
        finally:
            await agent.close()
            plain.close()
            anchor.delete("call")
            engine.close()

    run(scenario)


def to_b_port(body: bytes) -> int:
    return parse_sdp(body).media[0].port


def _pair(host: str) -> tuple[int, int]:
    """A one-pair port range (even port, port + 1 free) on ``host``."""
    port = free_port_pair(host)
    return port, port + 1
