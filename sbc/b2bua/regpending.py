"""Registration relay: REGISTERs relayed to the registrar and not answered yet.

Theory of operation. The SBC cannot tell a phone from someone claiming to be
it: the registrar authenticates. So a REGISTER that would bind, move or
remove a binding is not believed on arrival; it is relayed upstream and held
here as a :class:`PendingRegister` — the phone's request (its server
transaction), what it asks and where it came from — until the registrar's
final answer to that very request. Only a 2xx lets the driver
(:mod:`sbc.b2bua.registrar`) change the binding table
(:mod:`sbc.b2bua.regrelay`); a 401/407 or any failure leaves it as it was.

Anyone can create pending entries, so they are bounded: per source host and
per interface (``max_pending_per_source`` / ``max_pending``), and each is
forgotten :data:`PENDING_TTL_S` after it arrived (Timer F with the default
T1: the registrar had its chance, whatever T1 the policy sets), its phone
answered 408. Entries expire in arrival order, so the table is a dict in
insertion order: no heap, no stale entries.

An AOR nobody has bound yet still needs one upstream identity (Call-ID, From
tag, CSeq, Contact user) across a challenge: the phone's retry with
credentials must reach the registrar in the same Call-ID with a higher CSeq
(RFC 3261 §10.2.4, §22.2). :meth:`PendingRegisters.identity` keeps it for
:data:`PENDING_TTL_S` after its last use, at most ``max_pending`` of them
(the oldest forgotten first); a binding takes it over on its 2xx.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sbc.b2bua.regrelay import RelaySettings, Upstream
from sbc.sip.target import Target
from sbc.sip.transaction import ServerTransaction

#: How long a REGISTER may wait for the registrar (Timer F: 64 T1, T1 = 500 ms).
PENDING_TTL_S = 32.0


@dataclass(eq=False, slots=True)
class PendingRegister:
    """A phone's REGISTER waiting for the registrar's answer (compared by identity)."""

    aor_user: str
    contact: str | None  # the Contact URI to bind; None: a removal
    source: Target
    origin: ServerTransaction  # the phone's request, answered when the registrar has
    upstream: Upstream
    deadline: float

    @property
    def removal(self) -> bool:
        return self.contact is None


@dataclass
class PendingRegisters:
    """Every pending REGISTER, oldest first, counted per source host and interface."""

    _live: dict[PendingRegister, None] = field(default_factory=dict)
    _hosts: Counter[str] = field(default_factory=Counter)
    _interfaces: Counter[str] = field(default_factory=Counter)
    # Upstream identities of AORs not bound yet, by AOR user: (identity, forget after).
    _identities: dict[str, tuple[Upstream, float]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self._live)

    def room_for(self, source: Target, settings: RelaySettings) -> bool:
        """Another pending REGISTER from ``source`` stays within the caps."""
        return (
            self._hosts[source.host] < settings.max_pending_per_source
            and self._interfaces[source.interface] < settings.max_pending
        )

    def identity(self, aor_user: str, settings: RelaySettings, now: float) -> Upstream:
        """The upstream identity of an AOR nobody has bound: kept across a challenge."""
        entry = self._identities.pop(aor_user, None)
        upstream = entry[0] if entry is not None else Upstream()
        self._identities[aor_user] = (upstream, now + PENDING_TTL_S)  # now the newest
        while len(self._identities) > settings.max_pending:
            del self._identities[next(iter(self._identities))]
        return upstream

    def bound(self, aor_user: str) -> None:
        """A binding took the AOR's identity over."""
        self._identities.pop(aor_user, None)

    def add(
        self,
        aor_user: str,
        *,
        contact: str | None,
        source: Target,
        origin: ServerTransaction,
        upstream: Upstream,
        now: float,
    ) -> PendingRegister:
        pending = PendingRegister(aor_user, contact, source, origin, upstream, now + PENDING_TTL_S)
        self._live[pending] = None
        self._hosts[source.host] += 1
        self._interfaces[source.interface] += 1
        return pending

    def take(self, pending: PendingRegister) -> bool:
        """Forget ``pending``; False when it was already gone (expired)."""
        if pending not in self._live:
            return False
        del self._live[pending]
        source = pending.source
        for counter, key in ((self._hosts, source.host), (self._interfaces, source.interface)):
            counter[key] -= 1
            if counter[key] <= 0:
                del counter[key]
        return True

    def expired(self, now: float) -> list[PendingRegister]:
        """Pending REGISTERs past their deadline, now forgotten (oldest first)."""
        gone: list[PendingRegister] = []
        for pending in self._live:
            if pending.deadline > now:
                break
            gone.append(pending)
        for pending in gone:
            self.take(pending)
        self._forget_identities(now)
        return gone

    def next_deadline(self) -> float | None:
        return next(iter(self._live)).deadline if self._live else None

    def _forget_identities(self, now: float) -> None:
        stale = []
        for user, (_, forget_after) in self._identities.items():
            if forget_after > now:
                break
            stale.append(user)
        for user in stale:
            del self._identities[user]
