"""Leak guard cost per message, against what parsing the same message costs.

One demo call (bench/core.py's scripted carrier and PBX, media anchored)
is driven through :class:`sbc.b2bua.core.Core` while every message the core
screens is recorded with its egress interface and its call. The guard then
checks those messages again and again exactly as the core does (the call's
identifiers read each time, the message serialized, the automaton and the
identifier tests run), and the same messages are parsed as often, for scale:
the guard must cost a small fraction of a parse, since every message sent
was one received and parsed. Prints one line:

    leak_guard: messages_per_s=<N> us_per_message=<us> parse_us=<us> guard/parse=<r> ...

``--hit`` adds a message that leaks (a header naming the PBX, toward the
carrier) to show the slow path's cost: found, located and scrubbed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from core import CARRIER, Driver, new_core  # bench/core.py: the scripted far ends

from sbc.b2bua.call import Call
from sbc.b2bua.core import Core
from sbc.b2bua.leaks import CallIds, LeakGuard, call_ids
from sbc.b2bua.leg import Side
from sbc.log import configure_logging
from sbc.sip.message import Message, parse_message

Screened = tuple[Message, str, Call | None, Side | None]


class Recorder:
    """Stands in for the core's guard for one call: screens, and keeps what it saw."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.guard = core.leaks
        self.seen: list[Screened] = []

    def screen(self, message: Message, egress: str, ids: CallIds | None = None) -> bytes | None:
        call, side = (ids.call, ids.side) if ids is not None else (None, None)
        self.seen.append((message.copy(), egress, call, side))
        return self.guard.screen(message, egress, ids)

    def __getattr__(self, name: str) -> object:
        return getattr(self.guard, name)


def record_one_call() -> tuple[LeakGuard, list[Screened]]:
    """Drive one call, keeping what the core screened (its calls are kept alive)."""
    core = new_core("auto", passthrough=False)
    recorder = Recorder(core)
    core.leaks = recorder  # type: ignore[assignment]
    Driver(core).call(1)
    core.leaks = recorder.guard
    return recorder.guard, recorder.seen


def per_message(work: Callable[[], None], count: int, repeat: int) -> float:
    """Best of ``repeat`` runs, in microseconds per message (CPU time)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.thread_time()
        work()
        best = min(best, time.thread_time() - start)
    return best / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000, help="passes over the messages")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--hit", action="store_true", help="add one leaking message per pass")
    args = parser.parse_args()
    configure_logging("info", json=True, stream=open(os.devnull, "w"))  # noqa: SIM115
    guard, seen = record_one_call()
    if args.hit:
        leaky = parse_message(seen[0][0].serialize())
        leaky.headers.add("X-Origin", "<sip:gw@127.0.0.20:5060>")
        seen.append((leaky, CARRIER.interface, None, None))
    wires = [m.serialize() for m, _, _, _ in seen]
    total = len(seen) * args.rounds

    def check() -> None:
        for _ in range(args.rounds):
            for message, egress, call, side in seen:
                ids = call_ids(call, side) if call is not None and side is not None else None
                guard.screen(message.copy() if args.hit else message, egress, ids)

    def parse() -> None:
        for _ in range(args.rounds):
            for wire in wires:
                parse_message(wire)

    guard_us = per_message(check, total, args.repeat)
    parse_us = per_message(parse, total, args.repeat)
    print(
        f"leak_guard: messages_per_s={1e6 / guard_us:.0f} us_per_message={guard_us:.2f}"
        f" parse_us={parse_us:.2f} guard/parse={guard_us / parse_us:.3f}"
        f" ({len(seen)} messages of one anchored demo call{' + 1 leaking' if args.hit else ''},"
        f" {args.rounds} rounds, best of {args.repeat}, CPU time; mode {guard.mode.value})"
    )


if __name__ == "__main__":
    main()
