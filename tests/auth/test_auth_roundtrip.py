"""ClientAuth against DigestServer: calls and registrations through a challenging trunk."""

from __future__ import annotations

import pytest
from auth_samples import KEY, REALM, FakeTrunk, exchange, request

from sbc.auth.client import ClientAuth, DigestCredentials
from sbc.auth.server import AuthStatus, DigestServer

USER, PASSWORD = "sbc", "pa55word"


def trunk(status: int, algorithm: str = "SHA-256", qop: bool = True) -> FakeTrunk:
    server = DigestServer(REALM, KEY, {USER: PASSWORD}, algorithm=algorithm, qop=qop)
    return FakeTrunk(server, status)


def client(password: str = PASSWORD) -> ClientAuth:
    return ClientAuth(DigestCredentials(USER, password, REALM))


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256", "SHA-512-256", "MD5-sess", "SHA-256-sess"])
@pytest.mark.parametrize("status", [401, 407])
def test_round_trip_with_qop(algorithm: str, status: int) -> None:
    peer = trunk(status, algorithm)
    assert exchange(client(), peer, request()) == [status, 200]
    assert peer.results == [AuthStatus.OK]


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
@pytest.mark.parametrize("status", [401, 407])
def test_round_trip_without_qop(algorithm: str, status: int) -> None:
    peer = trunk(status, algorithm, qop=False)
    assert exchange(client(), peer, request()) == [status, 200]


@pytest.mark.parametrize("status", [401, 407])
def test_wrong_password_is_a_clear_failure_without_a_loop(status: int) -> None:
    peer = trunk(status)
    assert exchange(client("wrong"), peer, request()) == [status, status]
    assert peer.results == [AuthStatus.FAILED]


def test_register_refresh_is_preauthorized() -> None:
    peer = trunk(401)
    auth = client()
    assert exchange(auth, peer, request("REGISTER", "sip:carrier.example")) == [401, 200]
    refresh = request("REGISTER", "sip:carrier.example")
    assert auth.preauthorize(refresh)
    peer.now += 60
    assert exchange(auth, peer, refresh) == [200]
    assert peer.results == [AuthStatus.OK, AuthStatus.OK]


def test_expired_nonce_costs_one_stale_retry() -> None:
    peer = trunk(401)
    auth = client()
    assert exchange(auth, peer, request("REGISTER", "sip:carrier.example")) == [401, 200]
    peer.now += peer.server.nonce_ttl + 1
    refresh = request("REGISTER", "sip:carrier.example")
    assert auth.preauthorize(refresh)
    assert exchange(auth, peer, refresh) == [401, 200]
    assert peer.results[-2:] == [AuthStatus.STALE, AuthStatus.OK]


def test_server_restart_with_a_new_key_costs_one_retry() -> None:
    peer = trunk(407)
    auth = client()
    assert exchange(auth, peer, request()) == [407, 200]
    peer.server = DigestServer(REALM, b"n" * 32, {USER: PASSWORD})
    bye = request("BYE")
    assert auth.preauthorize(bye)
    assert exchange(auth, peer, bye) == [407, 200]


def test_a_server_always_saying_stale_cannot_make_a_loop() -> None:
    class AlwaysStale(FakeTrunk):
        def handle(self, req):  # type: ignore[no-untyped-def]
            response = super().handle(req)
            if response.status == 200:
                self.now += self.server.nonce_ttl + 1  # every nonce is old on arrival
                return super().handle(req)
            return response

    peer = AlwaysStale(DigestServer(REALM, KEY, {USER: PASSWORD}), 407)
    statuses = exchange(client(), peer, request())
    assert statuses[-1] == 407
    assert len(statuses) <= 3


def test_many_calls_share_the_nonce_with_rising_counts() -> None:
    peer = trunk(407)
    auth = client()
    assert exchange(auth, peer, request()) == [407, 200]
    for _ in range(20):
        invite = request()
        assert auth.preauthorize(invite)
        assert exchange(auth, peer, invite) == [200]
    assert peer.results.count(AuthStatus.OK) == 21
