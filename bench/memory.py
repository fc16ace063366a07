"""Memory benchmark: SBC resident memory per established call.

Starts the SBC on free loopback ports, warms it up with a few calls, reads
its RSS (VmRSS from /proc/PID/status), then has SIPp establish N calls
(basic call with SDP, long hold) and reads RSS again while they are all up.

    python bench/memory.py [N] [--rate 250]

Prints ONE line:
    memory: calls=5000 rss_per_call_kib=<x> ...

Mind the 20,000 open-files cap per process on these machines: with media
anchoring taking 4 sockets per call, one process tops out near 5,000 calls.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))

from harness import (  # the harness lives with the integration tests
    CARRIER_IP,
    PBX_IP,
    SIPP,
    SbcProcess,
    Sipp,
)


def _int(row: dict[str, str], key: str) -> int:
    try:
        return int(row.get(key, "0") or 0)
    except ValueError:
        return 0


def count_fds(pid: int) -> int:
    try:
        return len(list(Path(f"/proc/{pid}/fd").iterdir()))
    except OSError:
        return -1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("calls", nargs="?", type=int, default=5000)
    ap.add_argument("--rate", type=int, default=250, help="call set-up rate (cps)")
    ap.add_argument("--settle-s", type=float, default=5.0)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument(
        "--anchor",
        action="store_true",
        help="anchor media too (4 sockets per call: mind the 20,000-fd limit, use N <= 4500)",
    )
    args = ap.parse_args(argv)
    if SIPP is None:
        print("memory: skipped (sipp not installed: apt install sip-tester)")
        return 2
    n = args.calls
    ramp_s = n / args.rate
    hold_ms = int((ramp_s + args.settle_s + 10.0) * 1000)
    workdir = Path(tempfile.mkdtemp(prefix="sbc-mem-"))

    # Signalling memory by default: with anchoring, the relay's sockets live in
    # the worker process and 5,000 calls would need 20,000 of them.
    media_yaml = "media: {workers: 1}\n" if args.anchor else "media: {anchor: false}\n"
    sbc = SbcProcess(workdir / "sbc", extra_sbc_yaml=media_yaml)
    try:
        sbc.start()
    except RuntimeError as exc:
        print(f"memory: SBC failed to start: {str(exc).splitlines()[0]}")
        return 1
    assert sbc.pid is not None
    try:
        # warm-up: code paths, caches, pools
        uas = Sipp(
            "uas_basic",
            local_ip=PBX_IP,
            local_port=sbc.ports.pbx,
            calls=20,
            duration_ms=0,
            workdir=workdir,
            trace_msg=False,
        )
        uac = Sipp(
            "uac_basic",
            local_ip=CARRIER_IP,
            remote=sbc.ext_uri,
            calls=20,
            rate=20,
            duration_ms=0,
            workdir=workdir,
            trace_msg=False,
        )
        uas.start()
        uac.start(wait_bind=False).wait()
        uas.wait(5.0)
        uas.stop()
        time.sleep(2.0)
        rss_before = sbc.rss_kib()
        fds_before = count_fds(sbc.pid)

        timeout = ramp_s + hold_ms / 1000.0 + 60.0
        uas = Sipp(
            "uas_basic",
            local_ip=PBX_IP,
            local_port=sbc.ports.pbx,
            calls=n,
            duration_ms=0,
            timeout_s=timeout,
            workdir=workdir,
            trace_msg=False,
            extra=["-max_socket", "100"],
        )
        uac = Sipp(
            "uac_basic",
            local_ip=CARRIER_IP,
            remote=sbc.ext_uri,
            calls=n,
            rate=args.rate,
            limit=n,
            duration_ms=hold_ms,
            timeout_s=timeout,
            workdir=workdir,
            trace_msg=False,
            trace_stat=True,
            stat_freq_s=1,
        )
        uas.start()
        uac.start(wait_bind=False)
        time.sleep(ramp_s + args.settle_s)
        rss_held = sbc.rss_kib()
        fds_held = count_fds(sbc.pid)
        rows = uac.stats()
        last = rows[-1] if rows else {}
        current = _int(last, "CurrentCall")
        failed = _int(last, "FailedCall(C)")
        res = uac.wait()
        uas.wait(10.0)
        uas.stop()
        alive = sbc.alive()
    finally:
        sbc.stop()

    held = current if current else n
    per_call = (rss_held - rss_before) / held if held else float("nan")
    print(
        f"memory: calls={n} media={'anchored' if args.anchor else 'pass-through'} "
        f"rss_per_call_kib={per_call:.1f} "
        f"rss_before_mib={rss_before / 1024:.1f} rss_held_mib={rss_held / 1024:.1f} "
        f"established={current} failed_during_ramp={failed} "
        f"fds_before={fds_before} fds_held={fds_held} "
        f"completed={res.counter('Successful call') or 0}/{n} sbc_alive={alive}"
    )
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if current >= n and failed == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
