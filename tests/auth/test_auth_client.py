"""ClientAuth: answering 401/407 from a trunk without ever looping."""

from __future__ import annotations

import pytest
from auth_samples import KEY, REALM, challenged, counter_bytes, request

from sbc.auth.challenge import parse_credentials
from sbc.auth.client import ClientAuth, DigestCredentials, copy_credentials
from sbc.auth.digest import DigestInput, find_algorithm, request_digest, user_secret
from sbc.auth.server import AuthStatus, DigestServer
from sbc.sip.message import Request, Response

USER, PASSWORD = "trunk-user", "s3cret-pass"
MD5 = f'Digest realm="{REALM}", nonce="md5-nonce", algorithm=MD5, qop="auth"'
SHA = f'Digest realm="{REALM}", nonce="sha-nonce", algorithm=SHA-256, qop="auth"'


def client(realm: str | None = REALM, password: str = PASSWORD) -> ClientAuth:
    return ClientAuth(DigestCredentials(USER, password, realm), random_bytes=counter_bytes())


def server(**options: object) -> DigestServer:
    return DigestServer(REALM, KEY, {USER: PASSWORD}, **options)  # type: ignore[arg-type]


def sent(req: Request, header: str = "Proxy-Authorization") -> list[str]:
    return req.headers.get_all(header)


def test_401_is_answered_in_authorization_and_verifies() -> None:
    trunk = server()
    req = request("REGISTER", "sip:carrier.example")
    assert client().authorize(req, challenged(401, trunk.challenge(10.0)))
    (line,) = sent(req, "Authorization")
    assert sent(req) == []
    assert trunk.verify(req, line, 11.0).status is AuthStatus.OK


def test_407_is_answered_in_proxy_authorization_and_verifies() -> None:
    trunk = server(algorithm="MD5")
    req = request()
    assert client().authorize(req, challenged(407, trunk.challenge(10.0)))
    (line,) = sent(req)
    assert sent(req, "Authorization") == []
    credentials = parse_credentials(line)
    assert (credentials.username, credentials.uri) == (USER, str(req.uri))
    assert (credentials.qop, credentials.nc, credentials.algorithm) == ("auth", "00000001", "MD5")
    assert trunk.verify(req, line, 11.0).ok


def test_response_value_is_the_rfc_formula() -> None:
    req = request()
    assert client().authorize(req, challenged(407, SHA + ', opaque="op"'))
    credentials = parse_credentials(sent(req)[0])
    assert credentials.opaque == "op"  # echoed (RFC 7616 §3.4)
    algorithm = find_algorithm("SHA-256")
    assert algorithm is not None
    expected = request_digest(
        algorithm,
        user_secret(algorithm, USER, REALM, PASSWORD),
        DigestInput("INVITE", str(req.uri), "sha-nonce", "auth", "00000001", credentials.cnonce),
    )
    assert credentials.response == expected


def test_several_challenges_sha256_chosen() -> None:
    req = request()
    assert client().authorize(req, challenged(407, MD5, SHA))
    (line,) = sent(req)
    assert parse_credentials(line).algorithm == "SHA-256"
    assert parse_credentials(line).nonce == "sha-nonce"


@pytest.mark.parametrize(
    "challenge",
    [
        f'Digest realm="{REALM}", nonce="n", algorithm=SHA-1',
        f'Digest realm="{REALM}", nonce="n", algorithm=AKAv1-MD5',
        f'Basic realm="{REALM}"',
        "Digest garbage",
    ],
)
def test_unknown_algorithm_only_means_no_retry(challenge: str) -> None:
    req = request()
    assert not client().authorize(req, challenged(407, challenge))
    assert sent(req) == []


def test_no_credentials_for_the_realm_means_no_retry() -> None:
    req = request()
    other = SHA.replace(REALM, "elsewhere.example")
    assert not client().authorize(req, challenged(407, other))
    assert sent(req) == []
    assert client(realm=None).authorize(req, challenged(407, other))  # any-realm credentials


def test_only_401_and_407_are_answered() -> None:
    req = request()
    response = challenged(407, SHA)
    response.status = 403
    assert not client().authorize(req, response)


@pytest.mark.parametrize("method", ["ACK", "CANCEL"])
def test_ack_and_cancel_are_never_answered_but_copy_the_invite(method: str) -> None:
    auth = client()
    invite = request()
    assert auth.authorize(invite, challenged(407, SHA))
    other = request(method)
    assert not auth.authorize(other, challenged(407, SHA))
    assert not auth.preauthorize(other)
    copy_credentials(invite, other)
    assert sent(other) == sent(invite)


def test_nonce_count_increments_with_a_reused_nonce() -> None:
    auth = client()
    first = request()
    assert auth.authorize(first, challenged(407, SHA))
    second, third = request("BYE"), request("BYE")
    assert auth.preauthorize(second)
    assert auth.preauthorize(third)
    counts = [parse_credentials(sent(r)[0]).nc for r in (first, second, third)]
    assert counts == ["00000001", "00000002", "00000003"]
    cnonces = {parse_credentials(sent(r)[0]).cnonce for r in (first, second, third)}
    assert len(cnonces) == 3
    # A new challenge repeating the nonce continues the count; a new nonce restarts it.
    fourth = request()
    assert auth.authorize(fourth, challenged(407, SHA))
    assert parse_credentials(sent(fourth)[0]).nc == "00000004"
    fifth = request()
    assert auth.authorize(fifth, challenged(407, SHA.replace("sha-nonce", "other")))
    assert parse_credentials(sent(fifth)[0]).nc == "00000001"


def test_preauthorize_without_a_known_nonce_adds_nothing() -> None:
    req = request()
    assert not client().preauthorize(req)
    assert sent(req) == []


def test_stale_gives_exactly_one_retry() -> None:
    auth = client()
    req = request()
    assert auth.authorize(req, challenged(407, SHA))
    stale = SHA.replace("sha-nonce", "fresh-1") + ", stale=true"
    assert auth.authorize(req, challenged(407, stale))
    (line,) = sent(req)  # replaced, not added
    assert (parse_credentials(line).nonce, parse_credentials(line).nc) == ("fresh-1", "00000001")
    again = SHA.replace("sha-nonce", "fresh-2") + ", stale=true"
    assert not auth.authorize(req, challenged(407, again))
    assert sent(req) == [line]  # unchanged on refusal


def test_stale_repeating_the_same_nonce_is_refused() -> None:
    auth = client()
    req = request()
    assert auth.authorize(req, challenged(407, SHA))
    assert not auth.authorize(req, challenged(407, SHA + ", stale=true"))


def test_rejected_credentials_are_not_retried() -> None:
    auth = client(password="wrong")
    trunk = server()
    req = request()
    assert auth.authorize(req, challenged(407, trunk.challenge(10.0)))
    result = trunk.verify(req, sent(req)[0], 10.5)
    assert result.status is AuthStatus.FAILED
    assert not auth.authorize(req, challenged(407, trunk.challenge(10.5)))


def test_a_nonce_that_failed_is_never_answered_again() -> None:
    auth = client(password="wrong")
    req = request()
    assert auth.authorize(req, challenged(407, SHA))
    assert not auth.authorize(req, challenged(407, SHA))  # same nonce, not stale: rejected
    fresh = request()
    assert not auth.authorize(fresh, challenged(407, SHA))  # a new request, the failed nonce
    assert auth.authorize(fresh, challenged(407, SHA.replace("sha-nonce", "new")))


def test_preauthorized_nonce_forgotten_by_the_server_gets_one_fresh_answer() -> None:
    auth = client()
    assert auth.authorize(request(), challenged(407, SHA))
    req = request()
    assert auth.preauthorize(req)
    restarted = SHA.replace("sha-nonce", "after-restart")
    assert auth.authorize(req, challenged(407, restarted))
    assert parse_credentials(sent(req)[0]).nonce == "after-restart"
    assert not auth.authorize(req, challenged(407, restarted.replace("after", "again")))


def test_407_after_401_keeps_the_authorization() -> None:
    auth = client(realm=None)
    req = request()
    assert auth.authorize(req, challenged(401, SHA))
    proxy = SHA.replace(REALM, "proxy.example")
    assert auth.authorize(req, challenged(407, proxy))
    assert len(sent(req, "Authorization")) == 1
    assert parse_credentials(sent(req)[0]).realm == "proxy.example"


def test_two_realms_in_one_407_get_two_lines() -> None:
    auth = ClientAuth(
        [DigestCredentials("a", "pa", "one.example"), DigestCredentials("b", "pb", "two.example")]
    )
    req = request()
    response = challenged(
        407,
        'Digest realm="one.example", nonce="1", qop="auth"',
        'Digest realm="two.example", nonce="2", qop="auth"',
    )
    assert auth.authorize(req, response)
    users = sorted(parse_credentials(v).username for v in sent(req))
    assert users == ["a", "b"]


def test_other_realms_lines_are_kept_when_one_is_replaced() -> None:
    auth = client(realm=None)
    req = request()
    req.headers.add("Proxy-Authorization", "Digest foreign")
    assert auth.authorize(req, challenged(407, SHA))
    assert auth.authorize(req, challenged(407, SHA.replace("sha-nonce", "n2") + ", stale=true"))
    lines = sent(req)
    assert lines[0] == "Digest foreign"
    assert len(lines) == 2


def test_rfc2069_challenge_is_answered_without_qop_and_not_preauthorized() -> None:
    auth = client()
    req = request()
    assert auth.authorize(req, challenged(407, f'Digest realm="{REALM}", nonce="old"'))
    credentials = parse_credentials(sent(req)[0])
    assert (credentials.qop, credentials.nc, credentials.cnonce) == (None, None, None)
    assert credentials.algorithm is None  # not sent when the challenge did not name one
    assert not auth.preauthorize(request())


def test_auth_int_only_hashes_the_body() -> None:
    auth = client()
    body = b"v=0\r\n"
    req = request(body=body)
    assert auth.authorize(req, challenged(407, SHA.replace('"auth"', '"auth-int"')))
    credentials = parse_credentials(sent(req)[0])
    assert credentials.qop == "auth-int"
    algorithm = find_algorithm("SHA-256")
    assert algorithm is not None
    data = DigestInput(
        "INVITE", str(req.uri), "sha-nonce", "auth-int", "00000001", credentials.cnonce, body
    )
    secret = user_secret(algorithm, USER, REALM, PASSWORD)
    assert credentials.response == request_digest(algorithm, secret, data)


def test_secrets_stay_out_of_reprs() -> None:
    credentials = DigestCredentials(USER, PASSWORD, REALM)
    auth = ClientAuth(credentials)
    for text in (repr(credentials), str(credentials), repr(auth), f"{credentials.password}"):
        assert PASSWORD not in text
    assert credentials.password.reveal() == PASSWORD


@pytest.mark.parametrize(("username", "realm"), [("", None), ("a\r\nX: y", None), ("a", "r\n")])
def test_credentials_refuse_what_would_break_a_header(username: str, realm: str | None) -> None:
    with pytest.raises(ValueError, match="one line"):
        DigestCredentials(username, "p", realm)


def test_a_407_without_any_challenge_is_not_answered() -> None:
    response = Response(407)
    assert not client().authorize(request(), response)  # no challenge header at all


def test_a_trunk_inventing_realms_cannot_grow_the_state() -> None:
    auth = client(realm=None)
    for i in range(100):
        realm_challenge = f'Digest realm="r{i}", nonce="n{i}", qop="auth"'
        assert auth.authorize(request(), challenged(407, realm_challenge))
    req = request("BYE")
    assert auth.preauthorize(req)
    realms = [parse_credentials(v).realm for v in sent(req)]
    assert len(realms) == 32
    assert realms[-1] == "r99"  # the most recent are kept
