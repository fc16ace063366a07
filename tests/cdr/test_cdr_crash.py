"""A process killed with SIGKILL while writing CDRs loses nothing it committed,
and its open records are completed as interrupted at the next start."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sbc.cdr.record import CdrQuery, Disposition, HangupBy
from sbc.cdr.sqlite import SqliteCdrStore

# Ten calls are opened and flushed, then the process writes full calls
# (open + close) as fast as it can until it is killed.
BUSY_SBC = textwrap.dedent(
    """
    import asyncio, sys
    from dataclasses import replace
    from sbc.cdr.record import CdrRecord, completed
    from sbc.cdr.sqlite import SqliteCdrStore
    from sbc.cdr.writer import CdrWriter

    def call(n):
        return CdrRecord(id=f"call-{n}", a_call_id=f"a-{n}", start=1e9 + n, answer=1e9 + n + 1,
                         ingress_trunk="carrier", calling="+13105550199", called="2125550123")

    async def main():
        writer = CdrWriter(SqliteCdrStore(sys.argv[1]), heartbeat_s=0.05)
        for n in range(10):
            writer.submit_open(call(n))
        await writer.flush()
        print("ready", flush=True)
        n = 10
        while True:
            record = call(n)
            writer.submit_open(record)
            writer.submit_close(completed(record, end=record.start + 9, final_status=200,
                                          end_reason="caller hung up"))
            n += 1
            if n % 200 == 0:
                await asyncio.sleep(0)

    asyncio.run(main())
    """
)


def closed_count(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute('SELECT count(*) FROM cdr WHERE "end" IS NOT NULL').fetchone()[0])
    finally:
        db.close()


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_mid_write_then_recovery(tmp_path: Path) -> None:
    path = tmp_path / "cdr.db"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    sbc = subprocess.Popen(
        [sys.executable, "-c", BUSY_SBC, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert sbc.stdout is not None
        assert sbc.stdout.readline().strip() == "ready"
        # Kill it mid-stream, once it is really writing (and if it is still alive).
        while sbc.poll() is None and closed_count(path) < 2000:
            pass
    finally:
        sbc.send_signal(signal.SIGKILL)
        sbc.wait()
    assert sbc.returncode == -signal.SIGKILL

    store = SqliteCdrStore(path)
    try:
        assert store._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        committed = store.count(CdrQuery(closed_only=True))
        assert committed >= 2000  # nothing committed before the kill is gone
        left_open = store.count(CdrQuery()) - committed
        assert left_open >= 10  # the first ten calls never ended
        assert store.recover(now=2e9) == left_open
        for n in range(10):
            (record,) = store.query(
                CdrQuery(number="+13105550199", since=1e9 + n, until=1e9 + n + 1)
            )
            assert record.disposition is Disposition.INTERRUPTED
            assert record.hangup_by is HangupBy.SBC
            assert record.end is not None
            assert record.end < 2e9  # the last heartbeat, not the restart
        assert store.count(CdrQuery(closed_only=True)) == store.count(CdrQuery())
    finally:
        store.close_store()
