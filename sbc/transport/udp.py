"""UDP endpoint: one non-blocking socket per interface, drained on readiness.

Why not ``asyncio.DatagramProtocol``: the protocol path costs one loop
iteration per datagram, while draining the socket with ``recvfrom_into``
until ``BlockingIOError`` on each readiness event handles bursts several
times faster (see TOOLS.md). Reads are capped per wake-up so one busy
socket cannot starve the loop; the reader is level-triggered, so the rest
is read on the next iteration.

Sends go out synchronously with ``sendto`` from the interface's own socket,
so the source address is the interface's (topology: replies must leave from
the address the peer talks to). A datagram longer than the interface's cap
(``transport.max_udp_message``) is dropped and counted before any parsing:
it is read into a buffer one byte larger than the cap, so the kernel's
truncation shows. A full send buffer drops the datagram: SIP
over UDP already retransmits (RFC 3261 §17.1.1.2), and queueing would only
add latency under overload.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import sys
import time
from collections.abc import Callable

import structlog

from sbc.sip.framing import datagram_is_keepalive
from sbc.transport.types import UDP, Inbound, Peer, TransportStats

__all__ = ["UdpEndpoint"]

log = structlog.get_logger(__name__)

#: Datagrams read per readiness event before yielding to other sockets.
_MAX_BATCH = 64
#: Receive buffer asked of the kernel: absorbs signalling bursts (best effort).
_SO_RCVBUF = 4 * 1024 * 1024
#: Source peers remembered so a busy peer does not cost a Peer per datagram.
_PEER_CACHE_SIZE = 4096
#: Linux SO_TIMESTAMPNS (asm-generic value; Python's socket module does not
#: export it): the kernel stamps each datagram on arrival, so the reader knows
#: how long it waited in the receive buffer. That queueing delay is the
#: overload signal loop lag cannot give: the reader yields between batches,
#: so a backlog grows in the kernel while the loop itself looks healthy.
_SO_TIMESTAMPNS = 35
_TIMESPEC = struct.Struct("@ll")
_ANCILLARY_SIZE = socket.CMSG_SPACE(_TIMESPEC.size)


def socket_family(host: str) -> socket.AddressFamily:
    """IPv6 for literals with a colon, IPv4 otherwise (hosts are IP literals)."""
    return socket.AF_INET6 if ":" in host else socket.AF_INET


class UdpEndpoint:
    """The UDP socket of one interface: reads into ``deliver``, writes with :meth:`send`."""

    __slots__ = (
        "_closed",
        "_deliver",
        "_interface",
        "_loop",
        "_max_message",
        "_peers",
        "_report_error",
        "_sock",
        "_stats",
        "_view",
        "local",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        interface: str,
        *,
        deliver: Callable[[Inbound], None],
        report_error: Callable[[Peer, str], None],
        stats: TransportStats,
        max_message: int,
    ) -> None:
        self._loop = loop
        self._sock = sock
        self._interface = interface
        self._deliver = deliver
        self._report_error = report_error
        self._stats = stats
        self._max_message = max_message
        # One byte more than allowed, so an oversized datagram shows as too long.
        self._view = memoryview(bytearray(max_message + 1))
        self._peers: dict[tuple[str, int], Peer] = {}
        self._closed = False
        host, port = sock.getsockname()[:2]
        self.local: tuple[str, int] = (host, port)
        loop.add_reader(sock.fileno(), self._on_readable)

    @classmethod
    def bind(
        cls,
        loop: asyncio.AbstractEventLoop,
        interface: str,
        host: str,
        port: int,
        *,
        deliver: Callable[[Inbound], None],
        report_error: Callable[[Peer, str], None],
        stats: TransportStats,
        max_message: int,
    ) -> UdpEndpoint:
        """Bind ``host:port`` (port 0: any free port) and start reading."""
        sock = socket.socket(socket_family(host), socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            with contextlib.suppress(OSError):  # capped by the kernel: not fatal
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _SO_RCVBUF)
            if sys.platform.startswith("linux"):
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
            sock.bind((host, port))
            return cls(
                loop,
                sock,
                interface,
                deliver=deliver,
                report_error=report_error,
                stats=stats,
                max_message=max_message,
            )
        except BaseException:
            sock.close()
            raise

    def set_max_message(self, max_message: int) -> None:
        """Cap datagrams read from now on (a policy reload)."""
        if max_message != self._max_message:
            self._max_message = max_message
            self._view = memoryview(bytearray(max_message + 1))

    def send(self, data: bytes, dest: Peer) -> None:
        """Send one datagram now; failures are counted and reported, never raised."""
        if self._closed:
            self._stats.dropped += 1
            return
        try:
            self._sock.sendto(data, (dest.host, dest.port))
        except (BlockingIOError, InterruptedError):
            self._stats.dropped += 1  # send buffer full: SIP retransmits, don't queue
        except OSError as exc:
            # Unreachable network, EMSGSIZE, bad address: a transport error for the
            # client transaction (RFC 3261 §17.1.4).
            self._stats.dropped += 1
            self._report_error(dest, f"udp send failed: {exc.strerror or exc}")
        else:
            self._stats.sent += 1

    def close(self) -> None:
        """Stop reading and close the socket; later sends are dropped."""
        if self._closed:
            return
        self._closed = True
        self._loop.remove_reader(self._sock.fileno())
        self._sock.close()

    def _on_readable(self) -> None:
        recvmsg_into = self._sock.recvmsg_into
        buffers = [self._view]
        view = self._view
        now = 0.0
        for _ in range(_MAX_BATCH):
            try:
                size, ancillary, _flags, address = recvmsg_into(buffers, _ANCILLARY_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if self._closed:  # closed by a callback during this batch
                    return
                # e.g. ECONNREFUSED queued by an ICMP error: nothing to read, keep going.
                self._stats.errors += 1
                log.debug("udp_receive_error", interface=self._interface, error=str(exc))
                continue
            if size > self._max_message:  # dropped before anything parses it
                self._stats.oversized_datagrams += 1
                self._stats.dropped += 1
                continue
            data = view[:size].tobytes()
            if datagram_is_keepalive(data):
                self._stats.keepalives += 1
                continue
            queued = 0.0
            if ancillary:
                now = now or time.time()
                queued = _queueing_delay(ancillary, now)
            peer = self._peer(address[0], address[1])
            self._deliver(Inbound(data, peer, self._interface, self.local, None, queued))

    def _peer(self, host: str, port: int) -> Peer:
        key = (host, port)
        peer = self._peers.get(key)
        if peer is None:
            if len(self._peers) >= _PEER_CACHE_SIZE:
                self._peers.clear()
            peer = self._peers[key] = Peer(UDP, host, port)
        return peer


def _queueing_delay(ancillary: list[tuple[int, int, bytes]], now: float) -> float:
    """Seconds between the kernel's arrival stamp and ``now`` (0 if unknown)."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack_from(data)
            delay: float = now - seconds - nanoseconds * 1e-9
            return max(0.0, delay)
    return 0.0
