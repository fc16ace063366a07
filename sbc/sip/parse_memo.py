"""Parsed header values remembered by their raw text, across messages.

Theory of operation. The same header text comes back many times within a
call: the caller's From and Call-ID on every request and on every response
to it, a Via on the request and all its responses, the CSeq of a request
on its 100, 180 and 200. Parsing is the larger part of reading a message, so
a value already parsed from exactly the same text is handed out again.

This is sound because parsed views are read-only by contract (see
:meth:`sbc.sip.headers.Headers.copy`, which already shares them between
copies): code that changes an address or a Via copies it first. Lists are
remembered as tuples and handed out as fresh lists, so a caller may still
edit the list it gets.

Only successful parses are remembered; text that fails parses (and raises)
every time. The memo is bounded: when full it is emptied at once, which
costs a few re-parses and keeps the bookkeeping off the hot path (no LRU
order to maintain). Its few thousand acyclic objects are freed by reference
counting and do not lengthen the cyclic collector's passes much.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

#: Entries per memo: the distinct header texts of a few hundred calls in flight.
DEFAULT_LIMIT = 2048


class ParseMemo(Generic[T]):
    """``memo(text)`` is ``parse(text)``, computed once per distinct text."""

    __slots__ = ("_limit", "_parse", "_values")

    def __init__(self, parse: Callable[[str], T], limit: int = DEFAULT_LIMIT) -> None:
        self._parse = parse
        self._limit = limit
        self._values: dict[str, T] = {}

    def __call__(self, text: str) -> T:
        try:
            return self._values[text]
        except KeyError:
            pass
        value = self._parse(text)  # a ParseError propagates; nothing is kept
        if len(self._values) >= self._limit:
            self._values.clear()
        self._values[text] = value
        return value

    def __len__(self) -> int:
        return len(self._values)
