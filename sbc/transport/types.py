"""Values exchanged between the transport layer and the core.

The core never sees sockets: it receives :class:`Inbound` (raw bytes plus
where they came from) and answers with a destination :class:`Peer` and,
for responses over TCP or TLS, the id of the connection the request came on.
These are frozen so they can be used as dict keys and shared freely.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

__all__ = [
    "STREAMS",
    "TCP",
    "TLS",
    "TRANSPORTS",
    "UDP",
    "Inbound",
    "Peer",
    "Screening",
    "TransportStats",
]

UDP: Final = "udp"
TCP: Final = "tcp"
TLS: Final = "tls"  # SIP over TLS over TCP (RFC 3261 §26.2.1); sips: URIs need it (RFC 5630)
#: Transports this layer can listen on and send over.
TRANSPORTS: Final = frozenset({UDP, TCP, TLS})
#: Connection-oriented transports: framed streams, connection ids, the pool.
STREAMS: Final = frozenset({TCP, TLS})


@dataclass(frozen=True, slots=True)
class Peer:
    """A remote transport address: where a message came from or goes to.

    ``host`` is an IP literal: the transport never resolves names on the send
    path (that would block the loop); the core resolves before sending.
    """

    transport: str  # "udp" | "tcp" | "tls"
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class Inbound:
    """One received SIP message, still raw: parsing belongs to the core."""

    data: bytes
    source: Peer  # the actual source IP/port, as seen on the socket
    interface: str  # name of the interface whose listener received it
    local: tuple[str, int]  # that listener's bound address
    connection: int | None  # stream connection id (answer on it, RFC 3261 §18.2.2); None for UDP
    queued: float = 0.0  # seconds it waited in the kernel's receive buffer (UDP, Linux)


class Screening(enum.Enum):
    """What the runtime says of a connecting source, asked once per accept.

    The transport knows no policy: the runtime's screen (ban table and ACL,
    trunk addresses) answers, and the pool applies the matching limits
    (docs/security.md, "Connections and message sizes").
    """

    REFUSE = "refuse"  # banned or refused by an ACL: closed before anything is read
    STRANGER = "stranger"  # anyone else: the per-source cap, never the reserved slots
    TRUNK = "trunk"  # a trunk's address: the trunk cap, and the reserved slots too


@dataclass(slots=True)
class TransportStats:
    """Counters for metrics; the manager hands out copies, never this object.

    ``received``/``sent`` count SIP messages (keepalives excluded),
    ``dropped`` counts messages lost for any reason (oversized datagram,
    full socket buffer, failed connection, framing error), ``connections``
    is the number of TCP and TLS connections open or being opened right now.
    ``tls_handshake_failures`` counts refused or failed TLS handshakes, both
    ways (bad certificate, old protocol version, pin mismatch, timeout).

    ``refused_*`` count inbound connections closed at accept, by reason:
    ``screened`` (banned or refused by an ACL), ``per_source`` (the source
    holds its cap), ``pool_full`` (no slot left outside the reserve),
    ``handshakes`` (the source has its cap of TLS handshakes in progress).
    ``message_timeouts`` counts connections closed because a message (or a
    new connection's first one) was not complete in time;
    ``oversized_datagrams`` UDP datagrams over the size cap (also in ``dropped``).
    """

    received: int = 0
    sent: int = 0
    dropped: int = 0
    keepalives: int = 0
    connections: int = 0
    connections_opened: int = 0
    errors: int = 0
    tls_handshake_failures: int = 0
    refused_screened: int = 0
    refused_per_source: int = 0
    refused_pool_full: int = 0
    refused_handshakes: int = 0
    message_timeouts: int = 0
    oversized_datagrams: int = 0
