"""What the kernel filter costs the signalling process (needs root and libnftables).

Installs a real table (the demo policy's listeners, ``inet sbc_bench_<pid>``)
and times, with B bans already in the guard's table (B = 0, 1,000, 10,000,
100,000 by default):

- ``follow_idle``: the once-a-second check when nothing changed;
- ``sync_one``: one new ban: the diff over B bans plus one libnftables command;
- ``lift_one``: one ban lifted early (a delete);
- ``rebuild``: a policy reload: the whole table again, with its B bans;
- ``counters``: reading the three drop counters (netlink, at each scrape).

    python bench/kernel_filter.py [--bans 0,1000,10000,100000] [--repeat 20]

One line per size, times in microseconds (medians).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from sbc.guard.guard import Guard
from sbc.kernel.filter import open_filter
from sbc.kernel.ruleset import Listener, spec_for
from sbc.kernel.runtime import KernelFilterRuntime
from sbc.log import configure_logging
from sbc.policy import load_policy

POLICIES = Path(__file__).resolve().parents[1] / "policies"
LISTENERS = (Listener("127.0.0.1", "udp", 5060), Listener("127.0.0.2", "udp", 5060))


def median_us(action: Callable[[int], None], repeat: int) -> float:
    times = []
    for i in range(repeat):
        start = time.perf_counter()
        action(i)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def measure(bans: int, repeat: int) -> str:
    policy = load_policy(POLICIES)
    guard = Guard(policy.security)
    now = 1000.0
    for n in range(bans):
        guard.ban(f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}", now - 1.0, duration_s=600)
    table = f"sbc_bench_{os.getpid()}"

    def opener(*args: object, **kwargs: object) -> object:
        return open_filter(*args, table=table, **kwargs)  # type: ignore[arg-type]

    runtime = KernelFilterRuntime(opener)  # type: ignore[arg-type]
    runtime.start(policy, LISTENERS, guard, now)
    kernel = runtime.filter
    assert kernel is not None, "the kernel filter did not install (root? libnftables?)"
    idle = median_us(lambda i: runtime.follow(guard, now), repeat)

    def one_ban(i: int) -> None:
        guard.ban(f"172.16.{i >> 8 & 255}.{i & 255}", now, duration_s=600)
        runtime.follow(guard, now)

    def one_lift(i: int) -> None:
        guard.unban(f"172.16.{i >> 8 & 255}.{i & 255}")
        runtime.follow(guard, now)

    sync = median_us(one_ban, repeat)
    lift = median_us(one_lift, repeat)
    rebuild = median_us(lambda i: runtime.reload(policy, guard, now), max(3, repeat // 5))
    counters = median_us(lambda i: kernel.dropped(), repeat)
    assert kernel.bans_held() >= min(bans, policy.security.bans.max_bans) - repeat
    runtime.close()
    spec = spec_for(policy, LISTENERS)
    return (
        f"kernel_filter: bans={bans} follow_idle_us={idle:.1f} sync_one_us={sync:.0f}"
        f" lift_one_us={lift:.0f} rebuild_us={rebuild:.0f} counters_us={counters:.0f}"
        f" trunk_ceilings={len(spec.trunks)}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bans", default="0,1000,10000,100000")
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("kernel_filter: skipped (nftables needs root)")
        return 2
    # One line of figures: a ban or an install line each would bury it.
    configure_logging("error", json=True, stream=open(os.devnull, "w"))  # noqa: SIM115
    for size in (int(b) for b in args.bans.split(",") if b):
        print(measure(size, args.repeat), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
