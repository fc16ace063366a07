"""The key a source's buckets, strikes and bans are kept under: its address prefix.

An IPv6 host owns a whole /64 (SLAAC, privacy extensions, RFC 4941): keyed
per /128 it could send from a fresh address each time and never meet its
limit or its ban. So sources are keyed by their ``/ipv6_prefix`` (default 64)
or ``/ipv4_prefix`` (default 32, the address itself). IPv4-mapped IPv6
addresses (``::ffff:a.b.c.d``, from a dual-stack socket) are keyed as IPv4.

Keys are strings as the operator reads them: ``192.0.2.7``,
``2001:db8:1:2::/64`` (a block), ``2001:db8::1`` (a full-length prefix).
The IPv4 /32 default costs one ``in`` test; other keys are cached per
address, in a cache cleared when full.
"""

from __future__ import annotations

import ipaddress

DEFAULT_CACHE_SIZE = 65_536


class SourceKeys:
    """Maps a source address to its key for one pair of prefix lengths."""

    __slots__ = ("_cache", "_cache_size", "_v4_whole", "ipv4_prefix", "ipv6_prefix")

    def __init__(
        self, ipv4_prefix: int = 32, ipv6_prefix: int = 64, cache_size: int = DEFAULT_CACHE_SIZE
    ) -> None:
        self.ipv4_prefix = ipv4_prefix
        self.ipv6_prefix = ipv6_prefix
        self._v4_whole = ipv4_prefix == 32
        self._cache: dict[str, str] = {}
        self._cache_size = cache_size

    def of(self, address: str) -> str:
        """The key of ``address`` (text that is not an address is its own key)."""
        if self._v4_whole and ":" not in address:
            return address  # the transport hands over canonical dotted quads
        key = self._cache.get(address)
        if key is None:
            if len(self._cache) >= self._cache_size:
                self._cache.clear()
            key = self._cache[address] = self._compute(address)
        return key

    def cached(self) -> int:
        return len(self._cache)

    def _compute(self, text: str) -> str:
        try:
            address = ipaddress.ip_address(text.split("%", 1)[0])  # no zone in a key
        except ValueError:
            return text
        if isinstance(address, ipaddress.IPv6Address):
            mapped = address.ipv4_mapped
            if mapped is None:
                return _prefix(address, self.ipv6_prefix)
            address = mapped
        return _prefix(address, self.ipv4_prefix)


def _prefix(address: ipaddress.IPv4Address | ipaddress.IPv6Address, length: int) -> str:
    if length >= address.max_prefixlen:
        return str(address)
    return str(ipaddress.ip_network((address, length), strict=False))
