"""DTMF interworking in SDP (sbc.media.dtmf_sdp) and through MediaAnchor."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sbc.media.anchor import MediaAnchor
from sbc.media.control import StreamSpec, StreamStats
from sbc.media.dtmf_sdp import (
    adapt_offer,
    add_telephone_event,
    strip_telephone_event,
    telephone_event,
)
from sbc.media.interface import LegMedia
from sbc.media.ports import PortPool
from sbc.sip.sdp import parse_sdp

CARRIER = LegMedia("127.0.0.1", "127.0.0.1", (20000, 20099), peer_ip="127.0.0.10")
PBX_INFO = replace(
    LegMedia("127.0.0.2", "127.0.0.2", (30000, 30099), peer_ip="127.0.0.20"), dtmf="info"
)

WITH_EVENTS = (
    "v=0\r\n"
    "o=c 1 1 IN IP4 127.0.0.10\r\n"
    "s=-\r\n"
    "c=IN IP4 127.0.0.10\r\n"
    "t=0 0\r\n"
    "m=audio 6000 RTP/AVP 0 8 101\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-15\r\n"
    "a=ptime:20\r\n"
)
WITHOUT_EVENTS = (
    "v=0\r\n"
    "o=p 1 1 IN IP4 127.0.0.20\r\n"
    "s=-\r\n"
    "c=IN IP4 127.0.0.20\r\n"
    "t=0 0\r\n"
    "m=audio 7000 RTP/AVP 0 96\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:96 opus/48000/2\r\n"
)


class FakeRelay:
    def __init__(self) -> None:
        self.specs: dict[tuple[str, int], StreamSpec] = {}
        self.dtmf: list[tuple[str, int, str, str, int]] = []

    def update(self, stream: StreamSpec) -> None:
        self.specs[stream.session, stream.index] = stream

    def remove(self, session: str, index: int) -> None:
        self.specs.pop((session, index), None)

    def delete(self, session: str) -> None:
        self.specs.clear()

    def stats(self, session: str) -> list[StreamStats]:
        return []

    def send_dtmf(self, session: str, index: int, leg: str, digit: str, duration_ms: int) -> None:
        self.dtmf.append((session, index, leg, digit, duration_ms))


def rtpmap(body: bytes) -> dict[str, str]:
    return parse_sdp(body).media[0].rtpmap


@pytest.fixture
def relay() -> FakeRelay:
    return FakeRelay()


@pytest.fixture
def anchor(relay: FakeRelay) -> MediaAnchor:
    media = MediaAnchor(relay, PortPool(), first_session_id=1)
    media.open("call", CARRIER, PBX_INFO)  # a: carrier (rfc4733), b: PBX (info)
    return media


def test_strip_removes_numbers_rtpmap_and_fmtp() -> None:
    body = parse_sdp(WITH_EVENTS.encode())
    media = body.media[0]
    strip_telephone_event(media)
    assert media.formats == ["0", "8"]
    text = body.serialize().decode()
    assert "telephone-event" not in text
    assert "fmtp:101" not in text
    assert "a=ptime:20" in text


def test_add_picks_a_free_dynamic_number_with_fmtp() -> None:
    body = parse_sdp(WITHOUT_EVENTS.encode())
    media = body.media[0]
    assert add_telephone_event(media) == 97  # 96 is opus
    assert media.formats == ["0", "96", "97"]
    assert media.rtpmap["97"] == "telephone-event/8000"
    assert media.fmtp["97"] == "0-16"
    assert add_telephone_event(media) == 97  # already there: unchanged
    assert media.formats == ["0", "96", "97"]


def test_same_modes_change_nothing() -> None:
    body = parse_sdp(WITH_EVENTS.encode())
    adapt_offer(body, "rfc4733", "rfc4733")
    adapt_offer(body, "info", "info")
    assert body.serialize() == WITH_EVENTS.encode()


def test_carrier_offer_reaches_the_info_pbx_without_events_and_the_answer_gives_them_back(
    anchor: MediaAnchor, relay: FakeRelay
) -> None:
    to_pbx = anchor.offer("call", "a", "b", WITH_EVENTS.encode())
    assert "telephone-event" not in to_pbx.decode()
    assert parse_sdp(to_pbx).media[0].formats == ["0", "8"]
    to_carrier = anchor.answer("call", "b", "a", WITHOUT_EVENTS.replace(" 96", "").encode())
    # RFC 3264 §6: the carrier's own number for the events it offered
    assert rtpmap(to_carrier)["101"] == "telephone-event/8000"
    assert parse_sdp(to_carrier).media[0].fmtp["101"] == "0-15"  # no event it did not offer
    assert parse_sdp(to_carrier).media[0].formats == ["0", "101"]
    spec = relay.specs["call", 0]
    assert spec.a.dtmf_pt == 101
    assert spec.a.dtmf_report  # the carrier's events become INFO
    assert spec.b.dtmf_pt is None
    assert not spec.b.dtmf_report


def test_pbx_offer_without_events_gets_them_towards_the_carrier(
    anchor: MediaAnchor, relay: FakeRelay
) -> None:
    to_carrier = anchor.offer("call", "b", "a", WITHOUT_EVENTS.encode())
    media = parse_sdp(to_carrier).media[0]
    assert media.rtpmap["97"] == "telephone-event/8000"
    answer = (
        WITH_EVENTS.replace("0 8 101", "0 97")
        .replace("101", "97")
        .replace("a=rtpmap:8 PCMA/8000\r\n", "")
    )
    to_pbx = anchor.answer("call", "a", "b", answer.encode())
    assert "telephone-event" not in to_pbx.decode()
    spec = relay.specs["call", 0]
    assert (spec.a.dtmf_pt, spec.a.dtmf_report) == (97, True)


def test_send_dtmf_goes_to_the_leg_with_telephone_event(
    anchor: MediaAnchor, relay: FakeRelay
) -> None:
    anchor.offer("call", "a", "b", WITH_EVENTS.encode())
    anchor.answer("call", "b", "a", WITHOUT_EVENTS.encode())
    assert anchor.send_dtmf("call", "a", "5", 120)
    assert relay.dtmf == [("call", 0, "a", "5", 120)]
    assert not anchor.send_dtmf("call", "b", "5", 120)  # the PBX has no events
    assert not anchor.send_dtmf("nope", "a", "5", 120)


def test_carrier_without_events_cannot_receive_digits(
    anchor: MediaAnchor, relay: FakeRelay
) -> None:
    anchor.offer("call", "a", "b", WITHOUT_EVENTS.replace("127.0.0.20", "127.0.0.10").encode())
    anchor.answer("call", "b", "a", WITHOUT_EVENTS.encode())
    assert not anchor.send_dtmf("call", "a", "1", 100)
    assert relay.dtmf == []
    spec = relay.specs["call", 0]
    assert spec.a.dtmf_pt is None


def test_telephone_event_prefers_8000_else_takes_the_rate_offered() -> None:
    assert telephone_event(((0, "pcmu/8000"), (101, "telephone-event/8000"))) == (101, 8000)
    both = ((111, "opus/48000/2"), (110, "telephone-event/48000"), (126, "telephone-event/8000"))
    assert telephone_event(both) == (126, 8000)
    assert telephone_event(((111, "opus/48000/2"), (110, "telephone-event/48000"))) == (110, 48000)
    assert telephone_event(((0, "pcmu/8000"),)) is None


def test_opus_carrier_gets_its_48khz_events_back_in_the_answer(
    anchor: MediaAnchor, relay: FakeRelay
) -> None:
    opus = (
        WITH_EVENTS.replace("RTP/AVP 0 8 101", "RTP/AVP 111 110")
        .replace(
            "a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n", "a=rtpmap:111 opus/48000/2\r\n"
        )
        .replace(
            "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n",
            "a=rtpmap:110 telephone-event/48000\r\n",
        )
    )
    to_pbx = anchor.offer("call", "a", "b", opus.encode())
    assert "telephone-event" not in to_pbx.decode()
    answer = WITHOUT_EVENTS.replace("RTP/AVP 0 96", "RTP/AVP 111").replace(
        "a=rtpmap:0 PCMU/8000\r\na=rtpmap:96 opus/48000/2\r\n", "a=rtpmap:111 opus/48000/2\r\n"
    )
    to_carrier = anchor.answer("call", "b", "a", answer.encode())
    assert rtpmap(to_carrier)["110"] == "telephone-event/48000"
    spec = relay.specs["call", 0]
    assert (spec.a.dtmf_pt, spec.a.dtmf_clock, spec.a.dtmf_report) == (110, 48000, True)
