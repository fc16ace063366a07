"""Parsing and formatting of challenges and credentials (RFC 3261 §25.1, RFC 7235 §4.1)."""

from __future__ import annotations

import pytest

from sbc.auth.challenge import (
    Challenge,
    Credentials,
    parse_challenges,
    parse_credentials,
    select_challenges,
    try_parse_credentials,
)
from sbc.sip.errors import ParseError


def test_quoted_strings_are_unescaped() -> None:
    (challenge,) = parse_challenges(r'Digest realm="a \"b\" \\c", nonce="n\,1"')
    assert challenge.realm == 'a "b" \\c'
    assert challenge.nonce == "n,1"


def test_commas_inside_quotes_do_not_split() -> None:
    (challenge,) = parse_challenges('Digest realm="x, Digest y", nonce="1", qop="auth,auth-int"')
    assert challenge.realm == "x, Digest y"
    assert challenge.qop == ("auth", "auth-int")


def test_names_are_case_insensitive_and_whitespace_tolerated() -> None:
    (challenge,) = parse_challenges('dIgEsT  REALM = "r" ,NONCE=abc ,  Stale = TRUE,,')
    assert (challenge.realm, challenge.nonce, challenge.stale) == ("r", "abc", True)


def test_several_challenges_in_one_value_and_other_schemes_skipped() -> None:
    value = (
        'Basic realm="b", Negotiate YII+/==, Digest realm="r", nonce="1", algorithm=MD5, '
        'Digest realm="r", nonce="2", algorithm=SHA-256, Bearer'
    )
    assert [c.nonce for c in parse_challenges(value)] == ["1", "2"]


def test_select_prefers_sha256_over_md5_in_any_order() -> None:
    md5 = 'Digest realm="r", nonce="m", algorithm=MD5, qop="auth"'
    sha = 'Digest realm="r", nonce="s", algorithm=SHA-256, qop="auth"'
    assert [c.nonce for c in select_challenges([md5, sha])] == ["s"]
    assert [c.nonce for c in select_challenges([sha, md5])] == ["s"]
    assert [c.nonce for c in select_challenges([f"{md5}, {sha}"])] == ["s"]


def test_select_keeps_one_challenge_per_realm() -> None:
    values = [
        'Digest realm="a", nonce="1"',
        'Digest realm="b", nonce="2", algorithm=SHA-256',
        'Digest realm="a", nonce="3", algorithm=MD5',
    ]
    assert [(c.realm, c.nonce) for c in select_challenges(values)] == [("a", "1"), ("b", "2")]


@pytest.mark.parametrize(
    "value",
    [
        'Digest realm="r", nonce="1", algorithm=SHA-1',  # unknown algorithm
        'Digest realm="r", nonce="1", qop="auth-conf"',  # no qop we know
        'Digest realm="r", nonce="1", algorithm=MD5-sess',  # -sess without qop: no cnonce
        'Basic realm="r"',
        'Digest realm="r", nonce="1", realm="s"',  # duplicate parameter
        'Digest realm="r, nonce="1"',  # unterminated quote
    ],
)
def test_select_leaves_out_what_cannot_be_answered(value: str) -> None:
    assert select_challenges([value]) == []


def test_a_malformed_line_does_not_hide_a_good_one() -> None:
    good = 'Digest realm="r", nonce="1"'
    assert [c.nonce for c in select_challenges(['Digest realm="', good])] == ["1"]


@pytest.mark.parametrize(
    "value",
    [
        'realm="r", nonce="1"',  # parameter before any scheme
        'Digest realm="r" nonce="1"',  # missing comma
        'Digest realm="r\nInjected: yes", nonce="1"',  # line break in a value
        'Digest realm="r", nonce="\\\x00"',  # escaped control character
        "Digest realm=, nonce=1",  # empty value
        'Digest realm=a"b, nonce=1',  # quote inside a token
        'Digest nonce="1"',  # no realm
        'Digest realm="r"',  # no nonce
        "Digest realm=r, nonce=1, @=2",  # not a token
        "Digest " + "a=b, " * 3000,  # over the length bound
    ],
)
def test_malformed_challenges_raise_parse_error(value: str) -> None:
    with pytest.raises(ParseError):
        parse_challenges(value)


def test_challenge_format_round_trips() -> None:
    challenge = Challenge(
        realm='r "1"', nonce="n", algorithm="SHA-256", qop=("auth",), opaque="o", stale=True
    )
    text = challenge.format()
    assert text.startswith("Digest ")
    assert 'qop="auth"' in text
    assert "stale=true" in text
    assert parse_challenges(text) == [challenge]


CREDENTIALS = (
    'Digest username="alice", realm="r", nonce="n", uri="sip:bob@h", '
    'response="abc", algorithm=SHA-256, cnonce="c", qop=auth, nc=0000000a, opaque="o"'
)


def test_credentials_parse() -> None:
    credentials = parse_credentials(CREDENTIALS)
    assert credentials == Credentials(
        username="alice",
        realm="r",
        nonce="n",
        uri="sip:bob@h",
        response="abc",
        algorithm="SHA-256",
        cnonce="c",
        qop="auth",
        nc="0000000a",
        opaque="o",
    )
    assert credentials.nonce_count == 10


def test_credentials_format_round_trips() -> None:
    credentials = parse_credentials(CREDENTIALS)
    text = credentials.format()
    # RFC 3261 §25.1: qop and nc are tokens, the others quoted-strings.
    assert "qop=auth" in text
    assert "nc=0000000a" in text
    assert 'uri="sip:bob@h"' in text
    assert parse_credentials(text) == credentials
    odd = Credentials(username='a"\\b', realm="r", nonce="n", uri="sip:h", response="x")
    assert parse_credentials(odd.format()) == odd


@pytest.mark.parametrize(
    "value",
    [
        "Basic dXNlcjpwYXNz",
        'Digest realm="r", nonce="n", uri="u", response="x"',  # no username
        'Digest username="a", realm="r", nonce="n", uri="u"',  # no response
        CREDENTIALS.replace("nc=0000000a", "nc=10"),  # nc must be 8 hex digits
        CREDENTIALS.replace(', cnonce="c"', ""),  # qop without cnonce
        CREDENTIALS + ", " + CREDENTIALS,  # two credentials in one line
        "",
    ],
)
def test_malformed_credentials(value: str) -> None:
    with pytest.raises(ParseError):
        parse_credentials(value)
    assert try_parse_credentials(value) is None
