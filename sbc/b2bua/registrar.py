"""The registration relay's driver: phones' REGISTERs in, upstream REGISTERs
out, the registrar's answers back, keepalives, and where a call to a
registered user goes.

Rules. The SBC cannot authenticate a phone; the registrar does. So:

1. A binding changes only on the registrar's 2xx to the REGISTER that asked
   for the change; meanwhile the REGISTER is pending
   (:mod:`sbc.b2bua.regpending`). A 401/407 goes back to the phone and the
   binding stays as it was.
2. A removal (``Expires: 0``, ``;expires=0``, ``Contact: *``) is relayed too
   and takes effect on the 2xx: nobody deletes a binding on their own word.
3. The SBC answers a refresh itself (upstream binding still fresh) only when
   it comes from the binding's own flow — address, port, transport and, on
   TCP/TLS, connection — with the same Contact and no credentials. Anything
   else goes upstream to be authenticated.
4. A query (no Contact, RFC 3261 §10.2.3) shows the binding's Contact only to
   that same flow. Anyone else gets 200 with no Contact, the answer for an
   AOR nobody registered. Relaying it instead would have the registrar list
   its bindings — the SBC's own Contacts, to be translated back — and cost
   pending state for a question that changes nothing; the local answer
   reveals nothing and costs nothing.
5. What strangers can make the relay hold is bounded: pending REGISTERs per
   source host and per interface, each forgotten after 32 s; bindings per
   source host and per interface. Over a cap: 503 with Retry-After, counted.
   Bindings are counted when the registrar confirms them, so a cap can be
   passed by at most the REGISTERs in flight when it is reached (themselves
   capped).

:mod:`sbc.b2bua.regrelay` keeps the bindings, :mod:`sbc.b2bua.regpending` the
REGISTERs in flight, :mod:`sbc.b2bua.regmessages` reads and builds the
messages; this module drives them with the core's transaction layer (through
the small :class:`Sender` protocol), so core.py only dispatches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sbc.b2bua.regmessages import (
    CHALLENGE_HEADERS,
    Ask,
    PhoneRegister,
    granted_expires,
    keepalive_options,
    parse_register,
    upstream_register,
)
from sbc.b2bua.regpending import PendingRegister, PendingRegisters
from sbc.b2bua.regrelay import Binding, RegistrationRelay, RelaySettings, Upstream
from sbc.policy import Policy
from sbc.sip.errors import ParseError
from sbc.sip.ids import new_tag
from sbc.sip.message import Request, Response, build_response
from sbc.sip.target import Target
from sbc.sip.transaction import ServerTransaction
from sbc.sip.uri import SipUri, parse_uri

__all__ = ["STATS", "Keepalive", "Registrar", "RelayedRegister", "relay_settings"]

#: Retry-After of a cap refusal, in seconds: pending REGISTERs clear within seconds.
RETRY_AFTER_S = 30
#: Counters (``Registrar.stats``) for the admin metrics:
#: hijack_refused — REGISTERs from another flow than the binding's own that
#: ended without the registrar's 2xx (the binding stayed); queries_hidden —
#: queries from another flow answered without the Contact; pending_expired —
#: REGISTERs the registrar never answered (TTL or timeout); refused_* — 503s.
STATS = (
    "hijack_refused",
    "queries_hidden",
    "pending_expired",
    "refused_pending_cap",
    "refused_binding_cap",
)


@dataclass(frozen=True, slots=True)
class RelayedRegister:
    """Context of an upstream REGISTER (``tx.context``): for whom, and what to answer."""

    aor_user: str
    upstream: Upstream
    expires: int  # what we asked the registrar for
    pending: PendingRegister | None  # the phone's REGISTER; None: our own refresh/removal


@dataclass(frozen=True, slots=True)
class Keepalive:
    """Context of an OPTIONS keepalive to a phone (its answer is not needed)."""

    aor_user: str


class Sender(Protocol):
    """What the registrar needs of the core."""

    @property
    def policy(self) -> Policy: ...

    @property
    def user_agent(self) -> str | None: ...

    def send_new(self, request: Request, target: Target, context: object) -> None: ...

    def send_response(self, tx: ServerTransaction, response: Response) -> None: ...


def relay_settings(policy: Policy, interface: str) -> RelaySettings | None:
    spec = policy.interfaces[interface].registration if interface in policy.interfaces else None
    if spec is None or spec.registrar not in policy.trunks:
        return None
    return RelaySettings(
        interface=interface,
        registrar=spec.registrar,
        client_expires=spec.client_expires_s,
        upstream_expires=spec.upstream_expires_s,
        keepalive=float(spec.keepalive_s),
        max_bindings=spec.max_bindings,
        max_bindings_per_source=spec.max_bindings_per_source,
        max_pending=spec.max_pending,
        max_pending_per_source=spec.max_pending_per_source,
    )


class Registrar:
    """Relays the REGISTERs of one SBC's interfaces; bindings survive reloads."""

    def __init__(self) -> None:
        self.relay = RegistrationRelay()
        self.pending = PendingRegisters()
        self.stats: dict[str, int] = dict.fromkeys(STATS, 0)

    def binds_source(self, host: str) -> bool:
        """A live binding the registrar confirmed was registered from ``host``
        (O(1)): the guard spares such a source a ban on a forgeable signal."""
        return self.relay.binds_host(host)

    def on_register(
        self, core: Sender, request: Request, source: Target, tx: ServerTransaction, now: float
    ) -> None:
        settings = relay_settings(core.policy, source.interface)
        if settings is None:
            self._answer(core, tx, 405)
            return
        try:
            phone = parse_register(request)
        except ParseError as exc:
            self._answer(core, tx, 400, str(exc))
            return
        binding = self.relay.lookup(phone.user, now)
        if phone.ask is Ask.QUERY:
            self._query(core, tx, binding, source, now)
        elif binding is not None and _absorbs(binding, phone, source, settings, now):
            self.relay.refreshed(binding, settings, now)  # throttled: answered here
            self._registered(core, tx, binding, settings, now)
        elif phone.ask is Ask.REMOVE and binding is None:
            self._answer(core, tx, 200)  # nothing of ours is bound
        else:
            self._relay(
                core,
                request,
                phone=phone,
                binding=binding,
                source=source,
                tx=tx,
                settings=settings,
                now=now,
            )

    def on_upstream(
        self,
        core: Sender,
        context: RelayedRegister,
        response: Response | None,
        status: int,
        now: float,
    ) -> None:
        """The registrar answered (or not) a REGISTER we sent."""
        pending = context.pending
        granted = response if response is not None and 200 <= status < 300 else None
        if pending is None:  # our own refresh or removal
            if granted is not None:
                _granted(context, granted, now)
            return
        if not self.pending.take(pending):  # given up on already (its phone got 408)
            if granted is not None and pending.contact is not None:
                self._undo(core, context)
            return
        if response is None:  # no answer at all: timeout or transport failure
            self.stats["pending_expired"] += 1
        if granted is not None:
            self._confirmed(core, context, pending, granted, now)
            return
        self._failed(pending, now)
        if status in (401, 407) and response is not None:
            # The registrar authenticates the phone itself: pass its challenge on.
            out = build_response(pending.origin.request, status, response.reason, to_tag=new_tag())
            for name in CHALLENGE_HEADERS:
                for value in response.headers.get_all(name):
                    out.headers.add(name, value)
            core.send_response(pending.origin, out)
            return
        self._answer(core, pending.origin, status if status >= 300 else 500)

    def on_timer(self, core: Sender, now: float) -> None:
        for pending in self.pending.expired(now):
            self.stats["pending_expired"] += 1
            self._failed(pending, now)
            self._answer(core, pending.origin, 408)
        expired, keepalives = self.relay.due(now)
        for binding in expired:
            settings = relay_settings(core.policy, binding.interface)
            if settings is not None and binding.upstream.expires_at > now:
                self._send_upstream(core, settings, binding.upstream, binding.aor_user, 0)
        for binding in keepalives:
            settings = relay_settings(core.policy, binding.interface)
            if settings is None:
                continue
            interface = core.policy.interfaces[binding.interface]
            port = interface.port_for(binding.source.transport)
            options = keepalive_options(binding, interface.advertised_address, port)
            core.send_new(options, binding.source, Keepalive(binding.aor_user))
            self.relay.kept_alive(binding, settings, now)

    def next_deadline(self) -> float | None:
        deadlines = (self.relay.next_deadline(), self.pending.next_deadline())
        return min((d for d in deadlines if d is not None), default=None)

    def target_of(self, user: str, now: float) -> tuple[Binding, SipUri] | None:
        """Where a call to ``user`` goes: the binding and the phone's Contact URI."""
        binding = self.relay.callee(user, now)
        if binding is None:
            return None
        try:
            uri = parse_uri(binding.contact)
        except ParseError:
            return None
        return (binding, uri) if isinstance(uri, SipUri) else None

    # --- building blocks ------------------------------------------------------

    def _relay(
        self,
        core: Sender,
        request: Request,
        *,
        phone: PhoneRegister,
        binding: Binding | None,
        source: Target,
        tx: ServerTransaction,
        settings: RelaySettings,
        now: float,
    ) -> None:
        """Hold the phone's REGISTER as pending and ask the registrar."""
        refused = self._over_cap(phone, binding, source, settings)
        if refused is not None:
            self.stats[refused] += 1
            response = build_response(request, 503, to_tag=new_tag())
            response.headers.add("Retry-After", str(RETRY_AFTER_S))
            core.send_response(tx, response)
            return
        if binding is not None:
            upstream = binding.upstream
        else:
            upstream = self.pending.identity(phone.user, settings, now)
        pending = self.pending.add(
            phone.user, contact=phone.contact, source=source, origin=tx, upstream=upstream, now=now
        )
        expires = 0 if phone.ask is Ask.REMOVE else settings.upstream_expires
        self._send_upstream(
            core, settings, upstream, phone.user, expires, pending=pending, phone_request=request
        )

    def _over_cap(
        self, phone: PhoneRegister, binding: Binding | None, source: Target, settings: RelaySettings
    ) -> str | None:
        """Which cap (a ``stats`` key) this REGISTER would pass, if any."""
        if not self.pending.room_for(source, settings):
            return "refused_pending_cap"
        if phone.ask is not Ask.BIND or (
            binding is not None and binding.source.host == source.host
        ):
            return None  # no new binding for this source
        if self.relay.from_host(source.host) >= settings.max_bindings_per_source:
            return "refused_binding_cap"
        if binding is None and self.relay.on_interface(settings.interface) >= settings.max_bindings:
            return "refused_binding_cap"
        return None

    def _confirmed(
        self,
        core: Sender,
        context: RelayedRegister,
        pending: PendingRegister,
        response: Response,
        now: float,
    ) -> None:
        """The registrar's 2xx to a phone's REGISTER: only now the binding changes."""
        settings = relay_settings(core.policy, pending.source.interface)
        if settings is None:  # the relay went with a policy reload
            self._answer(core, pending.origin, 503)
            return
        upstream = pending.upstream
        _granted(context, response, now)
        if pending.contact is None:  # a removal
            if self.relay.holds(upstream):
                self.relay.remove(pending.aor_user)
            self._answer(core, pending.origin, 200)
            return
        binding, replaced = self.relay.bind(
            pending.aor_user,
            pending.contact,
            source=pending.source,
            upstream=upstream,
            settings=settings,
            now=now,
        )
        self.pending.bound(pending.aor_user)
        if replaced is not None and replaced.expires_at > now:
            self._send_upstream(core, settings, replaced, pending.aor_user, 0)
        self._registered(core, pending.origin, binding, settings, now)

    def _failed(self, pending: PendingRegister, now: float) -> None:
        """A pending REGISTER ended without a 2xx: the binding stays as it was."""
        binding = self.relay.lookup(pending.aor_user, now)
        if binding is not None and not binding.is_from(pending.source):
            self.stats["hijack_refused"] += 1

    def _undo(self, core: Sender, context: RelayedRegister) -> None:
        """A 2xx after we answered the phone 408 bound a Contact that no binding
        answers for: take it back upstream."""
        pending = context.pending
        if pending is None or self.relay.holds(context.upstream):
            return
        settings = relay_settings(core.policy, pending.source.interface)
        if settings is not None:
            self._send_upstream(core, settings, context.upstream, context.aor_user, 0)

    def _send_upstream(
        self,
        core: Sender,
        settings: RelaySettings,
        upstream: Upstream,
        aor_user: str,
        expires: int,
        *,
        pending: PendingRegister | None = None,
        phone_request: Request | None = None,
    ) -> None:
        policy = core.policy
        trunk = policy.trunks[settings.registrar]
        interface = policy.interfaces[trunk.interface]
        params: dict[str, str | None] = {}
        if trunk.transport != "udp":
            params["transport"] = trunk.transport
        registrar = SipUri(host=trunk.address, port=trunk.port, params=params)
        request = upstream_register(
            upstream,
            aor_user,
            registrar=registrar,
            transport=trunk.transport,
            local_host=interface.advertised_address,
            local_port=interface.port_for(trunk.transport),
            expires=expires,
            phone_request=phone_request,
            user_agent=core.user_agent,
        )
        target = Target(interface.name, trunk.transport, trunk.address, trunk.port)
        core.send_new(request, target, RelayedRegister(aor_user, upstream, expires, pending))

    def _registered(
        self,
        core: Sender,
        tx: ServerTransaction,
        binding: Binding,
        settings: RelaySettings,
        now: float,
    ) -> None:
        """200 to the phone: its own Contact, with the short expiry (RFC 3261 §10.3)."""
        expires = max(1, int(binding.expires_at - now))
        response = build_response(tx.request, 200, to_tag=new_tag())
        response.headers.add("Contact", f"<{binding.contact}>;expires={expires}")
        response.headers.add("Expires", str(settings.client_expires))
        core.send_response(tx, response)

    def _query(
        self,
        core: Sender,
        tx: ServerTransaction,
        binding: Binding | None,
        source: Target,
        now: float,
    ) -> None:
        """RFC 3261 §10.2.3, answered for the binding's own flow only (rule 4)."""
        response = build_response(tx.request, 200, to_tag=new_tag())
        if binding is not None and binding.is_from(source):
            expires = max(1, int(binding.expires_at - now))
            response.headers.add("Contact", f"<{binding.contact}>;expires={expires}")
        elif binding is not None:
            self.stats["queries_hidden"] += 1
        core.send_response(tx, response)

    def _answer(
        self, core: Sender, tx: ServerTransaction, status: int, reason: str | None = None
    ) -> None:
        core.send_response(tx, build_response(tx.request, status, reason, to_tag=new_tag()))


def _absorbs(
    binding: Binding, phone: PhoneRegister, source: Target, settings: RelaySettings, now: float
) -> bool:
    """A refresh the SBC may answer for the registrar (rule 3): only what it
    already granted, re-asserted by the same flow. Credentials are for the
    registrar: such a REGISTER always goes upstream."""
    return (
        phone.ask is Ask.BIND
        and not phone.credentials
        and binding.is_from(source)
        and binding.contact == phone.contact
        and binding.upstream.fresh(settings.upstream_expires, now)
    )


def _granted(context: RelayedRegister, response: Response, now: float) -> None:
    """The registrar's 2xx to a REGISTER of ours: how long our Contact holds."""
    upstream = context.upstream
    if context.expires == 0:
        upstream.expires_at = 0.0
    else:
        upstream.expires_at = now + granted_expires(response, upstream, context.expires)
