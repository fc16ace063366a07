"""The transport layer's single entry point for the runtime.

:class:`TransportManager` owns every socket of the SBC's signalling
interfaces. Inbound, it hands raw messages to the core through one
callback; outbound, the core calls :meth:`TransportManager.send` with the
interface to send from and a destination the core already computed
(rport/received, Via, connection reuse hints are the core's business).

Nothing here raises into the core: ``send`` never blocks and never fails
loudly. Failures are counted, logged without per-packet noise, and when
they matter to a client transaction (RFC 3261 §17.1.4) reported through
``on_transport_error`` on a later loop iteration, so the core is never
re-entered from inside its own ``send`` call.

TLS (RFC 3261 §26.2.1) is a third transport on the same connection pool
as TCP: a listener per interface with its own certificate
(:class:`~sbc.transport.tls.TlsServerConfig`), and outbound connections
whose trust settings come from a per-destination
:class:`~sbc.transport.tls.TlsClientConfig`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
from collections.abc import Callable, Iterable, Mapping

import structlog

from sbc.transport.backoff import BackoffPolicy, ConnectBackoff
from sbc.transport.limits import TransportLimits
from sbc.transport.pool import TcpPool
from sbc.transport.tls import TlsClientConfig, TlsClients, TlsServerConfig, server_context
from sbc.transport.types import (
    STREAMS,
    TCP,
    TLS,
    TRANSPORTS,
    UDP,
    Inbound,
    Peer,
    Screening,
    TransportStats,
)
from sbc.transport.udp import UdpEndpoint

__all__ = ["TransportManager"]

log = structlog.get_logger(__name__)

#: Tries at finding a port free for both UDP and TCP when asked for port 0.
_SAME_PORT_ATTEMPTS = 8


class TransportManager:
    """UDP, TCP and TLS listeners per named interface, plus the stream connection pool.

    ``on_message`` receives every SIP message (keepalives are answered or
    dropped here). ``on_transport_error(peer, reason)`` learns about sends
    that could not be carried out. ``on_connected(peer)`` learns that a
    TCP/TLS connection we opened is up (a new flow: outbound registrations
    over it register again, RFC 5626 §4.4.1 in spirit). All
    are called from the event loop; an exception they raise is logged and
    swallowed so one bad message can never stop a listener.

    ``tls_clients`` maps a destination ``(host, port)`` to the settings for
    TLS connections toward it; other TLS destinations use ``tls_default``
    (the system CA store and the destination's address as the name to
    verify; None refuses them). ``connect_backoff`` says how long connects
    toward a destination that just failed are held back, and for which
    transports (TLS only by default).

    ``limits`` caps message sizes, connections and the time a message or a
    TLS handshake may take (:mod:`sbc.transport.limits`); ``screen(host,
    interface)`` is asked once per inbound connection, before any byte is
    read or any TLS handshake starts: a source it refuses (banned, denied by
    an ACL) is closed at once, a trunk's address gets the trunk limits.
    Without it every source is a stranger.
    """

    def __init__(
        self,
        on_message: Callable[[Inbound], None],
        *,
        on_transport_error: Callable[[Peer, str], None] | None = None,
        on_connected: Callable[[Peer], None] | None = None,
        tcp_idle_timeout: float = 300.0,
        tcp_connect_timeout: float = 10.0,
        limits: TransportLimits = TransportLimits(),  # noqa: B008 - frozen
        screen: Callable[[str, str], Screening] | None = None,
        tls_clients: Mapping[tuple[str, int], TlsClientConfig] | None = None,
        tls_default: TlsClientConfig | None = TlsClientConfig(),  # noqa: B008 - frozen
        connect_backoff: BackoffPolicy = BackoffPolicy(),  # noqa: B008 - frozen
    ) -> None:
        self._on_message = on_message
        self._on_transport_error = on_transport_error
        self._stats = TransportStats()
        self._hosts: dict[str, str] = {}
        self._udp: dict[str, UdpEndpoint] = {}
        self._limits = limits
        self._tcp = TcpPool(
            deliver=self._deliver,
            report_error=self._report_error,
            stats=self._stats,
            idle_timeout=tcp_idle_timeout,
            connect_timeout=tcp_connect_timeout,
            limits=limits,
            screen=screen,
            backoff=ConnectBackoff(connect_backoff),
            tls_clients=_tls_clients(tls_clients or {}, tls_default),
            connected=on_connected,
        )
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def stats(self) -> TransportStats:
        """A snapshot of the counters (a copy: safe to keep and compare)."""
        return dataclasses.replace(self._stats)

    async def listen(
        self,
        interface: str,
        host: str,
        port: int,
        transports: Iterable[str],
        *,
        tls: TlsServerConfig | None = None,
        tls_port: int | None = None,
    ) -> None:
        """Bind ``transports`` ("udp", "tcp", "tls") on ``host`` for ``interface``.

        UDP and TCP share ``port``: with port 0 and both, they get the same
        free port, as a SIP interface is one address for both. TLS needs
        ``tls`` (its certificate) and listens on ``tls_port``, which may be
        omitted when TLS is the only transport (then ``port``); 5061 is the
        usual value (RFC 3261 §26.2.1). A bad certificate or key raises
        :class:`~sbc.transport.tls.TlsConfigError` before anything is bound.
        """
        wanted = {name.lower() for name in transports}
        unknown = wanted - TRANSPORTS
        if unknown or not wanted:
            raise ValueError(f"transports must be among {sorted(TRANSPORTS)}, got {sorted(wanted)}")
        if interface in self._hosts:
            raise ValueError(f"interface {interface!r} is already listening")
        if (TLS in wanted) != (tls is not None):
            raise ValueError("transports include tls exactly when tls settings are given")
        if tls_port is None and TLS in wanted:
            if wanted != {TLS}:
                raise ValueError("tls next to udp/tcp needs its own tls_port")
            tls_port = port
        self._loop = asyncio.get_running_loop()
        context = server_context(tls) if tls is not None else None
        for attempt in range(_SAME_PORT_ATTEMPTS):
            try:
                await self._bind(interface, host, port, wanted - {TLS})
                break
            except OSError as exc:
                retry = port == 0 and exc.errno == errno.EADDRINUSE
                if not retry or attempt == _SAME_PORT_ATTEMPTS - 1:
                    raise
        if tls is not None and context is not None and tls_port is not None:
            try:
                await self._tcp.listen_tls(
                    interface, host, tls_port, context, tls.pinned_client_fingerprints
                )
            except BaseException:
                await self._unbind(interface)
                raise
        self._hosts[interface] = host
        log.info("transport_listening", interface=interface, host=host, transports=sorted(wanted))

    async def _bind(self, interface: str, host: str, port: int, wanted: set[str]) -> None:
        if TCP in wanted:
            port = (await self._tcp.listen(interface, host, port))[1]
        if UDP in wanted:
            try:
                self._udp[interface] = UdpEndpoint.bind(
                    self._running_loop(),
                    interface,
                    host,
                    port,
                    deliver=self._deliver,
                    report_error=self._report_error,
                    stats=self._stats,
                    max_message=self._limits.max_udp_message,
                )
            except BaseException:
                await self._tcp.unlisten(interface)
                raise

    async def _unbind(self, interface: str) -> None:
        endpoint = self._udp.pop(interface, None)
        if endpoint is not None:
            endpoint.close()
        await self._tcp.unlisten(interface)

    def bound(self, interface: str, transport: str) -> tuple[str, int]:
        """The actual address ``interface`` listens on for ``transport`` (KeyError if none)."""
        if transport == UDP and interface in self._udp:
            return self._udp[interface].local
        address = self._tcp.local_address(interface, transport) if transport in STREAMS else None
        if address is None:
            raise KeyError(f"interface {interface!r} does not listen on {transport!r}")
        return address

    def set_tls_clients(
        self,
        configs: Mapping[tuple[str, int], TlsClientConfig],
        default: TlsClientConfig | None = TlsClientConfig(),  # noqa: B008 - frozen
    ) -> None:
        """Replace the per-destination TLS client settings (a policy reload).

        Every listed config is loaded first, so a bad file raises
        :class:`~sbc.transport.tls.TlsConfigError` and changes nothing.
        Open connections keep the settings they were verified with.
        """
        self._tcp.tls_clients = _tls_clients(configs, default)

    def set_limits(self, limits: TransportLimits, tcp_idle_timeout: float | None = None) -> None:
        """Apply new limits (a policy reload).

        Size caps apply to datagrams read from now on and to connections
        accepted or opened from now on; slot caps to the next accept;
        deadlines and the idle timeout at the next sweep, to every connection.
        """
        self._limits = limits
        for endpoint in self._udp.values():
            endpoint.set_max_message(limits.max_udp_message)
        self._tcp.set_limits(limits, tcp_idle_timeout)

    def alias(self, connection: int, dest: Peer) -> bool:
        """Let requests to ``dest`` reuse TLS ``connection`` (RFC 5923 Via ``alias``).

        The core calls this for a request that arrived on ``connection`` with
        ``;alias`` on its top Via, ``dest`` being the Via's sent-by. Refused
        (False) unless the connection is TLS and the peer's verified
        certificate names ``dest.host`` (mutual TLS).
        """
        return self._tcp.alias(connection, dest)

    def send(self, interface: str, data: bytes, dest: Peer, connection: int | None = None) -> None:
        """Send ``data`` to ``dest`` from ``interface``; never blocks, never raises.

        UDP leaves from the interface's socket. TCP and TLS use ``connection``
        if it is still open, else an open connection to ``dest`` on this
        interface (either direction, or an RFC 5923 alias), else a new
        connection from the interface's address, unless connects to ``dest``
        are backing off after a failure (then a transport error at once).
        """
        host = self._hosts.get(interface)
        if host is None:
            self._stats.dropped += 1
            self._report_error(dest, f"unknown interface {interface!r}")
            return
        if dest.transport == UDP:
            endpoint = self._udp.get(interface)
            if endpoint is None:
                self._stats.dropped += 1
                self._report_error(dest, f"interface {interface!r} has no udp socket")
                return
            endpoint.send(data, dest)
        elif dest.transport in STREAMS:
            self._tcp.send(interface, host, data, dest, connection)
        else:
            self._stats.dropped += 1
            self._report_error(dest, f"unsupported transport {dest.transport!r}")

    async def close(self) -> None:
        """Close every listener and connection; the manager is unusable afterwards."""
        for endpoint in self._udp.values():
            endpoint.close()
        self._udp.clear()
        self._hosts.clear()
        await self._tcp.close()

    # -- callbacks into the core -------------------------------------------

    def _deliver(self, inbound: Inbound) -> None:
        self._stats.received += 1
        try:
            self._on_message(inbound)
        except Exception:
            self._stats.errors += 1
            log.exception("on_message_failed", source=inbound.source, interface=inbound.interface)

    def _report_error(self, peer: Peer, reason: str) -> None:
        self._stats.errors += 1
        if self._on_transport_error is None:
            log.info("transport_error", peer=peer, reason=reason)
            return
        self._running_loop().call_soon(self._call_error_handler, peer, reason)

    def _call_error_handler(self, peer: Peer, reason: str) -> None:
        if self._on_transport_error is None:  # pragma: no cover - checked when queued
            return
        try:
            self._on_transport_error(peer, reason)
        except Exception:
            log.exception("on_transport_error_failed", peer=peer, reason=reason)

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop


def _tls_clients(
    configs: Mapping[tuple[str, int], TlsClientConfig], default: TlsClientConfig | None
) -> TlsClients:
    clients = TlsClients(dict(configs), default)
    clients.build()
    return clients
