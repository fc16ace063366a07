"""DigestServer: stateless nonces, verdicts, replay protection."""

from __future__ import annotations

import base64

import pytest
from auth_samples import KEY, REALM, counter_bytes, request

from sbc.auth.challenge import Credentials, parse_challenges, parse_credentials
from sbc.auth.digest import DigestInput, find_algorithm, request_digest, user_secret
from sbc.auth.server import AuthStatus, DigestServer
from sbc.sip.message import Request

USERS = {"alice": "wonderland", "bob": "builder"}
NOW = 5000.0


def make_server(**options: object) -> DigestServer:
    return DigestServer(REALM, KEY, USERS, **options)  # type: ignore[arg-type]


def answer(
    srv: DigestServer,
    req: Request,
    nonce: str,
    *,
    username: str = "alice",
    password: str = "wonderland",
    nc: int = 1,
    cnonce: str = "c0ffee",
    qop: str | None = "auth",
    uri: str | None = None,
    realm: str = REALM,
    algorithm: str | None = None,
) -> str:
    """An Authorization value computed independently of the client module."""
    alg = find_algorithm(algorithm or srv.algorithm.name)
    assert alg is not None
    digest_uri = uri if uri is not None else str(req.uri)
    nc_text = f"{nc:08x}" if qop else None
    data = DigestInput(
        req.method, digest_uri, nonce, qop, nc_text, cnonce if qop else None, req.body
    )
    response = request_digest(alg, user_secret(alg, username, realm, password), data)
    return Credentials(
        username=username,
        realm=realm,
        nonce=nonce,
        uri=digest_uri,
        response=response,
        algorithm=algorithm or srv.algorithm.name,
        cnonce=cnonce if qop else None,
        qop=qop,
        nc=nc_text,
    ).format()


def nonce_of(challenge: str) -> str:
    (parsed,) = parse_challenges(challenge)
    return parsed.nonce


@pytest.fixture
def srv() -> DigestServer:
    return make_server()


def test_challenge_fields(srv: DigestServer) -> None:
    (challenge,) = parse_challenges(srv.challenge(NOW))
    assert (challenge.realm, challenge.algorithm, challenge.qop) == (REALM, "SHA-256", ("auth",))
    assert not challenge.stale
    (stale,) = parse_challenges(srv.challenge(NOW, stale=True))
    assert stale.stale
    assert stale.nonce != challenge.nonce  # a salt: two nonces in one millisecond differ


def test_valid_credentials(srv: DigestServer) -> None:
    req = request()
    result = srv.verify(req, answer(srv, req, nonce_of(srv.challenge(NOW))), NOW + 1)
    assert (result.status, result.username, result.ok) == (AuthStatus.OK, "alice", True)


def test_wrong_password_fails_without_revealing_anything(srv: DigestServer) -> None:
    req = request()
    nonce = nonce_of(srv.challenge(NOW))
    value = answer(srv, req, nonce, password="guess")
    result = srv.verify(req, value, NOW)
    assert result.status is AuthStatus.FAILED
    assert "wrong password" in result.reason
    expected = parse_credentials(answer(srv, req, nonce)).response
    for secret in ("wonderland", expected, "guess", parse_credentials(value).response):
        assert secret not in result.reason
        assert secret not in repr(result)
        assert secret not in repr(srv)


def test_unknown_user_fails(srv: DigestServer) -> None:
    req = request()
    value = answer(srv, req, nonce_of(srv.challenge(NOW)), username="mallory", password="x")
    result = srv.verify(req, value, NOW)
    assert result.status is AuthStatus.FAILED
    assert "unknown user" in result.reason


def test_expired_nonce_is_stale_only_with_the_right_password(srv: DigestServer) -> None:
    req = request()
    nonce = nonce_of(srv.challenge(NOW))
    later = NOW + srv.nonce_ttl + 1
    assert srv.verify(req, answer(srv, req, nonce), later).status is AuthStatus.STALE
    wrong = answer(srv, req, nonce, password="guess", cnonce="other")
    assert srv.verify(req, wrong, later).status is AuthStatus.FAILED
    assert srv.verify(req, answer(srv, req, nonce), NOW + srv.nonce_ttl).ok  # the boundary


def test_forged_nonces_fail(srv: DigestServer) -> None:
    req = request()
    real = nonce_of(srv.challenge(NOW))
    other_key = DigestServer(REALM, b"x" * 32, USERS)
    raw = bytearray(base64.urlsafe_b64decode(real + "="))
    raw[0] ^= 1  # claim another issue time
    tampered = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    forged = [nonce_of(other_key.challenge(NOW)), tampered, "x" * 43, real[:-1], "", "é" * 43]
    for nonce in forged:
        result = srv.verify(req, answer(srv, req, nonce), NOW)
        assert result.status is AuthStatus.FAILED, nonce
        assert result.reason == "nonce not issued by us"


def test_nonce_from_another_realm_fails() -> None:
    one = DigestServer("one.example", KEY, USERS)
    two = DigestServer("two.example", KEY, USERS)
    req = request()
    value = answer(two, req, nonce_of(one.challenge(NOW)), realm="two.example")
    assert two.verify(req, value, NOW).status is AuthStatus.FAILED


def test_nonces_are_stateless_across_instances(srv: DigestServer) -> None:
    twin = make_server()
    req = request()
    assert twin.verify(req, answer(srv, req, nonce_of(srv.challenge(NOW))), NOW).ok


def test_replayed_or_lower_nonce_count_fails(srv: DigestServer) -> None:
    req = request()
    nonce = nonce_of(srv.challenge(NOW))
    assert srv.verify(req, answer(srv, req, nonce, nc=2), NOW).ok
    replay = srv.verify(req, answer(srv, req, nonce, nc=2), NOW)
    assert replay.status is AuthStatus.FAILED
    assert "replayed" in replay.reason
    assert srv.verify(req, answer(srv, req, nonce, nc=1), NOW).status is AuthStatus.FAILED
    assert srv.verify(req, answer(srv, req, nonce, nc=3), NOW).ok
    assert srv.verify(req, answer(srv, req, nonce, nc=1, cnonce="new"), NOW).ok


def test_nonce_count_zero_fails(srv: DigestServer) -> None:
    req = request()
    value = answer(srv, req, nonce_of(srv.challenge(NOW)), nc=0)
    assert srv.verify(req, value, NOW).status is AuthStatus.FAILED


def test_uri_mismatch_fails_but_a_respelling_passes(srv: DigestServer) -> None:
    req = request(uri="sip:bob@127.0.0.10:5060;transport=udp")
    nonce = nonce_of(srv.challenge(NOW))
    result = srv.verify(req, answer(srv, req, nonce, uri="sip:carol@127.0.0.10:5060"), NOW)
    assert result.status is AuthStatus.FAILED
    assert "uri" in result.reason
    respelled = answer(srv, req, nonce, uri="SIP:bob@127.0.0.10:5060;TRANSPORT=udp")
    assert srv.verify(req, respelled, NOW).ok
    junk = answer(srv, req, nonce, uri="not a uri", cnonce="2")
    assert srv.verify(req, junk, NOW).status is AuthStatus.FAILED


def test_method_is_part_of_the_answer(srv: DigestServer) -> None:
    invite = request("INVITE")
    value = answer(srv, invite, nonce_of(srv.challenge(NOW)))
    assert srv.verify(request("BYE"), value, NOW).status is AuthStatus.FAILED


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"realm": "other.example"}, "wrong realm"),
        ({"algorithm": "MD5"}, "not offered"),
        ({"qop": None}, "qop=auth required"),
    ],
)
def test_field_mismatches_fail(srv: DigestServer, change: dict[str, object], reason: str) -> None:
    req = request()
    value = answer(srv, req, nonce_of(srv.challenge(NOW)), **change)  # type: ignore[arg-type]
    result = srv.verify(req, value, NOW)
    assert result.status is AuthStatus.FAILED
    assert reason in result.reason


@pytest.mark.parametrize("value", ["", "Digest", "Basic YTpi", 'Digest username="a\n"', "x" * 9000])
def test_malformed_credentials_fail(srv: DigestServer, value: str) -> None:
    result = srv.verify(request(), value, NOW)
    assert result.status is AuthStatus.FAILED
    assert result.reason.startswith("malformed credentials")


def test_nonce_from_the_future_fails(srv: DigestServer) -> None:
    req = request()
    nonce = nonce_of(srv.challenge(NOW + 3600))
    assert srv.verify(req, answer(srv, req, nonce), NOW).status is AuthStatus.FAILED
    nonce = nonce_of(srv.challenge(NOW + 5))  # a node with its clock a little ahead
    assert srv.verify(req, answer(srv, req, nonce), NOW).ok


def test_replay_table_is_bounded_and_forgetting_never_trusts() -> None:
    srv = make_server(max_tracked=2)
    req = request()
    first = nonce_of(srv.challenge(NOW))
    assert srv.verify(req, answer(srv, req, first), NOW).ok
    for cnonce in ("a", "b"):
        nonce = nonce_of(srv.challenge(NOW + 1))
        assert srv.verify(req, answer(srv, req, nonce, cnonce=cnonce), NOW + 1).ok
    assert srv.tracked() == 2
    # The first (nonce, cnonce) was evicted: its replay must not pass.
    replay = srv.verify(req, answer(srv, req, first), NOW + 1)
    assert replay.status is AuthStatus.STALE
    fresh = nonce_of(srv.challenge(NOW + 2))
    assert srv.verify(req, answer(srv, req, fresh), NOW + 2).ok


def test_expired_entries_are_dropped(srv: DigestServer) -> None:
    req = request()
    for i in range(5):
        nonce = nonce_of(srv.challenge(NOW))
        assert srv.verify(req, answer(srv, req, nonce, cnonce=str(i)), NOW).ok
    assert srv.tracked() == 5
    later = NOW + srv.nonce_ttl + 10
    nonce = nonce_of(srv.challenge(later))
    assert srv.verify(req, answer(srv, req, nonce), later).ok
    assert srv.tracked() == 1


def test_without_qop_each_nonce_is_good_once() -> None:
    srv = make_server(qop=False, algorithm="MD5")
    (challenge,) = parse_challenges(srv.challenge(NOW))
    assert challenge.qop == ()
    req = request()
    value = answer(srv, req, challenge.nonce, qop=None)
    assert srv.verify(req, value, NOW).ok
    assert srv.verify(req, value, NOW).status is AuthStatus.STALE


def test_credentials_in_picks_our_realm() -> None:
    srv = make_server()
    req = request()
    ours = answer(srv, req, nonce_of(srv.challenge(NOW)))
    req.headers.add("Proxy-Authorization", ours.replace(REALM, "elsewhere"))
    req.headers.add("Proxy-Authorization", ours)
    assert srv.credentials_in(req, "Proxy-Authorization") == ours
    assert srv.credentials_in(req) is None


def test_random_bytes_are_injectable() -> None:
    one = make_server(random_bytes=counter_bytes())
    two = make_server(random_bytes=counter_bytes())
    assert one.challenge(NOW) == two.challenge(NOW)


@pytest.mark.parametrize(
    "options",
    [
        {"algorithm": "SHA-1"},
        {"algorithm": "MD5-sess", "qop": False},
        {"nonce_ttl": 0},
        {"max_tracked": 0},
    ],
)
def test_bad_configuration_is_refused(options: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"\w"):
        make_server(**options)


@pytest.mark.parametrize(("realm", "key"), [("", KEY), ("a\nb", KEY), (REALM, b"short")])
def test_bad_realm_or_key_is_refused(realm: str, key: bytes) -> None:
    with pytest.raises(ValueError, match=r"\w"):
        DigestServer(realm, key, USERS)
