"""The SQLite store: round trip, filters, pages, indexes, restart, recovery, schema."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from cdr_samples import T0, full_record, open_record

from sbc.cdr import STORES, open_store
from sbc.cdr.record import (
    CSV_FIELDS,
    CdrQuery,
    CdrRecord,
    Disposition,
    HangupBy,
    completed,
    cursor_after,
)
from sbc.cdr.sqlite import MIGRATIONS, SqliteCdrStore, prefix_upper_bound
from sbc.cdr.store import CdrStoreError


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "cdr.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[SqliteCdrStore]:
    opened = SqliteCdrStore(db_path)
    yield opened
    opened.close_store()


def ids(records: list[CdrRecord]) -> list[str]:
    return [record.id for record in records]


def test_every_field_round_trips(store: SqliteCdrStore) -> None:
    record = full_record(end_reason="line one\nline 'two', \"three\"", calling="Ω+1-555")
    store.close(record)
    assert store.query(CdrQuery()) == [record]
    columns = [row[1] for row in store._db.execute("PRAGMA table_info(cdr)")]
    assert tuple(columns) == CSV_FIELDS  # the schema follows the record
    duration, setup = store._db.execute('SELECT "duration_s", "setup_ms" FROM cdr').fetchone()
    assert (duration, setup) == (pytest.approx(60.0), pytest.approx(1500.0))


def test_wal_mode_is_on(store: SqliteCdrStore, db_path: Path) -> None:
    assert store.journal_mode == "wal"
    other = sqlite3.connect(db_path)  # a fresh connection reads the file's own mode
    try:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    finally:
        other.close()


def test_open_then_close_then_never_reopened(store: SqliteCdrStore) -> None:
    record = open_record()
    store.open(record)
    assert store.query(CdrQuery()) == [record]
    ringing = replace(record, ring=record.start + 1)
    store.open(ringing)  # progress updates the open record
    assert store.query(CdrQuery()) == [ringing]
    done = completed(ringing, end=record.start + 5, final_status=486, end_reason="callee busy")
    store.close(done)
    store.open(ringing)  # a late progress write must not reopen it
    assert store.query(CdrQuery()) == [done]
    assert store.count(CdrQuery()) == 1


def test_close_without_end_is_refused(store: SqliteCdrStore) -> None:
    with pytest.raises(CdrStoreError, match="without an end"):
        store.close(open_record())
    assert store.count(CdrQuery()) == 0


def test_batch_write_is_one_transaction(store: SqliteCdrStore) -> None:
    opened = [open_record(n) for n in range(50)]
    store.write(opened, [])
    with pytest.raises(CdrStoreError):  # the last one breaks a NOT NULL column
        store.write([], [full_record(100), full_record(101, calling=None)])
    assert store.count(CdrQuery()) == 50  # neither of the failed batch
    store.write(opened[:1], [completed(opened[0], end=T0 + 9, final_status=200, end_reason="")])
    assert store.count(CdrQuery(closed_only=True)) == 1


@pytest.fixture
def filled(store: SqliteCdrStore) -> SqliteCdrStore:
    """Twenty calls one second apart over three trunks and a few numbers."""
    records = []
    for n in range(20):
        trunk_in, trunk_out = [("carrier", "pbx"), ("pbx", "carrier"), ("carrier2", "pbx")][n % 3]
        record = full_record(
            n,
            ingress_trunk=trunk_in,
            egress_trunk=trunk_out,
            calling=f"+1310555{n:04d}",
            called="2125550123" if n % 2 else "4155550100",
            disposition=[Disposition.ANSWERED, Disposition.BUSY][n % 4 == 1],
        )
        records.append(record)
    store.write([], records)
    store.open(open_record(20, ingress_trunk="pbx", egress_trunk="carrier"))
    return store


def test_default_page_is_newest_first(filled: SqliteCdrStore) -> None:
    assert ids(filled.query(CdrQuery(limit=3))) == ["call-20", "call-19", "call-18"]
    assert filled.count(CdrQuery()) == 21


def test_time_range_filter(filled: SqliteCdrStore) -> None:
    found = filled.query(CdrQuery(since=T0 + 5, until=T0 + 8))
    assert ids(found) == ["call-7", "call-6", "call-5"]  # since inclusive, until exclusive
    assert filled.count(CdrQuery(since=T0 + 5, until=T0 + 8)) == 3


def test_trunk_filter_matches_either_side(filled: SqliteCdrStore) -> None:
    pbx = filled.query(CdrQuery(trunk="pbx", limit=1000))
    assert len(pbx) == 21  # every call touches the PBX, listed once each
    carrier2 = filled.query(CdrQuery(trunk="carrier2"))
    assert ids(carrier2) == [f"call-{n}" for n in range(19, -1, -1) if n % 3 == 2]
    assert filled.count(CdrQuery(trunk="carrier2")) == len(carrier2)
    assert filled.query(CdrQuery(trunk="nobody")) == []


def test_number_filter_exact_and_prefix(filled: SqliteCdrStore) -> None:
    assert ids(filled.query(CdrQuery(number="+13105550007"))) == ["call-7"]
    as_called = filled.query(CdrQuery(number="4155550100"))
    assert len(as_called) == 10
    assert {r.called for r in as_called} == {"4155550100"}
    assert filled.query(CdrQuery(number="+1310555000")) == []  # exact means exact
    prefixed = filled.query(CdrQuery(number="+1310555000", prefix=True))
    assert ids(prefixed) == [f"call-{n}" for n in range(9, -1, -1)]
    assert filled.count(CdrQuery(number="212", prefix=True)) == 11  # the open call too
    assert filled.count(CdrQuery(number="", prefix=True)) == 21


def test_disposition_and_closed_filters(filled: SqliteCdrStore) -> None:
    busy = filled.query(CdrQuery(disposition=Disposition.BUSY))
    assert ids(busy) == ["call-17", "call-13", "call-9", "call-5", "call-1"]
    assert filled.count(CdrQuery(closed_only=True)) == 20


def test_filters_combine(filled: SqliteCdrStore) -> None:
    query = CdrQuery(
        trunk="carrier2", number="2125550123", since=T0 + 3, disposition=Disposition.BUSY
    )
    assert ids(filled.query(query)) == ["call-17", "call-5"]
    assert filled.count(query) == 2


def test_offset_pages_cover_everything_once(filled: SqliteCdrStore) -> None:
    pages = [filled.query(CdrQuery(limit=6, offset=offset)) for offset in range(0, 30, 6)]
    assert [len(page) for page in pages] == [6, 6, 6, 3, 0]
    assert ids([r for page in pages for r in page]) == [f"call-{n}" for n in range(20, -1, -1)]


def test_cursor_pages_match_offset_pages(filled: SqliteCdrStore) -> None:
    seen: list[CdrRecord] = []
    query = CdrQuery(trunk="pbx", limit=4)
    while page := filled.query(query):
        seen += page
        query = replace(query, after=cursor_after(page[-1]))
    assert seen == filled.query(CdrQuery(trunk="pbx", limit=1000))
    assert filled.count(query) == 21  # the cursor is paging, not a filter


def test_cursor_breaks_ties_on_the_same_start(store: SqliteCdrStore) -> None:
    store.write([open_record(1, id=f"same-{n}", start=T0) for n in range(5)], [])
    first = store.query(CdrQuery(limit=2))
    rest = store.query(CdrQuery(limit=10, after=cursor_after(first[-1])))
    assert ids(first + rest) == [f"same-{n}" for n in range(4, -1, -1)]


@pytest.mark.parametrize(
    "query",
    [
        CdrQuery(),
        CdrQuery(since=T0, until=T0 + 10),
        CdrQuery(trunk="pbx"),
        CdrQuery(number="+1310"),
        CdrQuery(number="+1310", prefix=True),
        CdrQuery(disposition=Disposition.BUSY),
        CdrQuery(after=f"{T0 + 5!r}:call-5"),
        CdrQuery(trunk="pbx", number="212", prefix=True, since=T0),
    ],
)
def test_every_filter_reads_an_index(filled: SqliteCdrStore, query: CdrQuery) -> None:
    plan = filled.explain(query)
    assert any("USING INDEX" in step for step in plan), plan
    assert not any(step.startswith("SCAN cdr") and "INDEX" not in step for step in plan), plan


def test_records_survive_a_restart(db_path: Path) -> None:
    first = SqliteCdrStore(db_path)
    first.write([open_record(2)], [full_record(1)])
    first.close_store()
    again = SqliteCdrStore(db_path)
    try:
        assert ids(again.query(CdrQuery())) == ["call-2", "call-1"]
        assert again.query(CdrQuery(closed_only=True)) == [full_record(1)]
    finally:
        again.close_store()


def test_recover_completes_open_records_as_interrupted(db_path: Path) -> None:
    crashed = SqliteCdrStore(db_path)
    answered = open_record(1, answer=T0 + 3)
    crashed.write([answered, open_record(2)], [full_record(3)])
    crashed.mark_alive(T0 + 120)
    crashed.close_store()  # without closing the calls: what a crash leaves
    restarted = SqliteCdrStore(db_path)
    try:
        assert restarted.recover(now=T0 + 3600) == 2
        by_id = {r.id: r for r in restarted.query(CdrQuery())}
        for call in ("call-1", "call-2"):
            assert by_id[call].disposition is Disposition.INTERRUPTED
            assert by_id[call].hangup_by is HangupBy.SBC
            assert by_id[call].end == T0 + 120  # the last sign of life, not the restart
        assert by_id["call-1"].duration_s == pytest.approx(117.0)
        assert by_id["call-3"] == full_record(3)  # closed records untouched
        assert restarted.recover(now=T0 + 3700) == 0
    finally:
        restarted.close_store()


def test_recover_without_heartbeat_ends_at_now(store: SqliteCdrStore) -> None:
    store.open(open_record(1))
    assert store.recover(now=T0 + 50) == 1
    assert store.query(CdrQuery())[0].end == T0 + 50


def test_schema_version_and_migration_hook(db_path: Path) -> None:
    SqliteCdrStore(db_path).close_store()
    first = sqlite3.connect(db_path)
    assert first.execute("SELECT version FROM schema_version").fetchall() == [(1,)]
    first.close()
    SqliteCdrStore(db_path).close_store()  # reopening applies nothing twice
    v2 = (*MIGRATIONS, ("ALTER TABLE cdr ADD COLUMN node TEXT",))
    seed = SqliteCdrStore(db_path)
    seed.close(full_record(1))
    seed.close_store()
    upgraded = SqliteCdrStore(db_path, migrations=v2)
    assert upgraded.schema_version == 2
    upgraded.close_store()
    check = sqlite3.connect(db_path)
    assert check.execute("SELECT version FROM schema_version").fetchall() == [(2,)]
    assert check.execute("SELECT id, node FROM cdr").fetchall() == [("call-1", None)]
    check.close()
    with pytest.raises(CdrStoreError, match="version 2 is newer than this sbc"):
        SqliteCdrStore(db_path)


def test_failed_migration_changes_nothing(db_path: Path) -> None:
    SqliteCdrStore(db_path).close_store()
    broken = (*MIGRATIONS, ("ALTER TABLE cdr ADD COLUMN x TEXT", "THIS IS NOT SQL"))
    with pytest.raises(CdrStoreError, match="syntax error"):
        SqliteCdrStore(db_path, migrations=broken)
    again = SqliteCdrStore(db_path)
    assert again.schema_version == 1
    columns = [row[1] for row in again._db.execute("PRAGMA table_info(cdr)")]
    assert "x" not in columns
    again.close_store()


def test_unusable_files_are_reported_not_crashed_on(tmp_path: Path) -> None:
    with pytest.raises(CdrStoreError, match="unable to open"):
        SqliteCdrStore(tmp_path / "missing-dir" / "cdr.db")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database, just text" * 200)
    with pytest.raises(CdrStoreError, match=r"garbage\.db"):
        SqliteCdrStore(garbage)


def test_store_registry(db_path: Path) -> None:
    assert set(STORES) == {"sqlite"}
    store = open_store("sqlite", str(db_path))
    store.close(full_record(1))
    assert store.count(CdrQuery()) == 1
    store.close_store()
    with pytest.raises(CdrStoreError, match="unknown CDR store 'postgres'"):
        open_store("postgres", "dbname=cdr")


def test_prefix_upper_bound() -> None:
    assert prefix_upper_bound("+1310") == "+1311"
    assert prefix_upper_bound("129") == "12:"
    assert prefix_upper_bound("") is None
    assert prefix_upper_bound("\U0010ffff") is None
    assert prefix_upper_bound("a\U0010ffff") == "b"
    assert prefix_upper_bound("\ud7ff") == "\ue000"  # surrogates skipped


def test_prefix_with_unusual_characters(store: SqliteCdrStore) -> None:
    numbers = ["1%", "1_x", "1\U0010ffff", "1", "2", "10", "0"]
    store.write([], [full_record(n, calling=c, called="x") for n, c in enumerate(numbers)])
    found = store.query(CdrQuery(number="1", prefix=True))
    assert sorted(r.calling for r in found) == sorted(["1%", "1_x", "1\U0010ffff", "1", "10"])
    assert [r.calling for r in store.query(CdrQuery(number="1%", prefix=True))] == ["1%"]
