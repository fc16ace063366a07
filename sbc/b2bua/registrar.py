"""The registration relay's side of the core: REGISTERs in, upstream REGISTERs
out, keepalives, and where a call to a registered user goes.

:mod:`sbc.b2bua.regrelay` keeps the bindings; this module drives them with
the core's transaction layer (through the small :class:`Sender` protocol),
so core.py only dispatches.
"""

from __future__ import annotations

from typing import Protocol

from sbc.b2bua.identity import user_of
from sbc.b2bua.regrelay import (
    AUTH_HEADERS,
    CHALLENGE_HEADERS,
    Binding,
    Keepalive,
    RegistrationRelay,
    RelayedRegister,
    RelaySettings,
    granted_expires,
    keepalive_options,
    requested_expires,
    upstream_register,
)
from sbc.policy import Policy
from sbc.sip.errors import ParseError
from sbc.sip.ids import new_tag
from sbc.sip.message import Request, Response, build_response
from sbc.sip.target import Target
from sbc.sip.transaction import ServerTransaction
from sbc.sip.uri import SipUri, parse_uri

__all__ = ["AUTH_HEADERS", "Registrar", "relay_settings"]


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
    )


class Registrar:
    """Relays the REGISTERs of one SBC's interfaces; bindings survive reloads."""

    def __init__(self) -> None:
        self.relay = RegistrationRelay()

    def on_register(
        self, core: Sender, request: Request, source: Target, tx: ServerTransaction, now: float
    ) -> None:
        settings = relay_settings(core.policy, source.interface)
        if settings is None:
            self._answer(core, tx, 405)
            return
        try:
            user = user_of(request.to.uri)
            contacts = request.contacts
        except ParseError as exc:
            self._answer(core, tx, 400, str(exc))
            return
        if not user:
            self._answer(core, tx, 400, "No User In To")
            return
        expires = requested_expires(request)
        if not contacts:  # a query (RFC 3261 §10.2.3): tell what we hold
            self._query(core, tx, self.relay.lookup(user, now), now)
            return
        if expires == 0:
            removed = self.relay.remove(user)
            if removed is not None:
                self._send_upstream(
                    core, removed, settings, expires=0, origin=None, phone_request=request
                )
            self._answer(core, tx, 200)
            return
        contact = str(contacts[0].uri)
        binding = self.relay.upsert(user, contact, source, settings, now)
        if self.relay.upstream_fresh(binding, settings, now) and not _carries_auth(request):
            self.relay.refreshed(binding, settings, now)  # throttled: answered here
            self._registered(core, tx, binding, settings, now)
            return
        self._send_upstream(
            core,
            binding,
            settings,
            expires=settings.upstream_expires,
            origin=tx,
            phone_request=request,
        )

    def on_upstream(
        self,
        core: Sender,
        context: RelayedRegister,
        response: Response | None,
        status: int,
        now: float,
    ) -> None:
        """The registrar answered (or not) a REGISTER we sent for a binding."""
        binding = context.binding
        origin = context.origin if isinstance(context.origin, ServerTransaction) else None
        settings = relay_settings(core.policy, binding.interface)
        if 200 <= status < 300 and response is not None and settings is not None:
            granted = granted_expires(response, binding, settings.upstream_expires)
            binding.upstream_expires_at = now + granted
            if origin is not None:
                self.relay.refreshed(binding, settings, now)
                self._registered(core, origin, binding, settings, now)
            return
        if origin is None:
            return
        if status in (401, 407) and response is not None:
            # The registrar authenticates the phone itself: pass its challenge on.
            out = build_response(origin.request, status, response.reason, to_tag=new_tag())
            for name in CHALLENGE_HEADERS:
                for value in response.headers.get_all(name):
                    out.headers.add(name, value)
            core.send_response(origin, out)
            return
        if binding.upstream_expires_at <= now:
            self.relay.remove(binding.aor_user)
        self._answer(core, origin, status if status >= 300 else 500)

    def on_timer(self, core: Sender, now: float) -> None:
        expired, keepalives = self.relay.due(now)
        for binding in expired:
            settings = relay_settings(core.policy, binding.interface)
            if settings is not None and binding.upstream_expires_at > now:
                self._send_upstream(
                    core, binding, settings, expires=0, origin=None, phone_request=None
                )
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
        return self.relay.next_deadline()

    def target_of(self, user: str, now: float) -> tuple[Binding, SipUri] | None:
        """Where a call to ``user`` goes: the binding and the phone's Contact URI."""
        binding = self.relay.lookup(user, now)
        if binding is None:
            return None
        try:
            uri = parse_uri(binding.contact)
        except ParseError:
            return None
        return (binding, uri) if isinstance(uri, SipUri) else None

    # --- building blocks ------------------------------------------------------

    def _send_upstream(
        self,
        core: Sender,
        binding: Binding,
        settings: RelaySettings,
        *,
        expires: int,
        origin: ServerTransaction | None,
        phone_request: Request | None,
    ) -> None:
        policy = core.policy
        trunk = policy.trunks[settings.registrar]
        interface = policy.interfaces[trunk.interface]
        params: dict[str, str | None] = {}
        if trunk.transport != "udp":
            params["transport"] = trunk.transport
        registrar = SipUri(host=trunk.address, port=trunk.port, params=params)
        request = upstream_register(
            binding,
            registrar=registrar,
            transport=trunk.transport,
            local_host=interface.advertised_address,
            local_port=interface.port_for(trunk.transport),
            expires=expires,
            phone_request=phone_request,
            user_agent=core.user_agent,
        )
        target = Target(interface.name, trunk.transport, trunk.address, trunk.port)
        requested = requested_expires(phone_request) if phone_request is not None else expires
        core.send_new(request, target, RelayedRegister(binding, origin, requested))

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
        self, core: Sender, tx: ServerTransaction, binding: Binding | None, now: float
    ) -> None:
        response = build_response(tx.request, 200, to_tag=new_tag())
        if binding is not None:
            expires = max(1, int(binding.expires_at - now))
            response.headers.add("Contact", f"<{binding.contact}>;expires={expires}")
        core.send_response(tx, response)

    def _answer(
        self, core: Sender, tx: ServerTransaction, status: int, reason: str | None = None
    ) -> None:
        core.send_response(tx, build_response(tx.request, status, reason, to_tag=new_tag()))

    def binds_source(self, host: str) -> bool:
        """Whether a phone registered from ``host`` (the guard does not ban it for a
        forgeable User-Agent). A scan of the bindings: asked only at such a ban."""
        return any(b.source.host == host for b in self.relay.bindings.values())


def _carries_auth(request: Request) -> bool:
    """Credentials are for the registrar: such a REGISTER always goes upstream."""
    return any(name in request.headers for name in AUTH_HEADERS)
