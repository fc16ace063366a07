"""The non-INVITE client transaction (RFC 3261 §17.1.2).

Rules:

- Trying (§17.1.2.2): the request is sent; Timer E (T1, UDP only)
  retransmits it with the interval doubled up to T2; Timer F (64*T1) gives
  up and tells the TU (:class:`TransactionTimeout`, treated as 408).
- A provisional moves to Proceeding (reported); there Timer E keeps
  retransmitting, always at T2.
- Any final response (200-699) moves to Completed: reported once, Timers E
  and F stop, later retransmissions of the final are absorbed. Timer K
  (T4 UDP, 0 reliable) ends Completed.
- A transport error in Trying or Proceeding terminates and tells the TU
  (treated as 503, §8.1.3.1).
"""

from __future__ import annotations

from collections.abc import Hashable

from sbc.sip.message import Request, Response
from sbc.sip.target import Target
from sbc.sip.transaction.base import Act, ClientTransaction, Input, State, Table
from sbc.sip.transaction.config import TimerConfig
from sbc.sip.transaction.events import (
    Action,
    ResponseReceived,
    Transmit,
)

S, In, Do = State, Input, Act

_COMPLETE = (S.COMPLETED, (Do.CANCEL_TIMERS, Do.REPORT_RESPONSE, Do.START_K))

TRANSITIONS: Table = {
    (S.TRYING, In.TIMER_E): (S.TRYING, (Do.SEND_REQUEST, Do.BACKOFF)),
    (S.TRYING, In.TIMER_F): (S.TERMINATED, (Do.REPORT_TIMEOUT,)),
    (S.TRYING, In.PROVISIONAL): (S.PROCEEDING, (Do.REPORT_RESPONSE,)),
    (S.TRYING, In.FINAL_2XX): _COMPLETE,
    (S.TRYING, In.FINAL_NON_2XX): _COMPLETE,
    (S.TRYING, In.TRANSPORT_ERROR): (S.TERMINATED, (Do.REPORT_TRANSPORT_FAILURE,)),
    (S.PROCEEDING, In.TIMER_E): (S.PROCEEDING, (Do.SEND_REQUEST, Do.REARM_T2)),
    (S.PROCEEDING, In.TIMER_F): (S.TERMINATED, (Do.REPORT_TIMEOUT,)),
    (S.PROCEEDING, In.PROVISIONAL): (S.PROCEEDING, (Do.REPORT_RESPONSE,)),
    (S.PROCEEDING, In.FINAL_2XX): _COMPLETE,
    (S.PROCEEDING, In.FINAL_NON_2XX): _COMPLETE,
    (S.PROCEEDING, In.TRANSPORT_ERROR): (S.TERMINATED, (Do.REPORT_TRANSPORT_FAILURE,)),
    (S.COMPLETED, In.TIMER_K): (S.TERMINATED, ()),
}


class ClientNonInviteTransaction(ClientTransaction):
    __slots__ = ()

    TRANSITIONS = TRANSITIONS
    RETRANSMIT_TIMER = Input.TIMER_E

    def __init__(
        self,
        key: Hashable,
        request: Request,
        target: Target,
        config: TimerConfig,
        wire: bytes | None = None,
    ) -> None:
        super().__init__(key, request, target, State.TRYING, config, wire=wire)

    def start(self, now: float) -> list[Action]:
        """Send the request; arm Timers E (UDP) and F (§17.1.2.2)."""
        self._perform_timer(Act.START_E, now)
        self._perform_timer(Act.START_F, now)
        return [Transmit(self._data, self.target)]

    def _perform(
        self, act: Act, now: float, message: Request | Response | None, out: list[Action]
    ) -> None:
        if self._perform_shared(act, out):
            return
        if act is Act.REPORT_RESPONSE and isinstance(message, Response):
            self.last_response = message
            out.append(ResponseReceived(message, self))
        else:  # pragma: no cover - a table names an act this machine lacks
            raise AssertionError(act)
