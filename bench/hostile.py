"""Hostile-traffic benchmark: the call rate the SBC sustains while under attack.

Starts the SBC on free loopback ports (demo topology plus a ``require_auth``
trunk "branch" at 127.0.0.30), finds the clean peak call rate (SIPp carrier →
SBC → SIPp PBX, the basic call, >= 99.9 % completed on time — the same step
as ``bench/signalling.py``), then, for each attack class of
``tests/integration/attackers.py``, runs the legitimate load again while one
attacker process floods from its own address as fast as it can, stepping the
legitimate rate down from the clean peak until a step passes.

The SBC's signalling process runs on CPU 0; its relay worker, SIPp and the
attacker on CPU 1 (the attacker niced). In production the relay workers have
the other cores to themselves ("one per spare core"); sharing CPU 0 with
them here would measure a media flood's cost to a core the signalling never
shares. What is measured is what each attack costs the signalling core.
Figures are ratios to the clean rate in the same run (these machines are
noisy). Prints one line per class:

    hostile: attack=header_bomb ratio=0.95 cps=285/300 attack_pps=11000 answers=0 ...

    python bench/hostile.py [--classes a,b] [--step-s 5] [--rates 100,150,...]
                            [--branch-pps 200 | --branch-pps 0]

The policy is the demo's with the defaults of ``security.yaml`` (the kernel
filter on when run as root: ``kernel_filter: auto``), plus what
docs/security.md advises for a trunk anyone can forge over UDP: the branch's
own limits, ``rate_limits.per_trunk`` and a kernel ceiling
(``kernel_filter.per_trunk``, ``--branch-pps``, 0 = none: the shared
``trunk_pps``).

Target (issue 11): ratio >= 0.8 for every class.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))

from attackers import ATTACKS, can_spoof  # the attackers live with the integration tests
from harness import SIPP, SbcProcess, TrunkDef
from signalling import Step, run_step

ATTACKERS = Path(__file__).resolve().parents[1] / "tests" / "integration" / "attackers.py"
BRANCH_IP = "127.0.0.30"
SECRET_ENV = "SBC_BENCH_BRANCH_SECRET"
#: Legitimate rate steps below the clean peak, as shares of it.
SHARES = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4)
SBC_CPUS, DRIVER_CPUS = {0}, {1}


def branch_security(pps: int, kernel_filter: str = "auto") -> str:
    """``security.yaml``: the branch office sized as docs/security.md advises (a few
    phones: 20 INVITEs/s, and a kernel ceiling of ``pps`` packets/s per address)."""
    text = (
        "rate_limits:\n"
        "  per_trunk:\n"
        "    branch: {INVITE: {rate: 20, burst: 40}, other: {rate: 100, burst: 200}}\n"
        f"kernel_filter:\n  mode: {kernel_filter}\n"
    )
    if pps:
        text += f"  per_trunk:\n    branch: {{pps: {pps}, burst: {2 * pps}}}\n"
    return text


def _pin(pid: int, cpus: set[int], workers: set[int]) -> None:
    """Pin the signalling process ``pid`` to ``cpus`` and its children (the
    relay workers) to ``workers``."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                os.sched_setaffinity(int(stat.parent.name), workers)
    os.sched_setaffinity(pid, cpus)


def _attacker(attack: str, sbc: SbcProcess, index: int, duration: float) -> subprocess.Popen[str]:
    media_low, media_high = sbc.media_ports.get("external", (20000, 20200))
    argv = [
        sys.executable,
        str(ATTACKERS),
        attack,
        "--target",
        sbc.ext_uri,
        "--source",
        f"127.0.0.{66 + index}",  # its own address: one class's ban never helps the next
        "--duration",
        str(duration),
        "--media-ports",
        f"{media_low}-{media_high}",
        "--connections",
        "2000",
        "--spoof",
        f"{BRANCH_IP}:{sbc.trunk('branch')[1]}",
        "--realm",
        "bench",
        "--nice",
        "10",
    ]
    return subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def _step(workdir: Path, sbc: SbcProcess, rate: int, step_s: float) -> Step:
    return run_step(
        workdir,
        rate,
        step_s=step_s,
        hold_ms=500,
        target=sbc.ext_uri,
        callee_port=sbc.ports.pbx,
    )


def clean_peak(workdir: Path, sbc: SbcProcess, rates: list[int], step_s: float) -> int:
    best = 0
    for rate in rates:
        step = _step(workdir / f"clean-{rate}", sbc, rate, step_s)
        time.sleep(1.0)
        if not step.passed:
            break
        best = rate
    return best


def under_attack(
    workdir: Path, sbc: SbcProcess, attack: str, *, index: int, peak: int, step_s: float
) -> tuple[int, dict[str, object]]:
    """The highest step rate (a share of ``peak``) that passes during ``attack``."""
    report: dict[str, object] = {}
    for share in SHARES:
        rate = max(1, round(peak * share))
        attacker = _attacker(attack, sbc, index, duration=step_s + 6.0)
        time.sleep(1.0)  # the attack is in full swing before the calls start
        step = _step(workdir / f"{attack}-{rate}", sbc, rate, step_s)
        out, _ = attacker.communicate(timeout=step_s + 30)
        with contextlib.suppress(ValueError, IndexError):
            report = json.loads(out.strip().splitlines()[-1])
        report["duration"] = step_s + 6.0
        time.sleep(1.0)
        if step.passed:
            return rate, report
        if not sbc.alive():
            return 0, report
    return 0, report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--classes", default=",".join(ATTACKS))
    ap.add_argument("--rates", default="100,150,200,250,300,350,400,450,500")
    ap.add_argument("--step-s", type=float, default=5.0)
    ap.add_argument(
        "--branch-pps", type=int, default=200, help="the branch's kernel ceiling; 0 = none"
    )
    ap.add_argument(
        "--kernel-filter", choices=("auto", "off"), default="auto", help="to compare without"
    )
    args = ap.parse_args(argv)
    if SIPP is None:
        print("hostile: skipped (sipp not installed: apt install sip-tester)")
        return 2
    classes = [c for c in args.classes.split(",") if c]
    if "spoofed_auth" in classes and not can_spoof():
        print("hostile: spoofed_auth skipped (raw sockets need root)")
        classes.remove("spoofed_auth")
    os.environ[SECRET_ENV] = "bench-secret"
    workdir = Path(tempfile.mkdtemp(prefix="sbc-hostile-"))
    sbc = SbcProcess(
        workdir / "sbc",
        extra_trunks=[
            TrunkDef(
                "branch",
                "external",
                BRANCH_IP,
                extra=f"require_auth: {{realm: bench, users: {{b1: {{env: {SECRET_ENV}}}}}}}",
            )
        ],
        media_pairs=200,
        overload_delay_ms=None,  # the shipped default
        extra_files={"security.yaml": branch_security(args.branch_pps, args.kernel_filter)},
    )
    sbc.start()
    _pin(sbc.pid or 0, SBC_CPUS, DRIVER_CPUS)
    os.sched_setaffinity(0, DRIVER_CPUS)  # SIPp and the attackers inherit it
    try:
        peak = clean_peak(workdir, sbc, [int(r) for r in args.rates.split(",")], args.step_s)
        if peak == 0:
            print("hostile: the clean load failed at the lowest rate")
            return 1
        for index, attack in enumerate(classes):
            rate, report = under_attack(
                workdir, sbc, attack, index=index, peak=peak, step_s=args.step_s
            )
            sent = int(str(report.get("sent", 0)))
            duration = float(str(report.get("duration", 1.0)))
            print(
                f"hostile: attack={attack} ratio={rate / peak:.2f} cps={rate}/{peak}"
                f" attack_pps={sent / duration:.0f} answers={report.get('answers', 0)}"
                f" answer_bytes={report.get('bytes_answered', 0)}"
                f" connections={report.get('connections', 0)}"
                f" rss_mib={sbc_rss_mib(sbc):.0f}" + ("" if sbc.alive() else " SBC-DIED"),
                flush=True,
            )
    finally:
        sbc.stop()
    return 0


def sbc_rss_mib(sbc: SbcProcess) -> float:
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{sbc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


if __name__ == "__main__":
    sys.exit(main())
