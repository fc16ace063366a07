"""Signalling core throughput without sockets: calls/s of the sans-IO engine.

A scripted carrier and PBX (built from our own message model) drive complete
calls — INVITE with SDP, 100, 180, 200, ACK, BYE, 200 — through
:class:`sbc.b2bua.core.Core` on the demo policy. Only the time spent inside
the core is counted, so the figure is the ceiling the transports and SIPp
then eat into. Prints one line.

``--leak-guard MODE`` runs with that ``topology.leak_guard`` (default: the
policy's, ``auto``); ``--compare-leak-guard`` runs two cores, guard on
(``auto``) and ``off``, in alternating batches of the same calls and prints
the ratio of their call rates: one run, so the machine's noise hits both.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from collections.abc import Callable
from pathlib import Path

from sbc.b2bua.core import Core
from sbc.gctune import tune_gc
from sbc.log import configure_logging
from sbc.media.anchor import MediaAnchor
from sbc.media.control import StreamSpec, StreamStats
from sbc.media.ports import PortPool
from sbc.policy import Policy, load_policy
from sbc.sip.message import Request, Response, build_response, parse_message
from sbc.sip.target import Target

ROOT = Path(__file__).resolve().parent.parent
SDP = (
    b"v=0\r\no=carrier 1 1 IN IP4 127.0.0.10\r\ns=-\r\nc=IN IP4 127.0.0.10\r\n"
    b"t=0 0\r\nm=audio 6000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
)
CARRIER = Target("external", "udp", "127.0.0.10", 5060)
PBX = Target("internal", "udp", "127.0.0.20", 5060)


def invite(n: int) -> bytes:
    return (
        f"INVITE sip:+4930{n:06d}@127.0.0.1:5060 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.10:5060;branch=z9hG4bK-{n}-1;rport\r\n"
        f'From: "Caller" <sip:+1555{n:06d}@127.0.0.10>;tag=c{n}\r\n'
        f"To: <sip:+4930{n:06d}@127.0.0.1>\r\n"
        f"Call-ID: call-{n}@127.0.0.10\r\nCSeq: 1 INVITE\r\n"
        f"Contact: <sip:caller@127.0.0.10:5060>\r\nMax-Forwards: 70\r\n"
        f"User-Agent: carrier-switch\r\nContent-Type: application/sdp\r\n"
        f"Content-Length: {len(SDP)}\r\n\r\n"
    ).encode() + SDP


def in_dialog(method: str, n: int, to_tag: str, seq: int) -> bytes:
    return (
        f"{method} sip:127.0.0.1:5060 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.10:5060;branch=z9hG4bK-{n}-{seq}{method};rport\r\n"
        f'From: "Caller" <sip:+1555{n:06d}@127.0.0.10>;tag=c{n}\r\n'
        f"To: <sip:+4930{n:06d}@127.0.0.1>;tag={to_tag}\r\n"
        f"Call-ID: call-{n}@127.0.0.10\r\nCSeq: {seq} {method}\r\n"
        f"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def pbx_answer(request: Request, status: int) -> bytes:
    response = build_response(request, status, to_tag="pbx")
    if status == 200 and request.method == "INVITE":
        response.headers.add("Contact", "<sip:pbx@127.0.0.20:5060>")
        response.headers.add("Content-Type", "application/sdp")
        response.body = SDP.replace(b"127.0.0.10", b"127.0.0.20")
    return response.serialize()


class NullRelay:
    """Accepts relay commands and drops them: measures the signalling side only."""

    def update(self, stream: StreamSpec) -> None:
        pass

    def remove(self, session: str, index: int) -> None:
        pass

    def delete(self, session: str) -> None:
        pass

    def stats(self, session: str) -> list[StreamStats]:
        return []


class Driver:
    """Plays both far ends; ``spent`` is the time measured inside the core only
    (``clock``: wall time by default, ``time.thread_time`` to count CPU only)."""

    def __init__(self, core: Core, clock: Callable[[], float] = time.perf_counter) -> None:
        self.core = core
        self.now = 0.0
        self.spent = 0.0
        self.clock = clock

    def send(self, data: bytes, source: Target) -> list[tuple[bytes, Target]]:
        start = self.clock()
        out = self.core.receive(data, source, self.now)
        self.spent += self.clock() - start
        return [(t.data, t.target) for t in out]

    def call(self, n: int) -> None:
        to_pbx = [d for d, t in self.send(invite(n), CARRIER) if t.host == PBX.host]
        b_invite = parse_message(to_pbx[0])
        assert isinstance(b_invite, Request)
        self.send(pbx_answer(b_invite, 180), PBX)
        back = self.send(pbx_answer(b_invite, 200), PBX)
        ok = parse_message(next(d for d, t in back if t.host == CARRIER.host))
        assert isinstance(ok, Response)
        a_tag = ok.to.tag or ""
        self.send(in_dialog("ACK", n, a_tag, 1), CARRIER)
        out = self.send(in_dialog("BYE", n, a_tag, 2), CARRIER)
        bye = parse_message(next(d for d, t in out if t.host == PBX.host))
        assert isinstance(bye, Request)
        self.send(pbx_answer(bye, 200), PBX)
        self.now += 0.002
        if n % 200 == 0:
            start = self.clock()
            self.core.handle_timer(self.now)
            self.spent += self.clock() - start


def with_leak_guard(policy: Policy, mode: str | None) -> Policy:
    """``policy`` with ``topology.leak_guard`` set to ``mode`` (None: as it is)."""
    if mode is None:
        return policy
    topology = policy.settings.topology.model_copy(update={"leak_guard": mode})
    settings = policy.settings.model_copy(update={"topology": topology})
    return dataclasses.replace(policy, settings=settings)


def new_core(mode: str | None, passthrough: bool) -> Core:
    media = None if passthrough else MediaAnchor(NullRelay(), PortPool())
    return Core(with_leak_guard(load_policy(ROOT / "policies"), mode), media)


def compare(calls: int, passthrough: bool, batch: int) -> None:
    """Guard on (auto) and off, interleaved in batches; CPU time inside each core."""
    modes = ("auto", "off")
    drivers = {mode: Driver(new_core(mode, passthrough), clock=time.thread_time) for mode in modes}
    for start in range(0, calls, batch):
        # Alternate which core goes first: neither always runs on a warm cache.
        order = modes if (start // batch) % 2 == 0 else modes[::-1]
        for mode in order:
            for n in range(start, min(calls, start + batch)):
                drivers[mode].call(n)
    rate = {mode: calls / d.spent for mode, d in drivers.items()}
    extra_us = (drivers["auto"].spent - drivers["off"].spent) / calls * 1e6
    print(
        f"core-leak-guard: ratio={rate['auto'] / rate['off']:.3f} (guard on/off calls per s,"
        f" {rate['auto']:.0f}/{rate['off']:.0f}; guard costs {extra_us:.1f} us per call of"
        f" 8 messages out; {calls} calls each, CPU time, interleaved batches of {batch})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument(
        "--passthrough", action="store_true", help="SDP crosses unchanged (no anchoring)"
    )
    parser.add_argument(
        "--leak-guard",
        choices=["auto", "scrub", "block", "log", "off"],
        default=None,
        help="topology.leak_guard for the run (default: the policy's)",
    )
    parser.add_argument(
        "--compare-leak-guard", action="store_true", help="guard on vs off in one run: the ratio"
    )
    parser.add_argument("--batch", type=int, default=100, help="calls per batch (compare)")
    args = parser.parse_args()
    # Production logging (JSON lines), written to /dev/null.
    configure_logging("info", json=True, stream=open(os.devnull, "w"))  # noqa: SIM115
    tune_gc()  # as the runtime does
    if args.compare_leak_guard:
        compare(args.calls, args.passthrough, args.batch)
        return
    core = new_core(args.leak_guard, args.passthrough)
    driver = Driver(core)
    for n in range(args.calls):
        driver.call(n)
    leftover = len(core.calls)
    per_call_us = driver.spent / args.calls * 1e6
    print(
        f"core: calls_per_s={args.calls / driver.spent:.0f} us_per_call={per_call_us:.0f}"
        f" (8 messages in, 8 out per call; {args.calls} calls, {leftover} left open;"
        f" media {'pass-through' if args.passthrough else 'anchored'};"
        f" leak_guard {core.leaks.mode.value})"
    )


if __name__ == "__main__":
    main()
