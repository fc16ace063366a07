"""DTLS-SRTP in offer/answer (RFC 5763 §5, RFC 4145 §4) and through MediaAnchor.

Fingerprints, setup and tls-id lines never cross legs; the DTLS leg sees our
certificate's fingerprint and a setup choosing roles; the relay gets the
leg's fingerprints and our role.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from test_anchor import LEG_A, LEG_B, PBX_ANSWER, SIPP_OFFER, FakeRelay, sdp

from sbc.media.anchor import MediaAnchor
from sbc.media.control import StreamSpec
from sbc.media.dtls_certificate import DtlsCertificate
from sbc.media.dtls_sdp import LegDtls, read_answer, read_offer
from sbc.media.interface import MediaError
from sbc.media.ports import PortPool
from sbc.sip.sdp import MediaDescription, parse_sdp

THEIR_FP = ":".join(["AB"] * 32)
OTHER_FP = ":".join(["CD"] * 32)
CERTIFICATE = DtlsCertificate.generate()


def dtls_offer(
    setup: str | None = "actpass",
    fingerprint: str | None = THEIR_FP,
    proto: str = "UDP/TLS/RTP/SAVPF",
    extra: str = "",
) -> str:
    body = SIPP_OFFER.replace("RTP/AVP", proto)
    if fingerprint is not None:
        body += f"a=fingerprint:sha-256 {fingerprint}\r\n"
    if setup is not None:
        body += f"a=setup:{setup}\r\n"
    return body + "a=mid:0\r\na=tls-id:abc123\r\n" + extra


def media_of(text: str) -> MediaDescription:
    return parse_sdp(sdp(text)).media[0]


def make(b_mode: str = "off", b_keying: str = "sdes") -> tuple[MediaAnchor, FakeRelay]:
    relay = FakeRelay()
    anchor = MediaAnchor(relay, PortPool(), first_session_id=1, certificate=CERTIFICATE)
    anchor.open("call", LEG_A, replace(LEG_B, srtp=b_mode, srtp_keying=b_keying))
    return anchor, relay


def spec(relay: FakeRelay) -> StreamSpec:
    return relay.specs["call", 0]


def only(body: bytes) -> MediaDescription:
    [media] = parse_sdp(body).media
    return media


# --- pure: the offer's and the answer's roles --------------------------------------


@pytest.mark.parametrize(
    ("theirs", "ours", "role"),
    [
        ("actpass", "passive", "server"),
        ("active", "passive", "server"),
        (None, "passive", "server"),  # RFC 4145 §4: absent means active
        ("passive", "active", "client"),
    ],
)
def test_answer_setup_is_the_opposite_of_the_offer(theirs, ours, role) -> None:
    end = read_offer(media_of(dtls_offer(setup=theirs)))
    assert end is not None
    assert (end.setup, end.role) == (ours, role)
    assert end.fingerprints == (("sha-256", THEIR_FP),)
    assert end.mid == "0"


def test_session_level_fingerprint_counts_and_case_is_normalised() -> None:
    body = SIPP_OFFER.replace("RTP/AVP", "UDP/TLS/RTP/SAVP").replace(
        "t=0 0\r\n", f"t=0 0\r\na=fingerprint:SHA-256 {THEIR_FP.lower()}\r\n"
    )
    end = read_offer(media_of(body))
    assert end is not None
    assert end.fingerprints == (("sha-256", THEIR_FP),)
    assert end.proto == "UDP/TLS/RTP/SAVP"


@pytest.mark.parametrize(
    "offer",
    [
        dtls_offer(fingerprint=None),
        dtls_offer(fingerprint="not-hex"),
        dtls_offer(setup="holdconn"),
        dtls_offer(setup="sideways"),
    ],
)
def test_unusable_dtls_offers_are_refused_488(offer: str) -> None:
    with pytest.raises(MediaError) as caught:
        read_offer(media_of(offer))
    assert caught.value.status == 488


def test_plain_and_sdes_offers_are_not_dtls() -> None:
    assert read_offer(media_of(SIPP_OFFER)) is None
    assert read_offer(media_of(SIPP_OFFER.replace("RTP/AVP", "RTP/SAVP"))) is None


@pytest.mark.parametrize(("theirs", "role"), [("active", "server"), ("passive", "client")])
def test_answer_to_our_actpass_decides_our_role(theirs: str, role: str) -> None:
    offered = LegDtls("UDP/TLS/RTP/SAVP", "actpass", "server")
    end = read_answer(media_of(dtls_offer(setup=theirs, proto="UDP/TLS/RTP/SAVP")), offered)
    assert (end.role, end.setup, end.fingerprints) == (role, "actpass", (("sha-256", THEIR_FP),))


@pytest.mark.parametrize(
    "answer",
    [
        dtls_offer(setup="actpass"),  # RFC 5763 §5: an answer must choose
        dtls_offer(setup="passive", fingerprint=None),
        SIPP_OFFER,  # left DTLS
    ],
)
def test_bad_answers_to_our_dtls_offer_are_refused(answer: str) -> None:
    offered = LegDtls("UDP/TLS/RTP/SAVP", "actpass", "server")
    with pytest.raises(MediaError):
        read_answer(media_of(answer), offered)


# --- through MediaAnchor -----------------------------------------------------------


def test_dtls_offer_to_a_plain_leg_and_our_answer() -> None:
    anchor, relay = make()
    to_b = anchor.offer("call", "a", "b", sdp(dtls_offer()))
    b = only(to_b)
    assert b.proto == "RTP/AVP"
    for name in ("fingerprint", "setup", "tls-id", "crypto"):
        assert b.attribute(name) is None
    a_side = spec(relay).a.dtls
    assert a_side is not None
    assert (a_side.role, a_side.fingerprints) == ("server", (("sha-256", THEIR_FP),))
    assert a_side.certificate == CERTIFICATE.certificate
    assert spec(relay).a.srtp is None
    assert spec(relay).b.dtls is None
    assert spec(relay).b.srtp is None

    a = only(anchor.answer("call", "b", "a", sdp(PBX_ANSWER)))
    assert a.proto == "UDP/TLS/RTP/SAVPF"
    assert a.attribute_values("fingerprint") == [f"sha-256 {CERTIFICATE.fingerprint()}"]
    assert a.attribute_values("setup") == ["passive"]
    assert a.attribute_values("mid") == ["0"]
    assert a.attribute("tls-id") is None
    assert a.own_direction == "sendrecv"
    assert THEIR_FP not in anchor.answer("call", "b", "a", sdp(PBX_ANSWER)).decode()


def test_the_certificate_key_stays_out_of_specs_reprs() -> None:
    anchor, relay = make()
    anchor.offer("call", "a", "b", sdp(dtls_offer()))
    text = repr(spec(relay))
    assert "PRIVATE KEY" not in text
    assert "BEGIN CERTIFICATE" not in text


def test_dtls_offer_to_an_sdes_leg_per_its_policy() -> None:
    for mode, proto in (("optional", "RTP/SAVP"), ("required", "RTP/SAVP"), ("off", "RTP/AVP")):
        anchor, _ = make(b_mode=mode)
        b = only(anchor.offer("call", "a", "b", sdp(dtls_offer())))
        assert b.proto == proto
        assert bool(b.attribute_values("crypto")) == (proto == "RTP/SAVP")
        assert b.attribute("fingerprint") is None


def test_a_re_offer_with_the_same_fingerprint_keeps_the_association() -> None:
    anchor, relay = make()
    anchor.offer("call", "a", "b", sdp(dtls_offer()))
    anchor.answer("call", "b", "a", sdp(PBX_ANSWER))
    first = spec(relay).a.dtls
    anchor.offer("call", "a", "b", sdp(dtls_offer()))
    assert spec(relay).a.dtls == first
    anchor.offer("call", "a", "b", sdp(dtls_offer(fingerprint=OTHER_FP)))
    changed = spec(relay).a.dtls
    assert changed is not None
    assert changed.fingerprints == (("sha-256", OTHER_FP),)


def test_a_leg_leaving_dtls_goes_plain() -> None:
    anchor, relay = make()
    anchor.offer("call", "a", "b", sdp(dtls_offer()))
    anchor.answer("call", "b", "a", sdp(PBX_ANSWER))
    anchor.offer("call", "a", "b", sdp(SIPP_OFFER))
    assert spec(relay).a.dtls is None


def test_a_bad_dtls_offer_allocates_nothing() -> None:
    anchor, relay = make()
    with pytest.raises(MediaError):
        anchor.offer("call", "a", "b", sdp(dtls_offer(fingerprint=None)))
    assert relay.specs == {}


def test_jsep_dummy_rtcp_line_is_accepted_under_mux() -> None:
    anchor, relay = make()
    offer = dtls_offer(extra="a=rtcp-mux\r\na=rtcp:9 IN IP4 0.0.0.0\r\n")
    anchor.offer("call", "a", "b", sdp(offer))
    side = spec(relay).a
    assert side.remote is not None
    assert side.remote_rtcp is None or side.remote_rtcp.port == side.remote.port


# --- srtp_keying: dtls towards a trunk ---------------------------------------------


def test_dtls_keying_offers_actpass_and_our_fingerprint_to_the_trunk() -> None:
    anchor, relay = make(b_mode="required", b_keying="dtls")
    b = only(anchor.offer("call", "a", "b", sdp(SIPP_OFFER)))
    assert b.proto == "UDP/TLS/RTP/SAVP"
    assert b.attribute_values("setup") == ["actpass"]
    assert b.attribute_values("fingerprint") == [f"sha-256 {CERTIFICATE.fingerprint()}"]
    assert b.attribute("crypto") is None
    assert b.rtcp_mux  # offered to a DTLS leg even though leg A does not mux
    pending = spec(relay).b.dtls
    assert pending is not None
    assert (pending.role, pending.fingerprints) == ("server", ())  # until the answer

    answer = PBX_ANSWER.replace("RTP/AVP", "UDP/TLS/RTP/SAVP") + (
        f"a=fingerprint:sha-256 {THEIR_FP}\r\na=setup:passive\r\n"
    )
    a = only(anchor.answer("call", "b", "a", sdp(answer)))
    assert a.proto == "RTP/AVP"
    assert a.attribute("fingerprint") is None
    answered = spec(relay).b.dtls
    assert answered is not None
    assert (answered.role, answered.fingerprints) == ("client", (("sha-256", THEIR_FP),))
    assert not spec(relay).b.rtcp_mux  # the trunk declined it


def test_dtls_keying_with_a_plain_answer_is_refused() -> None:
    anchor, _ = make(b_mode="required", b_keying="dtls")
    anchor.offer("call", "a", "b", sdp(SIPP_OFFER))
    with pytest.raises(MediaError):
        anchor.answer("call", "b", "a", sdp(PBX_ANSWER))


def test_dtls_keying_is_not_used_when_srtp_is_off() -> None:
    anchor, relay = make(b_mode="off", b_keying="dtls")
    b = only(anchor.offer("call", "a", "b", sdp(SIPP_OFFER)))
    assert b.proto == "RTP/AVP"
    assert spec(relay).b.dtls is None


def test_a_webrtc_leg_keeps_rtcp_mux_when_the_other_leg_does_not_mux() -> None:
    anchor, relay = make()
    anchor.offer("call", "a", "b", sdp(dtls_offer(extra="a=rtcp-mux\r\n")))
    a = only(anchor.answer("call", "b", "a", sdp(PBX_ANSWER)))  # no a=rtcp-mux
    assert a.rtcp_mux
    assert (spec(relay).a.rtcp_mux, spec(relay).b.rtcp_mux) == (True, False)


def test_a_plain_leg_that_offers_mux_still_needs_both_ends() -> None:
    anchor, relay = make()
    anchor.offer("call", "a", "b", sdp(SIPP_OFFER + "a=rtcp-mux\r\n"))
    a = only(anchor.answer("call", "b", "a", sdp(PBX_ANSWER)))
    assert not a.rtcp_mux
    assert (spec(relay).a.rtcp_mux, spec(relay).b.rtcp_mux) == (False, False)
