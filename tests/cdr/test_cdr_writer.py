"""The writer thread: non-blocking submits, batching, queries, recovery, shutdown."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from cdr_samples import T0, open_record

from sbc.cdr.record import CdrQuery, CdrRecord, Disposition, completed
from sbc.cdr.sqlite import SqliteCdrStore
from sbc.cdr.store import CdrStoreError
from sbc.cdr.writer import CdrWriter


def closed(record: CdrRecord) -> CdrRecord:
    return completed(record, end=record.start + 30, final_status=200, end_reason="caller hung up")


class GatedStore(SqliteCdrStore):
    """A real store whose writes wait at a gate, to hold the writer thread."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.batches: list[int] = []

    def write(self, opened: Sequence[CdrRecord], closed: Sequence[CdrRecord]) -> None:
        self.batches.append(len(opened) + len(closed))
        self.entered.set()
        self.gate.wait()
        super().write(opened, closed)


class PoisonedStore(SqliteCdrStore):
    """Refuses any write that contains the record called "poison"."""

    def write(self, opened: Sequence[CdrRecord], closed: Sequence[CdrRecord]) -> None:
        if any(record.id == "poison" for record in [*opened, *closed]):
            raise CdrStoreError("disk says no")
        super().write(opened, closed)

    def query(self, query: CdrQuery) -> list[CdrRecord]:
        if query.trunk == "poison":
            raise CdrStoreError("query says no")
        return super().query(query)


def test_submit_flush_query(tmp_path: Path) -> None:
    async def scenario() -> None:
        writer = CdrWriter(SqliteCdrStore(tmp_path / "cdr.db"))
        record = open_record(1)
        assert writer.submit_open(record)
        await writer.flush()
        assert await writer.query(CdrQuery()) == [record]
        assert writer.submit_close(closed(record))
        assert writer.submit_open(open_record(2))
        assert await writer.count(CdrQuery(closed_only=True)) == 1  # queries see prior submits
        assert writer.written == 3
        await writer.aclose()

    asyncio.run(scenario())


def test_a_burst_is_written_in_one_transaction(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = GatedStore(tmp_path / "cdr.db")
        writer = CdrWriter(store, max_pending=5000)
        first = open_record(0)
        writer.submit_open(first)
        await asyncio.to_thread(store.entered.wait)  # the writer is stuck on record 0
        calls = [open_record(n) for n in range(1, 1001)]
        for call in calls:
            assert writer.submit_open(call)
        for call in calls:
            assert writer.submit_close(closed(call))
        store.gate.set()
        await writer.flush()
        assert store.batches == [1, 2000]
        assert await writer.count(CdrQuery(closed_only=True)) == 1000
        assert writer.dropped == 0
        await writer.aclose()

    asyncio.run(scenario())


def test_full_queue_drops_and_counts_instead_of_blocking(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = GatedStore(tmp_path / "cdr.db")
        writer = CdrWriter(store, max_pending=10)
        writer.submit_open(open_record(0))
        await asyncio.to_thread(store.entered.wait)  # record 0 holds one place
        accepted = [writer.submit_open(open_record(n)) for n in range(1, 16)]
        # With the writer stuck, the loop still got an answer for every record.
        assert accepted == [True] * 9 + [False] * 6
        assert writer.dropped == 6
        store.gate.set()
        await writer.flush()
        assert await writer.count(CdrQuery()) == 10
        assert writer.submit_open(open_record(99))  # room again once written
        await writer.aclose()

    asyncio.run(scenario())


def test_queries_while_writing(tmp_path: Path) -> None:
    path = tmp_path / "cdr.db"
    total = 2000

    async def produce(writer: CdrWriter) -> None:
        for n in range(total):
            record = open_record(n)
            writer.submit_open(record)
            writer.submit_close(closed(record))
            if n % 50 == 0:
                await asyncio.sleep(0)

    async def watch(writer: CdrWriter, done: asyncio.Task[None]) -> list[int]:
        seen = []
        while not done.done():
            seen.append(await writer.count(CdrQuery(closed_only=True)))
            page = await writer.query(CdrQuery(limit=10, trunk="carrier"))
            assert all(not r.is_open for r in page)  # each page is a consistent snapshot
        return seen

    def read_elsewhere(stop: threading.Event, counts: list[int]) -> None:
        # Another connection (an export, the sqlite3 shell) reads while the
        # writer writes: WAL readers neither block nor fail.
        reader = SqliteCdrStore(path)
        try:
            while True:  # at least once, however fast the writer finishes
                counts.append(reader.count(CdrQuery()))
                if stop.is_set():
                    break
        finally:
            reader.close_store()

    async def scenario() -> None:
        writer = CdrWriter(SqliteCdrStore(path), max_pending=2 * total)
        stop = threading.Event()
        outside: list[int] = []
        reader = threading.Thread(target=read_elsewhere, args=(stop, outside))
        reader.start()
        producer = asyncio.create_task(produce(writer))
        seen = await watch(writer, producer)
        await producer
        await writer.flush()
        stop.set()
        await asyncio.to_thread(reader.join)
        assert seen == sorted(seen)  # never goes backwards
        assert outside == sorted(outside)
        assert outside
        assert await writer.count(CdrQuery(closed_only=True)) == total
        assert writer.dropped == 0
        await writer.aclose()

    asyncio.run(scenario())


def test_recovers_at_start_and_marks_alive(tmp_path: Path) -> None:
    path = tmp_path / "cdr.db"
    crashed = SqliteCdrStore(path)
    crashed.write([open_record(1, answer=T0 + 2)], [])
    crashed.mark_alive(T0 + 60)
    crashed.close_store()
    ticks = iter(range(10_000, 20_000, 100))

    def clock() -> float:
        return T0 + next(ticks)

    async def scenario() -> CdrWriter:
        writer = CdrWriter(SqliteCdrStore(path), heartbeat_s=50, clock=clock)
        await writer.flush()
        assert writer.recovered == 1
        (record,) = await writer.query(CdrQuery())
        assert record.disposition is Disposition.INTERRUPTED
        assert record.end == T0 + 60
        writer.close()
        return writer

    asyncio.run(scenario())
    check = sqlite3.connect(path)
    (alive,) = check.execute("SELECT at FROM heartbeat").fetchone()
    check.close()
    last_tick = next(ticks) - 100
    assert alive == T0 + last_tick  # marked alive up to the very end


def test_close_drains_then_refuses(tmp_path: Path) -> None:
    path = tmp_path / "cdr.db"

    async def scenario() -> None:
        writer = CdrWriter(SqliteCdrStore(path))
        for n in range(100):
            writer.submit_open(open_record(n))
        writer.close()  # no flush first: close itself drains
        assert not writer.submit_open(open_record(200))
        assert writer.dropped == 1
        with pytest.raises(CdrStoreError, match="closed"):
            await writer.query(CdrQuery())
        writer.close()  # twice is fine

    asyncio.run(scenario())
    again = SqliteCdrStore(path)
    assert again.count(CdrQuery()) == 100
    again.close_store()


def test_store_errors_lose_only_the_bad_record(tmp_path: Path) -> None:
    async def scenario() -> None:
        writer = CdrWriter(PoisonedStore(tmp_path / "cdr.db"))
        for n in range(5):
            writer.submit_open(open_record(n))
        writer.submit_open(open_record(9, id="poison"))
        await writer.flush()
        assert writer.failed == 1
        assert await writer.count(CdrQuery()) == 5  # the rest of the batch made it
        writer.submit_open(open_record(7))  # and the thread still works
        assert await writer.count(CdrQuery()) == 6
        with pytest.raises(CdrStoreError, match="query says no"):
            await writer.query(CdrQuery(trunk="poison"))
        assert await writer.count(CdrQuery()) == 6
        await writer.aclose()

    asyncio.run(scenario())


def test_a_close_without_end_is_refused_at_submit(tmp_path: Path) -> None:
    async def scenario() -> None:
        writer = CdrWriter(SqliteCdrStore(tmp_path / "cdr.db"))
        assert not writer.submit_close(open_record(1))
        assert writer.dropped == 1
        assert writer.submit_close(replace(open_record(1), end=T0 + 5))
        await writer.flush()
        assert writer.failed == 0
        await writer.aclose()

    asyncio.run(scenario())


def test_bad_settings_are_refused(tmp_path: Path) -> None:
    store = SqliteCdrStore(tmp_path / "cdr.db")
    for bad in ({"heartbeat_s": 0}, {"max_pending": 0}, {"batch_size": 0}):
        with pytest.raises(ValueError, match="positive"):
            CdrWriter(store, **bad)  # type: ignore[arg-type]
    store.close_store()
