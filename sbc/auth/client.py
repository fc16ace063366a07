"""Answering digest challenges as a client (RFC 3261 §8.1.3.5, §22.2-22.3; RFC 7616).

The SBC sends a request toward a trunk; the trunk answers 401 (WWW-Authenticate,
answered in Authorization) or 407 (Proxy-Authenticate, answered in
Proxy-Authorization). :meth:`ClientAuth.authorize` adds the answer to the
request, and the caller re-sends it. The contract with the caller:

- re-send the same request (headers kept, with the added credentials) as a new
  transaction: CSeq incremented, a new Via branch (RFC 3261 §22.2, §8.1.3.5);
  the A-leg never sees the challenge;
- when ``authorize`` returns False, do not re-send: the challenge is the final
  answer (unknown realm, unsupported algorithm, or credentials rejected);
- ACK and CANCEL are never challenged and never authorized here: they carry
  the INVITE's credentials (RFC 3261 §22.1), see :func:`copy_credentials`;
- build one :class:`ClientAuth` per trunk and rebuild it when the trunk's
  credentials change (it remembers nonces that failed).

Why it never loops: each credential line it writes carries an *allowance*,
remembered by its exact value, that a later challenge to the same request may
spend once. A line from :meth:`ClientAuth.preauthorize` may be re-answered
after any challenge (the server may have forgotten the nonce); a line
answering a challenge may be re-answered after ``stale=true`` only (RFC 7616
§3.3: the password was right, the nonce old); a line answering a stale
challenge has none. Unknown lines (evicted, edited) have none. So a request
is answered at most three times, and a rejected password once.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum

from sbc.auth.challenge import Challenge, Credentials, credentials_for_realm, select_challenges
from sbc.auth.digest import DigestInput, find_algorithm, request_digest, user_secret
from sbc.auth.secrets import Secret
from sbc.sip.message import Request, Response

#: Methods that are never challenged or answered (RFC 3261 §22.1).
UNCHALLENGED_METHODS = frozenset(("ACK", "CANCEL"))
CREDENTIAL_HEADERS = ("Authorization", "Proxy-Authorization")
_CNONCE_BYTES = 12
_MAX_REALMS = 32
_MAX_ALLOWANCES = 4096
_MAX_FAILED_NONCES = 16


@dataclass(frozen=True, slots=True)
class ChallengeKind:
    """Which header pair a challenge status uses (RFC 3261 §22.2, §22.3)."""

    challenge_header: str
    credentials_header: str


#: 401 from a UAS or registrar, 407 from a proxy.
CHALLENGE_KINDS = {
    401: ChallengeKind("WWW-Authenticate", "Authorization"),
    407: ChallengeKind("Proxy-Authenticate", "Proxy-Authorization"),
}


def _has_control(text: str) -> bool:
    return any(ch < " " or ch == "\x7f" for ch in text)


class DigestCredentials:
    """A username and password for one realm (None: whatever realm challenges)."""

    __slots__ = ("password", "realm", "username")

    def __init__(self, username: str, password: str | Secret, realm: str | None = None) -> None:
        if not username or _has_control(username) or (realm is not None and _has_control(realm)):
            raise ValueError("digest username and realm must be non-empty text on one line")
        self.username = username
        self.password = password if isinstance(password, Secret) else Secret(password)
        self.realm = realm

    def __repr__(self) -> str:
        return f"DigestCredentials(username={self.username!r}, password=***, realm={self.realm!r})"


class Allowance(Enum):
    """What a challenge to a line we wrote may still earn (see the module docstring)."""

    ANY_CHALLENGE = "preauthorized"
    STALE_ONLY = "answered"


@dataclass(slots=True)
class _NonceState:
    """The last nonce of a realm and how many requests used it (the nc)."""

    challenge: Challenge
    count: int


_Key = tuple[str, str]  # (credentials header, realm)


class ClientAuth:
    """Digest client state for one trunk: per-realm nonces and nonce counts."""

    def __init__(
        self,
        credentials: DigestCredentials | Iterable[DigestCredentials],
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        listed = [credentials] if isinstance(credentials, DigestCredentials) else list(credentials)
        self._by_realm = {c.realm: c for c in reversed(listed)}  # first one wins
        self._random_bytes = random_bytes
        self._nonces: OrderedDict[_Key, _NonceState] = OrderedDict()
        self._allowances: OrderedDict[str, Allowance] = OrderedDict()
        self._failed: dict[_Key, list[str]] = {}

    def __repr__(self) -> str:
        return f"<ClientAuth realms={sorted(map(str, self._by_realm))}>"

    def credentials_for(self, realm: str) -> DigestCredentials | None:
        """The credentials of ``realm``, else the any-realm ones."""
        return self._by_realm.get(realm) or self._by_realm.get(None)

    # --- answering a challenge ---

    def authorize(self, request: Request, response: Response) -> bool:
        """Add credentials answering ``response`` (a 401/407 to ``request``).

        Returns True when ``request`` now carries an answer for every realm
        challenged that we have credentials for, and should be re-sent (see
        the module docstring for the caller's contract). Returns False,
        leaving ``request`` unchanged, when it must not be re-sent.
        """
        kind = CHALLENGE_KINDS.get(response.status)
        if kind is None or request.method in UNCHALLENGED_METHODS:
            return False
        plan: list[tuple[Challenge, DigestCredentials, Allowance | None]] = []
        for challenge in select_challenges(response.headers.get_all(kind.challenge_header)):
            credentials = self.credentials_for(challenge.realm)
            if credentials is None:
                continue
            allowed, next_allowance = self._may_answer(request, kind, challenge)
            if not allowed:
                return False
            plan.append((challenge, credentials, next_allowance))
        for challenge, credentials, allowance in plan:
            self._answer(request, kind, challenge, credentials, allowance)
        return bool(plan)

    def _may_answer(
        self, request: Request, kind: ChallengeKind, challenge: Challenge
    ) -> tuple[bool, Allowance | None]:
        """Whether to answer ``challenge``, and the allowance the answer gets."""
        key = (kind.credentials_header, challenge.realm)
        prior = credentials_for_realm(
            request.headers.get_all(kind.credentials_header), challenge.realm
        )
        if prior is None:
            return challenge.nonce not in self._failed.get(key, ()), Allowance.STALE_ONLY
        line, sent = prior
        allowance = self._allowances.pop(line, None)
        if challenge.stale:
            # RFC 7616 §3.3: the password was right, only the nonce is old.
            return allowance is not None and challenge.nonce != sent.nonce, None
        if allowance is Allowance.ANY_CHALLENGE and challenge.nonce not in self._failed.get(
            key, ()
        ):
            return True, Allowance.STALE_ONLY  # the server forgot our cached nonce
        self._nonce_failed(key, sent.nonce)
        return False, None

    def _nonce_failed(self, key: _Key, nonce: str) -> None:
        """Credentials sent with ``nonce`` were rejected: never answer it again."""
        failed = self._failed.pop(key, [])
        self._failed[key] = failed  # most recent last; a trunk's realms are few
        while len(self._failed) > _MAX_REALMS:
            del self._failed[next(iter(self._failed))]
        if nonce not in failed:
            failed.append(nonce)
            del failed[:-_MAX_FAILED_NONCES]
        state = self._nonces.get(key)
        if state is not None and state.challenge.nonce == nonce:
            del self._nonces[key]

    def _answer(
        self,
        request: Request,
        kind: ChallengeKind,
        challenge: Challenge,
        credentials: DigestCredentials,
        allowance: Allowance | None,
    ) -> None:
        key = (kind.credentials_header, challenge.realm)
        state = self._nonces.get(key)
        # A challenge repeating our nonce continues its count (RFC 7616 §3.4: nc
        # counts every request sent with that nonce); a new nonce starts at 1.
        count = state.count if state is not None and state.challenge.nonce == challenge.nonce else 0
        state = self._nonces[key] = _NonceState(challenge, count)
        self._nonces.move_to_end(key)
        while len(self._nonces) > _MAX_REALMS:
            self._nonces.popitem(last=False)
        self._write(request, kind.credentials_header, state, credentials, allowance)

    # --- reusing a nonce ---

    def preauthorize(self, request: Request) -> bool:
        """Add credentials for every realm with a known nonce, before any challenge.

        Saves a round trip on later requests to the same trunk (a REGISTER
        refresh, a BYE): the nonce count goes up by one per request (RFC 7616
        §3.4). Only for challenges with a qop (RFC 2069 has no nonce count).
        If the trunk no longer accepts the nonce, :meth:`authorize` answers
        its challenge as usual. True when anything was added.
        """
        if request.method in UNCHALLENGED_METHODS:
            return False
        added = False
        for (header, realm), state in list(self._nonces.items()):
            credentials = self.credentials_for(realm)
            if credentials is None or not state.challenge.qop:
                continue
            self._write(request, header, state, credentials, Allowance.ANY_CHALLENGE)
            added = True
        return added

    def forget(self) -> None:
        """Drop every cached nonce (the next requests wait for a challenge)."""
        self._nonces.clear()

    # --- writing the header ---

    def _write(
        self,
        request: Request,
        header: str,
        state: _NonceState,
        credentials: DigestCredentials,
        allowance: Allowance | None,
    ) -> None:
        state.count += 1
        line = self._credentials(request, state, credentials).format()
        _replace_realm_line(request, header, state.challenge.realm, line)
        if allowance is not None:
            self._allowances[line] = allowance
            while len(self._allowances) > _MAX_ALLOWANCES:
                self._allowances.popitem(last=False)

    def _credentials(
        self, request: Request, state: _NonceState, credentials: DigestCredentials
    ) -> Credentials:
        challenge = state.challenge
        algorithm = find_algorithm(challenge.algorithm)
        if algorithm is None:  # pragma: no cover - select_challenges keeps supported ones
            raise ValueError("unanswerable challenge")
        qop = challenge.answer_qop()
        cnonce = self._random_bytes(_CNONCE_BYTES).hex() if qop or algorithm.session else None
        nc = f"{state.count:08x}" if qop else None
        uri = str(request.uri)
        data = DigestInput(request.method, uri, challenge.nonce, qop, nc, cnonce, request.body)
        username = credentials.username
        secret = user_secret(algorithm, username, challenge.realm, credentials.password.reveal())
        return Credentials(
            username=username,
            realm=challenge.realm,
            nonce=challenge.nonce,
            uri=uri,
            response=request_digest(algorithm, secret, data),
            algorithm=challenge.algorithm,
            cnonce=cnonce,
            qop=qop,
            nc=nc,
            opaque=challenge.opaque,
        )


def _replace_realm_line(request: Request, header: str, realm: str, line: str) -> None:
    """Put ``line`` in place of the line answering ``realm``; keep other realms'."""
    lines = request.headers.get_all(header)
    kept = [v for v in lines if credentials_for_realm([v], realm) is None]
    request.headers.replace_values(header, [*kept, line])


def copy_credentials(invite: Request, request: Request) -> None:
    """Give ``request`` (the ACK or CANCEL of ``invite``) the INVITE's credentials.

    RFC 3261 §22.1: ACK and CANCEL cannot be challenged, so they MUST carry
    the same credentials as the INVITE they belong to.
    """
    for header in CREDENTIAL_HEADERS:
        lines = invite.headers.get_all(header)
        request.headers.remove(header)
        for line in lines:
            request.headers.add(header, line)
