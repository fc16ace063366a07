"""The non-INVITE server transaction (RFC 3261 §17.2.2).

Rules:

- Trying: created on a new request (passed to the TU); retransmissions of
  the request are absorbed (no 100 for non-INVITE, RFC 4320 §4.1).
- A provisional from the TU moves to Proceeding; retransmitted requests
  get the last provisional again.
- A final (200-699) from the TU moves to Completed: sent once; retransmitted
  requests get it again. Timer J (64*T1 UDP, 0 reliable) ends Completed.
  Later responses from the TU are dropped.
"""

from __future__ import annotations

from collections.abc import Hashable

from sbc.sip.message import Request
from sbc.sip.target import Target
from sbc.sip.transaction.base import Act, Input, ServerTransaction, State, Table
from sbc.sip.transaction.config import TimerConfig

S, In, Do = State, Input, Act

_COMPLETE = (S.COMPLETED, (Do.SEND_RESPONSE, Do.START_J))

TRANSITIONS: Table = {
    (S.TRYING, In.PROVISIONAL): (S.PROCEEDING, (Do.SEND_RESPONSE,)),
    (S.TRYING, In.FINAL_2XX): _COMPLETE,
    (S.TRYING, In.FINAL_NON_2XX): _COMPLETE,
    (S.PROCEEDING, In.REQUEST): (S.PROCEEDING, (Do.RESEND_RESPONSE,)),
    (S.PROCEEDING, In.PROVISIONAL): (S.PROCEEDING, (Do.SEND_RESPONSE,)),
    (S.PROCEEDING, In.FINAL_2XX): _COMPLETE,
    (S.PROCEEDING, In.FINAL_NON_2XX): _COMPLETE,
    (S.COMPLETED, In.REQUEST): (S.COMPLETED, (Do.RESEND_RESPONSE,)),
    (S.COMPLETED, In.TIMER_J): (S.TERMINATED, ()),
}


class ServerNonInviteTransaction(ServerTransaction):
    __slots__ = ()

    TRANSITIONS = TRANSITIONS

    def __init__(
        self, key: Hashable, request: Request, source: Target, config: TimerConfig
    ) -> None:
        super().__init__(key, request, source, State.TRYING, config)
