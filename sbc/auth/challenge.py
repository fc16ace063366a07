"""Digest challenges and credentials on the wire (RFC 3261 §22, §25.1; RFC 7616 §3.3-3.4).

    challenge        = ("Digest" LWS digest-cln *(COMMA digest-cln)) / other-challenge
    digest-cln       = realm / domain / nonce / opaque / stale / algorithm
                       / qop-options / auth-param
    credentials      = ("Digest" LWS digest-response) / other-response
    digest-response  = dig-resp *(COMMA dig-resp)
    auth-param       = auth-param-name EQUAL ( token / quoted-string )
    quoted-string    = SWS DQUOTE *(qdtext / quoted-pair ) DQUOTE
    quoted-pair      = "\\" (%x00-09 / %x0B-0C / %x0E-7F)

One header value may hold several challenges (RFC 7235 §4.1: a comma list
whose elements start a new challenge at each ``scheme SP``), a response
several header lines. Only ``Digest`` is understood; other schemes
(``Basic``, ``Negotiate abc==``) are skipped. Hostile input gets
:class:`ParseError` and nothing else; control characters in values are
refused, so nothing parsed here can smuggle a line break into a header we
echo back.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from sbc.auth.digest import QOP_AUTH, QOP_AUTH_INT, find_algorithm
from sbc.sip.address import quote_string
from sbc.sip.errors import ParseError

DIGEST = "digest"
#: Longest header value looked at: a real challenge is a few hundred octets.
MAX_VALUE_LENGTH = 8192
#: Most challenges considered in one response (each header line may hold several).
MAX_CHALLENGES = 32

_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_NC_RE = re.compile(r"[0-9A-Fa-f]{8}")
_SPACE_RE = re.compile(r"[ \t]+")
_SEPARATOR_RE = re.compile(r"[ \t,]+")
_CTL = r"\x00-\x08\x0a-\x1f\x7f"
#: ``auth-param = token BWS "=" BWS ( token / quoted-string )``, then a comma or the
#: end. The quoted-string refuses control characters (bar HTAB), the unquoted
#: value also quotes and backslashes: nothing parsed can carry a line break
#: into a header we echo back.
_PARAM_RE = re.compile(
    rf"""([A-Za-z0-9\-.!%*_+`'~]+)[ \t]*=[ \t]*"""
    rf"""(?:"((?:[^"\\{_CTL}]|\\[^{_CTL}])*)"|([^, \t"\\{_CTL}]+))"""
    r"""[ \t]*(?=,|\Z)"""
)
#: RFC 7235 §2.1 ``token68``, alone before a comma or the end.
_TOKEN68_RE = re.compile(r"[A-Za-z0-9\-._~+/]+=*[ \t]*(?=,|\Z)")
_QUOTED_PAIR_RE = re.compile(r"\\(.)", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Challenge:
    """One Digest challenge from a 401/407 (RFC 7616 §3.3)."""

    realm: str
    nonce: str
    algorithm: str | None = None  # as sent; None means MD5
    qop: tuple[str, ...] = ()  # offered qop values, lower-cased; () is RFC 2069
    opaque: str | None = None
    stale: bool = False

    @property
    def strength(self) -> int:
        """Rank of the algorithm (0 when unsupported or unanswerable)."""
        algorithm = find_algorithm(self.algorithm)
        if algorithm is None or not self.answerable_qop:
            return 0
        if algorithm.session and self.answer_qop() is None:
            return 0  # -sess needs a cnonce, which needs a qop
        return algorithm.strength

    @property
    def answerable_qop(self) -> bool:
        """False when only qop values we do not know are offered."""
        return not self.qop or QOP_AUTH in self.qop or QOP_AUTH_INT in self.qop

    def answer_qop(self) -> str | None:
        """The qop to answer with: auth when offered (RFC 7616 §3.4), else
        auth-int; None for an RFC 2069 challenge (no qop offered)."""
        if QOP_AUTH in self.qop:
            return QOP_AUTH
        if QOP_AUTH_INT in self.qop:
            return QOP_AUTH_INT
        return None

    def format(self) -> str:
        parts = [f"realm={quote_string(self.realm)}", f"nonce={quote_string(self.nonce)}"]
        if self.opaque is not None:
            parts.append(f"opaque={quote_string(self.opaque)}")
        if self.algorithm is not None:
            parts.append(f"algorithm={self.algorithm}")
        if self.qop:
            parts.append(f"qop={quote_string(','.join(self.qop))}")
        if self.stale:
            parts.append("stale=true")
        return "Digest " + ", ".join(parts)


@dataclass(frozen=True, slots=True)
class Credentials:
    """A Digest answer in Authorization/Proxy-Authorization (RFC 7616 §3.4)."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str | None = None  # as sent; None means MD5
    cnonce: str | None = None
    qop: str | None = None
    nc: str | None = None  # 8LHEX
    opaque: str | None = None

    @property
    def nonce_count(self) -> int:
        return int(self.nc, 16) if self.nc is not None else 0

    def format(self) -> str:
        """``Digest username=..., ...`` in the order RFC 3261 §25.1 lists them."""
        parts = [
            f"username={quote_string(self.username)}",
            f"realm={quote_string(self.realm)}",
            f"nonce={quote_string(self.nonce)}",
            f"uri={quote_string(self.uri)}",
            f"response={quote_string(self.response)}",
        ]
        if self.algorithm is not None:
            parts.append(f"algorithm={self.algorithm}")
        if self.cnonce is not None:
            parts.append(f"cnonce={quote_string(self.cnonce)}")
        if self.opaque is not None:
            parts.append(f"opaque={quote_string(self.opaque)}")
        if self.qop is not None:
            parts.append(f"qop={self.qop}")
        if self.nc is not None:
            parts.append(f"nc={self.nc}")
        return "Digest " + ", ".join(parts)


# --- the auth-param scanner ---------------------------------------------------


@dataclass(slots=True)
class _Scheme:
    """One scheme with its parameters (names lower-cased, values unquoted)."""

    name: str
    params: dict[str, str]


class _Scanner:
    """Reads ``scheme [token68 / #auth-param]`` lists (RFC 7235 §2.1, §4.1).

    One regex reads a whole ``name = value`` element (the hot path: a
    credential is nine of them); anything else must be a scheme name.
    """

    __slots__ = ("pos", "text")

    def __init__(self, text: str) -> None:
        if len(text) > MAX_VALUE_LENGTH:
            raise ParseError("authentication header too long")
        self.text = text
        self.pos = 0

    def schemes(self) -> list[_Scheme]:
        found: list[_Scheme] = []
        text = self.text
        while self._skip(_SEPARATOR_RE):
            param = _PARAM_RE.match(text, self.pos)
            if param is not None:
                if not found:
                    raise ParseError("authentication parameter before any scheme")
                self.pos = param.end()
                _add_param(found[-1], param)
                continue
            token = _TOKEN_RE.match(text, self.pos)
            if token is None:
                raise ParseError(f"expected a token at {text[self.pos : self.pos + 20]!r}")
            self.pos = token.end()
            self._skip(_SPACE_RE)
            if text.startswith("=", self.pos):
                raise ParseError(f"malformed parameter {token.group()[:40]!r}")
            if len(found) >= MAX_CHALLENGES:
                raise ParseError("too many challenges")
            found.append(_Scheme(token.group().lower(), {}))
            self._maybe_token68()
        return found

    def _maybe_token68(self) -> None:
        """``Negotiate YII+/==``: an opaque blob, skipped with its scheme."""
        match = _TOKEN68_RE.match(self.text, self.pos)
        if match is not None:
            self.pos = match.end()

    def _skip(self, pattern: re.Pattern[str]) -> bool:
        """Skip what ``pattern`` matches here; True when something is left."""
        match = pattern.match(self.text, self.pos)
        if match is not None:
            self.pos = match.end()
        return self.pos < len(self.text)


def _add_param(scheme: _Scheme, match: re.Match[str]) -> None:
    name, quoted, token = match.group(1, 2, 3)
    name = name.lower()
    if name in scheme.params:
        raise ParseError(f"duplicate parameter {name[:40]!r}")
    if quoted is None:
        scheme.params[name] = token
    else:
        scheme.params[name] = _QUOTED_PAIR_RE.sub(r"\1", quoted) if "\\" in quoted else quoted


# --- challenges ---------------------------------------------------------------


def parse_challenges(value: str) -> list[Challenge]:
    """Every Digest challenge of one WWW-Authenticate/Proxy-Authenticate value.

    Other schemes are skipped. A Digest challenge without realm or nonce,
    or any syntax error, makes the whole value a :class:`ParseError`.
    """
    return [_challenge(s.params) for s in _Scanner(value).schemes() if s.name == DIGEST]


def _challenge(params: dict[str, str]) -> Challenge:
    realm, nonce = params.get("realm"), params.get("nonce")
    if realm is None or nonce is None:
        raise ParseError("digest challenge without realm or nonce")
    qop = tuple(q.strip().lower() for q in params.get("qop", "").split(",") if q.strip())
    return Challenge(
        realm=realm,
        nonce=nonce,
        algorithm=params.get("algorithm"),
        qop=qop,
        opaque=params.get("opaque"),
        stale=params.get("stale", "").lower() == "true",
    )


def select_challenges(values: Iterable[str]) -> list[Challenge]:
    """The challenge to answer for each realm, in order of first appearance.

    ``values`` are the header lines of one response; a malformed line is
    skipped (the others may still be answerable). Per realm the strongest
    supported algorithm wins (SHA-512-256 > SHA-256 > MD5; RFC 8760 §2.4),
    the first offered on a tie (RFC 7616 §3.7). Realms offering nothing
    supported are left out.
    """
    best: dict[str, Challenge] = {}
    for value in values:
        try:
            challenges = parse_challenges(value)
        except ParseError:
            continue
        for challenge in challenges:
            strength = challenge.strength
            current = best.get(challenge.realm)
            if strength and (current is None or strength > current.strength):
                best[challenge.realm] = challenge
    return list(best.values())


# --- credentials --------------------------------------------------------------


def parse_credentials(value: str) -> Credentials:
    """One Authorization/Proxy-Authorization value; :class:`ParseError` unless a
    well-formed Digest response (RFC 7616 §3.4: username, realm, nonce, uri,
    response; with qop also cnonce and an 8-hex-digit nc)."""
    schemes = _Scanner(value).schemes()
    if len(schemes) != 1 or schemes[0].name != DIGEST:
        raise ParseError("not a single Digest credential")
    params = schemes[0].params
    missing = [n for n in ("username", "realm", "nonce", "uri", "response") if n not in params]
    if missing:
        raise ParseError(f"digest credentials without {missing[0]}")
    qop, nc, cnonce = params.get("qop"), params.get("nc"), params.get("cnonce")
    if qop is not None:
        qop = qop.lower()
        if nc is None or cnonce is None:
            raise ParseError("qop without nc or cnonce")
    if nc is not None and not _NC_RE.fullmatch(nc):
        raise ParseError("nc is not 8 hex digits")
    return Credentials(
        username=params["username"],
        realm=params["realm"],
        nonce=params["nonce"],
        uri=params["uri"],
        response=params["response"],
        algorithm=params.get("algorithm"),
        cnonce=cnonce,
        qop=qop,
        nc=nc,
        opaque=params.get("opaque"),
    )


def try_parse_credentials(value: str) -> Credentials | None:
    """:func:`parse_credentials`, or None when the value is not usable."""
    try:
        return parse_credentials(value)
    except ParseError:
        return None


def credentials_for_realm(values: Iterable[str], realm: str) -> tuple[str, Credentials] | None:
    """The first header line (and its parse) answering ``realm``, if any."""
    for value in values:
        credentials = try_parse_credentials(value)
        if credentials is not None and credentials.realm == realm:
            return value, credentials
    return None
