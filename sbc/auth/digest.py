"""Digest algorithms and the response computation (RFC 7616 §3.4, RFC 8760 §2).

    response = KD( H(A1), unq(nonce) ":" nc ":" unq(cnonce) ":" unq(qop) ":" H(A2) )
    response = KD( H(A1), unq(nonce) ":" H(A2) )          ; no qop, RFC 2069
    KD(secret, data) = H(secret ":" data)
    A1 = unq(username) ":" unq(realm) ":" passwd          ; algorithm X
    A1 = H(unq(username) ":" unq(realm) ":" passwd) ":" unq(nonce) ":" unq(cnonce)  ; X-sess
    A2 = Method ":" request-uri                           ; qop=auth or none
    A2 = Method ":" request-uri ":" H(entity-body)        ; qop=auth-int

In SIP the request-uri is the digest-uri (the Request-URI as sent) and the
method is the request's method (RFC 3261 §22.4). Strings are hashed as UTF-8
(RFC 7616 §4, ``charset=UTF-8``); digests are lower-case hex.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

QOP_AUTH = "auth"
QOP_AUTH_INT = "auth-int"


@dataclass(frozen=True, slots=True)
class Algorithm:
    """One digest algorithm; ``strength`` orders the choice among challenges."""

    name: str  # canonical spelling, as registered (RFC 7616 §6.1)
    hash_name: str  # hashlib name
    session: bool  # the "-sess" variant: A1 is bound to nonce and cnonce
    strength: int

    def hash(self, text: str) -> str:
        return hashlib.new(self.hash_name, text.encode("utf-8", "surrogateescape")).hexdigest()

    def hash_bytes(self, data: bytes) -> str:
        return hashlib.new(self.hash_name, data).hexdigest()


def _algorithms() -> dict[str, Algorithm]:
    bases = [("MD5", "md5", 1), ("SHA-256", "sha256", 2), ("SHA-512-256", "sha512_256", 3)]
    table: dict[str, Algorithm] = {}
    for name, hash_name, strength in bases:
        if hash_name not in hashlib.algorithms_available:  # pragma: no cover - old OpenSSL
            continue
        table[name] = Algorithm(name, hash_name, False, strength)
        table[f"{name}-SESS"] = Algorithm(f"{name}-sess", hash_name, True, strength)
    return table


#: Supported algorithms by upper-cased name; an absent ``algorithm`` means MD5
#: (RFC 7616 §3.3). SHA-512-256 and SHA-256 are RFC 8760's; MD5 is kept for
#: the installed base.
ALGORITHMS = _algorithms()
DEFAULT_ALGORITHM = "MD5"


def find_algorithm(name: str | None) -> Algorithm | None:
    """The algorithm named ``name`` (case-insensitive), MD5 for None, else None."""
    return ALGORITHMS.get((name or DEFAULT_ALGORITHM).upper())


def user_secret(algorithm: Algorithm, username: str, realm: str, password: str) -> str:
    """``H(username ":" realm ":" passwd)``: what a server may store instead of the password."""
    return algorithm.hash(f"{username}:{realm}:{password}")


def session_secret(algorithm: Algorithm, secret: str, nonce: str, cnonce: str | None) -> str:
    """``H(A1)``: the user secret itself, or for ``-sess`` bound to nonce and cnonce."""
    if not algorithm.session:
        return secret
    return algorithm.hash(f"{secret}:{nonce}:{cnonce or ''}")


@dataclass(frozen=True, slots=True)
class DigestInput:
    """Everything the response depends on besides the user secret."""

    method: str
    uri: str
    nonce: str
    qop: str | None = None  # None: RFC 2069 compatibility
    nc: str | None = None  # 8LHEX, with qop
    cnonce: str | None = None  # with qop or -sess
    body: bytes = b""  # hashed for qop=auth-int only


def request_digest(algorithm: Algorithm, secret: str, data: DigestInput) -> str:
    """The ``response`` value for ``data`` given the user secret (RFC 7616 §3.4.1)."""
    ha1 = session_secret(algorithm, secret, data.nonce, data.cnonce)
    a2 = f"{data.method}:{data.uri}"
    if data.qop == QOP_AUTH_INT:
        a2 = f"{a2}:{algorithm.hash_bytes(data.body)}"
    ha2 = algorithm.hash(a2)
    if data.qop is None:
        return algorithm.hash(f"{ha1}:{data.nonce}:{ha2}")
    return algorithm.hash(f"{ha1}:{data.nonce}:{data.nc}:{data.cnonce}:{data.qop}:{ha2}")
