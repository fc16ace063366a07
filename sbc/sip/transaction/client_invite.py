"""The INVITE client transaction (RFC 3261 §17.1.1, as updated by RFC 6026 §7.2).

Rules:

- Calling (§17.1.1.2): the INVITE is sent; Timer A (T1, doubling without
  cap, UDP only) retransmits it, Timer B (64*T1) gives up: the TU is told
  (:class:`TransactionTimeout`, treated as 408).
- A provisional moves Calling to Proceeding: retransmissions stop and the
  transaction waits for a final response; every provisional goes to the TU.
- A 300-699 final moves to Completed: the transaction ACKs it itself
  (§17.1.1.3: same branch, Request-URI, Via and Route as the INVITE, To from
  the response, CSeq method ACK), reports it once, and re-sends the same ACK
  for every retransmission of the final. Timer D (32 s UDP, 0 reliable)
  ends Completed.
- A 2xx moves to Accepted (RFC 6026 §7.2): reported; further 2xx (the
  retransmissions, or other forks) are handed to the TU as stray responses
  so the dialog re-ACKs them (§13.2.2.4). Timer M (64*T1) ends Accepted.
- A transport error in Calling or Proceeding terminates and tells the TU
  (treated as 503, §8.1.3.1); in Completed it only terminates.
- §9.1: once the TU sent a CANCEL for this INVITE, a transaction still
  without a final response 64*T1 later is given up (reported as a timeout).
"""

from __future__ import annotations

from collections.abc import Hashable

from sbc.sip.headers import Headers
from sbc.sip.message import Request, Response
from sbc.sip.target import Target
from sbc.sip.transaction.base import Act, ClientTransaction, Input, State, Table
from sbc.sip.transaction.config import TimerConfig
from sbc.sip.transaction.events import (
    Action,
    ResponseReceived,
    StrayResponse,
    Transmit,
)

S, In, Do = State, Input, Act

TRANSITIONS: Table = {
    (S.CALLING, In.TIMER_A): (S.CALLING, (Do.SEND_REQUEST, Do.BACKOFF)),
    (S.CALLING, In.TIMER_B): (S.TERMINATED, (Do.REPORT_TIMEOUT,)),
    (S.CALLING, In.PROVISIONAL): (S.PROCEEDING, (Do.CANCEL_TIMERS, Do.REPORT_RESPONSE)),
    (S.CALLING, In.FINAL_2XX): (S.ACCEPTED, (Do.CANCEL_TIMERS, Do.REPORT_RESPONSE, Do.START_M)),
    (S.CALLING, In.FINAL_NON_2XX): (
        S.COMPLETED,
        (Do.CANCEL_TIMERS, Do.SEND_ACK, Do.REPORT_RESPONSE, Do.START_D),
    ),
    (S.CALLING, In.TRANSPORT_ERROR): (S.TERMINATED, (Do.REPORT_TRANSPORT_FAILURE,)),
    (S.CALLING, In.CANCEL_SENT): (S.CALLING, ()),  # Timer B already bounds Calling
    (S.PROCEEDING, In.PROVISIONAL): (S.PROCEEDING, (Do.REPORT_RESPONSE,)),
    (S.PROCEEDING, In.FINAL_2XX): (
        S.ACCEPTED,
        (Do.CANCEL_TIMERS, Do.REPORT_RESPONSE, Do.START_M),
    ),
    (S.PROCEEDING, In.FINAL_NON_2XX): (
        S.COMPLETED,
        (Do.CANCEL_TIMERS, Do.SEND_ACK, Do.REPORT_RESPONSE, Do.START_D),
    ),
    (S.PROCEEDING, In.TRANSPORT_ERROR): (S.TERMINATED, (Do.REPORT_TRANSPORT_FAILURE,)),
    (S.PROCEEDING, In.CANCEL_SENT): (S.PROCEEDING, (Do.START_CANCEL,)),
    (S.PROCEEDING, In.TIMER_CANCEL): (S.TERMINATED, (Do.REPORT_TIMEOUT,)),
    (S.COMPLETED, In.FINAL_NON_2XX): (S.COMPLETED, (Do.SEND_ACK,)),
    (S.COMPLETED, In.TRANSPORT_ERROR): (S.TERMINATED, ()),
    (S.COMPLETED, In.TIMER_D): (S.TERMINATED, ()),
    (S.ACCEPTED, In.FINAL_2XX): (S.ACCEPTED, (Do.REPORT_STRAY,)),
    (S.ACCEPTED, In.TIMER_M): (S.TERMINATED, ()),
}


class ClientInviteTransaction(ClientTransaction):
    __slots__ = ("_ack",)

    TRANSITIONS = TRANSITIONS
    RETRANSMIT_TIMER = Input.TIMER_A
    is_invite = True

    def __init__(
        self,
        key: Hashable,
        request: Request,
        target: Target,
        config: TimerConfig,
        wire: bytes | None = None,
    ) -> None:
        super().__init__(key, request, target, State.CALLING, config, wire=wire)
        self._ack = b""

    def start(self, now: float) -> list[Action]:
        """Send the INVITE; arm Timers A (UDP) and B (§17.1.1.2)."""
        out: list[Action] = [Transmit(self._data, self.target)]
        self._perform_timer(Act.START_A, now)
        self._perform_timer(Act.START_B, now)
        return out

    def cancel_sent(self, now: float) -> list[Action]:
        """The TU sent a CANCEL for this INVITE (§9.1)."""
        return self._step(Input.CANCEL_SENT, now)

    def _perform(
        self, act: Act, now: float, message: Request | Response | None, out: list[Action]
    ) -> None:
        if self._perform_shared(act, out):
            return
        if not isinstance(message, Response):  # pragma: no cover
            raise AssertionError(act)
        if act is Act.REPORT_RESPONSE:
            self.last_response = message
            out.append(ResponseReceived(message, self))
        elif act is Act.REPORT_STRAY:
            out.append(StrayResponse(message, self._source))
        elif act is Act.SEND_ACK:
            if not self._ack:
                self._ack = build_ack(self.request, message).serialize()
            out.append(Transmit(self._ack, self.target))
        else:  # pragma: no cover
            raise AssertionError(act)


def build_ack(invite: Request, response: Response) -> Request:
    """The hop-by-hop ACK for a 300-699 response (RFC 3261 §17.1.1.3)."""
    headers = Headers()
    via = invite.headers.values("Via")
    if via:
        headers.add("Via", via[0])
    headers.add("Max-Forwards", invite.headers.get("Max-Forwards") or "70")
    for value in invite.headers.get_all("Route"):
        headers.add("Route", value)
    headers.add("From", invite.headers.get("From") or "")
    headers.add("To", response.headers.get("To") or "")
    headers.add("Call-ID", invite.headers.get("Call-ID") or "")
    headers.add("CSeq", f"{invite.cseq.seq} ACK")
    return Request("ACK", invite.uri, headers)
