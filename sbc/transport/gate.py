"""The pool's door: who may take a connection slot, asked once per accept.

An inbound connection is admitted before a byte is read from it or a TLS
handshake starts: first the runtime's *screen* (ban table and ACL: the
transport itself knows no policy; a trunk's address is said so), then the
:class:`~sbc.transport.limits.ConnectionLedger`'s caps. A refused
connection is counted by reason and the caller closes it at once; the
first refusal per source and reason is logged, the rest only counted, so a
flood cannot flood the log. Outbound connections take their slot here too,
from the reserve if need be.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from sbc.transport.limits import ConnectionLedger, Refusal, TransportLimits, source_key
from sbc.transport.types import Screening, TransportStats

__all__ = ["AcceptGate"]

log = structlog.get_logger(__name__)

#: (reason, source) pairs already logged; forgotten all at once when full.
_MAX_LOGGED = 4096


class AcceptGate:
    """Admission of connections to one pool: screen, caps, counters."""

    __slots__ = ("_logged", "_screen", "_stats", "ledger")

    def __init__(
        self,
        limits: TransportLimits,
        screen: Callable[[str, str], Screening] | None,
        stats: TransportStats,
    ) -> None:
        self.ledger = ConnectionLedger(limits)
        self._screen = screen
        self._stats = stats
        self._logged: set[tuple[Refusal, str]] = set()

    def set_limits(self, limits: TransportLimits) -> None:
        """Caps for the next admissions; slots already held are kept."""
        self.ledger.limits = limits

    def admit(self, ident: int, host: str, interface: str, *, tls: bool = False) -> str | None:
        """Give connection ``ident`` from ``host`` a slot (and a TLS handshake
        slot with ``tls``): its source key, or None if refused (counted)."""
        key = source_key(host)
        refusal = self.ledger.refusal(key, self._screening(host, interface), tls=tls)
        if refusal is not None:
            self._refused(refusal, host, interface)
            return None
        self.ledger.take(ident, key)
        if tls:
            self.ledger.handshake_started(key)
        return key

    def handshake_ended(self, key: str) -> None:
        self.ledger.handshake_ended(key)

    def take_outbound(self, ident: int) -> bool:
        """A slot for a connection we open: False only when even the reserve is full."""
        if self.ledger.outbound_full():
            return False
        self.ledger.take(ident, None)
        return True

    def release(self, ident: int) -> None:
        """Connection ``ident`` is gone (harmless if it held no slot)."""
        self.ledger.release(ident)

    def clear(self) -> None:
        self.ledger.clear()

    def _screening(self, host: str, interface: str) -> Screening:
        if self._screen is None:
            return Screening.STRANGER
        try:
            return self._screen(host, interface)
        except Exception:  # a bug in the screen must not stop the listener: caps still apply
            log.exception("connection_screen_failed", peer=host, interface=interface)
            return Screening.STRANGER

    def _refused(self, reason: Refusal, host: str, interface: str) -> None:
        stats = self._stats
        if reason == "screened":
            stats.refused_screened += 1
        elif reason == "per_source":
            stats.refused_per_source += 1
        elif reason == "pool_full":
            stats.refused_pool_full += 1
        else:
            stats.refused_handshakes += 1
        if (reason, host) in self._logged:
            return
        if len(self._logged) >= _MAX_LOGGED:
            self._logged.clear()
        self._logged.add((reason, host))
        log.info("tcp_connection_refused", peer=host, interface=interface, reason=reason)
