"""Failed bearer tokens per client address: a leaky bucket each, in a bounded table.

Each failed attempt adds one to its client's level, which drains at
``per_s`` per second; a client whose next failure would take it above
``burst`` is held (the API answers 429, RFC 6585 §4) for the time its bucket
needs to drain that far. So in ``t`` seconds one client gets at most
``burst + per_s * t`` answers about a token, however fast it asks.

No timer per client: a level is brought up to date when it is read, from
the time passed in as ``now``. The table keeps at most ``max_clients``
addresses, oldest failure first; one that has drained to zero makes room.
When every slot is taken by a client still draining, newcomers share a
single overflow bucket, so cycling through many addresses neither grows
the table nor escapes the limit. IPv6 clients are keyed per /64, what one
host is usually given.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from dataclasses import dataclass

#: Failed attempts a client may make at once, then one more per 6 s (10 a minute).
DEFAULT_BURST = 10
DEFAULT_PER_S = 1 / 6
#: Addresses tracked at once (a few hundred kilobytes at most).
DEFAULT_MAX_CLIENTS = 4096

IPV6_PREFIX = 64


def client_key(host: str) -> str:
    """The address a client's failures are counted against: IPv6 per /64, IPv4 as is."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host  # not an address (a test client, a Unix socket): counted as given
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, IPV6_PREFIX), strict=False))
    return str(address)


@dataclass(slots=True)
class _Bucket:
    level: float = 0.0
    at: float = 0.0  # when ``level`` was last brought up to date

    def drained(self, now: float, per_s: float) -> float:
        return max(0.0, self.level - (now - self.at) * per_s)


class FailureThrottle:
    """Who failed too often lately; :meth:`retry_after` before a check, :meth:`failed` after."""

    def __init__(
        self,
        burst: int = DEFAULT_BURST,
        per_s: float = DEFAULT_PER_S,
        max_clients: int = DEFAULT_MAX_CLIENTS,
    ) -> None:
        self.burst = burst
        self.per_s = per_s
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()  # oldest failure first
        self._overflow: _Bucket | None = None

    def __len__(self) -> int:
        return len(self._buckets) + (self._overflow is not None)

    def retry_after(self, client: str, now: float) -> float:
        """Seconds until ``client`` may try a token again; 0.0 when it may now."""
        bucket = self._bucket(client, now, create=False)
        if bucket is None:
            return 0.0
        return max(0.0, (bucket.drained(now, self.per_s) + 1 - self.burst) / self.per_s)

    def failed(self, client: str, now: float) -> bool:
        """Count one failed attempt; True when it is the one that gets ``client`` held."""
        bucket = self._bucket(client, now, create=True)
        assert bucket is not None  # created on demand
        level = bucket.drained(now, self.per_s)
        bucket.level, bucket.at = level + 1, now
        return level + 1 <= self.burst < level + 2

    def _bucket(self, client: str, now: float, *, create: bool) -> _Bucket | None:
        bucket = self._buckets.get(client)
        if bucket is not None:
            if create:
                self._buckets.move_to_end(client)
            return bucket
        self._make_room(now)
        if len(self._buckets) >= self.max_clients:
            if self._overflow is None and create:
                self._overflow = _Bucket(at=now)
            return self._overflow
        if not create:
            return None
        bucket = self._buckets[client] = _Bucket(at=now)
        return bucket

    def _make_room(self, now: float) -> None:
        """Forget clients, oldest first, whose buckets have drained (amortised O(1))."""
        if self._overflow is not None and self._overflow.drained(now, self.per_s) == 0.0:
            self._overflow = None
        while self._buckets:
            oldest = next(iter(self._buckets.values()))
            if oldest.drained(now, self.per_s) > 0.0:
                return
            self._buckets.popitem(last=False)
