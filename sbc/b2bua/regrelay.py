"""Registration relay: the table of confirmed bindings.

Theory of operation. A REGISTER arriving on an interface with a relay
(``interfaces.yaml`` → ``registration``) is re-issued by the SBC toward the
registrar trunk with the SBC's own Contact (a per-AOR user at the SBC's
address: :class:`Upstream`), so the registrar, and anyone calling through
it, reaches the phone through us. A :class:`Binding` remembers what the
phone really is: its Contact URI (the Request-URI calls to it carry) and its
observed source — address, transport and connection — which is where
requests to it go (RFC 3581 spirit, RFC 5626 §5: a NATed client is reachable
only through the flow it opened).

A binding exists, and changes, only once the registrar has answered 2xx to
the phone's REGISTER for it: until then the REGISTER waits in
:mod:`sbc.b2bua.regpending`, and :mod:`sbc.b2bua.registrar` drives both.

Two lifetimes: the phone is told a short expiry (``client_expires_s``, e.g.
60 s) so it refreshes often and keeps its NAT pinhole open, while upstream the
SBC asks for a long one (``upstream_expires_s``) and refreshes it only when
it nears its end; a phone's refresh from the binding's own flow that finds the
upstream binding still good is answered locally (registration throttling).
Between refreshes the SBC sends OPTIONS keepalives to each phone. A phone that
stops refreshing is dropped, and its upstream binding removed (Expires: 0).

The table counts bindings per source host and per interface, for the caps
and for :meth:`RegistrationRelay.binds_host` (O(1)).

Pure: the core sends what the driver builds and reports what came back.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter
from dataclasses import dataclass, field

import structlog

from sbc.sip.ids import new_call_id, new_tag, random_token
from sbc.sip.target import Target

log = structlog.get_logger("sbc.registrations")

#: A phone gets this much slack past its expiry before it is dropped.
GRACE_S = 10.0
#: Upstream is refreshed when less than this share of its lifetime is left.
REFRESH_SHARE = 0.5


@dataclass(frozen=True, slots=True)
class RelaySettings:
    """One interface's relay, as the policy sets it (docs/policies.md)."""

    interface: str
    registrar: str  # trunk name
    client_expires: int = 60
    upstream_expires: int = 3600
    keepalive: float = 25.0
    max_bindings: int = 50_000  # on this interface
    max_bindings_per_source: int = 1000  # per source host
    max_pending: int = 5000  # REGISTERs the registrar has not answered yet
    max_pending_per_source: int = 100


@dataclass(slots=True)
class Upstream:
    """The SBC's own registration of one AOR with the registrar: its Contact
    user and, per RFC 3261 §10.2.4, one Call-ID and From tag with a rising CSeq."""

    sbc_user: str = field(default_factory=lambda: "r" + random_token(6))
    call_id: str = field(default_factory=lambda: new_call_id(random_token(4)))
    tag: str = field(default_factory=new_tag)
    cseq: int = 0
    expires_at: float = 0.0  # 0: not registered upstream

    def fresh(self, lifetime: int, now: float) -> bool:
        """Plenty of life left: a phone's refresh need not go upstream."""
        return self.expires_at - now > lifetime * REFRESH_SHARE


@dataclass(slots=True)
class Binding:
    """A registered phone: who it is, where it really is, and its upstream twin."""

    aor_user: str
    contact: str  # the phone's Contact URI (calls to it carry it as Request-URI)
    source: Target  # where the confirmed REGISTER came from: requests to it go here
    interface: str
    expires_at: float  # the phone's own (short) registration
    upstream: Upstream
    next_keepalive: float = 0.0

    def is_from(self, source: Target) -> bool:
        """``source`` is this binding's own flow: same interface, transport,
        address and port, and on TCP/TLS the same connection (RFC 5626 §5)."""
        mine = self.source
        return (
            mine.host == source.host
            and mine.port == source.port
            and mine.transport == source.transport
            and mine.interface == source.interface
            and (not mine.reliable or mine.connection == source.connection)
        )


@dataclass
class RegistrationRelay:
    """Every confirmed binding, by AOR user (one per user: the last confirmed wins)."""

    bindings: dict[str, Binding] = field(default_factory=dict)
    # The user of the Contact we registered upstream, for calls the registrar
    # retargets to it (RFC 3261 §10: it routes to the bound Contact).
    by_sbc_user: dict[str, str] = field(default_factory=dict)
    _hosts: Counter[str] = field(default_factory=Counter)
    _interfaces: Counter[str] = field(default_factory=Counter)
    _heap: list[tuple[float, int, str]] = field(default_factory=list)
    _seq: itertools.count[int] = field(default_factory=itertools.count)

    def lookup(self, user: str, now: float) -> Binding | None:
        """The live binding of AOR ``user``."""
        return _live(self.bindings.get(user), now)

    def callee(self, user: str, now: float) -> Binding | None:
        """Where a call to ``user`` goes: the live binding of AOR ``user``, or
        of the SBC Contact user ``user``."""
        binding = self.bindings.get(user) or self.bindings.get(self.by_sbc_user.get(user, ""))
        return _live(binding, now)

    def holds(self, upstream: Upstream) -> bool:
        """Some binding registers through ``upstream``."""
        binding = self.bindings.get(self.by_sbc_user.get(upstream.sbc_user, ""))
        return binding is not None and binding.upstream is upstream

    def binds_host(self, host: str) -> bool:
        return self._hosts[host] > 0

    def from_host(self, host: str) -> int:
        return self._hosts[host]

    def on_interface(self, interface: str) -> int:
        return self._interfaces[interface]

    def bind(
        self,
        user: str,
        contact: str,
        *,
        source: Target,
        upstream: Upstream,
        settings: RelaySettings,
        now: float,
    ) -> tuple[Binding, Upstream | None]:
        """The registrar confirmed ``user`` at ``contact`` from ``source``:
        create or move its binding. Returns it, and the upstream identity it
        replaced (to remove upstream), if any."""
        binding = self.bindings.get(user)
        replaced = None
        if binding is None:
            binding = Binding(user, contact, source, settings.interface, now, upstream)
            self.bindings[user] = binding
            log.info("registration.new", user=user, source=f"{source.host}:{source.port}")
        else:
            self._count(binding, -1)
            if not binding.is_from(source):
                log.info("registration.moved", user=user, source=f"{source.host}:{source.port}")
            binding.contact, binding.source, binding.interface = contact, source, settings.interface
            if binding.upstream is not upstream:
                replaced = binding.upstream
                self.by_sbc_user.pop(replaced.sbc_user, None)
                binding.upstream = upstream
        self.by_sbc_user[upstream.sbc_user] = user
        self._count(binding, 1)
        self.refreshed(binding, settings, now)
        return binding, replaced

    def refreshed(self, binding: Binding, settings: RelaySettings, now: float) -> None:
        """The phone is registered (again) for ``client_expires``."""
        binding.expires_at = now + settings.client_expires
        binding.next_keepalive = now + settings.keepalive
        self._push(binding.expires_at + GRACE_S, binding.aor_user)
        self._push(binding.next_keepalive, binding.aor_user)

    def remove(self, user: str) -> Binding | None:
        binding = self.bindings.pop(user, None)
        if binding is not None:
            self.by_sbc_user.pop(binding.upstream.sbc_user, None)
            self._count(binding, -1)
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

    def _count(self, binding: Binding, delta: int) -> None:
        for counter, key in (
            (self._hosts, binding.source.host),
            (self._interfaces, binding.interface),
        ):
            counter[key] += delta
            if counter[key] <= 0:
                del counter[key]


def _live(binding: Binding | None, now: float) -> Binding | None:
    return None if binding is None or binding.expires_at + GRACE_S < now else binding
