"""Call detail records: the record, the stores that keep them, the writer.

Stores are pluggable (DESIGN.md: a Protocol plus a registry): :data:`STORES`
maps a kind, as a policy would name it, to the class that opens it.
"""

from __future__ import annotations

from collections.abc import Callable

from sbc.cdr.record import (
    CSV_FIELDS,
    MAX_LIMIT,
    CdrQuery,
    CdrRecord,
    Disposition,
    HangupBy,
    MediaFigures,
    completed,
    cursor_after,
    disposition,
    hangup_party,
    interrupted,
)
from sbc.cdr.sqlite import SqliteCdrStore
from sbc.cdr.store import CdrStore, CdrStoreError

#: Store kind to a factory taking its location (a path for SQLite, a DSN later).
STORES: dict[str, Callable[[str], CdrStore]] = {"sqlite": SqliteCdrStore}


def open_store(kind: str, location: str) -> CdrStore:
    """Open the store of ``kind`` at ``location`` (:class:`CdrStoreError` if unknown)."""
    factory = STORES.get(kind)
    if factory is None:
        raise CdrStoreError(f"unknown CDR store {kind!r} (known: {', '.join(sorted(STORES))})")
    return factory(location)


__all__ = [
    "CSV_FIELDS",
    "MAX_LIMIT",
    "STORES",
    "CdrQuery",
    "CdrRecord",
    "CdrStore",
    "CdrStoreError",
    "Disposition",
    "HangupBy",
    "MediaFigures",
    "SqliteCdrStore",
    "completed",
    "cursor_after",
    "disposition",
    "hangup_party",
    "interrupted",
    "open_store",
]
