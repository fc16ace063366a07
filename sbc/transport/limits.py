"""Edge limits of the transport: message sizes, connection slots, deadlines.

One host must not be able to take what every peer shares. These numbers
(``transport:`` in ``sbc.yaml``; docs/security.md, "Connections and message
sizes") bound:

- the size of one message: a UDP datagram is read into a buffer one byte
  larger than ``max_udp_message``, so a longer one shows as too long and is
  dropped before anything parses it; on TCP/TLS the stream framer refuses a
  message (header section plus body) over ``max_stream_message`` and the
  connection closes, its framing being lost;
- the connection pool: ``max_connections`` slots in all, of which
  ``reserved_outbound_connections`` are kept for the SBC's own connections
  and for its trunks (strangers cannot take them, so outbound trunk
  connections still open while strangers fill the rest); each stranger
  source may hold ``max_connections_per_source`` slots, a trunk's address
  ``max_connections_per_trunk_source``, and have at most
  ``max_tls_handshakes_per_source`` TLS handshakes in progress;
- time: a message must be complete ``message_timeout`` seconds after its
  first byte (and a new connection must complete its first message that
  long after it was accepted); a TLS handshake gets ``tls_handshake_timeout``.

:class:`ConnectionLedger` keeps the counts behind the slot rules, O(1) per
accept and per close. It is pure (no I/O, no clock): the pool's
:class:`~sbc.transport.gate.AcceptGate` asks it.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Literal

from sbc.transport.types import Screening

__all__ = ["ConnectionLedger", "Refusal", "TransportLimits", "source_key"]

#: Why an inbound connection was refused at accept (``TransportStats.refused_*``).
Refusal = Literal["screened", "per_source", "pool_full", "handshakes"]

#: IPv6 sources are counted per /64 (8 bytes): one host usually owns a whole /64
#: (RFC 4291 interface identifiers), so a per-/128 cap would not bound it at all.
_IPV6_PREFIX_BYTES = 8
#: ::ffff:0:0/96, IPv4-mapped IPv6 addresses (RFC 4291 §2.5.5.2).
_V4_MAPPED = bytes(10) + b"\xff\xff"


@dataclass(frozen=True, slots=True)
class TransportLimits:
    """The limits above; the defaults are the production ones (docs/security.md)."""

    max_udp_message: int = 16384
    max_stream_message: int = 65536
    max_connections: int = 10000
    reserved_outbound_connections: int = 500
    max_connections_per_source: int = 100
    max_connections_per_trunk_source: int = 1000
    max_tls_handshakes_per_source: int = 20
    message_timeout: float = 10.0
    tls_handshake_timeout: float = 5.0

    def __post_init__(self) -> None:
        if not 0 <= self.reserved_outbound_connections < self.max_connections:
            raise ValueError("reserved_outbound_connections must be below max_connections")
        if min(self.max_udp_message, self.max_stream_message) < 1:
            raise ValueError("message size caps must be positive")
        if min(self.message_timeout, self.tls_handshake_timeout) <= 0:
            raise ValueError("timeouts must be positive")


def source_key(host: str) -> str:
    """What a source is counted as: its IPv4 address, or its IPv6 /64.

    An IPv4-mapped IPv6 address (dual-stack socket) counts as the IPv4 one.
    ``inet_pton`` parses an address about fifteen times faster than
    :mod:`ipaddress`, which matters on an accept flood.
    """
    if ":" not in host:
        return host
    try:
        packed = socket.inet_pton(socket.AF_INET6, host.partition("%")[0])
    except OSError:
        return host
    if packed.startswith(_V4_MAPPED):
        return socket.inet_ntop(socket.AF_INET, packed[12:])
    prefix = packed[:_IPV6_PREFIX_BYTES] + bytes(16 - _IPV6_PREFIX_BYTES)
    return f"{socket.inet_ntop(socket.AF_INET6, prefix)}/{_IPV6_PREFIX_BYTES * 8}"


class ConnectionLedger:
    """Who holds the pool's slots, and whether one more may be taken.

    Every connection holds one slot from its accept (or its connect) until
    it is gone, TLS handshake included. Inbound slots are counted per
    source key; outbound ones (key None) only in the total. Holders are
    keyed by connection id, so releasing twice is harmless.
    """

    __slots__ = ("_handshakes", "_holders", "_per_source", "limits")

    def __init__(self, limits: TransportLimits) -> None:
        #: Replaced whole on a policy reload; counts carry over.
        self.limits = limits
        self._holders: dict[int, str | None] = {}
        self._per_source: dict[str, int] = {}
        self._handshakes: dict[str, int] = {}

    @property
    def total(self) -> int:
        """Slots held, inbound and outbound."""
        return len(self._holders)

    def held_by(self, key: str) -> int:
        return self._per_source.get(key, 0)

    def refusal(self, key: str, standing: Screening, *, tls: bool = False) -> Refusal | None:
        """Why an inbound connection from ``key`` may not take a slot now, or None."""
        limits = self.limits
        if standing is Screening.REFUSE:
            return "screened"
        trunk = standing is Screening.TRUNK
        ceiling = limits.max_connections
        if not trunk:
            ceiling -= limits.reserved_outbound_connections
        if len(self._holders) >= ceiling:
            return "pool_full"
        cap = (
            limits.max_connections_per_trunk_source if trunk else limits.max_connections_per_source
        )
        if self._per_source.get(key, 0) >= cap:
            return "per_source"
        if tls and self._handshakes.get(key, 0) >= limits.max_tls_handshakes_per_source:
            return "handshakes"
        return None

    def outbound_full(self) -> bool:
        """No slot left even in the reserve."""
        return len(self._holders) >= self.limits.max_connections

    def take(self, ident: int, key: str | None) -> None:
        """Connection ``ident`` holds a slot (inbound from ``key``; None: outbound)."""
        if ident in self._holders:
            return
        self._holders[ident] = key
        if key is not None:
            self._per_source[key] = self._per_source.get(key, 0) + 1

    def release(self, ident: int) -> None:
        """Connection ``ident`` is gone (a no-op if it held nothing)."""
        if ident not in self._holders:
            return
        key = self._holders.pop(ident)
        if key is not None:
            _decrement(self._per_source, key)

    def handshake_started(self, key: str) -> None:
        self._handshakes[key] = self._handshakes.get(key, 0) + 1

    def handshake_ended(self, key: str) -> None:
        _decrement(self._handshakes, key)

    def clear(self) -> None:
        self._holders.clear()
        self._per_source.clear()
        self._handshakes.clear()


def _decrement(counts: dict[str, int], key: str) -> None:
    """One less for ``key``; the entry goes at zero so the dict stays small."""
    left = counts.get(key, 0) - 1
    if left > 0:
        counts[key] = left
    else:
        counts.pop(key, None)
