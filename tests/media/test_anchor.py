"""MediaAnchor: offer/answer through the SBC's own addresses and ports (RFC 3264)."""

from __future__ import annotations

import pytest

from sbc.media.anchor import MediaAnchor
from sbc.media.control import DirectionStats, Endpoint, StreamSpec, StreamStats
from sbc.media.interface import LegMedia, MediaError
from sbc.media.ports import PortPool
from sbc.sip.sdp import SessionDescription, parse_sdp

A_RANGE = (20000, 20099)
B_RANGE = (30000, 30099)
LEG_A = LegMedia("127.0.0.1", "127.0.0.1", A_RANGE, peer_ip="127.0.0.10")
LEG_B = LegMedia("127.0.0.2", "127.0.0.2", B_RANGE, peer_ip="127.0.0.20")

#: What SIPp's uac scenario offers (carrier side, 127.0.0.10).
SIPP_OFFER = (
    "v=0\r\n"
    "o=user1 53655765 2353687637 IN IP4 127.0.0.10\r\n"
    "s=-\r\n"
    "c=IN IP4 127.0.0.10\r\n"
    "t=0 0\r\n"
    "m=audio 6000 RTP/AVP 0 101\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-15\r\n"
)
#: The PBX's answer (internal side, 127.0.0.20).
PBX_ANSWER = (
    "v=0\r\n"
    "o=pbx 1 1 IN IP4 127.0.0.20\r\n"
    "s=pbx\r\n"
    "c=IN IP4 127.0.0.20\r\n"
    "t=0 0\r\n"
    "m=audio 7000 RTP/AVP 0 101\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=sendrecv\r\n"
)


class FakeRelay:
    """Records what the anchor tells the relay."""

    def __init__(self) -> None:
        self.specs: dict[tuple[str, int], StreamSpec] = {}
        self.updates: list[StreamSpec] = []
        self.deleted: list[str] = []
        self.removed: list[tuple[str, int]] = []
        self.canned: list[StreamStats] = []
        self.fail_on: int | None = None  # raise on update of this m= index

    def update(self, stream: StreamSpec) -> None:
        if stream.index == self.fail_on:
            raise OSError("address already in use")
        self.updates.append(stream)
        self.specs[stream.session, stream.index] = stream

    def remove(self, session: str, index: int) -> None:
        self.removed.append((session, index))
        self.specs.pop((session, index), None)

    def delete(self, session: str) -> None:
        self.deleted.append(session)
        for key in [k for k in self.specs if k[0] == session]:
            del self.specs[key]

    def stats(self, session: str) -> list[StreamStats]:
        return self.canned


def sdp(text: str) -> bytes:
    return text.encode()


def parsed(body: bytes) -> SessionDescription:
    return parse_sdp(body)


def addresses(body: bytes) -> set[str]:
    """Every IP address the body names (o=, c=, a=rtcp)."""
    found = set()
    for line in body.decode().splitlines():
        if line[:2] in ("o=", "c=") or line.startswith("a=rtcp:"):
            found.add(line.split()[-1])
    return found


@pytest.fixture
def relay() -> FakeRelay:
    return FakeRelay()


@pytest.fixture
def pool() -> PortPool:
    return PortPool()


@pytest.fixture
def anchor(relay: FakeRelay, pool: PortPool) -> MediaAnchor:
    media = MediaAnchor(relay, pool, first_session_id=1000)
    media.open("call-1", LEG_A, LEG_B)
    return media


def test_round_trip_each_leg_sees_only_its_interface(anchor: MediaAnchor, relay: FakeRelay) -> None:
    to_b = anchor.offer("call-1", "a", "b", sdp(SIPP_OFFER))
    assert addresses(to_b) == {"127.0.0.2"}
    offer = parsed(to_b)
    assert offer.origin.username == "sbc"
    assert offer.media[0].port in range(*B_RANGE)
    assert offer.media[0].port % 2 == 0
    assert offer.media[0].rtpmap == {"0": "PCMU/8000", "101": "telephone-event/8000"}
    assert offer.media[0].fmtp == {"101": "0-15"}

    to_a = anchor.answer("call-1", "b", "a", sdp(PBX_ANSWER))
    assert addresses(to_a) == {"127.0.0.1"}
    answer = parsed(to_a)
    assert answer.media[0].port in range(*A_RANGE)
    assert answer.session_name == "-"  # the PBX named its session "pbx": it never crosses
    assert answer.origin.sess_id != offer.origin.sess_id

    spec = relay.specs["call-1", 0]
    assert spec.a.local == Endpoint("127.0.0.1", answer.media[0].port)
    assert spec.b.local == Endpoint("127.0.0.2", offer.media[0].port)
    assert spec.a.remote == Endpoint("127.0.0.10", 6000)
    assert spec.a.remote_rtcp == Endpoint("127.0.0.10", 6001)
    assert spec.b.remote == Endpoint("127.0.0.20", 7000)
    assert spec.b.remote_rtcp == Endpoint("127.0.0.20", 7001)
    assert spec.a.allowed_sources == ("127.0.0.10",)  # SDP and SIP IPs deduplicated
    assert spec.b.allowed_sources == ("127.0.0.20",)
    assert not spec.a.rtcp_mux
    assert not spec.b.rtcp_mux
    assert spec.a.pt_map == spec.b.pt_map == ()
    assert not spec.on_hold


def test_the_offerers_side_is_pushed_before_the_answer(
    anchor: MediaAnchor, relay: FakeRelay
) -> None:
    anchor.offer("call-1", "a", "b", sdp(SIPP_OFFER))
    spec = relay.specs["call-1", 0]
    assert spec.a.remote == Endpoint("127.0.0.10", 6000)
    assert spec.b.remote is None  # early media latches on the PBX's SIP address
    assert spec.b.allowed_sources == ("127.0.0.20",)


def test_unchanged_body_keeps_the_version(anchor: MediaAnchor) -> None:
    first = anchor.offer("call-1", "a", "b", sdp(SIPP_OFFER))
    anchor.answer("call-1", "b", "a", sdp(PBX_ANSWER))
    again = anchor.offer("call-1", "a", "b", sdp(SIPP_OFFER))  # session refresh
    assert again == first
    held = anchor.offer("call-1", "a", "b", sdp(SIPP_OFFER + "a=sendonly\r\n"))
    assert parsed(held).origin.sess_version == parsed(first).origin.sess_version + 1
    assert parsed(held).origin.sess_id == parsed(first).origin.sess_id
    assert parsed(held).media[0].port == parsed(first).media[0].port


def test_a_repeated_answer_183_then_200(anchor: MediaAnchor) -> None:
    anchor.offer("call-1", "a", "b", sdp(SIPP_OFFER))
    early = anchor.answer("call-1", "b", "a", sdp(PBX_ANSWER))
    final = anchor.answer("call-1", "b", "a", sdp(PBX_ANSWER))
    assert final == early


def test_versions_are_per_leg(anchor: MediaAnchor) -> None:
    to_b = parsed(anchor.offer("call-1", "a", "b", sdp(SIPP_OFFER)))
    to_a = parsed(anchor.answer("call-1", "b", "a", sdp(PBX_ANSWER)))
    reoffer = PBX_ANSWER.replace("a=sendrecv", "a=sendonly")
    to_a_2 = parsed(anchor.offer("call-1", "b", "a", sdp(reoffer)))
    assert to_a_2.origin.sess_version == to_a.origin.sess_version + 1
    to_b_2 = parsed(anchor.answer("call-1", "a", "b", sdp(SIPP_OFFER + "a=recvonly\r\n")))
    assert to_b_2.origin.sess_version == to_b.origin.sess_version + 1


AUDIO_VIDEO = (
    "v=0\r\n"
    "o=- 1 1 IN IP4 192.168.1.5\r\n"
    "s=-\r\n"
    "c=IN IP4 192.168.1.5\r\n"
    "t=0 0\r\n"
    "m=audio 4000 RTP/AVP 8\r\n"
    "a=rtcp:4001 IN IP4 192.168.1.5\r\n"
    "m=video 4002 RTP/AVP 96\r\n"
    "a=rtpmap:96 H264/90000\r\n"
    "a=rtcp-mux\r\n"
)


def test_audio_video_with_the_video_rejected(pool: PortPool) -> None:
    relay = FakeRelay()
    anchor = MediaAnchor(relay, pool)
    anchor.open("av", LEG_A, LEG_B)
    to_b = parsed(anchor.offer("av", "a", "b", sdp(AUDIO_VIDEO)))
    assert len(relay.specs) == 2
    assert pool.in_use() == 4
    audio, video = to_b.media
    assert audio.attribute("rtcp") is not None
    assert audio.attribute("rtcp").value == f"{audio.port + 1} IN IP4 127.0.0.2"  # type: ignore[union-attr]
    assert video.rtcp_mux

    answer = AUDIO_VIDEO.replace("m=video 4002", "m=video 0").replace("192.168.1.5", "10.9.9.9")
    to_a = parsed(anchor.answer("av", "b", "a", sdp(answer)))
    assert [m.port != 0 for m in to_a.media] == [True, False]
    assert to_a.media[1].media == "video"  # kept in position
    assert relay.removed == [("av", 1)]
    assert list(relay.specs) == [("av", 0)]
    assert pool.in_use() == 2
    assert relay.specs["av", 0].b.remote_rtcp == Endpoint("10.9.9.9", 4001)


def test_offered_port_zero_stays_in_position(anchor: MediaAnchor, pool: PortPool) -> None:
    offer = AUDIO_VIDEO.replace("m=audio 4000", "m=audio 0")
    to_b = parsed(anchor.offer("call-1", "a", "b", sdp(offer)))
    assert to_b.media[0].port == 0
    assert to_b.media[0].attribute("rtcp") is None
    assert pool.in_use() == 2


def test_rtcp_mux_offered_and_accepted(anchor: MediaAnchor, relay: FakeRelay) -> None:
    mux = SIPP_OFFER + "a=rtcp-mux\r\n"
    to_b = parsed(anchor.offer("call-1", "a", "b", sdp(mux)))
    assert to_b.media[0].rtcp_mux
    assert relay.specs["call-1", 0].a.rtcp_mux
    anchor.answer("call-1", "b", "a", sdp(PBX_ANSWER + "a=rtcp-mux\r\n"))
    spec = relay.specs["call-1", 0]
    assert spec.a.rtcp_mux
    assert spec.b.rtcp_mux
    assert spec.b.remote_rtcp == Endpoint("127.0.0.20", 7000)


def test_rtcp_mux_declined_falls_back_to_port_plus_one(
    anchor: MediaAnchor, relay: FakeRelay
) -> None:
    anchor.offer("call-1", "a", "b", sdp(SIPP_OFFER + "a=rtcp-mux\r\n"))
    anchor.answer("call-1", "b", "a", sdp(PBX_ANSWER))
    spec = relay.specs["call-1", 0]
    assert not spec.a.rtcp_mux
    assert spec.a.remote_rtcp == Endpoint("127.0.0.10", 6001)


def test_hold_with_sendonly(anchor: MediaAnchor, relay: FakeRelay) -> None:
    anchor.offer("call-1", "a", "b", sdp(SIPP_OFFER))
    anchor.answer("call-1", "b", "a", sdp(PBX_ANSWER))
    ports = relay.specs["call-1", 0]
    to_b = parsed(anchor.offer("call-1", "a", "b", sdp(SIPP_OFFER + "a=sendonly\r\n")))
    assert to_b.media[0].direction == "sendonly"
    assert relay.specs["call-1", 0].on_hold
    anchor.answer("call-1", "b", "a", sdp(PBX_ANSWER.replace("sendrecv", "recvonly")))
    resumed = parsed(anchor.offer("call-1", "a", "b", sdp(SIPP_OFFER)))
    anchor.answer("call-1", "b", "a", sdp(PBX_ANSWER))
    spec = relay.specs["call-1", 0]
    assert not spec.on_hold
    assert resumed.media[0].port == ports.b.local.port
    assert (spec.a.local, spec.b.local) == (ports.a.local, ports.b.local)


def test_hold_with_connection_zero(anchor: MediaAnchor, relay: FakeRelay) -> None:
    anchor.offer("call-1", "a", "b", sdp(SIPP_OFFER))
    anchor.answer("call-1", "b", "a", sdp(PBX_ANSWER))
    hold = SIPP_OFFER.replace("c=IN IP4 127.0.0.10", "c=IN IP4 0.0.0.0")
    to_b = anchor.offer("call-1", "a", "b", sdp(hold))
    assert parsed(to_b).connection.address == "0.0.0.0"  # type: ignore[union-attr]
    assert addresses(to_b) == {"127.0.0.2", "0.0.0.0"}  # o= is ours
    spec = relay.specs["call-1", 0]
    assert spec.on_hold
    assert spec.a.remote is None
    assert spec.a.allowed_sources == ("127.0.0.10",)  # the SIP source still latches


def test_telephone_event_101_96_is_mapped(anchor: MediaAnchor, relay: FakeRelay) -> None:
    anchor.offer("call-1", "a", "b", sdp(SIPP_OFFER))
    answer = PBX_ANSWER.replace("101", "96")
    to_a = parsed(anchor.answer("call-1", "b", "a", sdp(answer)))
    assert to_a.media[0].formats == ["0", "96"]  # codecs cross unchanged
    spec = relay.specs["call-1", 0]
    assert spec.a.pt_map == ((96, 101),)  # towards A: A's number
    assert spec.b.pt_map == ((101, 96),)  # towards B: B's number


def test_dynamic_codecs_are_mapped_by_name_only_when_safe(
    anchor: MediaAnchor, relay: FakeRelay
) -> None:
    offer = AUDIO_VIDEO.replace("RTP/AVP 96", "RTP/AVP 96 97").replace(
        "a=rtpmap:96 H264/90000", "a=rtpmap:96 H264/90000\r\na=rtpmap:97 VP8/90000"
    )
    answer = offer.replace("96 97", "97 98").replace("rtpmap:97 VP8", "rtpmap:98 VP8")
    answer = answer.replace("rtpmap:96 H264", "rtpmap:97 H264")
    anchor.offer("call-1", "a", "b", sdp(offer))
    anchor.answer("call-1", "b", "a", sdp(answer))
    spec = relay.specs["call-1", 1]
    # H264 is 96 for A and 97 for B, VP8 97 for A and 98 for B: a number that
    # names another codec for the receiver is never rewritten (a sender that
    # honours the receiver's numbering would be broken by it).
    assert spec.b.pt_map == ((96, 97),)  # not 97 -> 98: 97 is H264 to B
    assert spec.a.pt_map == ((98, 97),)  # not 97 -> 96: 97 is VP8 to A


def test_ice_and_crypto_are_stripped(anchor: MediaAnchor) -> None:
    offer = (
        SIPP_OFFER.replace("t=0 0\r\n", "t=0 0\r\na=ice-options:trickle\r\n")
        + "a=ice-ufrag:abcd\r\na=ice-pwd:0123456789abcdef0123456789\r\n"
        + "a=candidate:1 1 UDP 2130706431 192.168.1.5 6000 typ host\r\n"
        + "a=end-of-candidates\r\n"
        + "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR\r\n"
    )
    text = anchor.offer("call-1", "a", "b", sdp(offer)).decode()
    assert "ice" not in text
    assert "candidate" not in text
    assert "192.168.1.5" not in text
    assert "crypto" not in text  # each leg has its own keys (tests/media/test_srtp_anchor.py)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "malformed SDP"),
        (b"hello", "malformed SDP"),
        (sdp(SIPP_OFFER.split("m=", maxsplit=1)[0]), "no m= lines"),
        (sdp(SIPP_OFFER.replace("c=IN IP4 127.0.0.10\r\n", "")), "no c= line"),
        (sdp(SIPP_OFFER.replace("IP4 127.0.0.10\r\nt", "IP4 pbx.example.com\r\nt")), "IP address"),
        (sdp(SIPP_OFFER.replace("RTP/AVP", "TCP/MSRP")), "TCP/MSRP cannot be relayed"),
        (sdp(SIPP_OFFER + "a=rtcp:x\r\n"), "a=rtcp"),
        (sdp(SIPP_OFFER.replace("IP4 127.0.0.10\r\nt", "IP4 239.1.1.1\r\nt")), "unicast"),
    ],
)
def test_unusable_offers_are_488_and_allocate_nothing(
    anchor: MediaAnchor, relay: FakeRelay, pool: PortPool, body: bytes, reason: str
) -> None:
    with pytest.raises(MediaError) as info:
        anchor.offer("call-1", "a", "b", body)
    assert info.value.status == 488
    assert reason in info.value.reason
    assert pool.in_use() == 0
    assert relay.updates == []


def test_port_exhaustion_is_503_and_leaks_nothing(relay: FakeRelay, pool: PortPool) -> None:
    anchor = MediaAnchor(relay, pool)
    tight_b = LegMedia("127.0.0.2", "127.0.0.2", (30000, 30001), peer_ip="127.0.0.20")
    anchor.open("s", LEG_A, tight_b)
    with pytest.raises(MediaError) as info:
        anchor.offer("s", "a", "b", sdp(AUDIO_VIDEO))  # two streams, one pair on B
    assert info.value.status == 503
    assert "no media ports" in info.value.reason
    assert pool.in_use() == 0
    assert relay.updates == []
    anchor.offer("s", "a", "b", sdp(SIPP_OFFER))  # one stream still fits


def test_relay_failure_restores_the_previous_state(
    anchor: MediaAnchor, relay: FakeRelay, pool: PortPool
) -> None:
    anchor.offer("call-1", "a", "b", sdp(SIPP_OFFER))
    anchor.answer("call-1", "b", "a", sdp(PBX_ANSWER))
    before = relay.specs["call-1", 0]
    relay.fail_on = 1
    video = SIPP_OFFER + "m=video 6002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
    with pytest.raises(MediaError) as info:
        anchor.offer("call-1", "a", "b", sdp(video))
    assert info.value.status == 503
    assert pool.in_use() == 2
    assert relay.specs == {("call-1", 0): before}
    relay.fail_on = None
    assert anchor.answer("call-1", "b", "a", sdp(PBX_ANSWER))  # the old offer still stands


def test_late_offer_from_b_answered_by_a_in_ack(anchor: MediaAnchor, relay: FakeRelay) -> None:
    to_a = anchor.offer("call-1", "b", "a", sdp(PBX_ANSWER))  # offer in B's 200
    assert addresses(to_a) == {"127.0.0.1"}
    to_b = anchor.answer("call-1", "a", "b", sdp(SIPP_OFFER))  # answer in A's ACK
    assert addresses(to_b) == {"127.0.0.2"}
    spec = relay.specs["call-1", 0]
    assert spec.a.remote == Endpoint("127.0.0.10", 6000)
    assert spec.b.remote == Endpoint("127.0.0.20", 7000)
    assert parsed(to_a).media[0].port == spec.a.local.port
    assert parsed(to_b).media[0].port == spec.b.local.port


def test_answers_must_match_an_offer(anchor: MediaAnchor) -> None:
    with pytest.raises(MediaError, match="without an offer"):
        anchor.answer("call-1", "b", "a", sdp(PBX_ANSWER))
    anchor.offer("call-1", "a", "b", sdp(SIPP_OFFER))
    with pytest.raises(MediaError, match="without an offer"):
        anchor.answer("call-1", "a", "b", sdp(PBX_ANSWER))
    with pytest.raises(MediaError, match="RFC 3264"):
        anchor.answer("call-1", "b", "a", sdp(AUDIO_VIDEO))


def test_unknown_session_and_legs(anchor: MediaAnchor) -> None:
    with pytest.raises(MediaError, match="not opened"):
        anchor.offer("nope", "a", "b", sdp(SIPP_OFFER))
    with pytest.raises(MediaError, match="legs"):
        anchor.offer("call-1", "a", "a", sdp(SIPP_OFFER))


def test_delete_releases_every_port(anchor: MediaAnchor, relay: FakeRelay, pool: PortPool) -> None:
    anchor.offer("call-1", "a", "b", sdp(AUDIO_VIDEO))
    anchor.answer("call-1", "b", "a", sdp(AUDIO_VIDEO))
    assert anchor.sessions == {"call-1"}
    assert pool.in_use() == 4
    anchor.delete("call-1")
    anchor.delete("call-1")  # idempotent
    assert pool.in_use() == 0
    assert relay.deleted == ["call-1"]
    assert anchor.sessions == set()


def test_stats_aggregate_every_stream(anchor: MediaAnchor, relay: FakeRelay) -> None:
    relay.canned = [
        StreamStats(
            0,
            DirectionStats(100, 17200, 1, 2.5, 4),
            DirectionStats(90, 15480, 0, 1.0, 3, dropped=2),
            idle_s=0.02,
        ),
        StreamStats(1, DirectionStats(10, 1000, 2, 7.0), DirectionStats(), idle_s=5.0),
    ]
    stats = anchor.stats("call-1")
    assert (stats.packets, stats.octets, stats.lost) == (200, 33680, 3)
    assert stats.extra["jitter_ms"] == 7.0
    assert stats.extra["a_to_b_packets"] == 110
    assert stats.extra["b_to_a_lost"] == 0
    assert stats.extra["rtcp_packets"] == 7
    assert stats.extra["dropped"] == 2
    assert stats.extra["idle_s"] == 0.02
    assert stats.extra["streams"] == 2
    relay.canned = []
    assert anchor.stats("call-1").packets == 0


def test_stats_aggregate_reported_figures(anchor: MediaAnchor, relay: FakeRelay) -> None:
    """RTCP-reported loss adds up like ``lost``; jitter and fraction take the worst."""
    relay.canned = [
        StreamStats(
            0,
            DirectionStats(reported_lost=4, reported_fraction_lost=0.5, reported_jitter_ms=3.0),
            DirectionStats(reported_lost=2, reported_jitter_ms=9.0, rtcp_malformed=1),
        ),
        StreamStats(
            1,
            DirectionStats(reported_lost=-1, reported_jitter_ms=1.0),
            DirectionStats(reported_lost=5, reported_fraction_lost=0.25, reported_jitter_ms=4.0),
        ),
    ]
    extra = anchor.stats("call-1").extra
    assert extra["reported_lost"] == 10
    assert extra["reported_jitter_ms"] == 9.0
    assert extra["reported_fraction_lost"] == 0.5
    assert extra["rtcp_malformed"] == 1
    assert (extra["a_to_b_reported_lost"], extra["b_to_a_reported_lost"]) == (3, 7)
    assert (extra["a_to_b_reported_jitter_ms"], extra["b_to_a_reported_jitter_ms"]) == (3.0, 9.0)
    assert extra["a_to_b_reported_fraction_lost"] == 0.5
    assert extra["b_to_a_reported_fraction_lost"] == 0.25
    relay.canned = []
    assert anchor.stats("call-1").extra["reported_jitter_ms"] == 0.0


def test_advertised_address_behind_nat(relay: FakeRelay, pool: PortPool) -> None:
    anchor = MediaAnchor(relay, pool)
    natted = LegMedia("10.0.0.2", "203.0.113.7", A_RANGE, peer_ip="198.51.100.9", latch_any=True)
    anchor.open("nat", natted, LEG_B)
    anchor.offer("nat", "a", "b", sdp(SIPP_OFFER))
    to_a = anchor.answer("nat", "b", "a", sdp(PBX_ANSWER))
    assert addresses(to_a) == {"203.0.113.7"}
    spec = relay.specs["nat", 0]
    assert spec.a.local.host == "10.0.0.2"  # bound on the private media address
    assert spec.a.latch_any
    assert spec.a.allowed_sources == ("127.0.0.10", "198.51.100.9")


VIDEO = "m=video 6002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"


def test_reoffer_adds_a_stream_with_new_ports_and_keeps_the_old(
    anchor: MediaAnchor, relay: FakeRelay, pool: PortPool
) -> None:
    first = parsed(anchor.offer("call-1", "a", "b", sdp(SIPP_OFFER)))
    anchor.answer("call-1", "b", "a", sdp(PBX_ANSWER))
    audio = relay.specs["call-1", 0]
    second = parsed(anchor.offer("call-1", "a", "b", sdp(SIPP_OFFER + VIDEO)))
    assert second.media[0].port == first.media[0].port
    assert second.media[1].port not in (0, first.media[0].port)
    assert pool.in_use() == 4
    assert relay.specs["call-1", 0].b == audio.b  # B's side untouched until its answer
    to_a = parsed(anchor.answer("call-1", "b", "a", sdp(PBX_ANSWER + VIDEO)))
    assert to_a.media[1].port == relay.specs["call-1", 1].a.local.port
    assert parsed(anchor.offer("call-1", "b", "a", sdp(PBX_ANSWER + VIDEO))).media[0].port == (
        audio.a.local.port  # a re-offer from the other leg keeps the same ports
    )


def test_a_stream_disabled_later_releases_its_ports(pool: PortPool) -> None:
    relay = FakeRelay()
    anchor = MediaAnchor(relay, pool)
    anchor.open("s", LEG_A, LEG_B)
    anchor.offer("s", "a", "b", sdp(SIPP_OFFER + VIDEO))
    anchor.answer("s", "b", "a", sdp(PBX_ANSWER + VIDEO))
    assert pool.in_use() == 4
    disabled = SIPP_OFFER + VIDEO.replace("6002", "0")  # RFC 3264 §8.2
    to_b = parsed(anchor.offer("s", "a", "b", sdp(disabled)))
    assert to_b.media[1].port == 0
    assert relay.removed == [("s", 1)]
    assert pool.in_use() == 2
    again = parsed(anchor.offer("s", "a", "b", sdp(SIPP_OFFER + VIDEO)))
    assert again.media[1].port != 0
    assert pool.in_use() == 4


def test_streams_the_relay_cannot_carry_are_disabled_in_position(
    anchor: MediaAnchor, pool: PortPool
) -> None:
    offer = SIPP_OFFER + "m=application 9 TCP/BFCP *\r\nm=audio 6004/2 RTP/AVP 0\r\n"
    to_b = parsed(anchor.offer("call-1", "a", "b", sdp(offer)))
    assert [m.port for m in to_b.media][1:] == [0, 0]
    assert to_b.media[2].port_count is None
    assert pool.in_use() == 2
    answer = PBX_ANSWER + "m=application 0 TCP/BFCP *\r\nm=audio 0 RTP/AVP 0\r\n"
    to_a = parsed(anchor.answer("call-1", "b", "a", sdp(answer)))
    assert [m.port for m in to_a.media][1:] == [0, 0]


def test_reopening_keeps_the_streams(anchor: MediaAnchor, relay: FakeRelay) -> None:
    first = anchor.offer("call-1", "a", "b", sdp(SIPP_OFFER))
    anchor.open("call-1", LEG_A, LEG_B)
    assert anchor.offer("call-1", "a", "b", sdp(SIPP_OFFER)) == first
    assert anchor.sessions == {"call-1"}


def test_refused_reoffer_is_undone(anchor: MediaAnchor, relay: FakeRelay, pool: PortPool) -> None:
    """RFC 3264 §8: an offer the other side refuses (488, 491) changes nothing."""
    anchor.offer("call-1", "a", "b", sdp(SIPP_OFFER))
    anchor.answer("call-1", "b", "a", sdp(PBX_ANSWER))
    before = relay.specs["call-1", 0]
    moved = SIPP_OFFER.replace("c=IN IP4 127.0.0.10", "c=IN IP4 127.0.0.11")
    anchor.offer("call-1", "a", "b", sdp(moved + VIDEO))
    assert pool.in_use() == 4
    assert relay.specs["call-1", 0] != before  # the relay was told about the offer
    anchor.rejected("call-1", "b")  # not the offerer: ignored
    assert pool.in_use() == 4
    anchor.rejected("call-1", "a")
    assert relay.specs["call-1", 0] == before
    assert ("call-1", 1) not in relay.specs
    assert relay.removed == [("call-1", 1)]
    assert pool.in_use() == 2
    anchor.rejected("call-1", "a")  # nothing pending any more: a no-op
    # The next exchange works from the restored state.
    anchor.offer("call-1", "a", "b", sdp(SIPP_OFFER))
    anchor.answer("call-1", "b", "a", sdp(PBX_ANSWER))
    assert relay.specs["call-1", 0].a.local == before.a.local
