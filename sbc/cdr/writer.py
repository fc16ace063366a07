"""The CDR writer: one thread owns the store, the event loop only enqueues.

The call engine runs on the event loop and must never wait for the disk, so
records go through a bounded queue to a single background thread that owns
the store (and so its SQLite connection). :meth:`CdrWriter.submit_open` and
:meth:`CdrWriter.submit_close` never block: when the queue is full the
record is dropped, counted in :attr:`CdrWriter.dropped` and logged (a flood
must slow nothing down; a dropped open is only a lost crash trace, and the
close that follows may still find room). The thread takes everything queued
at once and writes it in one transaction, so a burst costs one commit.

Queries (:meth:`CdrWriter.query`, :meth:`CdrWriter.count`) run on the same
thread, after every record submitted before them, and answer through a
future on the caller's loop. At start the thread completes the records a
crash left open (:meth:`sbc.cdr.store.CdrStore.recover`); while it runs it
marks the store alive every ``heartbeat_s`` so that recovery knows when the
SBC stopped.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import structlog

from sbc.cdr.record import CdrQuery, CdrRecord
from sbc.cdr.store import CdrStore, CdrStoreError

log = structlog.get_logger("sbc.cdr")

T = TypeVar("T")

#: Log the first drop and then every this many (a flood must not flood the log).
DROP_LOG_EVERY = 1000


@dataclass(frozen=True, slots=True)
class _Write:
    record: CdrRecord
    final: bool


@dataclass(frozen=True, slots=True)
class _Job:
    run: Callable[[CdrStore], Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


_STOP = object()


class CdrWriter:
    """Writes CDRs off the event loop; see the module docstring."""

    def __init__(
        self,
        store: CdrStore,
        *,
        max_pending: int = 10_000,
        batch_size: int = 5_000,
        heartbeat_s: float = 10.0,
        recover: bool = True,
        clock: Callable[[], float] = time.time,
        gather_s: float = 0.05,
    ) -> None:
        if heartbeat_s <= 0 or max_pending < 1 or batch_size < 1:
            raise ValueError("heartbeat_s, max_pending and batch_size must be positive")
        self.store = store
        # Counters: ``dropped`` is the submitting thread's, the others the writer's.
        self.dropped = 0  # refused: queue full, writer closed, or a close without an end
        self.failed = 0  # the store refused them (logged)
        self.written = 0
        self.recovered = 0  # records completed as interrupted at start
        self._batch_size = batch_size
        self._gather_s = gather_s
        self._heartbeat_s = heartbeat_s
        self._clock = clock
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        # Bounds the records waiting, not the control items: a flush or a
        # query always gets in.
        self._room = threading.BoundedSemaphore(max_pending)
        self._closed = False
        self._thread = threading.Thread(
            target=self._run, args=(recover,), name="sbc-cdr-writer", daemon=True
        )
        self._thread.start()

    # --- the event loop's side --------------------------------------------------

    def submit_open(self, record: CdrRecord) -> bool:
        """Queue ``record`` as open (call started or progressed); never blocks."""
        return self._submit(_Write(record, final=False))

    def submit_close(self, record: CdrRecord) -> bool:
        """Queue ``record`` as final; never blocks. False if it was dropped."""
        if record.end is None:  # a caller bug: the store would refuse it anyway
            self.dropped += 1
            log.error("cdr.close_without_end", call=record.id)
            return False
        return self._submit(_Write(record, final=True))

    async def query(self, query: CdrQuery) -> list[CdrRecord]:
        """One page of records, after every record submitted before."""
        result: list[CdrRecord] = await self._ask(lambda store: store.query(query))
        return result

    async def count(self, query: CdrQuery) -> int:
        result: int = await self._ask(lambda store: store.count(query))
        return result

    async def flush(self) -> None:
        """Return once every record submitted before is written."""
        await self._ask(lambda store: None)

    def close(self, timeout: float | None = None) -> None:
        """Write what is queued, then close the store (blocks: call at shutdown)."""
        if not self._closed:
            self._closed = True
            self._queue.put(_STOP)
        self._thread.join(timeout)

    async def aclose(self) -> None:
        """:meth:`close` without blocking the loop."""
        await asyncio.to_thread(self.close)

    @property
    def pending(self) -> int:
        """Items waiting for the writer thread (approximate)."""
        return self._queue.qsize()

    def _submit(self, item: _Write) -> bool:
        if self._closed or not self._room.acquire(blocking=False):
            self.dropped += 1
            if self.dropped % DROP_LOG_EVERY == 1 or DROP_LOG_EVERY == 1:
                log.warning("cdr.dropped", call=item.record.id, total=self.dropped)
            return False
        self._queue.put(item)
        return True

    async def _ask(self, run: Callable[[CdrStore], T]) -> T:
        if self._closed:
            raise CdrStoreError("the CDR writer is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Job(run, loop, future))
        return await future

    # --- the writer thread --------------------------------------------------------

    def _run(self, recover: bool) -> None:
        if recover:
            try:
                self.recovered = self.store.recover(self._clock())
            except Exception:
                log.exception("cdr.recover_failed")
            else:
                if self.recovered:
                    log.warning("cdr.recovered", interrupted=self.recovered)
        last_beat = -self._heartbeat_s
        stopping = False
        while not stopping:
            try:
                first = self._queue.get(timeout=self._heartbeat_s)
            except queue.Empty:
                first = None
            if first is not None:
                # Let a batch gather: one transaction per tick instead of one per
                # record, and the event loop's thread keeps the GIL meanwhile.
                time.sleep(self._gather_s)
                stopping = self._handle([first, *self._drain()])
            now = self._clock()
            if now - last_beat >= self._heartbeat_s:
                last_beat = now
                self._guarded(partial(self.store.mark_alive, now))
        self._refuse_leftovers()
        self._guarded(self.store.close_store)

    def _drain(self) -> list[object]:
        items: list[object] = []
        try:
            while len(items) < self._batch_size:
                items.append(self._queue.get_nowait())
        except queue.Empty:
            pass
        return items

    def _handle(self, items: list[object]) -> bool:
        """Write the records in one transaction; run jobs in order. True on stop."""
        opened: list[CdrRecord] = []
        closed: list[CdrRecord] = []
        for item in items:
            if isinstance(item, _Write):
                (closed if item.final else opened).append(item.record)
                continue
            self._commit(opened, closed)
            opened, closed = [], []
            if item is _STOP:
                return True
            if isinstance(item, _Job):
                self._answer(item)
        self._commit(opened, closed)
        return False

    def _commit(self, opened: list[CdrRecord], closed: list[CdrRecord]) -> None:
        count = len(opened) + len(closed)
        if not count:
            return
        try:
            self.store.write(opened, closed)
            self.written += count
        except Exception:
            log.exception("cdr.batch_failed", records=count)
            self._commit_one_by_one(opened, closed)  # keep every record that can be kept
        finally:
            self._room.release(count)

    def _commit_one_by_one(self, opened: list[CdrRecord], closed: list[CdrRecord]) -> None:
        for records, final in ((opened, False), (closed, True)):
            for record in records:
                try:
                    if final:
                        self.store.write([], [record])
                    else:
                        self.store.write([record], [])
                    self.written += 1
                except Exception:
                    self.failed += 1
                    log.exception("cdr.write_failed", call=record.id)

    def _answer(self, job: _Job) -> None:
        try:
            result = job.run(self.store)
        except Exception as exc:
            self._settle(job, None, exc)
        else:
            self._settle(job, result, None)

    def _settle(self, job: _Job, result: object, error: BaseException | None) -> None:
        def settle() -> None:
            if job.future.done():  # the caller gave up (cancelled)
                return
            if error is not None:
                job.future.set_exception(error)
            else:
                job.future.set_result(result)

        with suppress(RuntimeError):  # that loop is closed: nobody is waiting any more
            job.loop.call_soon_threadsafe(settle)

    def _refuse_leftovers(self) -> None:
        """Items queued after the stop (a race with close()): say so, never hang."""
        for item in self._drain_all():
            if isinstance(item, _Job):
                self._settle(item, None, CdrStoreError("the CDR writer is closed"))
            elif isinstance(item, _Write):
                self.failed += 1

    def _drain_all(self) -> list[object]:
        items: list[object] = []
        while True:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                return items

    def _guarded(self, action: Callable[[], object]) -> None:
        try:
            action()
        except Exception:
            log.exception("cdr.store_error")
