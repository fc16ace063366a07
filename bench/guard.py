"""Guard benchmark: requests screened per second on the hot path.

Prints two lines:
    guard: <N> checks/s allowed (1000 sources), <N> checks/s limited (1-source flood),
    <N> checks/s spoofed flood (a new source each)
    pre-parse: garbage flood from one source: <N>/s refused over its limit, <N>/s
    banned, <N>/s if parsed: a refused datagram costs <R> of a parse

Policy: the shipped ``policies/security.yaml`` (ACL on the interface, default
per-source limits, scanner list). "allowed" cycles over 1000 sources, each
under its limits; "limited" is one source far over its INVITE limit (strikes
off, so it is refused with 503 rather than banned); "spoofed" never repeats a
source, so every check parses an address, runs the ACL and fills the LRU
(bounded at ``max_sources``). The clock is simulated; only the loop is timed.

"pre-parse" drives :meth:`sbc.b2bua.core.Core.receive` on the shipped
policies with a garbage flood from one stranger: forged responses with 200
headers, which do not start with a request line, so over the stranger's
"other" limit they are dropped before parsing (strikes off, so it is refused
rather than banned); then the same source banned; then
:func:`sbc.sip.message.parse_message` of the same datagram, which is what
each of them cost before limits applied ahead of the parse.
Compare ratios within one run: the machines are shared and noisy.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from sbc.guard.guard import Guard
from sbc.log import configure_logging
from sbc.policy.security import SecurityFile, SecurityPolicy, compile_security
from sbc.sip.target import Target

if TYPE_CHECKING:
    from sbc.b2bua.core import Core

POLICIES = Path(__file__).resolve().parent.parent / "policies"
POLICY = POLICIES / "security.yaml"
STRANGER = Target("external", "udp", "203.0.113.7", 5060)
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


def security(**overrides: object) -> SecurityPolicy:
    data = yaml.safe_load(POLICY.read_text(encoding="utf-8")) or {}
    bans = {**data.get("bans", {}), **overrides}
    return compile_security(SecurityFile.model_validate({**data, "bans": bans}))


def guard(**overrides: object) -> Guard:
    return Guard(security(**overrides))


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


def garbage() -> bytes:
    """A forged response with 200 headers: no request line, costly to parse."""
    lines = [
        "SIP/2.0 200 OK",
        "Via: SIP/2.0/UDP 203.0.113.7:5060;branch=z9hG4bK-forged",
        "From: <sip:a@203.0.113.7>;tag=1",
        "To: <sip:b@127.0.0.1>;tag=2",
        "Call-ID: forged@203.0.113.7",
        "CSeq: 1 INVITE",
    ]
    lines += [f"X-Pad-{n}: {'x' * 40}" for n in range(200)]
    return ("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode()


def flooded_core(*, banned: bool) -> Core:
    # Imported here: the core's modules, loaded before the guard figures, would
    # make their garbage collections dearer and skew them against earlier runs.
    from sbc.b2bua.core import Core
    from sbc.policy import load_policy

    core = Core(load_policy(POLICIES))
    core.guard.set_policy(security(strikes=None))  # refused, never banned
    if banned:
        core.guard.ban(STRANGER.host, 0.0)
    return core


def pre_parse() -> tuple[float, float, float]:
    """Datagrams/s of a one-source garbage flood: refused over the limit, banned, parsed."""
    data = garbage()
    limited_core = flooded_core(banned=False)
    for _ in range(300):  # past the "other" burst (200): from here on refused
        limited_core.receive(data, STRANGER, 0.0)
    before = limited_core.stats["parse_errors"], limited_core.guard.stats["limited"]
    receive = limited_core.receive

    def refused(i: int) -> None:
        receive(data, STRANGER, 1e-9 * i)  # the bucket refills ~nothing meanwhile

    refused_rate = rate(refused)
    assert limited_core.guard.stats["limited"] - before[1] > 1000
    banned_receive = flooded_core(banned=True).receive
    banned_rate = rate(lambda i: banned_receive(data, STRANGER, 1.0))
    from sbc.sip.message import parse_message

    parsed_rate = rate(lambda i: parse_message(data), seconds=0.5)
    return refused_rate, banned_rate, parsed_rate


def main() -> None:
    configure_logging("info", json=True, stream=open(os.devnull, "w"))  # noqa: SIM115
    print(
        f"guard: {allowed():,.0f} checks/s allowed (1000 sources), "
        f"{limited():,.0f} checks/s limited (1-source flood), "
        f"{spoofed():,.0f} checks/s spoofed flood (a new source each)"
    )
    refused, banned, parsed = pre_parse()
    print(
        f"pre-parse: garbage flood from one source: {refused:,.0f}/s refused over its limit, "
        f"{banned:,.0f}/s banned, {parsed:,.0f}/s if parsed: "
        f"a refused datagram costs {parsed / refused:.3f} of a parse"
    )


if __name__ == "__main__":
    main()
