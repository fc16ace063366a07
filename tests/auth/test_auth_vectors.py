"""The worked examples of RFC 7616 §3.9.1 and RFC 2617 §3.5, end to end.

Each Authorization value from the RFC is parsed and its response recomputed
from the password; the result must be the RFC's ``response``.
"""

from __future__ import annotations

import hashlib

import pytest

from sbc.auth.challenge import parse_challenges, parse_credentials
from sbc.auth.digest import DigestInput, find_algorithm, request_digest, user_secret

RFC7616_CHALLENGE = (
    'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={alg}, '
    'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
    'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
)
RFC7616_AUTHORIZATION = (
    'Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", '
    'algorithm={alg}, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", nc=00000001, '
    'cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", qop=auth, '
    'response="{response}", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
)
RFC2617_AUTHORIZATION = (
    'Digest username="Mufasa", realm="testrealm@host.com", '
    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth, '
    'nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", '
    'opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)


def recomputed(value: str, password: str, method: str = "GET") -> tuple[str, str]:
    """(the response the header carries, the one the password gives)."""
    credentials = parse_credentials(value)
    algorithm = find_algorithm(credentials.algorithm)
    assert algorithm is not None
    secret = user_secret(algorithm, credentials.username, credentials.realm, password)
    data = DigestInput(
        method,
        credentials.uri,
        credentials.nonce,
        credentials.qop,
        credentials.nc,
        credentials.cnonce,
    )
    return credentials.response, request_digest(algorithm, secret, data)


@pytest.mark.parametrize(
    ("alg", "response"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_mufasa_example(alg: str, response: str) -> None:
    value = RFC7616_AUTHORIZATION.format(alg=alg, response=response)
    given, computed = recomputed(value, "Circle of Life")
    assert given == computed == response


@pytest.mark.parametrize("alg", ["MD5", "SHA-256"])
def test_rfc7616_challenge_fields(alg: str) -> None:
    (challenge,) = parse_challenges(RFC7616_CHALLENGE.format(alg=alg))
    assert challenge.realm == "http-auth@example.org"
    assert challenge.nonce == "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
    assert challenge.opaque == "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
    assert challenge.qop == ("auth", "auth-int")
    assert challenge.answer_qop() == "auth"
    assert challenge.algorithm == alg
    assert not challenge.stale


def test_rfc2617_example() -> None:
    given, computed = recomputed(RFC2617_AUTHORIZATION, "Circle Of Life")
    assert given == computed == "6629fae49393a05397450978507c4ef1"


def test_wrong_password_gives_another_response() -> None:
    given, computed = recomputed(RFC2617_AUTHORIZATION, "Circle of Life")
    assert given != computed


def test_rfc2069_response_without_qop() -> None:
    """RFC 2069: response = H(H(A1) ":" nonce ":" H(A2)), computed independently here."""

    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()

    algorithm = find_algorithm(None)
    assert algorithm is not None
    secret = user_secret(algorithm, "u", "r", "p")
    data = DigestInput("REGISTER", "sip:r", "n1")
    expected = md5(f"{md5('u:r:p')}:n1:{md5('REGISTER:sip:r')}")
    assert request_digest(algorithm, secret, data) == expected


def test_sess_and_auth_int_follow_rfc7616_formulas() -> None:
    def sha(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()

    algorithm = find_algorithm("sha-256-SESS")
    assert algorithm is not None
    assert algorithm.session
    secret = user_secret(algorithm, "u", "r", "p")
    data = DigestInput("INVITE", "sip:b@h", "n", "auth-int", "00000002", "c", b"v=0\r\n")
    ha1 = sha(f"{sha('u:r:p')}:n:c")
    ha2 = sha(f"INVITE:sip:b@h:{hashlib.sha256(b'v=0' + bytes([13, 10])).hexdigest()}")
    assert request_digest(algorithm, secret, data) == sha(f"{ha1}:n:00000002:c:auth-int:{ha2}")
