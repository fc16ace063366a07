"""One SIP-over-TCP (or TLS) connection: an asyncio protocol around a StreamFramer.

The connection only frames and forwards. It owns no policy: the pool that
created it (its *owner*) registers it, delivers its messages to the core,
decides when it is idle and reports failures. Outbound connections exist
before the socket is connected so that sends can be queued on them and a
second send to the same peer reuses them (RFC 3261 §18.1.1: reuse open
connections); the queue is flushed in :meth:`connection_made`.

Stream keepalives (RFC 5626 §3.5.1) are answered here: a double-CRLF ping
gets a single-CRLF pong on the same connection.

The connection also notes when the message it is receiving began
(``message_started``), for the owner's sweep to enforce a deadline: a
message must be complete some time after its first byte, however slowly
the rest trickles in (any byte counts as activity for the idle timeout, so
idleness alone would let a half-sent message hold the connection forever).
An accepted connection starts with its first message pending from the
moment it was accepted, and keepalives never lift that: a connection that
never carries a message cannot live on pings. Once it has carried one,
pings between messages keep it (that is what they are for).

TLS needs nothing different here: asyncio's SSL transport hands this
protocol plaintext once the handshake is done (RFC 3261 §26.2.1 frames SIP
over TLS exactly like SIP over TCP). The owner checks the peer certificate
in ``connection_up`` and records what it proved in ``peer_names``.
"""

from __future__ import annotations

import asyncio
from typing import Protocol, cast

from sbc.sip.framing import KEEPALIVE_PING, KEEPALIVE_PONG, FramingError, StreamFramer
from sbc.transport.types import TCP, Peer

__all__ = ["ConnectionOwner", "TcpConnection"]

#: A peer that stops reading gets this much queued output before being cut off.
MAX_WRITE_BUFFER = 4 * 1024 * 1024


class ConnectionOwner(Protocol):
    """What a connection needs from the pool that manages it."""

    def now(self) -> float: ...
    def connection_up(self, conn: TcpConnection) -> None: ...
    def connection_down(self, conn: TcpConnection) -> None: ...
    def message_received(self, conn: TcpConnection, data: bytes) -> None: ...
    def keepalive_received(self, conn: TcpConnection) -> None: ...
    def framing_failed(self, conn: TcpConnection, reason: str) -> None: ...
    def messages_sent(self, conn: TcpConnection, count: int) -> None: ...
    def overflowed(self, conn: TcpConnection) -> None: ...


class TcpConnection(asyncio.Protocol):
    """A TCP or TLS connection, inbound (accepted) or outbound (opened by us).

    ``pending`` is a list while an outbound connection is still connecting
    and ``None`` once connected. ``closing`` is set as soon as we decide to
    stop using the connection: nothing more is sent on it after that.
    ``kind`` is the SIP transport ("tcp" or "tls") of the peer's address;
    ``pins`` the SHA-256 fingerprints the peer's certificate must match (TLS,
    none: any verified certificate), ``peer_names`` the names its verified
    certificate proves, ``aliases`` the extra addresses it may be reused for
    (RFC 5923).
    """

    def __init__(
        self,
        owner: ConnectionOwner,
        ident: int,
        interface: str,
        *,
        peer: Peer | None,
        local: tuple[str, int] | None,
        max_message: int,
        kind: str = TCP,
        pins: tuple[str, ...] = (),
    ) -> None:
        self.owner = owner
        self.id = ident
        self.interface = interface
        # Inbound connections learn their peer in connection_made.
        self.peer = peer if peer is not None else Peer(kind, "", 0)
        self.outbound = peer is not None
        self.pins = pins
        self.peer_names: frozenset[str] = frozenset()
        self.aliases: list[Peer] = []
        # The listener address for accepted connections; for outbound ones the
        # owner fills it from the interface's listener or the socket name.
        self.local = local if local is not None else ("", 0)
        self.framer = StreamFramer(max_body=max_message, max_message=max_message)
        self.transport: asyncio.Transport | None = None
        self.pending: list[bytes] | None = [] if self.outbound else None
        self.last_activity = owner.now()
        # When the message being received began (None: between messages); an
        # inbound connection owes its first message from the moment it is up.
        self.message_started: float | None = None
        self._carried_message = self.outbound
        self.closing = False

    # -- asyncio.Protocol -------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        if not self.outbound:
            host, port = transport.get_extra_info("peername")[:2]
            self.peer = Peer(self.peer.transport, host, port)
        self.last_activity = self.owner.now()
        if not self._carried_message:
            self.message_started = self.last_activity
        self.owner.connection_up(self)
        pending, self.pending = self.pending, None
        if pending and not self.closing:
            for data in pending:
                self.transport.write(data)
            self.owner.messages_sent(self, len(pending))
            self._check_backlog()

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        now = self.last_activity = self.owner.now()
        try:
            frames = self.framer.feed(data)
        except FramingError as exc:
            for message in exc.messages:
                self.owner.message_received(self, message)
            self.owner.framing_failed(self, exc.reason)
            return
        completed = False
        for frame in frames:
            if frame == KEEPALIVE_PING:
                self.owner.keepalive_received(self)
                self._write_raw(KEEPALIVE_PONG)
            else:
                completed = True
                self.owner.message_received(self, frame)
            if self.closing:  # a callback closed us: drop the rest
                return
        self._track_message(completed, now)

    def _track_message(self, completed: bool, now: float) -> None:
        """Start, keep or end the deadline of the message being received."""
        if completed:
            self._carried_message = True
        if self.framer.buffered:
            if completed or self.message_started is None:
                self.message_started = now  # the bytes left begin a new message
        elif self._carried_message:
            self.message_started = None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.transport = None
        self.owner.connection_down(self)

    # -- used by the owner -------------------------------------------------

    def write(self, data: bytes) -> bool:
        """Send or queue ``data``; False if the connection is no longer usable."""
        if self.closing:
            return False
        if self.pending is not None:
            self.pending.append(data)
            return True
        if self.transport is None:  # pragma: no cover - lost without callback
            return False
        self.transport.write(data)
        self.last_activity = self.owner.now()
        self.owner.messages_sent(self, 1)
        self._check_backlog()
        return True

    def _write_raw(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def close(self) -> None:
        """Stop using the connection; already queued output is still flushed."""
        self.closing = True
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Drop the connection at once, discarding queued output."""
        self.closing = True
        if self.transport is not None:
            self.transport.abort()

    def _check_backlog(self) -> None:
        transport = self.transport
        if transport is not None and transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
            self.owner.overflowed(self)
