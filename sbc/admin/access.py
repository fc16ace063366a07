"""Who may use the admin API, decided before routing (ASGI middleware).

With a token, every request but those to :data:`OPEN_PATHS` needs
``Authorization: Bearer <token>`` (RFC 6750 §2.1), compared in constant
time. The check runs before routing, so an unauthenticated client learns
nothing, not even which paths exist.

Without a token (allowed on a loopback bind only, see
:func:`sbc.admin.server.check_bind`) the API is open to local clients, and
only requests whose ``Host`` is a loopback name are served: a web page on
the same machine cannot reach it through DNS rebinding.

Failed tokens are counted per client address (:mod:`sbc.admin.throttle`):
past its burst a client gets 429 with ``Retry-After`` (RFC 6585 §4, RFC 9110
§10.2.3) and its token is not even looked at, so guessing gains nothing.

Refusals are problem documents (:mod:`sbc.admin.problems`): 401 with a
``WWW-Authenticate`` challenge, 429, or 421 for a foreign ``Host``.
"""

from __future__ import annotations

import hmac
import ipaddress
import math
import time
from collections.abc import Callable
from http import HTTPStatus

import structlog
from fastapi import Response
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from sbc.admin.problems import problem_response
from sbc.admin.throttle import FailureThrottle, client_key

log = structlog.get_logger("sbc.admin")

OPEN_PATHS = frozenset({"/health"})  # liveness probes carry no credentials


def is_loopback_host(host: str) -> bool:
    """``localhost`` (RFC 6761 §6.3) or a loopback address (127.0.0.0/8, ::1)."""
    name = host.strip().strip("[]").rstrip(".").lower()
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def _host_of(header: str) -> str:
    """The host part of a ``Host`` header (RFC 9110 §7.2): ``[v6]:port`` or ``name:port``."""
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rpartition(":")[0] if header.count(":") == 1 else header


class AccessGuard:
    """ASGI middleware run before routing: bearer token, or loopback ``Host`` when open."""

    def __init__(
        self,
        app: ASGIApp,
        token: str | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.token = token.encode() if token is not None else None
        self.clock = clock
        self.throttle = FailureThrottle()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is None:
            await self.app(scope, receive, send)
        else:
            await refusal(scope, receive, send)

    def _refusal(self, scope: Scope) -> Response | None:
        headers = Headers(scope=scope)
        if self.token is None:
            if is_loopback_host(_host_of(headers.get("host", ""))):
                return None
            return problem_response(
                HTTPStatus.MISDIRECTED_REQUEST, "the open admin API answers loopback names only"
            )
        if scope["path"] in OPEN_PATHS:
            return None
        peer = scope.get("client")
        client = client_key(peer[0]) if peer else "unknown"
        now = self.clock()
        wait = self.throttle.retry_after(client, now)
        if wait > 0:
            return problem_response(
                HTTPStatus.TOO_MANY_REQUESTS,
                "too many failed bearer tokens from this address: retry later",
                headers={"Retry-After": str(math.ceil(wait))},
            )
        refusal = self._token_refusal(headers, self.token)
        if refusal is not None and self.throttle.failed(client, now):
            log.warning("admin.auth_throttled", client=client, burst=self.throttle.burst)
        return refusal

    @staticmethod
    def _token_refusal(headers: Headers, token: bytes) -> Response | None:
        scheme, _, credentials = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            return problem_response(
                HTTPStatus.UNAUTHORIZED,
                "a bearer token is required",
                headers={"WWW-Authenticate": 'Bearer realm="sbc-admin"'},
            )
        if not hmac.compare_digest(credentials.strip().encode(), token):
            return problem_response(
                HTTPStatus.UNAUTHORIZED,
                "the bearer token is not valid",
                headers={"WWW-Authenticate": 'Bearer realm="sbc-admin", error="invalid_token"'},
            )
        return None
