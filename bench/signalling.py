"""Signalling benchmark: highest call rate the SBC carries with >= 99.9 % success.

Starts the SBC on free loopback ports (demo-like topology), a SIPp callee on
the PBX side and a SIPp caller on the carrier side running the basic call
(early offer, 100/180/183/200, ACK, short hold, BYE). The call rate is stepped
up; a step passes only if >= 99.9 % of its calls complete AND the caller
finishes on time (a backlogged target can complete every call at a fraction
of the offered rate — see the field notes). Setup latency is SIPp's response
time from the INVITE to the 200 (whole milliseconds). A short direct
SIPp→SIPp run gives the baseline, so the latency the SBC adds is visible.

    python bench/signalling.py [--rates 100,200,400,600,800,1000] [--step-s 10]

Prints ONE line:
    signalling: max_cps=<N> (>=99.9% completed, on time) p50_setup_ms=... ...
Steps past the peak show their goodput (completed calls per second): the
SBC sheds what it cannot carry with 503 + Retry-After instead of collapsing.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))

from harness import (  # the harness lives with the integration tests
    CARRIER_IP,
    PBX_IP,
    SIPP,
    SbcProcess,
    Sipp,
    free_port,
)

SUCCESS_RATIO = 0.999


@dataclass
class Step:
    rate: int
    calls: int
    ok_calls: int
    failed: int
    elapsed_s: float
    on_time: bool
    latencies: list[float]

    @property
    def passed(self) -> bool:
        return self.on_time and self.calls > 0 and self.ok_calls >= SUCCESS_RATIO * self.calls

    @property
    def goodput(self) -> float:
        """Completed calls per second of the step (what survives past the peak)."""
        return self.ok_calls / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def verdict(self) -> str:
        if self.passed:
            return "ok"
        late = "late," if not self.on_time else ""
        return f"{late}{self.ok_calls}/{self.calls}={self.goodput:.0f}cps"


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100.0 * (len(ordered) - 1))))
    return ordered[k]


def run_step(
    workdir: Path,
    rate: int,
    *,
    step_s: float,
    hold_ms: int,
    target: str,
    callee_port: int,
) -> Step:
    calls = max(1, int(rate * step_s))
    budget = step_s + hold_ms / 1000.0 + 3.0  # "on time": offered rate actually carried
    uas = Sipp(
        "uas_basic",
        local_ip=PBX_IP,
        local_port=callee_port,
        calls=calls,
        duration_ms=0,
        timeout_s=budget + 20,
        workdir=workdir,
        trace_msg=False,
        extra=["-max_recv_loops", "10000", "-max_sched_loops", "10000"],
    )
    uac = Sipp(
        "uac_basic",
        local_ip=CARRIER_IP,
        remote=target,
        calls=calls,
        rate=rate,
        duration_ms=hold_ms,
        timeout_s=budget + 15,
        workdir=workdir,
        trace_msg=False,
        trace_stat=True,
        trace_rtt=True,
        extra=["-max_recv_loops", "10000", "-max_sched_loops", "10000"],
    )
    uas.start()
    t0 = time.monotonic()
    uac.start(wait_bind=False)
    res = uac.wait()
    elapsed = time.monotonic() - t0
    uas.wait(5.0)
    uas.stop()
    ok = res.counter("Successful call") or 0
    failed = res.counter("Failed call") or 0
    return Step(
        rate=rate,
        calls=calls,
        ok_calls=ok,
        failed=failed,
        elapsed_s=elapsed,
        on_time=res.returncode is not None and elapsed <= budget,
        latencies=uac.response_times_ms(),
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", default="100,200,400,600,800,1000")
    ap.add_argument("--step-s", type=float, default=10.0, help="seconds per rate step")
    ap.add_argument("--hold-ms", type=int, default=500, help="call hold time")
    ap.add_argument("--baseline-rate", type=int, default=100, help="0 to skip")
    ap.add_argument("--max-total-s", type=float, default=240.0)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument(
        "--no-anchor",
        dest="anchor",
        action="store_false",
        help="SDP crosses unchanged (signalling only, no media relay)",
    )
    ap.add_argument(
        "--past-peak", type=int, default=1, help="steps to run after the first failing one"
    )
    ap.add_argument("--no-cdr", dest="cdr", action="store_false", help="CDRs off")
    ap.add_argument("--no-admin", dest="admin", action="store_false", help="admin API off")
    args = ap.parse_args(argv)
    if SIPP is None:
        print("signalling: skipped (sipp not installed: apt install sip-tester)")
        return 2
    rates = [int(r) for r in args.rates.split(",") if r.strip()]

    workdir = Path(tempfile.mkdtemp(prefix="sbc-bench-"))
    started = time.monotonic()

    baseline: Step | None = None
    if args.baseline_rate:
        direct_port = free_port(PBX_IP)
        baseline = run_step(
            workdir / "direct",
            args.baseline_rate,
            step_s=min(5.0, args.step_s),
            hold_ms=args.hold_ms,
            target=f"{PBX_IP}:{direct_port}",
            callee_port=direct_port,
        )

    media_yaml = "" if args.anchor else "media: {anchor: false}\n"
    sbc = SbcProcess(
        workdir / "sbc",
        extra_sbc_yaml=media_yaml,
        cdr=args.cdr,
        admin=args.admin,
        overload_delay_ms=None,  # the shipped default: shedding past the peak is measured
    )
    try:
        sbc.start()
    except RuntimeError as exc:
        print(f"signalling: SBC failed to start: {str(exc).splitlines()[0]}")
        return 1
    steps: list[Step] = []
    try:
        for rate in rates:
            if time.monotonic() - started > args.max_total_s:
                break
            step = run_step(
                workdir / f"r{rate}",
                rate,
                step_s=args.step_s,
                hold_ms=args.hold_ms,
                target=sbc.ext_uri,
                callee_port=sbc.ports.pbx,
            )
            steps.append(step)
            failures = sum(1 for s in steps if not s.passed)
            if failures > args.past_peak or not sbc.alive():
                break
            time.sleep(1.0)  # let the last calls' transactions drain
    finally:
        alive = sbc.alive()
        sbc.stop()

    passed = [s for s in steps if s.passed]
    best = max(passed, key=lambda s: s.rate) if passed else None
    lat = best.latencies if best else (steps[0].latencies if steps else [])
    parts = [
        f"signalling: max_cps={best.rate if best else 0} (>=99.9% completed, on time)",
        f"media={'anchored' if args.anchor else 'pass-through'}",
        f"p50_setup_ms={percentile(lat, 50):.0f}",
        f"p99_setup_ms={percentile(lat, 99):.0f}",
    ]
    if baseline is not None:
        parts.append(f"p99_direct_ms={percentile(baseline.latencies, 99):.0f}")
    parts.append("steps=" + ",".join(f"{s.rate}:{s.verdict()}" for s in steps))
    parts.append(f"alive={'yes' if alive else 'no'}")
    if args.keep:
        parts.append(f"workdir={workdir}")
    print(" ".join(parts))
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if best else 1


if __name__ == "__main__":
    raise SystemExit(main())
