"""Digest authentication benchmark: server verifications and client answers per second.

Prints one line:
    auth: <N> verifications/s, <N> authorizations/s (SHA-256, qop=auth); MD5: <N>, <N>

"verifications" is DigestServer.verify on a valid INVITE answer (parse, nonce
HMAC, two hashes for the user's H(A1)-bound response, replay table update);
every answer has its own cnonce, as live traffic does. "authorizations" is
ClientAuth.authorize on a fresh INVITE and its 407 (challenge parse, choice,
response, header write). Inputs are built outside the timed loops; the clock
is simulated. Compare ratios within one run: the machines are shared and noisy.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial

from sbc.auth.client import ClientAuth, DigestCredentials
from sbc.auth.server import DigestServer
from sbc.sip.headers import Headers
from sbc.sip.message import Request, Response
from sbc.sip.uri import parse_uri

REALM = "carrier.example"
USER, PASSWORD = "sbc", "pa55word"
BATCH = 2000
NOW = 1_000_000.0


def invite() -> Request:
    uri = "sip:+15551234@127.0.0.10:5060"
    headers = Headers(
        [
            ("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1"),
            ("From", "<sip:+15550000@127.0.0.1>;tag=a"),
            ("To", f"<{uri}>"),
            ("Call-ID", "bench"),
            ("CSeq", "1 INVITE"),
        ]
    )
    return Request("INVITE", parse_uri(uri), headers)


def timed_rate(prepare: Callable[[], list[Callable[[], None]]], seconds: float = 1.0) -> float:
    """Operations per second, timing only the calls ``prepare`` returns."""
    done, spent = 0, 0.0
    while spent < seconds:
        calls = prepare()
        start = time.perf_counter()
        for call in calls:
            call()
        spent += time.perf_counter() - start
        done += len(calls)
    return done / spent


def verifications(algorithm: str) -> float:
    server = DigestServer(REALM, b"k" * 32, {USER: PASSWORD}, algorithm=algorithm)
    client = ClientAuth(DigestCredentials(USER, PASSWORD, REALM))
    challenge = Response(407, headers=Headers([("Proxy-Authenticate", server.challenge(NOW))]))
    assert client.authorize(invite(), challenge)

    def verify(request: Request, value: str) -> None:
        if not server.verify(request, value, NOW).ok:
            raise AssertionError("verification failed")

    def prepare() -> list[Callable[[], None]]:
        calls: list[Callable[[], None]] = []
        for _ in range(BATCH):
            request = invite()
            client.preauthorize(request)
            calls.append(partial(verify, request, request.headers.get("Proxy-Authorization") or ""))
        return calls

    return timed_rate(prepare)


def authorizations(algorithm: str) -> float:
    server = DigestServer(REALM, b"k" * 32, {USER: PASSWORD}, algorithm=algorithm)
    client = ClientAuth(DigestCredentials(USER, PASSWORD, REALM))
    challenge = Response(407, headers=Headers([("Proxy-Authenticate", server.challenge(NOW))]))

    def authorize(request: Request) -> None:
        if not client.authorize(request, challenge):
            raise AssertionError("authorize refused")

    def prepare() -> list[Callable[[], None]]:
        return [partial(authorize, invite()) for _ in range(BATCH)]

    return timed_rate(prepare)


def main() -> None:
    sha = verifications("SHA-256"), authorizations("SHA-256")
    md5 = verifications("MD5"), authorizations("MD5")
    print(
        f"auth: {sha[0]:,.0f} verifications/s, {sha[1]:,.0f} authorizations/s "
        f"(SHA-256, qop=auth); MD5: {md5[0]:,.0f}, {md5[1]:,.0f}"
    )


if __name__ == "__main__":
    main()
