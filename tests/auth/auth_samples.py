"""Shared helpers for the digest tests: requests, challenges and a fake trunk."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from sbc.auth.client import ClientAuth
from sbc.auth.server import AuthStatus, DigestServer
from sbc.sip.headers import Headers
from sbc.sip.message import Request, Response
from sbc.sip.uri import parse_uri

KEY = b"k" * 32
REALM = "carrier.example"
TRUNK_URI = "sip:+15551234@127.0.0.10:5060;transport=udp"


def request(method: str = "INVITE", uri: str = TRUNK_URI, body: bytes = b"") -> Request:
    headers = Headers(
        [
            ("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1"),
            ("From", "<sip:sbc@127.0.0.1>;tag=a"),
            ("To", f"<{uri}>"),
            ("Call-ID", "call-1"),
            ("CSeq", f"1 {method}"),
        ]
    )
    return Request(method, parse_uri(uri), headers, body)


def challenged(status: int, *values: str) -> Response:
    name = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
    return Response(status, headers=Headers([(name, v) for v in values]))


def counter_bytes() -> Callable[[int], bytes]:
    """Deterministic 'random' bytes: a new value on every call."""
    counter = itertools.count(1)
    return lambda n: next(counter).to_bytes(n, "big")


@dataclass
class FakeTrunk:
    """A UAS (401) or proxy (407) that challenges with a DigestServer."""

    server: DigestServer
    status: int = 407
    now: float = 1000.0
    results: list[AuthStatus] = field(default_factory=list)

    @property
    def header(self) -> str:
        return "Authorization" if self.status == 401 else "Proxy-Authorization"

    def handle(self, req: Request) -> Response:
        value = self.server.credentials_in(req, self.header)
        if value is None:
            return challenged(self.status, self.server.challenge(self.now))
        result = self.server.verify(req, value, self.now)
        self.results.append(result.status)
        if result.ok:
            return Response(200)
        stale = result.status is AuthStatus.STALE
        return challenged(self.status, self.server.challenge(self.now, stale=stale))


def exchange(client: ClientAuth, trunk: FakeTrunk, req: Request, limit: int = 10) -> list[int]:
    """Send ``req`` until a final answer the client will not retry; the statuses seen."""
    statuses: list[int] = []
    for _ in range(limit):
        response = trunk.handle(req)
        statuses.append(response.status)
        if response.status < 400 or not client.authorize(req, response):
            return statuses
    raise AssertionError(f"retry loop: {statuses}")
