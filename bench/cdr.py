"""CDR benchmark: records written per second through the CdrWriter.

Prints one line:
    cdr: <N> records/s (open+close, WAL, batched), <k> dropped

Each record is a call's full life as the engine would submit it: opened at
start, closed at the end (two writes), with calls overlapping as on a busy
box. The time runs from the first submit to the flush that confirms the last
close is on disk, in a fresh SQLite file. Compare ratios within one run: the
machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from sbc.cdr.record import CdrRecord, completed
from sbc.cdr.sqlite import SqliteCdrStore
from sbc.cdr.writer import CdrWriter

CONCURRENT = 500  # calls open at once


def record(n: int, start: float) -> CdrRecord:
    return CdrRecord(
        id=f"call-{n:08d}",
        a_call_id=f"{n}-5235@192.0.2.10",
        b_call_id=f"b2b-{n:08d}",
        a_local_tag="as1",
        a_remote_tag="5235SIPpTag001",
        b_local_tag="bs1",
        b_remote_tag="pbx1",
        ingress_trunk="carrier",
        egress_trunk="pbx",
        ingress_interface="external",
        egress_interface="internal",
        route="to-pbx",
        calling="+13105550199",
        called=f"2125550{n % 1000:03d}",
        start=start,
        ring=start + 0.1,
        answer=start + 1.0,
        codecs="PCMU/8000",
    )


async def run(calls: int, directory: Path) -> tuple[float, int]:
    writer = CdrWriter(SqliteCdrStore(directory / "cdr.db"), max_pending=2 * calls)
    await writer.flush()
    base = time.time()
    opened = [record(n, base + n / 1000) for n in range(calls)]
    began = time.perf_counter()
    for n, call in enumerate(opened):
        writer.submit_open(call)
        if n >= CONCURRENT:
            done = opened[n - CONCURRENT]
            writer.submit_close(
                completed(done, end=done.start + 60, final_status=200, end_reason="caller hung up")
            )
        if n % 1000 == 0:
            await asyncio.sleep(0)  # the loop keeps running, as it would in the SBC
    for done in opened[-CONCURRENT:]:
        writer.submit_close(
            completed(done, end=done.start + 60, final_status=200, end_reason="callee hung up")
        )
    await writer.flush()
    elapsed = time.perf_counter() - began
    await writer.aclose()
    return calls / elapsed, writer.dropped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        rate, dropped = asyncio.run(run(args.calls, Path(directory)))
    print(f"cdr: {rate:.0f} records/s (open+close, WAL, batched), {dropped} dropped")


if __name__ == "__main__":
    main()
