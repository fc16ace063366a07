"""SDES a=crypto parsing, formatting, key generation and answer choice (RFC 4568)."""

from __future__ import annotations

import base64
import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sbc.media.control import Endpoint, SideSpec, SrtpKeys
from sbc.media.sdes import (
    SUITES,
    SUITES_BY_NAME,
    CryptoAttribute,
    SdesError,
    answer_for,
    choose,
    generate_key,
    our_offer,
    read_crypto,
)
from sbc.media.srtp import PROFILES, SrtpContext

# RFC 4568 §9.1's own example.
RFC_EXAMPLE = "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4"
KEY30 = base64.b64encode(bytes(range(30))).decode()


def test_rfc_example_parses_and_formats_back() -> None:
    attribute = CryptoAttribute.parse(RFC_EXAMPLE)
    assert attribute.tag == 1
    assert attribute.suite == "AES_CM_128_HMAC_SHA1_80"
    assert attribute.key == base64.b64decode("PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR")
    assert attribute.lifetime == "2^20"
    assert attribute.mki == "1:4"
    assert attribute.format() == RFC_EXAMPLE
    assert not attribute.usable  # MKI is not supported: we pick another line


def test_plain_line_is_usable_and_round_trips() -> None:
    value = f"7 AES_CM_128_HMAC_SHA1_32 inline:{KEY30}"
    attribute = CryptoAttribute.parse(value)
    assert attribute.usable
    assert attribute.key == bytes(range(30))
    assert attribute.format() == value


def test_gcm_suites_have_twelve_octet_salts() -> None:
    assert SUITES_BY_NAME["AEAD_AES_128_GCM"].material_length == 28
    assert SUITES_BY_NAME["AEAD_AES_256_GCM"].material_length == 44
    key = base64.b64encode(bytes(44)).decode()
    assert CryptoAttribute.parse(f"2 AEAD_AES_256_GCM inline:{key}").usable


@pytest.mark.parametrize(
    "value",
    [
        "",
        "1 AES_CM_128_HMAC_SHA1_80",
        f"x AES_CM_128_HMAC_SHA1_80 inline:{KEY30}",
        f"1234567890 AES_CM_128_HMAC_SHA1_80 inline:{KEY30}",
        f"1 AES_CM_128_HMAC_SHA1_80 uri:{KEY30}",
        "1 AES_CM_128_HMAC_SHA1_80 inline:not*base64!",
        "1 AES_CM_128_HMAC_SHA1_80 inline:" + base64.b64encode(bytes(29)).decode(),
        f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30}|2^x",
        f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30}|1:4|2^20",
        f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30}|a:b",
        f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30}|1|2|3",
        f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30};inline:{KEY30}",
        "1 AES_CM_128_HMAC_SHA1_80 inline:\u0661\u0662",
        "\u0661 AES_CM_128_HMAC_SHA1_80 inline:" + KEY30,
    ],
)
def test_hostile_values_raise_sdes_error(value: str) -> None:
    with pytest.raises(SdesError):
        CryptoAttribute.parse(value)


@given(st.text(max_size=200))
def test_parse_never_raises_anything_but_sdes_error(value: str) -> None:
    with contextlib.suppress(SdesError):
        CryptoAttribute.parse(value)


def test_unknown_suite_is_kept_but_not_usable() -> None:
    attribute = CryptoAttribute.parse("3 F8_128_HMAC_SHA1_80 inline:" + KEY30)
    assert not attribute.usable


def test_session_params_make_a_line_unusable() -> None:
    attribute = CryptoAttribute.parse(f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30} UNENCRYPTED_SRTP")
    assert attribute.session_params == ("UNENCRYPTED_SRTP",)
    assert not attribute.usable


def test_generated_keys_are_fresh_and_sized() -> None:
    for suite in SUITES:
        first, second = generate_key(suite), generate_key(suite)
        assert len(first) == suite.material_length
        assert first != second


def test_offer_lists_every_suite_with_its_own_key() -> None:
    offer = our_offer()
    assert [a.tag for a in offer] == [1, 2, 3, 4]
    assert [a.suite for a in offer] == [s.name for s in SUITES]
    assert len({a.key for a in offer}) == 4
    assert all(a.usable for a in offer)
    assert set(PROFILES) == {s.name for s in SUITES}


def test_answer_takes_first_usable_line_with_same_tag_and_new_key() -> None:
    offered = read_crypto(
        [
            "1 F8_128_HMAC_SHA1_80 inline:" + KEY30,
            "garbage",
            f"5 AES_CM_128_HMAC_SHA1_32 inline:{KEY30}",
            f"6 AES_CM_128_HMAC_SHA1_80 inline:{KEY30}",
        ]
    )
    assert len(offered) == 3  # the malformed line is skipped
    chosen = choose(offered)
    assert chosen is not None
    assert chosen.tag == 5
    answer = answer_for(chosen)
    assert (answer.tag, answer.suite) == (5, "AES_CM_128_HMAC_SHA1_32")
    assert answer.key != chosen.key
    assert len(answer.key) == 30


def test_no_usable_line_means_no_answer() -> None:
    assert choose(read_crypto(["1 F8_128_HMAC_SHA1_80 inline:" + KEY30])) is None
    assert choose([]) is None


def test_keys_never_in_repr() -> None:
    secret = bytes(range(30))
    attribute = CryptoAttribute(1, "AES_CM_128_HMAC_SHA1_80", secret)
    keys = SrtpKeys("AES_CM_128_HMAC_SHA1_80", secret, secret[::-1])
    spec = SideSpec(Endpoint("127.0.0.1", 4000), srtp=keys)
    encoded = base64.b64encode(secret).decode()
    for text in (repr(attribute), repr(keys), repr(spec), repr(SrtpContext(keys))):
        assert encoded not in text
        assert repr(secret) not in text
        assert secret.hex() not in text
