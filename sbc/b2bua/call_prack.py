"""Reliable provisional responses on a call (RFC 3262), one per leg.

Theory of operation. The legs are independent: a reliable 18x from the
B-leg is PRACKed by us (:func:`prack_b`), whatever the caller supports; the
caller gets its own reliable 18x only if it offered 100rel
(:func:`send_reliable`), numbered by the call's RSeq. Over UDP that 18x is
retransmitted from T1, doubling, until the caller's PRACK matches it
(:func:`on_prack`) or 64*T1 passes (:func:`retransmit_reliable`, driven by
the call's ``rel1xx`` deadline); a stream transport is reliable already.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sbc.b2bua.pending import Kind, Pending
from sbc.b2bua.reliable import ReliableProvisional, prack_for
from sbc.sip.message import Request, Response
from sbc.sip.transaction import ServerTransaction

if TYPE_CHECKING:
    from sbc.b2bua.call import Call


def on_prack(call: Call, request: Request, tx: ServerTransaction) -> None:
    """A PRACK from the caller: 200 if it acknowledges our reliable 18x, else 481."""
    if call.reliable is None or not call.reliable.acknowledged_by(request):
        call.answer(tx, 481)
        return
    call.reliable = None
    call.deadlines.pop("rel1xx", None)
    call.answer(tx, 200)


def prack_b(call: Call, response: Response) -> None:
    """PRACK the B-leg's reliable provisional."""
    prack = prack_for(call.b, response)
    if prack is not None:
        call.sig.send_request(call.b, prack, Pending(call, call.b, Kind.PRACK))


def send_reliable(call: Call, response: Response, now: float) -> None:
    """Send ``response`` to the caller reliably (RSeq; retransmitted over UDP)."""
    call.rseq += 1
    t1 = call.sig.config.t1
    call.reliable = ReliableProvisional.send(response, call.rseq, t1, now)
    if call.a.transport == "udp":  # streams are reliable: no retransmission
        call.deadlines["rel1xx"] = now + t1
    call.sig.send_response(call.a_invite_tx, response)


def retransmit_reliable(call: Call, now: float) -> None:
    """Our reliable 18x is still unacknowledged: again, or give up after 64*T1."""
    reliable = call.reliable
    if reliable is None or now >= reliable.give_up:
        call.reliable = None
        return
    call.sig.send_response(call.a_invite_tx, reliable.response)
    reliable.interval *= 2
    call.deadlines["rel1xx"] = now + reliable.interval
