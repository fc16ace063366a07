"""The embedded CDR store: one SQLite file in WAL mode.

WAL lets readers (an admin export, ``sqlite3`` on the command line) run
while the writer writes, and ``synchronous=NORMAL`` commits without an
fsync per transaction: a committed record survives the SBC process being
killed, and only a power cut can lose the last transactions before a
checkpoint (https://www.sqlite.org/wal.html). Records are written open when
a call starts, so a crash leaves them for :meth:`SqliteCdrStore.recover`.

The schema is versioned (table ``schema_version``); :data:`MIGRATIONS`
holds the statements that take version N-1 to N, applied in order at open.
A migration is never edited once released: add the next one instead. Every
query filter has an index ending in ``(start, id)`` so that pages come out
in order without sorting the table; the SQL is parameterized throughout
(the only names spliced in are this module's column constants).
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from sbc.cdr.record import CSV_FIELDS, CdrQuery, CdrRecord, interrupted
from sbc.cdr.store import CdrStoreError

_V1 = (
    """
    CREATE TABLE cdr (
        "id" TEXT PRIMARY KEY,
        "a_call_id" TEXT NOT NULL,
        "b_call_id" TEXT NOT NULL,
        "a_local_tag" TEXT NOT NULL,
        "a_remote_tag" TEXT NOT NULL,
        "b_local_tag" TEXT NOT NULL,
        "b_remote_tag" TEXT NOT NULL,
        "ingress_trunk" TEXT NOT NULL,
        "egress_trunk" TEXT NOT NULL,
        "ingress_interface" TEXT NOT NULL,
        "egress_interface" TEXT NOT NULL,
        "route" TEXT NOT NULL,
        "calling" TEXT NOT NULL,
        "called" TEXT NOT NULL,
        "start" REAL NOT NULL,
        "ring" REAL,
        "answer" REAL,
        "end" REAL,
        "duration_s" REAL NOT NULL,
        "setup_ms" REAL,
        "final_status" INTEGER,
        "disposition" TEXT,
        "hangup_by" TEXT,
        "end_reason" TEXT NOT NULL,
        "codecs" TEXT NOT NULL,
        "failovers" INTEGER NOT NULL,
        "a_to_b_packets" INTEGER NOT NULL,
        "a_to_b_octets" INTEGER NOT NULL,
        "a_to_b_lost" INTEGER NOT NULL,
        "a_to_b_jitter_ms" REAL NOT NULL,
        "a_to_b_reported_lost" INTEGER NOT NULL,
        "a_to_b_reported_jitter_ms" REAL NOT NULL,
        "b_to_a_packets" INTEGER NOT NULL,
        "b_to_a_octets" INTEGER NOT NULL,
        "b_to_a_lost" INTEGER NOT NULL,
        "b_to_a_jitter_ms" REAL NOT NULL,
        "b_to_a_reported_lost" INTEGER NOT NULL,
        "b_to_a_reported_jitter_ms" REAL NOT NULL
    )
    """,
    'CREATE INDEX cdr_start ON cdr ("start", "id")',
    'CREATE INDEX cdr_ingress ON cdr ("ingress_trunk", "start", "id")',
    'CREATE INDEX cdr_egress ON cdr ("egress_trunk", "start", "id")',
    'CREATE INDEX cdr_calling ON cdr ("calling", "start", "id")',
    'CREATE INDEX cdr_called ON cdr ("called", "start", "id")',
    'CREATE INDEX cdr_disposition ON cdr ("disposition", "start", "id")',
    'CREATE INDEX cdr_open ON cdr ("start") WHERE "end" IS NULL',
    "CREATE TABLE heartbeat (at REAL)",
    "INSERT INTO heartbeat (at) VALUES (NULL)",
)

#: MIGRATIONS[n] takes the schema from version n to version n + 1.
MIGRATIONS: tuple[tuple[str, ...], ...] = (_V1,)

_COLUMNS = ", ".join(f'"{name}"' for name in CSV_FIELDS)
_PLACEHOLDERS = ", ".join("?" for _ in CSV_FIELDS)
_UPDATES = ", ".join(f'"{name}" = excluded."{name}"' for name in CSV_FIELDS if name != "id")
_UPSERT = (
    f"INSERT INTO cdr ({_COLUMNS}) VALUES ({_PLACEHOLDERS})"
    f' ON CONFLICT ("id") DO UPDATE SET {_UPDATES}'
)
_OPEN_SQL = _UPSERT + ' WHERE cdr."end" IS NULL'  # a closed record is never reopened
_CLOSE_SQL = _UPSERT
_ORDER = 'ORDER BY "start" DESC, "id" DESC'


class SqliteCdrStore:
    """:class:`sbc.cdr.store.CdrStore` on one SQLite file (or ``":memory:"``)."""

    def __init__(
        self, path: str | Path, *, migrations: tuple[tuple[str, ...], ...] = MIGRATIONS
    ) -> None:
        self.path = str(path)
        with _errors(self.path):
            # One thread at a time uses the store, but not necessarily the one
            # that opened it (the writer thread takes it over).
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            with _errors(self.path):
                self._db.execute("PRAGMA busy_timeout = 5000")
                self.journal_mode = str(self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0])
                self._db.execute("PRAGMA synchronous = NORMAL")
                self.schema_version = _migrate(self._db, migrations)
        except CdrStoreError:
            self._db.close()
            raise

    # --- writing --------------------------------------------------------------

    def open(self, record: CdrRecord) -> None:
        self.write([record], [])

    def close(self, record: CdrRecord) -> None:
        self.write([], [record])

    def write(self, opened: Sequence[CdrRecord], closed: Sequence[CdrRecord]) -> None:
        for record in closed:
            if record.end is None:
                raise CdrStoreError(f"record {record.id} closed without an end time")
        with _errors(self.path), self._transaction():
            if opened:
                self._db.executemany(_OPEN_SQL, [record.row() for record in opened])
            if closed:
                self._db.executemany(_CLOSE_SQL, [record.row() for record in closed])

    def mark_alive(self, now: float) -> None:
        with _errors(self.path):
            self._db.execute("UPDATE heartbeat SET at = ?", (now,))

    def recover(self, now: float) -> int:
        with _errors(self.path), self._transaction():
            last_alive = self._db.execute("SELECT at FROM heartbeat").fetchone()[0]
            rows = self._db.execute(f'SELECT {_COLUMNS} FROM cdr WHERE "end" IS NULL').fetchall()
            done = [
                interrupted(CdrRecord.from_row(row), last_alive=last_alive, now=now) for row in rows
            ]
            self._db.executemany(_CLOSE_SQL, [record.row() for record in done])
        return len(done)

    # --- reading --------------------------------------------------------------

    def query(self, query: CdrQuery) -> list[CdrRecord]:
        sql, params = _select(query, _COLUMNS)
        sql += f" {_ORDER} LIMIT ? OFFSET ?"
        with _errors(self.path):
            rows = self._db.execute(sql, [*params, query.limit, query.offset]).fetchall()
        return [CdrRecord.from_row(row) for row in rows]

    def count(self, query: CdrQuery) -> int:
        sql, params = _select(query, '"id"', paged=False)
        with _errors(self.path):
            return int(self._db.execute(f"SELECT count(*) FROM ({sql})", params).fetchone()[0])

    def explain(self, query: CdrQuery) -> list[str]:
        """SQLite's plan for ``query`` (which indexes it uses)."""
        sql, params = _select(query, _COLUMNS)
        sql = f"EXPLAIN QUERY PLAN {sql} {_ORDER} LIMIT ? OFFSET ?"
        rows = self._db.execute(sql, [*params, query.limit, query.offset]).fetchall()
        return [str(row[3]) for row in rows]

    def close_store(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")


@contextmanager
def _errors(path: str) -> Iterator[None]:
    """Report SQLite's failures as the store's (with the file they concern)."""
    try:
        yield
    except sqlite3.Error as exc:
        raise CdrStoreError(f"{path}: {exc}") from exc


def _migrate(db: sqlite3.Connection, migrations: tuple[tuple[str, ...], ...]) -> int:
    """Bring the schema to the newest version; return it."""
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = db.execute("SELECT version FROM schema_version").fetchone()
        version = 0 if row is None else int(row[0])
        if version > len(migrations):
            raise CdrStoreError(
                f"database schema version {version} is newer than this sbc ({len(migrations)})"
            )
        for statements in migrations[version:]:
            for statement in statements:
                db.execute(statement)
        db.execute("DELETE FROM schema_version")
        db.execute("INSERT INTO schema_version (version) VALUES (?)", (len(migrations),))
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return len(migrations)


def _select(query: CdrQuery, columns: str, *, paged: bool = True) -> tuple[str, list[object]]:
    """The SELECT (without ORDER/LIMIT) for ``query``'s filters, and its parameters.

    "Trunk is ingress or egress" and "number is calling or called" become a
    UNION of one branch per combination, so each branch is a range scan of
    one index already in (start, id) order and SQLite merges them, instead
    of reading every row of the trunk to sort it.
    """
    where: list[str] = []
    params: list[object] = []
    if query.since is not None:
        where.append('"start" >= ?')
        params.append(query.since)
    if query.until is not None:
        where.append('"start" < ?')
        params.append(query.until)
    if query.disposition is not None:
        where.append('"disposition" = ?')
        params.append(query.disposition.value)
    if query.closed_only:
        where.append('"end" IS NOT NULL')
    after = query.after_key() if paged else None
    if after is not None:
        where.append('("start", "id") < (?, ?)')
        params.extend(after)
    choices: list[list[tuple[str, list[object]]]] = []
    if query.trunk is not None:
        choices.append([(f'"{side}" = ?', [query.trunk]) for side in _TRUNKS])
    if query.number is not None:
        choices.append([_number_filter(side, query.number, query.prefix) for side in _NUMBERS])
    branches = []
    branch_params: list[object] = []
    for combination in itertools.product(*choices):
        conditions = where + [condition for condition, _ in combination]
        branches.append(f"SELECT {columns} FROM cdr" + _where(conditions))
        branch_params += params + [value for _, values in combination for value in values]
    return " UNION ".join(branches), branch_params


_TRUNKS = ("ingress_trunk", "egress_trunk")
_NUMBERS = ("calling", "called")


def _where(conditions: list[str]) -> str:
    return " WHERE " + " AND ".join(conditions) if conditions else ""


def _number_filter(column: str, number: str, prefix: bool) -> tuple[str, list[object]]:
    """Equality, or a prefix as an index range (LIKE would not use the index)."""
    if not prefix:
        return f'"{column}" = ?', [number]
    upper = prefix_upper_bound(number)
    if upper is None:
        return f'"{column}" >= ?', [number]
    return f'"{column}" >= ? AND "{column}" < ?', [number, upper]


def prefix_upper_bound(prefix: str) -> str | None:
    """The smallest string above every string starting with ``prefix``.

    SQLite compares text as UTF-8 bytes, which orders like code points.
    ``None`` means no bound (empty prefix, or only the highest code point).
    """
    text = prefix.rstrip(chr(0x10FFFF))
    if not text:
        return None
    following = ord(text[-1]) + 1
    if 0xD800 <= following <= 0xDFFF:  # surrogates cannot be stored: skip them
        following = 0xE000
    return text[:-1] + chr(following)
