"""Challenging peers and checking their digest answers (RFC 3261 §22.2-22.3, RFC 7616).

Nonces are stateless: ``base64url(time ‖ salt ‖ HMAC(secret_key, realm ‖ time ‖ salt))``,
so any process holding the key can check a nonce it did not issue, and a
forged or altered nonce fails. The one state kept is for replay protection:
the highest nonce count seen per (nonce, cnonce) of live nonces (RFC 7616
§3.4: nc counts the requests sent with a nonce), in a bounded table. When
the table overflows, answers with nonces older than what was forgotten are
told ``stale`` (the client re-authenticates with a fresh nonce) rather than
trusted: forgetting never opens a replay window.

Order of checks: an expired nonce is reported ``stale`` only when the
password is right (RFC 7616 §3.3: stale means the credentials were good), so
a client with a wrong password always sees a plain failure. Responses are
compared in constant time; an unknown user costs the same hashing as a known
one. Failure reasons name the problem and, at most, the username — never the
password or the expected response — and are meant for logs and the guard
(:meth:`sbc.guard.guard.Guard.record_auth_failure`), not for the peer.

``now`` is the caller's clock; for nonces checked by several processes it
must be a shared wall clock (``time.time()``), not a per-process monotonic one.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import struct
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum

from sbc.auth.challenge import Challenge, Credentials, credentials_for_realm, parse_credentials
from sbc.auth.digest import (
    QOP_AUTH,
    Algorithm,
    DigestInput,
    find_algorithm,
    request_digest,
    user_secret,
)
from sbc.auth.secrets import Secret
from sbc.sip.errors import ParseError
from sbc.sip.message import Request
from sbc.sip.uri import Uri, parse_uri

_TIME = struct.Struct(">Q")  # milliseconds
_SALT_BYTES = 8
_MAC_BYTES = 16
_NONCE_BYTES = _TIME.size + _SALT_BYTES + _MAC_BYTES
_NONCE_CHARS = 43  # base64 of 32 bytes, unpadded
_MIN_KEY_BYTES = 16
#: A nonce minted by a node whose clock runs ahead is still good within this skew.
MAX_CLOCK_SKEW_S = 30.0
_SHOWN_CHARS = 64


class AuthStatus(Enum):
    OK = "ok"
    STALE = "stale"  # right credentials, old nonce: challenge again with stale=true
    FAILED = "failed"  # wrong credentials or malformed: challenge again, count a failure


@dataclass(frozen=True, slots=True)
class AuthResult:
    """The verdict on one request's credentials."""

    status: AuthStatus
    reason: str
    username: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is AuthStatus.OK


def _failed(reason: str, username: str | None = None) -> AuthResult:
    return AuthResult(AuthStatus.FAILED, reason, username)


def _shown(text: str) -> str:
    """A peer-supplied string made safe for a log line (printable, bounded)."""
    clean = "".join(ch if ch.isprintable() else "?" for ch in text[:_SHOWN_CHARS])
    return repr(clean)


@dataclass(slots=True)
class _Seen:
    nonce_count: int
    expires: float
    nonce_time: float


class DigestServer:
    """Digest authentication of requests for one realm (a trunk or an interface)."""

    def __init__(
        self,
        realm: str,
        secret_key: bytes,
        users: Mapping[str, str | Secret],
        nonce_ttl: float = 300.0,
        algorithm: str = "SHA-256",
        *,
        qop: bool = True,
        max_tracked: int = 65536,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        found = find_algorithm(algorithm)
        if found is None:
            raise ValueError(f"unsupported digest algorithm {algorithm!r}")
        if found.session and not qop:
            raise ValueError("a -sess algorithm needs qop (the cnonce is in A1)")
        if not realm or any(ch < " " or ch == "\x7f" for ch in realm):
            raise ValueError("realm must be non-empty text on one line")
        if len(secret_key) < _MIN_KEY_BYTES:
            raise ValueError(f"secret_key must be at least {_MIN_KEY_BYTES} bytes")
        if nonce_ttl <= 0 or max_tracked < 1:
            raise ValueError("nonce_ttl and max_tracked must be positive")
        self.realm = realm
        self.algorithm: Algorithm = found
        self.nonce_ttl = nonce_ttl
        self.qop = qop
        self._key = secret_key
        self._random_bytes = random_bytes
        # Only H(user:realm:password) is kept: the passwords are not needed again.
        self._secrets = {
            name: user_secret(found, name, realm, _text(password))
            for name, password in users.items()
        }
        self._decoy = user_secret(found, "", realm, self._random_bytes(16).hex())
        self._seen: OrderedDict[tuple[str, str], _Seen] = OrderedDict()
        self._max_tracked = max_tracked
        self._forgotten_before = float("-inf")

    def __repr__(self) -> str:
        name, users = self.algorithm.name, len(self._secrets)
        return f"<DigestServer realm={self.realm!r} {name} users={users}>"

    # --- challenges and nonces ---

    def challenge(self, now: float, stale: bool = False) -> str:
        """A WWW-Authenticate/Proxy-Authenticate value with a fresh nonce."""
        return Challenge(
            realm=self.realm,
            nonce=self._nonce(now),
            algorithm=self.algorithm.name,
            qop=(QOP_AUTH,) if self.qop else (),
            stale=stale,
        ).format()

    def _nonce(self, now: float) -> str:
        payload = _TIME.pack(max(0, int(now * 1000))) + self._random_bytes(_SALT_BYTES)
        raw = payload + self._mac(payload)
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    def _mac(self, payload: bytes) -> bytes:
        message = self.realm.encode("utf-8") + b"\x00" + payload
        return hmac.digest(self._key, message, "sha256")[:_MAC_BYTES]

    def nonce_time(self, nonce: str) -> float | None:
        """When ``nonce`` was issued (the caller's clock), or None if we did not issue it."""
        if len(nonce) != _NONCE_CHARS or not nonce.isascii():
            return None
        try:
            raw = base64.urlsafe_b64decode(nonce + "=")
        except (binascii.Error, ValueError):
            return None
        canonical = base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
        if len(raw) != _NONCE_BYTES or canonical != nonce:
            return None
        payload, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
        if not hmac.compare_digest(mac, self._mac(payload)):
            return None
        (millis,) = _TIME.unpack_from(payload)
        return float(millis) / 1000.0

    # --- verification ---

    def credentials_in(self, request: Request, header: str = "Authorization") -> str | None:
        """The line of ``header`` (Authorization, or Proxy-Authorization for a
        proxy) that answers our realm; None when the request has none."""
        found = credentials_for_realm(request.headers.get_all(header), self.realm)
        return found[0] if found is not None else None

    def verify(self, request: Request, header_value: str, now: float) -> AuthResult:
        """Check ``header_value`` (an Authorization/Proxy-Authorization value) for ``request``."""
        try:
            credentials = parse_credentials(header_value)
        except ParseError as exc:
            return _failed(f"malformed credentials: {exc.reason}")
        problem = self._check_fields(request, credentials)
        if problem is not None:
            return _failed(problem, credentials.username)
        nonce_time = self.nonce_time(credentials.nonce)
        if nonce_time is None:
            return _failed("nonce not issued by us", credentials.username)
        username = credentials.username
        secret = self._secrets.get(username)
        expected = request_digest(
            self.algorithm,
            secret if secret is not None else self._decoy,
            DigestInput(
                request.method,
                credentials.uri,
                credentials.nonce,
                credentials.qop,
                credentials.nc,
                credentials.cnonce,
                request.body,
            ),
        )
        given = credentials.response.lower().encode("utf-8", "surrogateescape")
        matches = hmac.compare_digest(expected.encode("ascii"), given)
        if secret is None:
            return _failed(f"unknown user {_shown(username)}", username)
        if not matches:
            return _failed(f"wrong password for {_shown(username)}", username)
        age = now - nonce_time
        if age > self.nonce_ttl:
            return AuthResult(AuthStatus.STALE, "nonce expired", username)
        if age < -MAX_CLOCK_SKEW_S:
            return _failed("nonce from the future", username)
        return self._check_replay(credentials, nonce_time, now)

    def _check_fields(self, request: Request, credentials: Credentials) -> str | None:
        """What is wrong with the credentials before any hashing, if anything."""
        if credentials.realm != self.realm:
            return f"wrong realm {_shown(credentials.realm)}"
        if find_algorithm(credentials.algorithm) is not self.algorithm:
            return f"algorithm {_shown(credentials.algorithm or 'MD5')} not offered"
        if credentials.qop not in ((QOP_AUTH,) if self.qop else (QOP_AUTH, None)):
            return "qop=auth required" if self.qop else "qop not offered"
        if credentials.nonce_count == 0 and credentials.qop is not None:
            return "nonce count 0"
        if not _same_uri(credentials.uri, request.uri):
            return "digest uri does not match the Request-URI"
        return None

    def _check_replay(self, credentials: Credentials, nonce_time: float, now: float) -> AuthResult:
        """Refuse a nonce count not above the last seen for this (nonce, cnonce)."""
        username = credentials.username
        self._prune(now)
        key = (credentials.nonce, credentials.cnonce or "")
        count = credentials.nonce_count
        seen = self._seen.get(key)
        if seen is None:
            if nonce_time <= self._forgotten_before:
                return AuthResult(AuthStatus.STALE, "nonce history forgotten", username)
            self._remember(key, _Seen(count, nonce_time + self.nonce_ttl, nonce_time))
            return AuthResult(AuthStatus.OK, "ok", username)
        if credentials.qop is None:
            # RFC 2069 has no count: each nonce is good once; the client gets a new one.
            return AuthResult(AuthStatus.STALE, "nonce already used", username)
        if count <= seen.nonce_count:
            return _failed(f"replayed nonce count for {_shown(username)}", username)
        seen.nonce_count = count
        return AuthResult(AuthStatus.OK, "ok", username)

    def _remember(self, key: tuple[str, str], seen: _Seen) -> None:
        self._seen[key] = seen
        while len(self._seen) > self._max_tracked:
            _, evicted = self._seen.popitem(last=False)
            self._forgotten_before = max(self._forgotten_before, evicted.nonce_time)

    def _prune(self, now: float) -> None:
        """Drop entries of expired nonces (their answers get ``stale`` anyway)."""
        seen = self._seen
        while seen:
            key = next(iter(seen))
            if seen[key].expires >= now:
                return
            del seen[key]

    def tracked(self) -> int:
        """How many (nonce, cnonce) pairs the replay table holds."""
        return len(self._seen)


def _text(password: str | Secret) -> str:
    return password.reveal() if isinstance(password, Secret) else password


def _same_uri(digest_uri: str, request_uri: Uri) -> bool:
    """RFC 3261 §22.4: the digest-uri is the Request-URI. Compared as text, then
    as parsed (a client may spell ``SIP:`` or a parameter name differently)."""
    text = str(request_uri)
    if digest_uri == text:
        return True
    try:
        return str(parse_uri(digest_uri)) == text
    except ParseError:
        return False
