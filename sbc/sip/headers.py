"""Header names and the ordered header list of a SIP message (RFC 3261 §7.3).

Headers are kept as (canonical name, raw value) in wire order. One entry per
header line: a line may hold several comma-separated values, and
:meth:`Headers.values` splits them for the headers whose grammar allows it
(never for the authentication headers, whose values contain commas).
Parsed forms (Via, From, CSeq…) are cached here and dropped on any change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from sbc.sip.params import split_outside_quotes

T = TypeVar("T")

#: RFC 3261 §7.3.3 compact forms, plus RFC 3265 (o, u), 3515 (r), 3892 (b),
#: 3841 (j, d), 3903 (y? no), 4028 (x), 4474 (n, y).
COMPACT_FORMS = {
    "i": "Call-ID",
    "m": "Contact",
    "e": "Content-Encoding",
    "l": "Content-Length",
    "c": "Content-Type",
    "f": "From",
    "s": "Subject",
    "k": "Supported",
    "t": "To",
    "v": "Via",
    "o": "Event",
    "u": "Allow-Events",
    "r": "Refer-To",
    "b": "Referred-By",
    "x": "Session-Expires",
    "a": "Accept-Contact",
    "j": "Reject-Contact",
    "d": "Request-Disposition",
    "y": "Identity",
    "n": "Identity-Info",
}

_KNOWN = [
    "Accept",
    "Accept-Encoding",
    "Accept-Language",
    "Alert-Info",
    "Allow",
    "Allow-Events",
    "Authentication-Info",
    "Authorization",
    "Call-ID",
    "Call-Info",
    "Contact",
    "Content-Disposition",
    "Content-Encoding",
    "Content-Language",
    "Content-Length",
    "Content-Type",
    "CSeq",
    "Date",
    "Diversion",
    "Error-Info",
    "Event",
    "Expires",
    "From",
    "History-Info",
    "In-Reply-To",
    "Max-Forwards",
    "Min-Expires",
    "Min-SE",
    "MIME-Version",
    "Organization",
    "P-Asserted-Identity",
    "P-Preferred-Identity",
    "Path",
    "Priority",
    "Privacy",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Proxy-Require",
    "RAck",
    "Reason",
    "Record-Route",
    "Refer-To",
    "Referred-By",
    "Reply-To",
    "Require",
    "Retry-After",
    "Route",
    "RSeq",
    "Server",
    "Session-Expires",
    "Subject",
    "Subscription-State",
    "Supported",
    "Timestamp",
    "To",
    "Unsupported",
    "User-Agent",
    "Via",
    "Warning",
    "WWW-Authenticate",
]

_CANONICAL = {name.lower(): name for name in _KNOWN}
_CANONICAL.update(COMPACT_FORMS)

#: Headers whose grammar is a comma-separated list (RFC 3261 §7.3.1).
LIST_HEADERS = frozenset(
    [
        "Accept",
        "Accept-Encoding",
        "Accept-Language",
        "Alert-Info",
        "Allow",
        "Allow-Events",
        "Call-Info",
        "Contact",
        "Content-Encoding",
        "Content-Language",
        "Error-Info",
        "History-Info",
        "In-Reply-To",
        "Path",
        "P-Asserted-Identity",
        "Proxy-Require",
        "Reason",
        "Record-Route",
        "Require",
        "Route",
        "Supported",
        "Unsupported",
        "Via",
        "Warning",
        "Diversion",
    ]
)


#: Exact spellings seen on the wire → canonical name: a dict hit skips the
#: lower-casing and the token check on the hot path.
CANONICAL_SPELLINGS = {name: name for name in _KNOWN}
CANONICAL_SPELLINGS.update({name.lower(): name for name in _KNOWN})
CANONICAL_SPELLINGS.update(COMPACT_FORMS)
CANONICAL_SPELLINGS.update({short.upper(): full for short, full in COMPACT_FORMS.items()})


def canonical_name(name: str) -> str:
    """Map any spelling (case, compact form) to one canonical name."""
    known = CANONICAL_SPELLINGS.get(name)
    if known is not None:
        return known
    known = _CANONICAL.get(name.lower())
    if known is not None:
        return known
    if len(name) == 1:
        return name.lower()
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


class Headers:
    """Ordered multi-map of header name to raw value."""

    __slots__ = ("_cache", "_items")

    def __init__(self, items: list[tuple[str, str]] | None = None) -> None:
        self._items: list[tuple[str, str]] = items if items is not None else []
        self._cache: dict[str, Any] = {}

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        name = canonical_name(name)
        return any(n == name for n, _ in self._items)

    def get(self, name: str) -> str | None:
        """First raw value of ``name`` (whole line, not split)."""
        name = CANONICAL_SPELLINGS.get(name) or canonical_name(name)  # hot: skip a call
        for n, v in self._items:
            if n == name:
                return v
        return None

    def get_all(self, name: str) -> list[str]:
        """Every raw line value of ``name``, in order."""
        name = CANONICAL_SPELLINGS.get(name) or canonical_name(name)
        return [v for n, v in self._items if n == name]

    def values(self, name: str) -> list[str]:
        """All values of ``name``, comma lists split (for list headers)."""
        name = canonical_name(name)
        lines = [v for n, v in self._items if n == name]
        if name not in LIST_HEADERS:
            return lines
        out: list[str] = []
        for line in lines:
            out.extend(p.strip() for p in split_outside_quotes(line, ",") if p.strip())
        return out

    def count(self, name: str) -> int:
        name = canonical_name(name)
        return sum(1 for n, _ in self._items if n == name)

    def add(self, name: str, value: str) -> None:
        """Append a header line."""
        name = CANONICAL_SPELLINGS.get(name) or canonical_name(name)
        self._items.append((name, value))
        self._cache.pop(name, None)

    def prepend(self, name: str, value: str) -> None:
        """Insert before the first header of that name (or at the top)."""
        name = canonical_name(name)
        for i, (n, _) in enumerate(self._items):
            if n == name:
                self._items.insert(i, (name, value))
                break
        else:
            self._items.insert(0, (name, value))
        self._cache.pop(name, None)

    def set(self, name: str, value: str) -> None:
        """Replace every line of ``name`` by one line, keeping the first position."""
        self.replace_values(name, [value])

    def remove(self, name: str) -> int:
        """Remove every line of ``name``; return how many were removed."""
        name = canonical_name(name)
        before = len(self._items)
        self._items = [(n, v) for n, v in self._items if n != name]
        self._cache.pop(name, None)
        return before - len(self._items)

    def replace_values(self, name: str, values: list[str]) -> None:
        """Replace all lines of ``name`` with one line per value, in place of the first."""
        name = canonical_name(name)
        new: list[tuple[str, str]] = []
        placed = False
        for n, v in self._items:
            if n != name:
                new.append((n, v))
            elif not placed:
                new.extend((name, value) for value in values)
                placed = True
        if not placed:
            new.extend((name, value) for value in values)
        self._items = new
        self._cache.pop(name, None)

    def parsed(self, key: str, parse: Callable[[str], T]) -> T:
        """Memoize ``parse(key)``, a parsed view of header ``key`` (its canonical
        name), until that header changes; edits of other headers keep it."""
        try:
            return self._cache[key]  # type: ignore[no-any-return]
        except KeyError:
            value = self._cache[key] = parse(key)
            return value

    def remember(self, key: str, value: object) -> None:
        """Seed the parsed view of header ``key`` (just set from ``value``), so a
        rewrite does not pay for parsing what it has just built."""
        self._cache[key] = value

    def forget_parsed(self) -> None:
        """Drop the parsed views (they come back on demand): messages kept only
        for retransmission or matching then hold a handful of objects, not
        dozens — fewer live objects make the cyclic GC's full passes short."""
        self._cache.clear()

    def copy(self) -> Headers:
        """The same lines; parsed views are shared, being read-only by contract
        (code that needs to change one copies it first, as every caller does)."""
        twin = Headers(list(self._items))
        twin._cache = dict(self._cache)
        return twin
