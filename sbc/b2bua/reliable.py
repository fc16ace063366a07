"""Reliable provisional responses (RFC 3262), handled per leg.

We PRACK the B-leg's reliable provisionals ourselves and, towards an A-leg
that supports 100rel, send our own reliable provisional with our own RSeq,
retransmitted (T1 doubling, UDP only) until the caller's PRACK (§3).
"""

from __future__ import annotations

from dataclasses import dataclass

from sbc.b2bua.leg import Leg
from sbc.sip.message import Request, Response
from sbc.sip.params import parse_number

#: RFC 3262 §3: give up retransmitting after 64*T1.
GIVE_UP_T1 = 64
#: RFC 3262 §7.1: RSeq = 1*DIGIT, 1 to 2**31-1.
MAX_RSEQ = 2**31 - 1


@dataclass(slots=True)
class ReliableProvisional:
    """Our reliable 1xx on the A-leg, retransmitted until PRACKed."""

    response: Response
    rseq: int
    interval: float
    give_up: float

    @classmethod
    def send(cls, response: Response, rseq: int, t1: float, now: float) -> ReliableProvisional:
        """Mark ``response`` reliable (Require: 100rel, RSeq) and track it."""
        response.headers.set("Require", "100rel")
        response.headers.set("RSeq", str(rseq))
        return cls(response, rseq, t1, now + GIVE_UP_T1 * t1)

    def acknowledged_by(self, prack: Request) -> bool:
        """RAck = response-num CSeq-num Method (§7.2); we check the RSeq."""
        rack = (prack.headers.get("RAck") or "").split()
        return bool(rack) and parse_number(rack[0], MAX_RSEQ) == self.rseq


def is_reliable(response: Response) -> bool:
    return "100rel" in response.option_tags("Require") and "RSeq" in response.headers


def prack_for(leg: Leg, response: Response) -> Request | None:
    """Our PRACK of the peer's reliable provisional (RFC 3262 §4); none for an
    RSeq that is no number in 1..2**31-1 (§7.1): we echo nothing else."""
    rseq = parse_number(response.headers.get("RSeq") or "", MAX_RSEQ)
    if leg.dialog is None or not rseq:
        return None
    prack = leg.dialog.create_request("PRACK")
    prack.headers.add("RAck", f"{rseq} {response.cseq.seq} {response.cseq.method}")
    leg.stamp_request(prack)
    return prack
