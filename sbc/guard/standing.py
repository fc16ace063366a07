"""Sources with standing: the far ends of established calls, counted per source key.

One datagram with a scanner's User-Agent bans its source on sight; anyone can
forge that datagram from the address of a phone or a PBX node in the middle
of a call. The guard asks this table first: a source key with an established
call is counted and logged, not banned (it is still rate limited). Updated
once per call event, O(hosts of the call); looked up in O(1).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable


class Standing:
    """Established calls per source key (the key follows ``source_prefix``)."""

    __slots__ = ("_by_key", "_calls", "_key")

    def __init__(self, key: Callable[[str], str]) -> None:
        self._key = key
        self._calls: dict[str, tuple[str, ...]] = {}  # call id -> its hosts
        self._by_key: dict[str, int] = {}

    def __contains__(self, key: object) -> bool:
        return key in self._by_key

    def __len__(self) -> int:
        return len(self._calls)

    def add(self, call_id: str, hosts: Iterable[str]) -> None:
        """A call is established with these far-end hosts (told twice: counted once)."""
        if call_id in self._calls:
            return
        unique = tuple(dict.fromkeys(hosts))
        self._calls[call_id] = unique
        self._count(unique, 1)

    def remove(self, call_id: str) -> None:
        hosts = self._calls.pop(call_id, None)
        if hosts is not None:
            self._count(hosts, -1)

    def rekey(self, key: Callable[[str], str]) -> None:
        """The key changed (a reload changed ``source_prefix``): count again."""
        self._key = key
        self._by_key.clear()
        for hosts in self._calls.values():
            self._count(hosts, 1)

    def _count(self, hosts: tuple[str, ...], step: int) -> None:
        by_key = self._by_key
        for key in {self._key(host) for host in hosts}:
            count = by_key.get(key, 0) + step
            if count > 0:
                by_key[key] = count
            else:
                by_key.pop(key, None)
