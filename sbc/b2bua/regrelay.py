"""Registration relay: phones (or a PBX) behind NAT register through the SBC.

Theory of operation. A REGISTER arriving on an interface with a relay
(``interfaces.yaml`` → ``registration``) is re-issued by the SBC toward the
registrar trunk with the SBC's own Contact (a per-binding user at the SBC's
address), so the registrar, and anyone calling through it, reaches the phone
through us. The binding remembers what the phone really is: its Contact URI
(the Request-URI calls to it carry) and its observed source — address,
transport and connection — which is where requests to it go (RFC 3581 spirit,
RFC 5626 §5: a NATed client is reachable only through the flow it opened).

Two lifetimes: the phone is told a short expiry (``client_expires_s``, e.g.
60 s) so it refreshes often and keeps its NAT pinhole open, while upstream the
SBC asks for a long one (``upstream_expires_s``) and refreshes it only when
it nears its end; a phone's refresh that finds the upstream binding still
good is answered locally (registration throttling). Between refreshes the SBC
sends OPTIONS keepalives to each phone. A phone that stops refreshing is
dropped, and its upstream binding removed (Expires: 0).

Pure: the core sends what this module builds and reports what came back.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field

import structlog

from sbc.b2bua.identity import uri_host, via_value
from sbc.sip.errors import ParseError
from sbc.sip.headers import Headers
from sbc.sip.ids import new_call_id, new_tag, random_token
from sbc.sip.message import Request, Response
from sbc.sip.target import Target
from sbc.sip.uri import SipUri

log = structlog.get_logger("sbc.registrations")

#: A phone gets this much slack past its expiry before it is dropped.
GRACE_S = 10.0
#: Upstream is refreshed when less than this share of its lifetime is left.
REFRESH_SHARE = 0.5
#: Credentials travel end to end: the registrar authenticates the phone.
AUTH_HEADERS = ("Authorization", "Proxy-Authorization")
CHALLENGE_HEADERS = ("WWW-Authenticate", "Proxy-Authenticate")


@dataclass(frozen=True, slots=True)
class RelaySettings:
    """One interface's relay, as the policy sets it."""

    interface: str
    registrar: str  # trunk name
    client_expires: int = 60
    upstream_expires: int = 3600
    keepalive: float = 25.0


@dataclass(slots=True)
class Binding:
    """A registered phone: who it is, where it really is, and its upstream twin."""

    aor_user: str
    contact: str  # the phone's Contact URI (calls to it carry it as Request-URI)
    source: Target  # where the phone's REGISTER came from: requests to it go here
    interface: str
    expires_at: float  # the phone's own (short) registration
    sbc_user: str = field(default_factory=lambda: "r" + random_token(6))
    upstream_call_id: str = ""
    upstream_tag: str = field(default_factory=new_tag)
    upstream_cseq: int = 0
    upstream_expires_at: float = 0.0  # 0: not registered upstream
    next_keepalive: float = 0.0


@dataclass(frozen=True, slots=True)
class RelayedRegister:
    """Context of an upstream REGISTER (``tx.context``): whose, and what to answer."""

    binding: Binding
    origin: object  # the phone's server transaction (None: our own refresh/removal)
    requested: int  # expiry the phone asked for


@dataclass(frozen=True, slots=True)
class Keepalive:
    """Context of an OPTIONS keepalive to a phone (its answer is not needed)."""

    aor_user: str


@dataclass
class RegistrationRelay:
    """Every relayed binding, by AOR user (one binding per user: the newest wins)."""

    bindings: dict[str, Binding] = field(default_factory=dict)
    # The user of the Contact we registered upstream, for calls the registrar
    # retargets to it (RFC 3261 §10: it routes to the bound Contact).
    by_sbc_user: dict[str, str] = field(default_factory=dict)
    _heap: list[tuple[float, int, str]] = field(default_factory=list)
    _seq: itertools.count[int] = field(default_factory=itertools.count)

    def lookup(self, user: str, now: float) -> Binding | None:
        """The live binding of AOR ``user``, or of the SBC Contact user ``user``."""
        binding = self.bindings.get(user) or self.bindings.get(self.by_sbc_user.get(user, ""))
        if binding is None or binding.expires_at + GRACE_S < now:
            return None
        return binding

    def upsert(
        self, user: str, contact: str, source: Target, settings: RelaySettings, now: float
    ) -> Binding:
        """The phone's binding, created or moved to where it registers from now."""
        binding = self.bindings.get(user)
        if binding is None:
            binding = Binding(user, contact, source, settings.interface, now)
            binding.upstream_call_id = new_call_id(random_token(4))
            self.bindings[user] = binding
            self.by_sbc_user[binding.sbc_user] = user
            log.info("registration.new", user=user, source=f"{source.host}:{source.port}")
        binding.contact, binding.source, binding.interface = contact, source, settings.interface
        return binding

    def refreshed(self, binding: Binding, settings: RelaySettings, now: float) -> None:
        """The phone is registered (again) for ``client_expires``."""
        binding.expires_at = now + settings.client_expires
        binding.next_keepalive = now + settings.keepalive
        self._push(binding.expires_at + GRACE_S, binding.aor_user)
        self._push(binding.next_keepalive, binding.aor_user)

    def upstream_fresh(self, binding: Binding, settings: RelaySettings, now: float) -> bool:
        """The upstream binding has plenty of life left: answer the phone locally."""
        left = binding.upstream_expires_at - now
        return left > settings.upstream_expires * REFRESH_SHARE

    def remove(self, user: str) -> Binding | None:
        binding = self.bindings.pop(user, None)
        if binding is not None:
            self.by_sbc_user.pop(binding.sbc_user, None)
            log.info("registration.removed", user=user)
        return binding

    def next_deadline(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def due(self, now: float) -> tuple[list[Binding], list[Binding]]:
        """(expired bindings, now removed; bindings due a keepalive)."""
        expired: list[Binding] = []
        keepalive: dict[str, Binding] = {}
        while self._heap and self._heap[0][0] <= now:
            _, _, user = heapq.heappop(self._heap)
            binding = self.bindings.get(user)
            if binding is None:
                continue
            if binding.expires_at + GRACE_S <= now:
                expired.append(binding)
                self.remove(user)
            elif binding.next_keepalive <= now:
                keepalive[user] = binding
        return expired, list(keepalive.values())

    def kept_alive(self, binding: Binding, settings: RelaySettings, now: float) -> None:
        binding.next_keepalive = now + settings.keepalive
        self._push(binding.next_keepalive, binding.aor_user)

    def _push(self, deadline: float, user: str) -> None:
        heapq.heappush(self._heap, (deadline, next(self._seq), user))


def requested_expires(request: Request, default: int = 3600) -> int:
    """RFC 3261 §10.2.1.1: the Contact's expires parameter, else Expires, else default."""
    try:
        contacts = request.contacts
    except ParseError:
        contacts = []
    for contact in contacts:
        value = contact.params.get("expires")
        if value is not None and value.isdigit():
            return int(value)
    header = request.headers.get("Expires")
    if header is not None and header.strip().isdigit():
        return int(header.strip())
    return default


def upstream_register(
    binding: Binding,
    *,
    registrar: SipUri,
    transport: str,
    local_host: str,
    local_port: int,
    expires: int,
    phone_request: Request | None,
    user_agent: str | None,
) -> Request:
    """The REGISTER the SBC sends for ``binding`` (same Call-ID, next CSeq,
    RFC 3261 §10.2.4), with the SBC's Contact and the phone's credentials."""
    binding.upstream_cseq += 1
    host = uri_host(local_host)
    aor = f"<sip:{binding.aor_user}@{uri_host(registrar.host)}>"
    suffix = "" if transport == "udp" else f";transport={transport}"
    headers = Headers()
    headers.add("Via", via_value(transport, local_host, local_port))
    headers.add("Max-Forwards", "70")
    headers.add("From", f"{aor};tag={binding.upstream_tag}")
    headers.add("To", aor)
    headers.add("Call-ID", binding.upstream_call_id)
    headers.add("CSeq", f"{binding.upstream_cseq} REGISTER")
    headers.add("Contact", f"<sip:{binding.sbc_user}@{host}:{local_port}{suffix}>")
    headers.add("Expires", str(expires))
    if phone_request is not None:
        for name in AUTH_HEADERS:
            for value in phone_request.headers.get_all(name):
                headers.add(name, value)
    if user_agent:
        headers.add("User-Agent", user_agent)
    return Request("REGISTER", registrar.copy(), headers)


def granted_expires(response: Response, binding: Binding, asked: int) -> int:
    """What the registrar granted our Contact (RFC 3261 §10.2.4)."""
    try:
        contacts = response.contacts
    except ParseError:
        contacts = []
    for contact in contacts:
        uri = contact.uri
        if isinstance(uri, SipUri) and uri.user == binding.sbc_user:
            value = contact.params.get("expires")
            if value is not None and value.isdigit():
                return int(value)
    header = response.headers.get("Expires")
    if header is not None and header.strip().isdigit():
        return int(header.strip())
    return asked


def keepalive_options(binding: Binding, local_host: str, local_port: int) -> Request:
    """An OPTIONS to the phone's observed source: keeps its NAT pinhole open."""
    host = uri_host(local_host)
    transport = binding.source.transport
    headers = Headers()
    headers.add("Via", via_value(transport, local_host, local_port))
    headers.add("Max-Forwards", "70")
    headers.add("From", f"<sip:sbc@{host}>;tag={new_tag()}")
    headers.add("To", f"<sip:{binding.aor_user}@{host}>")
    headers.add("Call-ID", new_call_id(host))
    headers.add("CSeq", "1 OPTIONS")
    uri = SipUri(host=uri_host(binding.source.host), port=binding.source.port)
    return Request("OPTIONS", uri, headers)
