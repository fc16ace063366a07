"""Codec policy and transcoding in offer/answer (RFC 3264), pure and through MediaAnchor."""

from __future__ import annotations

import pytest
from test_anchor import FakeRelay

from sbc.media.anchor import MediaAnchor
from sbc.media.codec_negotiation import negotiate_answer, negotiate_offer, read_formats
from sbc.media.control import CodecEnd, TranscodeDirection, TranscodeSpec
from sbc.media.interface import CodecPolicy, LegMedia, MediaError
from sbc.media.ports import PortPool
from sbc.media.relay.transcoding import TranscodingDirection
from sbc.media.transcode import TranscodePool
from sbc.sip.sdp import SessionDescription, parse_sdp

A_RANGE = (20000, 20099)
B_RANGE = (30000, 30099)


def body(formats: str, *attributes: str, port: int = 6000, ip: str = "127.0.0.10") -> bytes:
    lines = [
        "v=0",
        f"o=peer 1 1 IN IP4 {ip}",
        "s=-",
        f"c=IN IP4 {ip}",
        "t=0 0",
        f"m=audio {port} RTP/AVP {formats}",
        *(f"a={a}" for a in attributes),
    ]
    return ("\r\n".join(lines) + "\r\n").encode()


#: The carrier offers only A-law and DTMF events.
PCMA_OFFER = body("8 101", "rtpmap:8 PCMA/8000", "rtpmap:101 telephone-event/8000", "fmtp:101 0-15")
#: A PBX that speaks only Opus (and events at 48 kHz).
OPUS_ONLY = CodecPolicy(allow=("opus",), transcode=True)


def session(text: bytes) -> SessionDescription:
    return parse_sdp(text)


def names(media_body: bytes) -> list[str]:
    media = parse_sdp(media_body).media[0]
    return [f"{f.name}/{f.payload}" for f in read_formats(media)]


# --- pure negotiation ------------------------------------------------------


def test_allow_strip_prefer_filter_and_order_the_offer() -> None:
    offer = session(
        body(
            "0 8 18 9 101",
            "rtpmap:0 PCMU/8000",
            "rtpmap:8 PCMA/8000",
            "rtpmap:18 G729/8000",
            "fmtp:18 annexb=no",
            "rtpmap:101 telephone-event/8000",
        )
    )
    policy = CodecPolicy(allow=("pcmu", "pcma", "g722"), prefer=("g722", "pcma"), strip=("g729",))
    plan = negotiate_offer(offer, [0], "a", policy, transcoding=True, capacity=True)
    media = offer.media[0]
    assert media.formats == ["9", "8", "0", "101"]  # preferred first, G.729 gone, events kept
    assert "18" not in media.rtpmap
    assert "18" not in media.fmtp
    assert not plan.must_transcode
    assert [f.name for f in plan.streams[0].sent] == ["g722", "pcma", "pcmu", "telephone-event"]


def test_telephone_event_is_stripped_only_when_listed_in_strip() -> None:
    offer = session(PCMA_OFFER)
    negotiate_offer(
        offer,
        [0],
        "a",
        CodecPolicy(strip=frozenset({"telephone-event"})),
        transcoding=True,
        capacity=True,
    )
    assert offer.media[0].formats == ["8"]
    assert offer.media[0].rtpmap == {"8": "PCMA/8000"}


def test_transcodable_codecs_the_offer_lacks_are_added_with_free_numbers() -> None:
    offer = session(PCMA_OFFER)
    plan = negotiate_offer(offer, [0], "a", OPUS_ONLY, transcoding=True, capacity=True)
    media = offer.media[0]
    assert plan.must_transcode  # PCMA is not allowed towards this leg: only Opus is left
    assert media.formats == ["96", "101"]
    assert media.rtpmap["96"] == "opus/48000/2"
    assert "minptime=10" in media.fmtp["96"]
    assert media.rtpmap["101"] == "telephone-event/8000"


def test_added_codecs_follow_the_offered_ones_and_skip_taken_numbers() -> None:
    offer = session(body("8 0 96", "rtpmap:8 PCMA/8000", "rtpmap:96 telephone-event/8000"))
    policy = CodecPolicy(allow=("pcma", "opus", "g722"), transcode=True)
    plan = negotiate_offer(offer, [0], "a", policy, transcoding=True, capacity=True)
    media = offer.media[0]
    # PCMU (0) is not allowed; Opus needs a dynamic number other than the events' 96.
    assert media.formats == ["8", "97", "9", "96"]
    assert media.rtpmap["97"] == "opus/48000/2"
    assert not plan.must_transcode


def test_no_codec_in_common_and_transcoding_off_is_488() -> None:
    offer = session(PCMA_OFFER)
    with pytest.raises(MediaError) as refused:
        negotiate_offer(
            offer, [0], "a", CodecPolicy(allow=("opus",)), transcoding=True, capacity=True
        )
    assert refused.value.status == 488


def test_a_node_without_transcoding_capacity_is_488_a_full_one_503() -> None:
    with pytest.raises(MediaError) as disabled:
        negotiate_offer(session(PCMA_OFFER), [0], "a", OPUS_ONLY, transcoding=False, capacity=False)
    assert disabled.value.status == 488
    with pytest.raises(MediaError) as full:
        negotiate_offer(session(PCMA_OFFER), [0], "a", OPUS_ONLY, transcoding=True, capacity=False)
    assert full.value.status == 503


def test_a_full_node_adds_nothing_when_a_codec_is_shared() -> None:
    offer = session(PCMA_OFFER)
    policy = CodecPolicy(transcode=True)
    negotiate_offer(offer, [0], "a", policy, transcoding=True, capacity=False)
    assert offer.media[0].formats == ["8", "101"]


def test_answer_with_an_added_codec_names_the_offerers_codec_and_transcodes() -> None:
    offer = session(PCMA_OFFER)
    plan = negotiate_offer(offer, [0], "a", OPUS_ONLY, transcoding=True, capacity=True)
    answer = session(
        body(
            "96 101",
            "rtpmap:96 opus/48000/2",
            "fmtp:96 useinbandfec=1",
            "rtpmap:101 telephone-event/48000",
            "ptime:40",
            ip="127.0.0.20",
        )
    )
    spec = negotiate_answer(answer.media[0], plan.streams[0], None, OPUS_ONLY)
    media = answer.media[0]
    assert media.formats == ["8", "101"]
    assert media.rtpmap == {"8": "PCMA/8000", "101": "telephone-event/8000"}
    assert media.fmtp == {"101": "0-15"}
    assert media.attribute_values("ptime") == ["20"]
    pcma = CodecEnd("pcma", 8, 20, (), 101)
    opus = CodecEnd("opus", 96, 40, (("useinbandfec", "1"),), 101)
    assert spec == TranscodeSpec(TranscodeDirection(pcma, opus), TranscodeDirection(opus, pcma))


def test_answer_with_an_offered_codec_never_transcodes_and_loses_added_ones() -> None:
    offer = session(PCMA_OFFER)
    plan = negotiate_offer(
        offer, [0], "b", CodecPolicy(transcode=True), transcoding=True, capacity=True
    )
    assert offer.media[0].formats[0] == "8"
    answer = session(body("8 96", "rtpmap:8 PCMA/8000", "rtpmap:96 opus/48000/2"))
    assert negotiate_answer(answer.media[0], plan.streams[0], None, None) is None
    assert answer.media[0].formats == ["8"]
    assert answer.media[0].rtpmap == {"8": "PCMA/8000"}


# --- through MediaAnchor -----------------------------------------------------


def legs(b_codecs: CodecPolicy | None) -> tuple[LegMedia, LegMedia]:
    a = LegMedia("127.0.0.1", "127.0.0.1", A_RANGE, peer_ip="127.0.0.10")
    b = LegMedia("127.0.0.2", "127.0.0.2", B_RANGE, peer_ip="127.0.0.20", codecs=b_codecs)
    return a, b


OPUS_ANSWER = body(
    "96 101",
    "rtpmap:96 opus/48000/2",
    "rtpmap:101 telephone-event/8000",
    port=7000,
    ip="127.0.0.20",
)


def anchor_with(relay: FakeRelay, sessions: int) -> MediaAnchor:
    return MediaAnchor(relay, PortPool(), transcoding=TranscodePool(sessions))


def test_anchor_transcodes_only_without_a_common_codec() -> None:
    relay = FakeRelay()
    media = anchor_with(relay, 2)
    media.open("call-1", *legs(OPUS_ONLY))
    to_b = media.offer("call-1", "a", "b", PCMA_OFFER)
    assert names(to_b) == ["opus/96", "telephone-event/101"]
    assert media.transcoding.in_use == 1  # known at offer time: no codec in common
    to_a = media.answer("call-1", "b", "a", OPUS_ANSWER)
    assert names(to_a) == ["pcma/8", "telephone-event/101"]
    spec = relay.specs["call-1", 0].transcode
    assert spec is not None
    assert (spec.a_to_b.source.name, spec.a_to_b.destination.name) == ("pcma", "opus")
    assert (spec.b_to_a.source.payload, spec.b_to_a.destination.payload) == (96, 8)
    media.delete("call-1")
    assert media.transcoding.in_use == 0

    media.open("call-2", *legs(CodecPolicy(transcode=True)))
    to_b = media.offer("call-2", "a", "b", PCMA_OFFER)
    assert names(to_b)[0] == "pcma/8"  # the offerer's codec first, Opus etc. added after
    assert "opus/96" in names(to_b)
    media.answer("call-2", "b", "a", body("8 101", "rtpmap:101 telephone-event/8000", port=7000))
    assert relay.specs["call-2", 0].transcode is None
    assert media.transcoding.in_use == 0


def test_policy_opus_complexity_reaches_the_relays_encoder() -> None:
    """sbc.yaml transcoding.opus_complexity: in each direction's spec, then in libopus's set-up."""
    relay = FakeRelay()
    media = MediaAnchor(relay, PortPool(), transcoding=TranscodePool(1), opus_complexity=2)
    media.open("call", *legs(OPUS_ONLY))
    media.offer("call", "a", "b", PCMA_OFFER)
    media.answer("call", "b", "a", OPUS_ANSWER)
    spec = relay.specs["call", 0].transcode
    assert spec is not None
    assert spec.a_to_b.opus_complexity == spec.b_to_a.opus_complexity == 2
    encoder = TranscodingDirection(spec.a_to_b).transcoder.dst  # PCMA -> Opus
    assert getattr(encoder, "complexity", None) == 2


def test_anchor_full_pool_is_503_at_offer_and_488_at_answer() -> None:
    relay = FakeRelay()
    media = anchor_with(relay, 1)
    media.open("busy", *legs(OPUS_ONLY))
    media.offer("busy", "a", "b", PCMA_OFFER)
    media.open("call-2", *legs(OPUS_ONLY))
    with pytest.raises(MediaError) as full:
        media.offer("call-2", "a", "b", PCMA_OFFER)
    assert full.value.status == 503
    assert ("call-2", 0) not in relay.specs  # refused before anything was set up
    assert media.transcoding.refused == 1  # what sbc_transcoding_refused_total shows

    media.open("call-3", *legs(CodecPolicy(transcode=True)))
    to_b = media.offer("call-3", "a", "b", PCMA_OFFER)
    assert "opus" not in to_b.decode()  # the node is full: nothing to transcode to is offered
    media.delete("busy")
    media.open("call-4", *legs(CodecPolicy(transcode=True)))
    to_b = media.offer("call-4", "a", "b", PCMA_OFFER)
    assert "opus" in to_b.decode()
    media.open("taker", *legs(OPUS_ONLY))
    media.offer("taker", "a", "b", PCMA_OFFER)  # takes the last slot meanwhile
    with pytest.raises(MediaError) as late:
        media.answer("call-4", "b", "a", OPUS_ANSWER)
    assert late.value.status == 488
    assert media.transcoding.refused == 2


def test_a_reoffer_that_no_longer_needs_transcoding_gives_the_slot_back() -> None:
    relay = FakeRelay()
    media = anchor_with(relay, 1)
    media.open("call-1", *legs(CodecPolicy(allow=("pcma", "opus"), transcode=True)))
    media.offer("call-1", "a", "b", body("0", "rtpmap:0 PCMU/8000"))
    media.answer("call-1", "b", "a", OPUS_ANSWER)
    assert relay.specs["call-1", 0].transcode is not None
    assert media.transcoding.in_use == 1
    media.offer("call-1", "a", "b", PCMA_OFFER)
    media.answer("call-1", "b", "a", body("8 101", "rtpmap:101 telephone-event/8000", port=7000))
    assert relay.specs["call-1", 0].transcode is None
    assert media.transcoding.in_use == 0


def test_a_refused_offer_that_took_a_slot_gives_it_back() -> None:
    relay = FakeRelay()
    media = anchor_with(relay, 1)
    media.open("call-1", *legs(OPUS_ONLY))
    media.offer("call-1", "a", "b", PCMA_OFFER)
    assert media.transcoding.in_use == 1
    media.rejected("call-1", "a")
    assert media.transcoding.in_use == 0


def test_without_a_policy_the_body_crosses_with_its_codecs_untouched() -> None:
    relay = FakeRelay()
    media = anchor_with(relay, 1)
    media.open("call-1", *legs(None))
    offer = body("8 18 101", "rtpmap:101 telephone-event/8000", "fmtp:18 annexb=no")
    to_b = media.offer("call-1", "a", "b", offer)
    assert parse_sdp(to_b).media[0].formats == ["8", "18", "101"]
    assert "a=fmtp:18 annexb=no" in to_b.decode()


def test_a_reoffer_from_the_transcoded_leg_still_offers_the_others_codec() -> None:
    """The Opus-only PBX re-INVITEs the G.711 carrier (no policy of its own): the
    carrier is offered its PCMA too, and answering it keeps the call transcoding."""
    relay = FakeRelay()
    media = anchor_with(relay, 1)
    media.open("call-1", *legs(OPUS_ONLY))
    media.offer("call-1", "a", "b", PCMA_OFFER)
    media.answer("call-1", "b", "a", OPUS_ANSWER)
    before = relay.specs["call-1", 0].transcode
    assert before is not None

    to_a = media.offer("call-1", "b", "a", OPUS_ANSWER)
    assert names(to_a) == ["opus/96", "pcma/8", "telephone-event/101"]
    to_b = media.answer(
        "call-1", "a", "b", body("8 101", "rtpmap:8 PCMA/8000", "rtpmap:101 telephone-event/8000")
    )
    assert names(to_b) == ["opus/96", "telephone-event/101"]
    assert relay.specs["call-1", 0].transcode == before  # same codecs: the same transcoders
    assert media.transcoding.in_use == 1


def test_negotiation_names_exactly_what_the_relay_can_transcode() -> None:
    from sbc.media import codec_negotiation
    from sbc.media.transcode.registry import TRANSCODABLE

    assert codec_negotiation.TRANSCODABLE == TRANSCODABLE


def test_signalling_does_not_load_the_codecs() -> None:
    """NumPy, FFmpeg and libopus stay out of the signalling process (~30 MB)."""
    import subprocess
    import sys

    code = "import sys, sbc.app; print('av' in sys.modules, 'numpy' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.split() == ["False", "False"]
