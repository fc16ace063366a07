"""Guard benchmark: requests screened per second on the hot path.

Prints one line:
    guard: <N> checks/s allowed (1000 sources), <N> checks/s limited (1-source flood),
    <N> checks/s spoofed flood (a new source each)

Policy: the shipped ``policies/security.yaml`` (ACL on the interface, default
per-source limits, scanner list). "allowed" cycles over 1000 sources, each
under its limits; "limited" is one source far over its INVITE limit (strikes
off, so it is refused with 503 rather than banned); "spoofed" never repeats a
source, so every check parses an address, runs the ACL and fills the LRU
(bounded at ``max_sources``). The clock is simulated; only the loop is timed.
Compare ratios within one run: the machines are shared and noisy.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import yaml

from sbc.guard.guard import Guard
from sbc.policy.security import SecurityFile, compile_security

POLICY = Path(__file__).resolve().parent.parent / "policies" / "security.yaml"
AGENT = "Phone/1.0"


def rate(step: Callable[[int], object], seconds: float = 1.0) -> float:
    """Calls per second of ``step(i)`` over about ``seconds``."""
    count, batch = 0, 1000
    start = time.perf_counter()
    while True:
        for i in range(count, count + batch):
            step(i)
        count += batch
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return count / elapsed


def guard(**overrides: object) -> Guard:
    data = yaml.safe_load(POLICY.read_text(encoding="utf-8")) or {}
    bans = {**data.get("bans", {}), **overrides}
    return Guard(compile_security(SecurityFile.model_validate({**data, "bans": bans})))


def allowed() -> float:
    g = guard()
    sources = [f"10.{i >> 8}.{i & 255}.1" for i in range(1000)]
    check = g.check

    def step(i: int) -> None:
        # each source sends one INVITE every 0.1 s of simulated time: 10/s, under its 20/s
        verdict = check("INVITE", sources[i % 1000], "external", None, AGENT, i * 1e-4)
        assert verdict.action == "allow"

    return rate(step)


def limited() -> float:
    g = guard(strikes=None)
    check = g.check

    def step(i: int) -> None:
        check("INVITE", "203.0.113.7", "external", None, AGENT, i * 1e-6)

    result = rate(step)
    assert g.stats["limited"] > g.stats["allowed"]
    return result


def spoofed() -> float:
    g = guard()
    check = g.check
    sources = [f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(1 << 20)]

    def step(i: int) -> None:
        check("INVITE", sources[i & 0xFFFFF], "external", None, AGENT, i * 1e-6)

    result = rate(step)
    assert g.tracked_sources() <= g.policy.max_sources
    return result


def main() -> None:
    print(
        f"guard: {allowed():,.0f} checks/s allowed (1000 sources), "
        f"{limited():,.0f} checks/s limited (1-source flood), "
        f"{spoofed():,.0f} checks/s spoofed flood (a new source each)"
    )


if __name__ == "__main__":
    main()
