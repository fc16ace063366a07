"""Hostile header values: the parsers raise ParseError and nothing else; the
client and server never raise on what a peer sends."""

from __future__ import annotations

import contextlib

from auth_samples import KEY, REALM, challenged, request
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sbc.auth.challenge import parse_challenges, parse_credentials, select_challenges
from sbc.auth.client import ClientAuth, DigestCredentials
from sbc.auth.server import DigestServer
from sbc.sip.errors import ParseError

FUZZ = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SEEDS = [
    'Digest realm="r", nonce="n", algorithm=SHA-256, qop="auth,auth-int", opaque="o"',
    'Digest username="u", realm="r", nonce="n", uri="sip:a@b", response="0f", '
    'cnonce="c", qop=auth, nc=00000001, algorithm=MD5',
    'Basic realm="x", Negotiate YII+/==, Digest realm="a\\"b", nonce="1", stale=true',
]
PIECES = ['"', "\\", ",", "=", " ", "\t", "\r\n", "\x00", "Digest ", "é", "realm", "==", '\\"']
SERVER = DigestServer(REALM, KEY, {"u": "p"})


@st.composite
def mutated(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 5))):
        pos = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(["insert", "delete", "truncate", "dup"]))
        if action == "insert":
            text = text[:pos] + draw(st.sampled_from(PIECES)) + text[pos:]
        elif action == "delete":
            text = text[:pos] + text[pos + draw(st.integers(1, 6)) :]
        elif action == "truncate":
            text = text[:pos]
        else:
            text = text[:pos] + text
    return text


def parse_or_reject(text: str) -> None:
    for parse in (parse_challenges, parse_credentials):
        with contextlib.suppress(ParseError):
            parse(text)
    select_challenges([text])


@FUZZ
@given(st.text(max_size=200))
@example("Digest realm=")
@example('Digest realm="\\')
@example("Negotiate =")
@example(",,,,")
def test_random_text_raises_only_parse_error(text: str) -> None:
    parse_or_reject(text)


@FUZZ
@given(mutated())
def test_mutated_headers_raise_only_parse_error(text: str) -> None:
    parse_or_reject(text)


@FUZZ
@given(mutated())
@example('Digest username="\udcff", realm="r\udcfe", nonce="n", uri="sip:a@b", response="\udcff"')
@example('Digest realm="\udcff", nonce="\udcfe", qop="auth"')
def test_client_and_server_never_raise(text: str) -> None:
    auth = ClientAuth(DigestCredentials("u", "p"))
    req = request()
    auth.authorize(req, challenged(407, text))
    auth.authorize(req, challenged(401, text))
    auth.preauthorize(request("BYE"))
    SERVER.verify(req, text, 100.0)


@FUZZ
@given(
    st.text(st.characters(blacklist_categories=["Cs", "Cc"]), min_size=1),
    st.text(st.characters(blacklist_categories=["Cs", "Cc"]), max_size=40),
)
def test_any_printable_realm_and_nonce_round_trip(realm: str, nonce: str) -> None:
    """What we quote comes back unchanged through the parser (quoted-pair escapes)."""
    text = f"Digest realm={_quote(realm)}, nonce={_quote(nonce)}"
    (challenge,) = parse_challenges(text)
    assert (challenge.realm, challenge.nonce) == (realm, nonce)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
