"""Policy cost: signalling-core throughput with a realistic policy, as a ratio
to the same run with a minimal one.

The realistic policy (bench/policies/realistic) has 20 routes (the bench's
calls match the 19th, through a regex, a From regex, a time window, a
weighted group and a number translation), 10 header manipulation rules on the
call's path, per-source and per-trunk rate limits, an ACL and admission
limits; topology hiding is always on. The minimal one (bench/policies/minimal)
has two routes and nothing else. Both drive the same complete calls through
:class:`sbc.b2bua.core.Core` (see bench/core.py) in alternating rounds on one
machine, interleaved call by call so that any slow spell of a noisy machine
hits both; time is CPU time of the core's thread (``time.thread_time``).
Prints one line.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from core import Driver, NullRelay

from sbc.b2bua.core import Core
from sbc.gctune import tune_gc
from sbc.log import configure_logging
from sbc.media.anchor import MediaAnchor
from sbc.media.ports import PortPool
from sbc.policy import load_policy

POLICIES = Path(__file__).resolve().parent / "policies"


def driver(directory: Path) -> Driver:
    core = Core(load_policy(directory), MediaAnchor(NullRelay(), PortPool()))
    return Driver(core, clock=time.thread_time)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=5000, help="calls through each policy")
    args = parser.parse_args()
    configure_logging("info", json=True, stream=open(os.devnull, "w"))  # noqa: SIM115
    tune_gc()
    minimal, realistic = driver(POLICIES / "minimal"), driver(POLICIES / "realistic")
    for n in range(args.calls):  # call by call, so any slow spell hits both alike
        minimal.call(n)
        realistic.call(n)
    for name, run in (("minimal", minimal), ("realistic", realistic)):
        if run.core.calls:
            raise SystemExit(f"{name}: {len(run.core.calls)} calls left open")
    per_s = {name: args.calls / run.spent for name, run in (("m", minimal), ("r", realistic))}
    print(
        f"policy: ratio={per_s['r'] / per_s['m']:.2f} realistic_calls_per_s={per_s['r']:.0f}"
        f" minimal_calls_per_s={per_s['m']:.0f} (20 routes, 10 manipulation rules, rate"
        f" limits, ACL, admission, topology hiding; {args.calls} calls each, interleaved"
        f" call by call, core CPU time, anchored media)"
    )


if __name__ == "__main__":
    main()
