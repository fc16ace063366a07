"""Where CDRs are kept: the interface every store implements.

SQLite (:class:`sbc.cdr.sqlite.SqliteCdrStore`) is the embedded default; a
PostgreSQL store implements the same methods. A store is used by one thread
at a time (:class:`sbc.cdr.writer.CdrWriter` owns it), and its methods block
on disk: the event loop never calls them directly.

Crash safety: a call's record is written when it starts (:meth:`open`) and
again when it ends (:meth:`close`). Records still open at the next start
were cut short by a crash; :meth:`recover` completes them as
``interrupted``, ending them at the store's last sign of life
(:meth:`mark_alive`) rather than at the restart.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sbc.cdr.record import CdrQuery, CdrRecord


class CdrStoreError(Exception):
    """The store cannot be opened or used (bad path, corrupt or newer database)."""


class CdrStore(Protocol):
    def open(self, record: CdrRecord) -> None:
        """A call started (or progressed): keep ``record`` as open.

        Writing the same id again updates it; a closed record is never reopened.
        """
        ...

    def close(self, record: CdrRecord) -> None:
        """A call ended: ``record`` is final (its ``end`` is set)."""
        ...

    def write(self, opened: Sequence[CdrRecord], closed: Sequence[CdrRecord]) -> None:
        """:meth:`open` then :meth:`close` many records in one transaction."""
        ...

    def query(self, query: CdrQuery) -> list[CdrRecord]:
        """One page of matching records, newest first."""
        ...

    def count(self, query: CdrQuery) -> int:
        """How many records match the filters (paging ignored)."""
        ...

    def mark_alive(self, now: float) -> None:
        """Remember that the SBC was running at ``now`` (see :meth:`recover`)."""
        ...

    def recover(self, now: float) -> int:
        """Complete every record left open by a crash; return how many."""
        ...

    def close_store(self) -> None:
        """Release the store (later calls fail)."""
        ...
