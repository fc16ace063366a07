"""Outbound registration: keeping a binding with a trunk's registrar (RFC 3261 §10.2).

A trunk marked ``register`` holds one binding AOR → our Contact at the
carrier. :class:`Registration` is that binding's client side, pure like
:mod:`sbc.b2bua.liveness`: the core sends the REGISTERs it builds (each as a
new client transaction, context :class:`RegistrationContext`), feeds back the
final responses (:meth:`Registration.on_response`) or the transaction's
failure (:meth:`Registration.on_failure`), and asks for the next deadline.

Rules it follows:

- One Call-ID and From tag for the life of the binding, CSeq up by one per
  REGISTER (RFC 3261 §10.2: the registrar orders requests by CSeq).
- The requested lifetime goes in both the Contact ``expires`` parameter and
  the Expires header (§10.2.1.1; registrars differ in which they read, the
  two agree). The granted lifetime is the ``expires`` of *our* Contact in
  the 2xx, else its Expires header (§10.2.4), never more than we asked.
- Refresh rule: ``granted - min(refresh_margin, granted / 2)``. The default
  margin of 120 s leaves room for a refresh lost over UDP to time out
  (Timer F, 32 s), wait ``retry_min`` (30 s) and be tried again (32 s) before
  the binding lapses; short grants are refreshed at half-life.
- 401/407 are answered through :class:`~sbc.auth.client.ClientAuth` (its
  contract: re-send with CSeq+1 and a new branch; it never answers a
  rejected password twice, so there is no loop). 423 Interval Too Brief is
  retried at once asking for Min-Expires (§10.3 step 7), twice in a row at
  most: a registrar raising its minimum every time gets the backoff.
- Any other failure — a 3xx (no redirects followed), 4xx, 5xx, 6xx, a
  timeout or a transport error — waits ``retry_min`` doubling to
  ``retry_max``, or longer when the answer carries Retry-After (§20.33).
  No jitter: a box holds a handful of registrations, not a fleet.
- Answers to a REGISTER that is no longer the current one (after
  :meth:`Registration.reconnected` or :meth:`Registration.unregister`) are
  ignored, matched by Call-ID and CSeq.

State is the outcome of the last REGISTER, kept as the table ``_OUTCOME_STATE``:
``registering`` until the first outcome, then ``registered`` (2xx),
``failed`` (the registrar said no: auth, 403, 404, 3xx…) or ``retrying``
(nobody said no: timeout, transport error, 408, 5xx); ``unregistered`` after
:meth:`Registration.unregister`. Credentials are never logged.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum, StrEnum

import structlog

from sbc.auth.client import ClientAuth
from sbc.b2bua.identity import uri_host, via_value
from sbc.policy import Interface, Trunk
from sbc.sip.address import Address
from sbc.sip.errors import ParseError
from sbc.sip.headers import Headers
from sbc.sip.ids import new_call_id, new_tag
from sbc.sip.message import Request, Response
from sbc.sip.params import MAX_DELTA_SECONDS, parse_number
from sbc.sip.target import Target
from sbc.sip.uri import SipUri, Uri, unescape

log = structlog.get_logger("sbc.registration")

REGISTER = "REGISTER"
#: A registrar granting a second or two must not make us send a REGISTER storm.
MIN_REFRESH_S = 1.0
#: Retry-After beyond a day is treated as a day: the trunk must come back some time.
MAX_RETRY_AFTER_S = 86400.0
#: Immediate 423 retries in a row before waiting out a backoff like any failure.
MAX_TOO_BRIEF_RETRIES = 2
_MAX_FORWARDS = "70"
_USER_FORBIDDEN = frozenset(' \t\r\n<>"@;?,\\')


class RegistrationState(StrEnum):
    REGISTERING = "registering"
    REGISTERED = "registered"
    FAILED = "failed"
    RETRYING = "retrying"
    UNREGISTERED = "unregistered"


class _Outcome(Enum):
    """How a REGISTER ended (the inputs of the state table)."""

    RESPONSE_2XX = "2xx"
    REJECTED = "rejected"  # a final answer that says no
    UNAVAILABLE = "unavailable"  # timeout, transport error, 408, 5xx


_OUTCOME_STATE = {
    _Outcome.RESPONSE_2XX: RegistrationState.REGISTERED,
    _Outcome.REJECTED: RegistrationState.FAILED,
    _Outcome.UNAVAILABLE: RegistrationState.RETRYING,
}


@dataclass(frozen=True, slots=True)
class RegistrationSpec:
    """What to register, filled from the trunk's ``register`` policy block.

    The AOR is ``sip:{aor_user}@{registrar_domain}``; ``registrar_domain``
    defaults to the trunk address, ``contact_user`` to ``aor_user`` and
    ``contact_port`` to the interface port. Times are seconds.
    """

    aor_user: str
    registrar_domain: str | None = None
    expires: int = 3600
    contact_user: str | None = None
    contact_port: int | None = None
    retry_min: float = 30.0
    retry_max: float = 600.0
    refresh_margin: float = 120.0

    def __post_init__(self) -> None:
        for user in (self.aor_user, self.contact_user):
            if user is not None and (not user or not _USER_FORBIDDEN.isdisjoint(user)):
                raise ValueError(f"invalid user part {user!r} for a SIP URI")
        if not 1 <= self.expires <= MAX_DELTA_SECONDS:
            raise ValueError("expires must be 1 .. 2**32-1 seconds")
        if not 0 < self.retry_min <= self.retry_max:
            raise ValueError("backoff needs 0 < retry_min <= retry_max")
        if self.refresh_margin < 0:
            raise ValueError("refresh_margin cannot be negative")


@dataclass(frozen=True, slots=True)
class RegistrationStatus:
    """What the admin plane shows for one registration (times in seconds)."""

    trunk: str
    state: RegistrationState
    aor: str
    contact: str
    expires_in: float | None  # None: no live binding
    last_status: int | None
    last_error: str | None
    registered_at: float | None  # the last 2xx, on the caller's clock
    next_attempt_in: float | None  # None: a REGISTER is in flight, or stopped
    failures: int  # consecutive failed REGISTERs


@dataclass(frozen=True, slots=True)
class RegistrationContext:
    """Context of a REGISTER client transaction (``tx.context``), like ``Probe``."""

    trunk: str
    cseq: int


class Registration:
    """The client side of one binding with one trunk's registrar."""

    def __init__(
        self,
        trunk: Trunk,
        interface: Interface,
        spec: RegistrationSpec,
        auth: ClientAuth | None,
        user_agent: str | None,
    ) -> None:
        self.trunk = trunk
        self.interface = interface
        self.spec = spec
        self.auth = auth
        self.user_agent = user_agent
        domain = uri_host(spec.registrar_domain or trunk.address)
        self.aor = SipUri(host=domain, user=spec.aor_user)
        self.registrar = SipUri(host=domain, port=trunk.port, params=_transport_param(trunk))
        self.port = spec.contact_port or interface.port  # where we listen for this trunk
        self.contact = SipUri(
            host=uri_host(interface.advertised_address),
            user=spec.contact_user or spec.aor_user,
            port=self.port,
            params=_transport_param(trunk),
            scheme=_scheme(trunk),
        )
        if _scheme(trunk) == "sips":
            self.registrar.scheme = "sips"
        # RFC 3261 §10.2: one Call-ID per registrar, CSeq up by one per REGISTER.
        self.call_id = new_call_id(interface.advertised_address)
        self.from_tag = new_tag()
        self.cseq = 0
        self.expires = spec.expires  # raised by a 423's Min-Expires
        self.state = RegistrationState.REGISTERING
        self.last_status: int | None = None
        self.last_error: str | None = None
        self.registered_at: float | None = None
        self.bound_until: float | None = None
        self.failures = 0
        self._too_brief_in_a_row = 0
        self._next_at: float | None = 0.0  # due at once
        self._in_flight: Request | None = None  # our copy, as sent
        self._stopped = False

    def __repr__(self) -> str:
        return f"<Registration {self.trunk.name} {self.aor} {self.state}>"

    # --- driving --------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When :meth:`due` has a REGISTER to send; None while one is in flight."""
        return None if self._in_flight is not None else self._next_at

    def due(self, now: float) -> Request | None:
        """The REGISTER to send now, if one is due (it is then in flight)."""
        if self._in_flight is not None or self._next_at is None or self._next_at > now:
            return None
        self._next_at = None
        return self._send(self._build(self.expires))

    def on_response(self, response: Response, now: float) -> Request | None:
        """A response to the REGISTER in flight; returns a REGISTER to send now, if any."""
        sent = self._in_flight
        if sent is None or response.status < 200 or not _answers(sent, response):
            return None  # provisional, or for a REGISTER we gave up on
        self._in_flight = None
        status = response.status
        if status in (401, 407):
            return self._challenged(sent, response, now)
        if self._stopped:
            self._stopped_with(status)
            return None
        if 200 <= status < 300:
            self._bound(response, now)
            return None
        if status == 423:
            return self._too_brief(response, now)
        unavailable = status == 408 or 500 <= status < 600  # 6xx is a global no
        outcome = _Outcome.UNAVAILABLE if unavailable else _Outcome.REJECTED
        delay = _retry_after(response.headers.get("Retry-After"))
        self._failed(outcome, status, f"{status} {response.reason}", now, delay)
        return None

    def on_failure(self, status: int, now: float, cseq: int | None = None) -> None:
        """The REGISTER got no answer: 408 (timeout) or 503 (transport error).

        ``cseq`` (from :class:`RegistrationContext`) lets a late failure of a
        REGISTER we no longer wait for be ignored.
        """
        sent = self._in_flight
        if sent is None or (cseq is not None and cseq != sent.cseq.seq):
            return
        self._in_flight = None
        if self._stopped:
            self._stopped_with(status)
            return
        error = "timeout" if status == 408 else "transport error"
        self._failed(_Outcome.UNAVAILABLE, status, error, now, None)

    def reconnected(self, now: float) -> bool:
        """A new TLS/TCP flow to the trunk is up: register again now, over it,
        since the registrar may have tied the binding to the old one. True when
        a REGISTER is now due.

        Not while a REGISTER is in flight: that one opened the new flow (or, sent
        on the flow that died, its transaction fails and the retry follows), so
        renewing now would only send the same binding twice.
        """
        if self._stopped or self._in_flight is not None:
            return False
        self._next_at = now
        return True

    def unregister(self) -> Request:
        """A REGISTER removing our binding (Expires 0, RFC 3261 §10.2.2), for shutdown.

        Nothing is scheduled afterwards; a 401/407 to it is still answered
        through :meth:`on_response`.
        """
        self._stopped = True
        self._next_at = None
        return self._send(self._build(0))

    def context(self, request: Request) -> RegistrationContext:
        """The context to attach to ``request``'s client transaction."""
        return RegistrationContext(self.trunk.name, request.cseq.seq)

    def target(self) -> Target:
        """Where REGISTERs go: the trunk itself, through its interface."""
        trunk = self.trunk
        return Target(trunk.interface, trunk.transport, trunk.address, trunk.port)

    # --- reading --------------------------------------------------------------------

    def registered(self, now: float) -> bool:
        """A live binding whose last REGISTER succeeded."""
        return self.state is RegistrationState.REGISTERED and self._expires_in(now) is not None

    def matches_contact(self, uri: Uri) -> bool:
        """Whether ``uri`` (an incoming Request-URI) is the Contact we registered."""
        return isinstance(uri, SipUri) and _same_user_host(uri, self.contact)

    def status(self, now: float) -> RegistrationStatus:
        state = self.state
        if state is RegistrationState.REGISTERED and self._expires_in(now) is None:
            state = RegistrationState.REGISTERING  # lapsed while the refresh is out
        next_at = None if self._in_flight is not None else self._next_at
        return RegistrationStatus(
            trunk=self.trunk.name,
            state=state,
            aor=str(self.aor),
            contact=str(self.contact),
            expires_in=self._expires_in(now),
            last_status=self.last_status,
            last_error=self.last_error,
            registered_at=self.registered_at,
            next_attempt_in=None if next_at is None else max(0.0, next_at - now),
            failures=self.failures,
        )

    def same_binding(self, other: Registration) -> bool:
        """Whether ``other`` would send the same REGISTER (a policy reload may keep us)."""
        return (
            self.trunk.name == other.trunk.name
            and str(self.registrar) == str(other.registrar)
            and str(self.contact) == str(other.contact)
            and self.target() == other.target()
            and self.spec == other.spec
        )

    # --- outcomes -------------------------------------------------------------------

    def _bound(self, response: Response, now: float) -> None:
        """RFC 3261 §10.2.4: the lifetime granted to our Contact, else the Expires header."""
        granted = min(_granted_expires(response, self.contact, self.expires), self.expires)
        if granted <= 0:
            self._failed(_Outcome.REJECTED, response.status, "registrar granted no time", now)
            return
        self.failures = 0
        self._too_brief_in_a_row = 0
        self.registered_at = now
        self.bound_until = now + granted
        self._next_at = now + refresh_delay(granted, self.spec.refresh_margin)
        self._enter(_Outcome.RESPONSE_2XX, response.status, None, expires=granted)

    def _challenged(self, sent: Request, response: Response, now: float) -> Request | None:
        resend = sent.copy()
        if self.auth is not None and self.auth.authorize(resend, response):
            self.cseq += 1
            resend.headers.set("CSeq", f"{self.cseq} {REGISTER}")
            resend.headers.set("Via", self._via())
            return self._send(resend)
        if self._stopped:
            self._stopped_with(response.status)
            return None
        error = "authentication failed" if self.auth is not None else "no credentials to answer"
        self._failed(_Outcome.REJECTED, response.status, error, now)
        return None

    def _too_brief(self, response: Response, now: float) -> Request | None:
        """RFC 3261 §10.3 step 7: ask again for at least Min-Expires."""
        minimum = _delta_seconds(response.headers.get("Min-Expires"))
        if minimum is None or minimum <= self.expires:
            error = "423 without a usable Min-Expires"
            self._failed(_Outcome.REJECTED, response.status, error, now)
            return None
        if self._too_brief_in_a_row >= MAX_TOO_BRIEF_RETRIES:
            error = "423 again and again"  # a registrar raising its minimum each time
            self._failed(_Outcome.REJECTED, response.status, error, now)
            return None
        self._too_brief_in_a_row += 1
        self.expires = minimum
        self.last_status = response.status
        self._next_at = now
        return self.due(now)

    def _failed(
        self,
        outcome: _Outcome,
        status: int,
        error: str,
        now: float,
        retry_after: float | None = None,
    ) -> None:
        self.failures += 1
        self._too_brief_in_a_row = 0
        backoff = self.spec.retry_min * 2.0 ** min(self.failures - 1, 62)
        delay = min(backoff, self.spec.retry_max)
        if retry_after is not None:
            delay = max(delay, retry_after)  # RFC 3261 §20.33: not before then
        self._next_at = now + delay
        if self._expires_in(now) is None:
            self.bound_until = None
        self._enter(outcome, status, error, retry_in=delay)

    def _stopped_with(self, status: int) -> None:
        self.bound_until = None
        self.last_status = status
        if self.state is not RegistrationState.UNREGISTERED:
            self.state = RegistrationState.UNREGISTERED
            log.info("registration.unregistered", trunk=self.trunk.name, status=status)

    def _enter(self, outcome: _Outcome, status: int, error: str | None, **details: float) -> None:
        """Record an outcome; log once per change of state (or of the error)."""
        state = _OUTCOME_STATE[outcome]
        changed = state is not self.state or error != self.last_error
        self.state, self.last_status, self.last_error = state, status, error
        if not changed:
            return
        name = self.trunk.name
        if error is None:
            log.info("registration.registered", trunk=name, aor=str(self.aor), **details)
        else:
            log.warning(f"registration.{state}", trunk=name, status=status, error=error, **details)

    # --- building -------------------------------------------------------------------

    def _send(self, request: Request) -> Request:
        """Keep our own copy (the caller's may be manipulated on the way out)."""
        self._in_flight = request.copy()
        return request

    def _via(self) -> str:
        return via_value(self.trunk.transport, self.interface.advertised_address, self.port)

    def _build(self, expires: int) -> Request:
        """A REGISTER per RFC 3261 §10.2 asking for ``expires`` seconds (0 removes)."""
        self.cseq += 1
        contact = Address(self.contact.copy(), params={"expires": str(expires)})
        headers = Headers()
        headers.add("Via", self._via())
        headers.add("Max-Forwards", _MAX_FORWARDS)
        headers.add("From", f"<{self.aor}>;tag={self.from_tag}")
        headers.add("To", f"<{self.aor}>")
        headers.add("Call-ID", self.call_id)
        headers.add("CSeq", f"{self.cseq} {REGISTER}")
        headers.add("Contact", str(contact))
        headers.add("Expires", str(expires))
        if self.user_agent:
            headers.add("User-Agent", self.user_agent)
        request = Request(REGISTER, self.registrar.copy(), headers)
        if self.auth is not None:
            self.auth.preauthorize(request)  # a known nonce saves the 401 round trip
        return request

    def _expires_in(self, now: float) -> float | None:
        if self.bound_until is None or self.bound_until <= now:
            return None
        return self.bound_until - now


@dataclass(slots=True)
class Registrations:
    """Every trunk's registration, kept across policy reloads."""

    by_trunk: dict[str, Registration] = field(default_factory=dict)

    def sync(self, wanted: Iterable[Registration]) -> list[Registration]:
        """Follow a new policy; return the registrations dropped or replaced.

        One whose REGISTER would not change is kept (its Call-ID, CSeq and
        binding) and takes the new ``auth`` (credentials may have changed).
        The caller may send :meth:`Registration.unregister` for those returned.
        """
        kept: dict[str, Registration] = {}
        for new in wanted:
            old = self.by_trunk.get(new.trunk.name)
            if old is not None and old.same_binding(new):
                old.trunk, old.interface, old.auth = new.trunk, new.interface, new.auth
                old.user_agent = new.user_agent
                new = old  # noqa: PLW2901 - keep the live binding
            kept[new.trunk.name] = new
        gone = [r for name, r in self.by_trunk.items() if kept.get(name) is not r]
        self.by_trunk = kept
        return gone

    def get(self, trunk: str) -> Registration | None:
        return self.by_trunk.get(trunk)

    def next_deadline(self) -> float | None:
        deadlines = [r.next_deadline() for r in self.by_trunk.values()]
        return min((d for d in deadlines if d is not None), default=None)

    def due(self, now: float) -> list[tuple[Registration, Request]]:
        """Every REGISTER to send now."""
        found = []
        for registration in self.by_trunk.values():
            request = registration.due(now)
            if request is not None:
                found.append((registration, request))
        return found

    def reconnected(self, transport: str, host: str, port: int, now: float) -> list[str]:
        """A TCP/TLS flow to ``host:port`` is up: each registration going there
        registers again over it (:meth:`Registration.reconnected`); the trunks
        that will."""
        again = []
        for name, registration in self.by_trunk.items():
            target = registration.target()
            flow = (target.transport, target.host, target.port)
            if flow == (transport, host, port) and registration.reconnected(now):
                again.append(name)
        return again

    def trunk_for_contact(self, uri: Uri) -> str | None:
        """The trunk whose registered Contact ``uri`` is (incoming calls to it)."""
        for name, registration in self.by_trunk.items():
            if registration.matches_contact(uri):
                return name
        return None

    def statuses(self, now: float) -> list[RegistrationStatus]:
        return [r.status(now) for r in self.by_trunk.values()]


# --- helpers ----------------------------------------------------------------------------


def refresh_delay(granted: float, margin: float) -> float:
    """Seconds after a 2xx to refresh: ``margin`` before expiry, at half-life at the latest."""
    return max(MIN_REFRESH_S, granted - min(margin, granted / 2))


def _scheme(trunk: Trunk) -> str:
    """``sips`` toward a TLS trunk (RFC 5630 §3.1.3), else ``sip``."""
    return "sips" if trunk.transport == "tls" else "sip"


def _transport_param(trunk: Trunk) -> dict[str, str | None]:
    """``transport=tcp`` for TCP; UDP is the default and ``sips`` implies TLS."""
    return {"transport": trunk.transport} if trunk.transport == "tcp" else {}


def _answers(sent: Request, response: Response) -> bool:
    try:
        cseq = response.cseq
        return response.call_id == sent.call_id and (cseq.seq, cseq.method) == (
            sent.cseq.seq,
            REGISTER,
        )
    except ParseError:
        return False


def _delta_seconds(text: str | None) -> int | None:
    """``delta-seconds = 1*DIGIT`` (RFC 3261 §25.1), capped at 2**32-1; else None."""
    if text is None:
        return None
    return parse_number(text.strip(" \t"), MAX_DELTA_SECONDS, clamp=True)


def _retry_after(value: str | None) -> float | None:
    """``Retry-After = delta-seconds [ comment ] *( SEMI retry-param )`` (§20.33)."""
    if value is None:
        return None
    seconds = _delta_seconds(value.split(";", 1)[0].split("(", 1)[0])
    return None if seconds is None else min(float(seconds), MAX_RETRY_AFTER_S)


def _granted_expires(response: Response, ours: SipUri, asked: int) -> int:
    """The lifetime the 2xx gives our Contact (RFC 3261 §10.2.4).

    Our Contact is found by user, host and port (§19.1.4); failing that, by
    user part alone when only one Contact has it (a registrar rewriting the
    host for NAT). Then the Expires header; then what we asked for.
    """
    try:
        contacts = [c for c in response.contacts if isinstance(c.uri, SipUri)]
    except ParseError:
        contacts = []
    mine = _our_contact(contacts, ours)
    if mine is not None:
        granted = _delta_seconds(mine.params.get("expires"))
        if granted is not None:
            return granted
    header = _delta_seconds(response.headers.get("Expires"))
    return asked if header is None else header


def _our_contact(contacts: list[Address], ours: SipUri) -> Address | None:
    for contact in contacts:
        if isinstance(contact.uri, SipUri) and _same_contact(contact.uri, ours):
            return contact
    same_user = [c for c in contacts if isinstance(c.uri, SipUri) and _same_user(c.uri, ours)]
    return same_user[0] if len(same_user) == 1 else None


def _same_user(uri: SipUri, ours: SipUri) -> bool:
    return unescape(uri.user or "") == unescape(ours.user or "")


def _same_user_host(uri: SipUri, ours: SipUri) -> bool:
    return _same_user(uri, ours) and uri.host_bare == ours.host_bare


def _same_contact(uri: SipUri, ours: SipUri) -> bool:
    return _same_user_host(uri, ours) and _port(uri) == _port(ours)


def _port(uri: SipUri) -> int:
    if uri.port is not None:
        return uri.port
    return 5061 if uri.scheme == "sips" else 5060
