"""TCP listeners and the pool of connections shared by all interfaces.

The pool is the one place that knows every connection, so it implements
the connection rules of RFC 3261 §18:

- a response goes back on the connection its request came on (§18.2.2),
  named by the id carried in :class:`~sbc.transport.types.Inbound`;
- otherwise an open connection to the destination is reused, inbound or
  outbound, as long as it belongs to the sending interface (a connection
  of another interface would leak the wrong source address);
- otherwise a new connection is opened from the interface's address and
  the data queued until it connects; a failed connect is reported to the
  core as a transport error (§17.1.4, a 503 for the client transaction).

Idle connections are closed by one periodic sweep rather than a timer per
connection, and the number of connections is capped so a flood of
connects cannot exhaust file descriptors.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable

import structlog

from sbc.transport.tcp import TcpConnection
from sbc.transport.types import Inbound, Peer, TransportStats

__all__ = ["TcpPool"]

log = structlog.get_logger(__name__)

_WILDCARDS = frozenset({"", "0.0.0.0", "::"})
#: Longest pause between idle sweeps, whatever the idle timeout.
_MAX_SWEEP_INTERVAL = 30.0
_MIN_SWEEP_INTERVAL = 0.01


class TcpPool:
    """All TCP listeners and connections of one transport manager."""

    def __init__(
        self,
        *,
        deliver: Callable[[Inbound], None],
        report_error: Callable[[Peer, str], None],
        stats: TransportStats,
        idle_timeout: float,
        connect_timeout: float,
        max_connections: int,
        max_message: int,
    ) -> None:
        self._deliver = deliver
        self._report_error = report_error
        self._stats = stats
        self._idle_timeout = idle_timeout
        self._connect_timeout = connect_timeout
        self._max_connections = max_connections
        self._max_message = max_message
        self._ids = itertools.count(1)
        self._servers: dict[str, asyncio.Server] = {}
        self._listen_addresses: dict[str, tuple[str, int]] = {}
        self._connections: dict[int, TcpConnection] = {}
        self._by_peer: dict[tuple[str, str, int], TcpConnection] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- listening ---------------------------------------------------------

    async def listen(self, interface: str, host: str, port: int) -> tuple[str, int]:
        """Accept connections on ``host:port`` for ``interface``; return the bound address."""
        loop = self._ensure_loop()
        server = await loop.create_server(
            lambda: self._accepted(interface), host, port, reuse_address=True, backlog=1024
        )
        bound_host, bound_port = server.sockets[0].getsockname()[:2]
        self._servers[interface] = server
        self._listen_addresses[interface] = (bound_host, bound_port)
        return (bound_host, bound_port)

    async def unlisten(self, interface: str) -> None:
        """Stop accepting on ``interface`` (used to undo a half-done listen)."""
        server = self._servers.pop(interface, None)
        self._listen_addresses.pop(interface, None)
        if server is not None:
            server.close()
            await server.wait_closed()

    def _accepted(self, interface: str) -> TcpConnection:
        return TcpConnection(
            self,
            next(self._ids),
            interface,
            peer=None,
            local=self._listen_addresses.get(interface),
            max_message=self._max_message,
        )

    # -- sending -----------------------------------------------------------

    def send(
        self, interface: str, local_host: str, data: bytes, dest: Peer, connection: int | None
    ) -> None:
        """Write on ``connection``, else on a reused connection, else on a new one."""
        if connection is not None:
            conn = self._connections.get(connection)
            if conn is not None and conn.write(data):
                return
        conn = self._by_peer.get((interface, dest.host, dest.port))
        if conn is not None and conn.write(data):
            return
        conn = self._open(interface, local_host, dest)
        if conn is not None:
            conn.write(data)

    def _open(self, interface: str, local_host: str, dest: Peer) -> TcpConnection | None:
        if len(self._connections) >= self._max_connections:
            self._stats.dropped += 1
            self._report_error(dest, "tcp connection limit reached")
            return None
        loop = self._ensure_loop()
        conn = TcpConnection(
            self,
            next(self._ids),
            interface,
            peer=dest,
            local=self._listen_addresses.get(interface),
            max_message=self._max_message,
        )
        self._register(conn)
        local_addr = None if local_host in _WILDCARDS else (local_host, 0)
        task = loop.create_task(self._connect(conn, local_addr))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return conn

    async def _connect(self, conn: TcpConnection, local_addr: tuple[str, int] | None) -> None:
        loop = self._ensure_loop()
        try:
            async with asyncio.timeout(self._connect_timeout):
                await loop.create_connection(
                    lambda: conn, conn.peer.host, conn.peer.port, local_addr=local_addr
                )
        except (OSError, TimeoutError) as exc:
            reason = "tcp connect timed out" if isinstance(exc, TimeoutError) else str(exc)
            self._connect_failed(conn, reason)

    def _connect_failed(self, conn: TcpConnection, reason: str) -> None:
        lost = len(conn.pending or ())
        conn.pending = None
        conn.closing = True
        self._unregister(conn)
        self._stats.dropped += lost
        self._stats.errors += 1
        log.info("tcp_connect_failed", peer=conn.peer, interface=conn.interface, reason=reason)
        self._report_error(conn.peer, f"tcp connect failed: {reason}")

    # -- ConnectionOwner ---------------------------------------------------

    def now(self) -> float:
        return self._ensure_loop().time()

    def connection_up(self, conn: TcpConnection) -> None:
        if not conn.outbound:
            if len(self._connections) >= self._max_connections:
                self._stats.dropped += 1
                log.warning("tcp_connection_limit", peer=conn.peer, interface=conn.interface)
                conn.abort()
                return
            self._register(conn)
        if not conn.local[0]:
            # The interface's listener address when it has one, else the socket's.
            local = self._listen_addresses.get(conn.interface)
            if local is None and conn.transport is not None:
                host, port = conn.transport.get_extra_info("sockname")[:2]
                local = (host, port)
            if local is not None:
                conn.local = local
        self._stats.connections_opened += 1

    def connection_down(self, conn: TcpConnection) -> None:
        self._unregister(conn)

    def message_received(self, conn: TcpConnection, data: bytes) -> None:
        self._deliver(Inbound(data, conn.peer, conn.interface, conn.local, conn.id))

    def keepalive_received(self, conn: TcpConnection) -> None:
        self._stats.keepalives += 1

    def framing_failed(self, conn: TcpConnection, reason: str) -> None:
        self._stats.dropped += 1
        self._stats.errors += 1
        log.info("tcp_framing_error", peer=conn.peer, interface=conn.interface, reason=reason)
        self._retire(conn)
        conn.close()

    def messages_sent(self, conn: TcpConnection, count: int) -> None:
        self._stats.sent += count

    def overflowed(self, conn: TcpConnection) -> None:
        self._stats.errors += 1
        log.warning("tcp_peer_not_reading", peer=conn.peer, interface=conn.interface)
        self._retire(conn)
        conn.abort()

    # -- registry ----------------------------------------------------------

    def _register(self, conn: TcpConnection) -> None:
        self._connections[conn.id] = conn
        self._by_peer[(conn.interface, conn.peer.host, conn.peer.port)] = conn
        self._stats.connections = len(self._connections)
        self._start_sweeping()

    def _retire(self, conn: TcpConnection) -> None:
        """Make ``conn`` unfindable for sends while it finishes closing."""
        key = (conn.interface, conn.peer.host, conn.peer.port)
        if self._by_peer.get(key) is conn:
            del self._by_peer[key]

    def _unregister(self, conn: TcpConnection) -> None:
        self._retire(conn)
        if self._connections.pop(conn.id, None) is not None:
            self._stats.connections = len(self._connections)

    # -- idle sweep --------------------------------------------------------

    def _sweep_interval(self) -> float:
        quarter = self._idle_timeout / 4
        return min(max(quarter, _MIN_SWEEP_INTERVAL), _MAX_SWEEP_INTERVAL)

    def _start_sweeping(self) -> None:
        if self._sweeper is None and self._loop is not None:
            self._sweeper = self._loop.call_later(self._sweep_interval(), self._sweep)

    def _sweep(self) -> None:
        """Close connections silent for ``idle_timeout``; re-arm while any remain."""
        self._sweeper = None
        deadline = self.now() - self._idle_timeout
        idle = [
            conn
            for conn in self._connections.values()
            if conn.transport is not None and conn.last_activity <= deadline
        ]
        for conn in idle:
            log.debug("tcp_idle_close", peer=conn.peer, interface=conn.interface)
            self._retire(conn)
            conn.close()
        if self._connections:
            self._start_sweeping()

    # -- lifecycle ---------------------------------------------------------

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def local_address(self, interface: str) -> tuple[str, int] | None:
        """The bound TCP listener address of ``interface``, if it listens on TCP."""
        return self._listen_addresses.get(interface)

    async def close(self) -> None:
        """Stop listening, abort every connection and pending connect."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        servers = list(self._servers.values())
        self._servers.clear()
        self._listen_addresses.clear()
        for server in servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        for conn in list(self._connections.values()):
            conn.abort()
        self._connections.clear()
        self._by_peer.clear()
        self._stats.connections = 0
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for server in servers:
            await server.wait_closed()
