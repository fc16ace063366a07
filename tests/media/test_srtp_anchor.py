"""SDES-SRTP through MediaAnchor: SAVP on one leg, AVP on the other (RFC 4568).

Crypto lines never cross legs: each leg sees only the SBC's own keys, and
the relay gets each SRTP leg's pair of keys.
"""

from __future__ import annotations

import base64
from dataclasses import replace

import pytest
from test_anchor import LEG_A, LEG_B, PBX_ANSWER, SIPP_OFFER, FakeRelay, sdp

from sbc.media.anchor import MediaAnchor
from sbc.media.control import StreamSpec
from sbc.media.interface import MediaError
from sbc.media.ports import PortPool
from sbc.media.sdes import CryptoAttribute
from sbc.sip.sdp import parse_sdp

KEY_A = bytes(range(30))
KEY_B = bytes(range(100, 130))


def crypto_line(tag: int, key: bytes, suite: str = "AES_CM_128_HMAC_SHA1_80") -> str:
    return f"a=crypto:{tag} {suite} inline:{base64.b64encode(key).decode()}\r\n"


def savp(body: str, *lines: str) -> str:
    return body.replace("RTP/AVP", "RTP/SAVP") + "".join(lines)


def cryptos(body: bytes) -> list[CryptoAttribute]:
    [media] = parse_sdp(body).media
    return [CryptoAttribute.parse(v) for v in media.attribute_values("crypto") if v]


def proto(body: bytes) -> str:
    return parse_sdp(body).media[0].proto


def make(a_mode: str = "off", b_mode: str = "off") -> tuple[MediaAnchor, FakeRelay]:
    relay = FakeRelay()
    anchor = MediaAnchor(relay, PortPool(), first_session_id=1000)
    anchor.open("call-1", replace(LEG_A, srtp=a_mode), replace(LEG_B, srtp=b_mode))
    return anchor, relay


def spec(relay: FakeRelay) -> StreamSpec:
    return relay.specs["call-1", 0]


def test_savp_offer_to_a_plain_leg() -> None:
    anchor, relay = make()
    to_b = anchor.offer("call-1", "a", "b", sdp(savp(SIPP_OFFER, crypto_line(3, KEY_A))))
    assert proto(to_b) == "RTP/AVP"
    assert b"crypto" not in to_b
    # A's end is known already: its key and the one we answer with.
    keys = spec(relay).a.srtp
    assert keys is not None
    assert keys.receive_key == KEY_A
    assert spec(relay).b.srtp is None
    to_a = anchor.answer("call-1", "b", "a", sdp(PBX_ANSWER))
    assert proto(to_a) == "RTP/SAVP"
    [ours] = cryptos(to_a)
    assert (ours.tag, ours.suite) == (3, "AES_CM_128_HMAC_SHA1_80")
    assert ours.key == keys.send_key
    assert ours.key != KEY_A
    assert spec(relay).a.srtp == keys


def test_plain_offer_to_a_leg_that_requires_srtp() -> None:
    anchor, relay = make(b_mode="required")
    to_b = anchor.offer("call-1", "a", "b", sdp(SIPP_OFFER))
    assert proto(to_b) == "RTP/SAVP"
    offered = cryptos(to_b)
    assert [c.suite for c in offered] == [
        "AES_CM_128_HMAC_SHA1_80",
        "AES_CM_128_HMAC_SHA1_32",
        "AEAD_AES_128_GCM",
        "AEAD_AES_256_GCM",
    ]
    assert spec(relay).b.srtp is None  # not until B answers
    answer = savp(PBX_ANSWER, crypto_line(2, KEY_B, "AES_CM_128_HMAC_SHA1_32"))
    to_a = anchor.answer("call-1", "b", "a", sdp(answer))
    assert proto(to_a) == "RTP/AVP"
    assert b"crypto" not in to_a
    keys = spec(relay).b.srtp
    assert keys is not None
    assert keys.suite == "AES_CM_128_HMAC_SHA1_32"
    assert keys.receive_key == KEY_B
    assert keys.send_key == offered[1].key
    assert spec(relay).a.srtp is None


def test_optional_keeps_the_offered_profile() -> None:
    anchor, _ = make(b_mode="optional")
    assert proto(anchor.offer("call-1", "a", "b", sdp(SIPP_OFFER))) == "RTP/AVP"
    other, _ = make(b_mode="optional")
    to_b = other.offer("call-1", "a", "b", sdp(savp(SIPP_OFFER, crypto_line(1, KEY_A))))
    assert proto(to_b) == "RTP/SAVP"
    assert KEY_A not in [c.key for c in cryptos(to_b)]
    assert len(cryptos(to_b)) == 4


def test_savp_feedback_profile_is_kept() -> None:
    anchor, _ = make(b_mode="required")
    body = SIPP_OFFER.replace("RTP/AVP", "RTP/AVPF")
    assert proto(anchor.offer("call-1", "a", "b", sdp(body))) == "RTP/SAVPF"


@pytest.mark.parametrize(
    "lines",
    [
        (),
        (crypto_line(1, KEY_A, "F8_128_HMAC_SHA1_80"),),
        ("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:short\r\n",),
        (crypto_line(1, KEY_A).replace("\r\n", "|2^20|1:4\r\n"),),
    ],
)
def test_savp_offer_we_cannot_match_is_488(lines: tuple[str, ...]) -> None:
    anchor, relay = make()
    with pytest.raises(MediaError) as error:
        anchor.offer("call-1", "a", "b", sdp(savp(SIPP_OFFER, *lines)))
    assert error.value.status == 488
    assert relay.updates == []


def test_plain_offer_from_a_leg_that_requires_srtp_is_488() -> None:
    anchor, _ = make(a_mode="required")
    with pytest.raises(MediaError) as error:
        anchor.offer("call-1", "a", "b", sdp(SIPP_OFFER))
    assert error.value.status == 488


def test_answer_without_matching_crypto_is_refused() -> None:
    anchor, _ = make(b_mode="required")
    anchor.offer("call-1", "a", "b", sdp(SIPP_OFFER))
    with pytest.raises(MediaError):
        anchor.answer("call-1", "b", "a", sdp(savp(PBX_ANSWER, crypto_line(9, KEY_B))))


def test_unchanged_reoffer_keeps_keys_and_sdp() -> None:
    anchor, relay = make(b_mode="required")
    offer = sdp(savp(SIPP_OFFER, crypto_line(1, KEY_A)))
    first_b = anchor.offer("call-1", "a", "b", offer)
    answer = savp(PBX_ANSWER, crypto_line(1, KEY_B))
    first_a = anchor.answer("call-1", "b", "a", sdp(answer))
    before = spec(relay)
    assert before.b.srtp is not None
    # The re-offer carries only the suite B chose, with the same key (RFC 4568 §7.1.4) ...
    again_b = anchor.offer("call-1", "a", "b", offer)
    assert [(c.tag, c.key) for c in cryptos(again_b)] == [(1, before.b.srtp.send_key)]
    assert len(cryptos(first_b)) == 4
    again_a = anchor.answer("call-1", "b", "a", sdp(answer.replace("o=pbx 1 1", "o=pbx 1 2")))
    assert again_a == first_a  # our answer to A: same key, same o= version
    assert spec(relay) == before
    # ... and from then on re-offers are byte-identical: the o= version stays.
    assert anchor.offer("call-1", "a", "b", offer) == again_b


def test_changed_crypto_rekeys_that_leg_only() -> None:
    anchor, relay = make(b_mode="required")
    anchor.offer("call-1", "a", "b", sdp(savp(SIPP_OFFER, crypto_line(1, KEY_A))))
    anchor.answer("call-1", "b", "a", sdp(savp(PBX_ANSWER, crypto_line(1, KEY_B))))
    before = spec(relay)
    new_key = bytes(range(50, 80))
    to_b = anchor.offer("call-1", "a", "b", sdp(savp(SIPP_OFFER, crypto_line(1, new_key))))
    after = spec(relay)
    assert after.a.srtp is not None
    assert before.a.srtp is not None
    assert after.a.srtp.receive_key == new_key
    assert after.a.srtp.send_key != before.a.srtp.send_key  # new answer key too
    assert after.b.srtp == before.b.srtp  # B's keys are B's own business
    assert before.b.srtp is not None
    assert [c.key for c in cryptos(to_b)] == [before.b.srtp.send_key]


def test_keys_never_cross_legs() -> None:
    anchor, _ = make(b_mode="required")
    to_b = anchor.offer("call-1", "a", "b", sdp(savp(SIPP_OFFER, crypto_line(1, KEY_A))))
    to_a = anchor.answer("call-1", "b", "a", sdp(savp(PBX_ANSWER, crypto_line(1, KEY_B))))
    assert base64.b64encode(KEY_A) not in to_b
    assert base64.b64encode(KEY_B) not in to_a
    assert {c.key for c in cryptos(to_b)}.isdisjoint({c.key for c in cryptos(to_a)})


def test_plain_calls_are_unchanged() -> None:
    anchor, relay = make()
    to_b = anchor.offer("call-1", "a", "b", sdp(SIPP_OFFER))
    anchor.answer("call-1", "b", "a", sdp(PBX_ANSWER))
    assert proto(to_b) == "RTP/AVP"
    assert spec(relay).a.srtp is None
    assert spec(relay).b.srtp is None
