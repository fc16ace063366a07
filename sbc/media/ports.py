"""RTP port allocation per media address.

RFC 3550 §11: RTP uses an even port and RTCP the next (odd) one, so every
allocation reserves the pair ``(p, p + 1)`` with ``p`` even, even when the
offer proposes rtcp-mux (RFC 5761 §5.1.1: the answer may decline it, and
then RTCP needs its own port).

The pool is keyed by media IP address: several interfaces may share one
media IP, each with its own (possibly overlapping) range, and a port is never
handed out twice on the same IP whatever range it was asked from. Each
``(ip, range)`` keeps a FIFO queue of candidate pairs: a released pair goes
to the back, so a port is reused as late as possible (stray packets of the
previous call die out first). A candidate taken through an overlapping range
is skipped lazily when met, and a queue holds each pair at most once, so
allocation and release are O(1) amortized and memory stays bounded.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from sbc.media.interface import MediaError

#: Lowest and highest usable UDP ports.
MIN_PORT = 1
MAX_PORT = 65535


class PortsExhaustedError(MediaError):
    """Every RTP/RTCP pair of the range is in use (answered 503)."""

    status = 503


class _RangeQueue:
    """The candidate RTP ports of one ``(ip, range)``, each queued at most once."""

    __slots__ = ("first", "last", "queue", "queued")

    def __init__(self, first: int, last: int) -> None:
        self.first = first
        self.last = last
        start = first + (first & 1)
        self.queue: deque[int] = deque(range(start, last, 2))  # p + 1 <= last
        self.queued: set[int] = set(self.queue)

    def covers(self, port: int) -> bool:
        return self.first <= port and port + 1 <= self.last

    def push(self, port: int) -> None:
        if port not in self.queued:
            self.queued.add(port)
            self.queue.append(port)

    def pop(self) -> int | None:
        if not self.queue:
            return None
        port = self.queue.popleft()
        self.queued.discard(port)
        return port


class PortPool:
    """Even RTP ports (RTCP on ``port + 1``) per media IP address."""

    def __init__(self, available: Callable[[str, int], bool] | None = None) -> None:
        # ``available(ip, port)``: can the pair be bound right now? Another
        # process may hold a port of our range; such a pair is passed over
        # (and retried later) instead of failing the call when the relay binds.
        self._available = available
        self._used: dict[str, set[int]] = {}
        self._ranges: dict[tuple[str, int, int], _RangeQueue] = {}
        self._by_ip: dict[str, list[_RangeQueue]] = {}

    def allocate(self, ip: str, ports: tuple[int, int]) -> int:
        """Reserve an even ``p`` and ``p + 1`` on ``ip`` inside ``ports`` (inclusive).

        Raises :class:`PortsExhaustedError` (503) when the range has no free pair.
        """
        queue = self._queue(ip, ports)
        used = self._used.setdefault(ip, set())
        busy: list[int] = []
        try:
            while (port := queue.pop()) is not None:
                if port in used:
                    continue  # taken through an overlapping range
                if self._available is not None and not self._available(ip, port):
                    busy.append(port)
                    continue
                used.add(port)
                return port
        finally:
            for port in busy:  # someone else's for now: try them again later
                queue.push(port)
        raise PortsExhaustedError(f"no media ports on {ip} in {ports[0]}-{ports[1]}")

    def release(self, ip: str, port: int) -> None:
        """Give back a pair; every range of ``ip`` that covers it may hand it out again."""
        used = self._used.get(ip)
        if used is None or port not in used:
            raise ValueError(f"port {port} on {ip} is not allocated")
        used.discard(port)
        for queue in self._by_ip[ip]:
            if queue.covers(port):
                queue.push(port)

    def in_use(self, ip: str | None = None) -> int:
        """How many pairs are allocated (on ``ip``, or on every address)."""
        if ip is not None:
            return len(self._used.get(ip, ()))
        return sum(len(used) for used in self._used.values())

    def free(self, ip: str, ports: tuple[int, int]) -> int:
        """How many pairs ``allocate(ip, ports)`` could still hand out."""
        queue = self._queue(ip, ports)
        used = self._used.get(ip, set())
        return sum(1 for port in queue.queue if port not in used)

    def _queue(self, ip: str, ports: tuple[int, int]) -> _RangeQueue:
        first, last = ports
        if not MIN_PORT <= first <= last <= MAX_PORT:
            raise ValueError(f"invalid media port range {first}-{last}")
        key = (ip, first, last)
        queue = self._ranges.get(key)
        if queue is None:
            queue = self._ranges[key] = _RangeQueue(first, last)
            self._by_ip.setdefault(ip, []).append(queue)  # pairs in use are skipped lazily
        return queue
