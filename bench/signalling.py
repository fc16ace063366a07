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
``cpu_ms_per_call`` is the SBC's signalling process CPU time over all steps
divided by their completed calls (relay workers not included).

The leak guard (``topology.leak_guard``, docs/security.md) is on by default,
as shipped; ``--leak-guard [MODE]`` sets a mode, ``--no-leak-guard`` turns it
off. ``--compare-leak-guard`` runs two SBCs side by side, guard on (auto) and
off, each rate step once against each (alternating which goes first), and
adds a line with the ratios on/off of max_cps, of the peak goodput (completed
calls per second in any step) and of calls per CPU-second.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
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
    cpu_s: float = field(default=0.0)  # the SBC's signalling process, during the step

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


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of a process so far (Linux /proc), 0 when unknown."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


@dataclass
class Run:
    """One SBC under test and the steps it ran."""

    label: str
    sbc: SbcProcess
    steps: list[Step] = field(default_factory=list)
    alive: bool = True
    past_peak: int = 1  # failing steps tolerated before this SBC stops stepping up

    @property
    def best(self) -> Step | None:
        passed = [s for s in self.steps if s.passed]
        return max(passed, key=lambda s: s.rate) if passed else None

    @property
    def peak_goodput(self) -> float:
        """The most completed calls per second in any step (past the peak the
        SBC sheds with 503: what it completes there is its capacity)."""
        return max((s.goodput for s in self.steps), default=0.0)

    @property
    def done(self) -> bool:
        return not self.alive or sum(1 for s in self.steps if not s.passed) > self.past_peak

    def cpu_ms_per_call(self) -> float:
        """SBC CPU per completed call over every step (nan if none completed): both
        SBCs of a comparison are offered the same steps, so failed calls count alike."""
        calls = sum(s.ok_calls for s in self.steps)
        return sum(s.cpu_s for s in self.steps) / calls * 1000 if calls else float("nan")

    def step(self, workdir: Path, rate: int, args: argparse.Namespace) -> None:
        before = cpu_seconds(self.sbc.pid)
        step = run_step(
            workdir / f"{self.label}-r{rate}",
            rate,
            step_s=args.step_s,
            hold_ms=args.hold_ms,
            target=self.sbc.ext_uri,
            callee_port=self.sbc.ports.pbx,
        )
        step.cpu_s = cpu_seconds(self.sbc.pid) - before
        self.steps.append(step)
        self.alive = self.sbc.alive()


def sbc_yaml(anchor: bool, leak_guard: str | None) -> str:
    text = "" if anchor else "media: {anchor: false}\n"
    if leak_guard is not None:
        text += f"topology: {{leak_guard: '{leak_guard}'}}\n"  # quoted: YAML reads off as false
    return text


def summary(run: Run, args: argparse.Namespace, baseline: Step | None) -> str:
    best = run.best
    steps = run.steps
    lat = best.latencies if best else (steps[0].latencies if steps else [])
    parts = [
        f"signalling: max_cps={best.rate if best else 0} (>=99.9% completed, on time)",
        f"media={'anchored' if args.anchor else 'pass-through'}",
        f"leak_guard={run.label}",
        f"p50_setup_ms={percentile(lat, 50):.0f}",
        f"p99_setup_ms={percentile(lat, 99):.0f}",
        f"cpu_ms_per_call={run.cpu_ms_per_call():.3f}",
        f"peak_goodput={run.peak_goodput:.0f}",
    ]
    if baseline is not None:
        parts.append(f"p99_direct_ms={percentile(baseline.latencies, 99):.0f}")
    parts.append("steps=" + ",".join(f"{s.rate}:{s.verdict()}" for s in steps))
    parts.append(f"alive={'yes' if run.alive else 'no'}")
    return " ".join(parts)


def comparison(on: Run, off: Run) -> str:
    """Guard on/off: max_cps and calls per CPU-second, both as on/off ratios."""
    cps_on = on.best.rate if on.best else 0
    cps_off = off.best.rate if off.best else 0
    cps = cps_on / cps_off if cps_off else float("nan")
    cpu = off.cpu_ms_per_call() / on.cpu_ms_per_call()
    goodput = on.peak_goodput / off.peak_goodput if off.peak_goodput else float("nan")
    return (
        f"signalling-leak-guard: cps_ratio={cps:.3f} ({cps_on}/{cps_off} max_cps on/off)"
        f" goodput_ratio={goodput:.3f} ({on.peak_goodput:.0f}/{off.peak_goodput:.0f} peak"
        f" completed calls/s) capacity_ratio={cpu:.3f} (completed calls per SBC CPU-second,"
        f" all steps; target >= 0.95: max_cps moves by whole steps, so compare the finer"
        f" ratios too)"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
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
    guard = ap.add_mutually_exclusive_group()
    guard.add_argument(
        "--leak-guard",
        nargs="?",
        const="auto",
        default=None,
        choices=["auto", "scrub", "block", "log"],
        help="leak guard on (auto unless a mode is given; on by default, as shipped)",
    )
    guard.add_argument(
        "--no-leak-guard", dest="leak_guard", action="store_const", const="off", help="guard off"
    )
    guard.add_argument(
        "--compare-leak-guard",
        action="store_true",
        help="two SBCs, guard on (auto) and off, the same steps each: ratio line",
    )
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
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

    modes = ["off", "auto"] if args.compare_leak_guard else [args.leak_guard]
    runs = [
        Run(
            mode or "auto",
            SbcProcess(
                workdir / f"sbc-{mode or 'default'}",
                extra_sbc_yaml=sbc_yaml(args.anchor, mode),
                cdr=args.cdr,
                admin=args.admin,
                overload_delay_ms=None,  # the shipped default: shedding past the peak is measured
            ),
            past_peak=args.past_peak,
        )
        for mode in modes
    ]
    try:
        for run in runs:
            try:
                run.sbc.start()
            except RuntimeError as exc:
                print(f"signalling: SBC failed to start: {str(exc).splitlines()[0]}")
                return 1
        for i, rate in enumerate(rates):
            if time.monotonic() - started > args.max_total_s:
                break
            # Alternate which SBC goes first: neither always meets the warmer machine.
            for run in runs if i % 2 == 0 else runs[::-1]:
                if not run.done:
                    run.step(workdir, rate, args)
                    time.sleep(1.0)  # let the last calls' transactions drain
            if all(run.done for run in runs):
                break
    finally:
        for run in runs:
            run.alive = run.alive and run.sbc.alive()
            run.sbc.stop()

    for run in runs:
        print(summary(run, args, baseline))
    if args.compare_leak_guard:
        off, on = runs
        print(comparison(on, off))
    if args.keep:
        print(f"workdir={workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if all(run.best for run in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
