"""A call's lifecycle as data: its states, its inputs and the edges between them.

Theory of operation (as h11 keeps its state machine). :data:`TRANSITIONS`
maps (state, input) to the next state; :meth:`sbc.b2bua.call.Call.advance`
looks the edge up and raises when there is none, so an input the table does
not expect is a bug in the peer or in us and the call is torn down rather
than left in an undefined state. The inputs are the B2BUA's call-control
events (provisional, answered, failed, cancelled, hung up, BYEs done), not
SIP messages: the call maps each message to at most one of them.
"""

from __future__ import annotations

from enum import Enum, auto


class CallState(Enum):
    CALLING = auto()  # B-leg INVITE sent, nothing heard yet
    EARLY = auto()  # a provisional came back
    CANCELLING = auto()  # A-leg answered (487/408/503); waiting for the B-leg to finish
    CONFIRMED = auto()  # both legs answered and established
    TERMINATING = auto()  # BYE sent; waiting for the answers
    TERMINATED = auto()


class CallInput(Enum):
    PROVISIONAL = auto()
    ANSWERED = auto()
    FAILED = auto()  # B-leg final non-2xx, timeout or transport error
    CANCELLED = auto()  # A-leg CANCEL, no-answer timeout or hang-up before answer
    HANGUP = auto()  # BYE from either leg, admin, session expiry, ACK timeout
    BYE_DONE = auto()  # every BYE we sent has its answer (or gave up)


S, E = CallState, CallInput
TRANSITIONS: dict[tuple[CallState, CallInput], CallState] = {
    (S.CALLING, E.PROVISIONAL): S.EARLY,
    (S.CALLING, E.ANSWERED): S.CONFIRMED,
    (S.CALLING, E.FAILED): S.TERMINATED,
    (S.CALLING, E.CANCELLED): S.CANCELLING,
    (S.EARLY, E.PROVISIONAL): S.EARLY,
    (S.EARLY, E.ANSWERED): S.CONFIRMED,
    (S.EARLY, E.FAILED): S.TERMINATED,
    (S.EARLY, E.CANCELLED): S.CANCELLING,
    (S.CANCELLING, E.PROVISIONAL): S.CANCELLING,
    (S.CANCELLING, E.CANCELLED): S.CANCELLING,
    (S.CANCELLING, E.FAILED): S.TERMINATED,
    (S.CANCELLING, E.ANSWERED): S.TERMINATING,  # 2xx raced the CANCEL: ACK + BYE
    (S.CONFIRMED, E.HANGUP): S.TERMINATING,
    (S.TERMINATING, E.HANGUP): S.TERMINATING,
    (S.TERMINATING, E.BYE_DONE): S.TERMINATED,
    (S.TERMINATING, E.FAILED): S.TERMINATING,
    (S.TERMINATED, E.FAILED): S.TERMINATED,
    (S.TERMINATED, E.HANGUP): S.TERMINATED,
}
