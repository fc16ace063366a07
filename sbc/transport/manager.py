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
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
from collections.abc import Callable, Iterable

import structlog

from sbc.transport.pool import TcpPool
from sbc.transport.types import TCP, TRANSPORTS, UDP, Inbound, Peer, TransportStats
from sbc.transport.udp import UdpEndpoint

__all__ = ["TransportManager"]

log = structlog.get_logger(__name__)

#: Tries at finding a port free for both UDP and TCP when asked for port 0.
_SAME_PORT_ATTEMPTS = 8


class TransportManager:
    """UDP and TCP listeners per named interface, plus the TCP connection pool.

    ``on_message`` receives every SIP message (keepalives are answered or
    dropped here). ``on_transport_error(peer, reason)`` learns about sends
    that could not be carried out. Both are called from the event loop; an
    exception they raise is logged and swallowed so one bad message can
    never stop a listener.
    """

    def __init__(
        self,
        on_message: Callable[[Inbound], None],
        *,
        on_transport_error: Callable[[Peer, str], None] | None = None,
        tcp_idle_timeout: float = 300.0,
        tcp_connect_timeout: float = 10.0,
        max_connections: int = 10000,
        max_message: int = 65535,
    ) -> None:
        self._on_message = on_message
        self._on_transport_error = on_transport_error
        self._stats = TransportStats()
        self._hosts: dict[str, str] = {}
        self._udp: dict[str, UdpEndpoint] = {}
        self._max_message = max_message
        self._tcp = TcpPool(
            deliver=self._deliver,
            report_error=self._report_error,
            stats=self._stats,
            idle_timeout=tcp_idle_timeout,
            connect_timeout=tcp_connect_timeout,
            max_connections=max_connections,
            max_message=max_message,
        )
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def stats(self) -> TransportStats:
        """A snapshot of the counters (a copy: safe to keep and compare)."""
        return dataclasses.replace(self._stats)

    async def listen(self, interface: str, host: str, port: int, transports: Iterable[str]) -> None:
        """Bind ``transports`` ("udp", "tcp") on ``host:port`` for ``interface``.

        With port 0 and both transports, UDP and TCP get the same free port,
        as a SIP interface is one address for both.
        """
        wanted = {name.lower() for name in transports}
        unknown = wanted - TRANSPORTS
        if unknown or not wanted:
            raise ValueError(f"transports must be among {sorted(TRANSPORTS)}, got {sorted(wanted)}")
        if interface in self._hosts:
            raise ValueError(f"interface {interface!r} is already listening")
        self._loop = asyncio.get_running_loop()
        for attempt in range(_SAME_PORT_ATTEMPTS):
            try:
                await self._bind(interface, host, port, wanted)
                break
            except OSError as exc:
                retry = port == 0 and exc.errno == errno.EADDRINUSE
                if not retry or attempt == _SAME_PORT_ATTEMPTS - 1:
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
                    max_message=self._max_message,
                )
            except BaseException:
                await self._tcp.unlisten(interface)
                raise

    def bound(self, interface: str, transport: str) -> tuple[str, int]:
        """The actual address ``interface`` listens on for ``transport`` (KeyError if none)."""
        if transport == UDP and interface in self._udp:
            return self._udp[interface].local
        address = self._tcp.local_address(interface) if transport == TCP else None
        if address is None:
            raise KeyError(f"interface {interface!r} does not listen on {transport!r}")
        return address

    def send(self, interface: str, data: bytes, dest: Peer, connection: int | None = None) -> None:
        """Send ``data`` to ``dest`` from ``interface``; never blocks, never raises.

        UDP leaves from the interface's socket. TCP uses ``connection`` if it
        is still open, else an open connection to ``dest`` on this interface,
        else a new connection from the interface's address.
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
        elif dest.transport == TCP:
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
