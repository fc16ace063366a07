"""TCP and TLS listeners and the pool of connections shared by all interfaces.

The pool is the one place that knows every connection, so it implements
the connection rules of RFC 3261 §18 (and §26.2.1 for TLS, which frames
SIP exactly like TCP):

- a response goes back on the connection its request came on (§18.2.2),
  named by the id carried in :class:`~sbc.transport.types.Inbound`;
- otherwise an open connection to the destination is reused, inbound or
  outbound, as long as it belongs to the sending interface (a connection
  of another interface would leak the wrong source address);
- otherwise a new connection is opened from the interface's address and
  the data queued until it connects; a failed connect is reported to the
  core as a transport error (§17.1.4, a 503 for the client transaction),
  and further connects to that destination back off (see backoff.py);
- a TLS connection may also be reused toward the addresses its peer
  announced with a Via ``alias`` (RFC 5923), but only those its verified
  certificate names: an alias must not let one peer capture another's
  traffic.

TLS listeners accept with ``sock_accept`` and run each handshake with
``connect_accepted_socket``, rather than ``create_server(ssl=...)``, because
only then does a failed handshake come back as an exception: it is counted
and logged (once per peer address) instead of vanishing inside asyncio.

Every inbound connection is admitted when it is accepted, before a byte
is read or a TLS handshake starts (:mod:`sbc.transport.gate`; docs/security.md,
"Connections and message sizes"): refused sources, per-source caps, TLS
handshakes in progress per source, and slots reserved for the SBC's own
and its trunks' connections. Outbound connections take their slot there too.

Idle connections, and messages not complete by their deadline, are closed
by one periodic sweep rather than a timer per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import socket
import ssl
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

from sbc.transport.backoff import ConnectBackoff
from sbc.transport.gate import AcceptGate
from sbc.transport.limits import TransportLimits
from sbc.transport.tcp import TcpConnection
from sbc.transport.tls import TlsClients, certificate_names, fingerprint, names_host
from sbc.transport.types import TCP, TLS, Inbound, Peer, Screening, TransportStats
from sbc.transport.udp import socket_family

__all__ = ["TcpPool"]

log = structlog.get_logger(__name__)

_WILDCARDS = frozenset({"", "0.0.0.0", "::"})
#: Longest pause between idle sweeps, whatever the idle timeout.
_MAX_SWEEP_INTERVAL = 30.0
_MIN_SWEEP_INTERVAL = 0.01
#: Pause after a failed accept (out of descriptors): retrying at once would spin.
_ACCEPT_PAUSE = 0.1
#: accept() failures from exhausted resources: they pass, after a pause.
_ACCEPT_STARVED = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
#: accept() failures from a client gone before it was accepted: skip it.
_ACCEPT_SKIP = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.EAGAIN})
#: Peer addresses whose handshake failure was logged; reset when full.
_MAX_LOGGED_PEERS = 4096


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
        limits: TransportLimits,
        screen: Callable[[str, str], Screening] | None,
        backoff: ConnectBackoff,
        tls_clients: TlsClients,
        connected: Callable[[Peer], None] | None = None,
    ) -> None:
        self._deliver = deliver
        self._connected = connected
        self._report_error = report_error
        self._stats = stats
        self._idle_timeout = idle_timeout
        self._connect_timeout = connect_timeout
        self._limits = limits
        self._gate = AcceptGate(limits, screen, stats)
        self._backoff = backoff
        #: Replaced whole by the manager when the policy changes.
        self.tls_clients = tls_clients
        self._ids = itertools.count(1)
        self._servers: dict[str, asyncio.Server] = {}
        self._tls_listeners: dict[str, tuple[socket.socket, asyncio.Task[None]]] = {}
        self._listen_addresses: dict[tuple[str, str], tuple[str, int]] = {}
        self._connections: dict[int, TcpConnection] = {}
        self._by_peer: dict[tuple[str, Peer], TcpConnection] = {}
        self._tls_logged: set[str] = set()
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
        self._listen_addresses[(interface, TCP)] = (bound_host, bound_port)
        return (bound_host, bound_port)

    async def listen_tls(
        self, interface: str, host: str, port: int, context: ssl.SSLContext, pins: tuple[str, ...]
    ) -> tuple[str, int]:
        """Accept TLS on ``host:port`` for ``interface``; ``pins`` restrict client certificates."""
        loop = self._ensure_loop()
        sock = socket.create_server((host, port), family=socket_family(host), backlog=1024)
        sock.setblocking(False)
        bound = sock.getsockname()[:2]
        self._listen_addresses[(interface, TLS)] = (bound[0], bound[1])
        task = loop.create_task(self._accept_tls(interface, sock, context, pins))
        self._tls_listeners[interface] = (sock, task)
        return (bound[0], bound[1])

    async def unlisten(self, interface: str) -> None:
        """Stop accepting on ``interface`` (used to undo a half-done listen)."""
        server = self._servers.pop(interface, None)
        self._listen_addresses.pop((interface, TCP), None)
        self._listen_addresses.pop((interface, TLS), None)
        if server is not None:
            server.close()
            await server.wait_closed()
        listener = self._tls_listeners.pop(interface, None)
        if listener is not None:
            await self._stop_tls_listener(*listener)

    @staticmethod
    async def _stop_tls_listener(sock: socket.socket, task: asyncio.Task[None]) -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sock.close()

    def _accepted(self, interface: str) -> TcpConnection:
        return TcpConnection(
            self,
            next(self._ids),
            interface,
            peer=None,
            local=self._listen_addresses.get((interface, TCP)),
            max_message=self._limits.max_stream_message,
        )

    async def _accept_tls(
        self, interface: str, sock: socket.socket, context: ssl.SSLContext, pins: tuple[str, ...]
    ) -> None:
        loop = self._ensure_loop()
        starved = False
        while True:
            try:
                client, address = await loop.sock_accept(sock)
            except OSError as exc:
                if exc.errno in _ACCEPT_SKIP:
                    continue
                if exc.errno not in _ACCEPT_STARVED:
                    log.error("tls_listener_stopped", interface=interface, reason=str(exc))
                    return
                if not starved:  # once per streak: a full descriptor table repeats
                    log.warning("tls_accept_failed", interface=interface, reason=str(exc))
                starved = True
                await asyncio.sleep(_ACCEPT_PAUSE)
                continue
            starved = False
            ident = next(self._ids)
            key = self._gate.admit(ident, address[0], interface, tls=True)
            if key is None:  # refused before the handshake: it costs no crypto
                client.close()
                continue
            conn = TcpConnection(
                self,
                ident,
                interface,
                peer=None,
                local=self._listen_addresses.get((interface, TLS)),
                max_message=self._limits.max_stream_message,
                kind=TLS,
                pins=pins,
            )
            self._spawn(self._handshake(conn, client, Peer(TLS, *address[:2]), context, key))

    async def _handshake(
        self,
        conn: TcpConnection,
        client: socket.socket,
        peer: Peer,
        context: ssl.SSLContext,
        key: str,
    ) -> None:
        """Run the server side of a handshake; on success asyncio calls connection_made.

        A refused or failed handshake closes the socket (asyncio does) and
        is counted; nothing reaches the core. The handshake has its own
        deadline, ``tls_handshake_timeout``.
        """
        try:
            await self._ensure_loop().connect_accepted_socket(
                lambda: conn,
                client,
                ssl=context,
                ssl_handshake_timeout=self._limits.tls_handshake_timeout,
            )
        except OSError as exc:  # ssl.SSLError, resets and the handshake timeout are OSErrors
            self._gate.release(conn.id)
            self._tls_failed(peer, conn.interface, _reason(exc))
        finally:
            self._gate.handshake_ended(key)

    def set_limits(self, limits: TransportLimits, idle_timeout: float | None = None) -> None:
        """New limits: caps at the next accept, sizes for new connections, deadlines
        and the idle timeout at the next sweep (slots already held are kept)."""
        self._limits = limits
        self._gate.set_limits(limits)
        if idle_timeout is not None:
            self._idle_timeout = idle_timeout

    # -- sending -----------------------------------------------------------

    def send(
        self, interface: str, local_host: str, data: bytes, dest: Peer, connection: int | None
    ) -> None:
        """Write on ``connection``, else on a reused connection, else on a new one.

        A connection id of another transport is ignored: a message meant for
        TLS must never leave in clear over a TCP connection.
        """
        if connection is not None:
            conn = self._connections.get(connection)
            if conn is not None and conn.peer.transport == dest.transport and conn.write(data):
                return
        conn = self._by_peer.get((interface, dest))
        if conn is not None and conn.write(data):
            return
        wait = self._backoff.wait(dest, self.now())
        if wait > 0:
            self._stats.dropped += 1
            self._report_error(dest, f"{dest.transport} connect backoff: retry in {wait:.1f}s")
            return
        conn = self._open(interface, local_host, dest)
        if conn is not None:
            conn.write(data)

    def _open(self, interface: str, local_host: str, dest: Peer) -> TcpConnection | None:
        tls = self.tls_clients.for_peer(dest) if dest.transport == TLS else None
        if dest.transport == TLS and tls is None:
            self._stats.dropped += 1
            self._report_error(dest, "no tls settings for this destination")
            return None
        ident = next(self._ids)
        if not self._gate.take_outbound(ident):  # the reserve is for connections like this
            self._stats.dropped += 1
            self._report_error(dest, "tcp connection limit reached")
            return None
        conn = TcpConnection(
            self,
            ident,
            interface,
            peer=dest,
            local=self._listen_addresses.get((interface, dest.transport)),
            max_message=self._limits.max_stream_message,
            pins=tls.pins if tls is not None else (),
        )
        self._register(conn)
        options: dict[str, Any] = {}
        if local_host not in _WILDCARDS:
            options["local_addr"] = (local_host, 0)
        if tls is not None:
            options.update(
                ssl=tls.context,
                server_hostname=tls.server_hostname or "",  # "": no SNI, no name check
                ssl_handshake_timeout=self._connect_timeout,
            )
        self._spawn(self._connect(conn, options))
        return conn

    async def _connect(self, conn: TcpConnection, options: dict[str, Any]) -> None:
        loop = self._ensure_loop()
        try:
            async with asyncio.timeout(self._connect_timeout):
                await loop.create_connection(
                    lambda: conn, conn.peer.host, conn.peer.port, **options
                )
        except ssl.SSLError as exc:  # before OSError, its base class
            self._tls_failed(conn.peer, conn.interface, _reason(exc))
            self._connect_failed(conn, _reason(exc), logged=True)
        except (OSError, TimeoutError) as exc:
            reason = (
                f"{conn.peer.transport} connect timed out"
                if isinstance(exc, TimeoutError)
                else str(exc)
            )
            self._connect_failed(conn, reason)

    def _connect_failed(self, conn: TcpConnection, reason: str, *, logged: bool = False) -> None:
        lost = len(conn.pending or ())
        conn.pending = None
        conn.closing = True
        self._unregister(conn)
        self._stats.dropped += lost
        self._stats.errors += 1
        delay = self._backoff.failed(conn.peer, self.now())
        if not logged:
            log.info(
                "tcp_connect_failed",
                peer=conn.peer,
                interface=conn.interface,
                reason=reason,
                backoff_s=delay,
            )
        self._report_error(conn.peer, f"{conn.peer.transport} connect failed: {reason}")

    # -- TLS ---------------------------------------------------------------

    def _check_tls(self, conn: TcpConnection) -> str | None:
        """Why ``conn``'s peer is refused after its handshake, or None; records its names."""
        transport = conn.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        if ssl_object is None:
            return "no tls session"
        if conn.pins:
            der = ssl_object.getpeercert(binary_form=True)
            if der is None:
                return "no peer certificate"
            if fingerprint(der) not in conn.pins:
                return "peer certificate fingerprint not pinned"
        conn.peer_names = certificate_names(ssl_object.getpeercert() or {})
        return None

    def _tls_failed(self, peer: Peer, interface: str, reason: str) -> None:
        """Count a failed handshake; log the first one per peer address only (scanners)."""
        self._stats.tls_handshake_failures += 1
        if peer.host in self._tls_logged:
            return
        if len(self._tls_logged) >= _MAX_LOGGED_PEERS:
            self._tls_logged.clear()
        self._tls_logged.add(peer.host)
        log.info("tls_handshake_failed", peer=peer, interface=interface, reason=reason)

    def _tls_refused(self, conn: TcpConnection, reason: str) -> None:
        self._tls_failed(conn.peer, conn.interface, reason)
        if conn.outbound:
            self._connect_failed(conn, reason, logged=True)
        conn.abort()

    def alias(self, connection: int, dest: Peer) -> bool:
        """Reuse TLS ``connection`` for requests to ``dest`` too (RFC 5923 ``alias``).

        Only when ``dest`` is TLS and the peer's verified certificate names
        ``dest.host``: an unauthenticated alias would let any client divert
        requests meant for someone else. An existing connection to ``dest``
        is kept.
        """
        conn = self._connections.get(connection)
        if conn is None or conn.closing or {conn.peer.transport, dest.transport} != {TLS}:
            return False
        if not names_host(conn.peer_names, dest.host):
            return False
        key = (conn.interface, dest)
        current = self._by_peer.get(key)
        if current is None:
            self._by_peer[key] = conn
            conn.aliases.append(dest)
            return True
        return current is conn

    # -- ConnectionOwner ---------------------------------------------------

    def now(self) -> float:
        return self._ensure_loop().time()

    def connection_up(self, conn: TcpConnection) -> None:
        if conn.peer.transport == TLS:
            refused = self._check_tls(conn)
            if refused is not None:
                self._tls_refused(conn, refused)
                return
        if conn.outbound:
            self._backoff.succeeded(conn.peer)
            self._outbound_up(conn.peer)
        else:
            # A TLS connection was admitted at accept, before its handshake.
            tcp = conn.peer.transport == TCP
            if tcp and self._gate.admit(conn.id, conn.peer.host, conn.interface) is None:
                conn.abort()
                return
            self._register(conn)
        if not conn.local[0]:
            # The interface's listener address when it has one, else the socket's.
            local = self._listen_addresses.get((conn.interface, conn.peer.transport))
            if local is None and conn.transport is not None:
                host, port = conn.transport.get_extra_info("sockname")[:2]
                local = (host, port)
            if local is not None:
                conn.local = local
        self._stats.connections_opened += 1

    def _outbound_up(self, peer: Peer) -> None:
        """A connection we opened is up: tell the listener (it decides what a
        new flow to that peer means, e.g. registering again over it)."""
        if self._connected is not None:
            try:
                self._connected(peer)
            except Exception:  # the transport goes on whatever the listener does
                log.exception("connected_callback_failed", peer=peer)

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
        self._by_peer[(conn.interface, conn.peer)] = conn
        self._stats.connections = len(self._connections)
        self._start_sweeping()

    def _retire(self, conn: TcpConnection) -> None:
        """Make ``conn`` unfindable for sends while it finishes closing."""
        for peer in (conn.peer, *conn.aliases):
            key = (conn.interface, peer)
            if self._by_peer.get(key) is conn:
                del self._by_peer[key]

    def _unregister(self, conn: TcpConnection) -> None:
        self._retire(conn)
        self._gate.release(conn.id)
        if self._connections.pop(conn.id, None) is not None:
            self._stats.connections = len(self._connections)

    # -- idle and deadline sweep ---------------------------------------------

    def _sweep_interval(self) -> float:
        quarter = min(self._idle_timeout, self._limits.message_timeout) / 4
        return min(max(quarter, _MIN_SWEEP_INTERVAL), _MAX_SWEEP_INTERVAL)

    def _start_sweeping(self) -> None:
        if self._sweeper is None and self._loop is not None:
            self._sweeper = self._loop.call_later(self._sweep_interval(), self._sweep)

    def _sweep(self) -> None:
        """Abort connections whose message is overdue, close those silent for
        ``idle_timeout``; re-arm while any remain.

        A message is overdue ``message_timeout`` after its first byte, whatever
        arrived since (slowloris); a new connection's first message counts
        from its accept. Deadlines are met within a quarter of the shorter one.
        """
        self._sweeper = None
        now = self.now()
        idle_before = now - self._idle_timeout
        late_before = now - self._limits.message_timeout
        late: list[TcpConnection] = []
        idle: list[TcpConnection] = []
        for conn in self._connections.values():
            if conn.transport is None or conn.closing:
                continue
            started = conn.message_started
            if started is not None and started <= late_before:
                late.append(conn)
            elif conn.last_activity <= idle_before:
                idle.append(conn)
        for conn in late:
            self._stats.message_timeouts += 1
            self._retire(conn)
            conn.abort()  # mid-message: nothing queued is worth flushing
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

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = self._ensure_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def local_address(self, interface: str, transport: str = TCP) -> tuple[str, int] | None:
        """The bound listener address of ``interface`` for ``transport`` ("tcp" or "tls")."""
        return self._listen_addresses.get((interface, transport))

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
        tls_listeners = list(self._tls_listeners.values())
        self._tls_listeners.clear()
        for sock, task in tls_listeners:
            await self._stop_tls_listener(sock, task)
        for task in list(self._tasks):
            task.cancel()
        for conn in list(self._connections.values()):
            conn.abort()
        self._connections.clear()
        self._by_peer.clear()
        self._gate.clear()
        self._stats.connections = 0
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for server in servers:
            await server.wait_closed()


def _address(peer: Peer) -> tuple[str, int]:
    return (peer.host, peer.port)


def _reason(exc: OSError) -> str:
    """A short, secret-free reason: OpenSSL's reason code when there is one."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason).lower().replace("_", " ")
    return str(exc) or type(exc).__name__
