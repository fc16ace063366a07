"""Retransmission of a 2xx to INVITE until its ACK arrives (RFC 3261 §13.3.1.4).

The 2xx and its ACK are end to end: they belong to the UAS core, not to the
INVITE server transaction (which is in Accepted, RFC 6026 §7.1). This small
machine does that core duty for the SBC, keyed by (Call-ID, CSeq number):

- Accepted: the 2xx was sent. Over UDP it is re-sent after T1, 2*T1, ...
  capped at T2 (input TIMER_2XX). Over reliable transports it is not
  re-sent (the transport delivers it), but the ACK is still awaited.
- An ACK for the same Call-ID and CSeq number ends it silently.
- No ACK within 64*T1 (TIMER_ACK): ends with :class:`AckTimeout`; the
  dialog is confirmed but the core SHOULD end the session with BYE.
"""

from __future__ import annotations

from sbc.sip.message import Request, Response
from sbc.sip.transaction.base import Act, Input, Machine, ServerTransaction, State, Table
from sbc.sip.transaction.config import TimerConfig
from sbc.sip.transaction.events import AckTimeout, Action, Transmit

S, In, Do = State, Input, Act

TRANSITIONS: Table = {
    (S.ACCEPTED, In.TIMER_2XX): (S.ACCEPTED, (Do.RESEND_RESPONSE, Do.BACKOFF)),
    (S.ACCEPTED, In.TIMER_ACK): (S.TERMINATED, (Do.REPORT_ACK_TIMEOUT,)),
    (S.ACCEPTED, In.ACK): (S.TERMINATED, ()),
}


class Ack2xxWait(Machine):
    """Re-sends one 2xx (``data``) to ``target`` until ACKed or timed out."""

    __slots__ = ("call_id", "cseq", "data", "target", "transaction")

    TRANSITIONS = TRANSITIONS
    RETRANSMIT_TIMER = Input.TIMER_2XX

    def __init__(self, transaction: ServerTransaction, config: TimerConfig) -> None:
        super().__init__(State.ACCEPTED, config)
        request = transaction.request
        self.call_id = request.call_id
        self.cseq = request.cseq.seq
        self.transaction = transaction
        self.data = transaction.last_data
        self.target = transaction.target

    @property
    def key(self) -> tuple[str, int]:
        return self.call_id, self.cseq

    @property
    def reliable(self) -> bool:
        return self.target.reliable

    def start(self, now: float) -> None:
        self._perform_timer(Act.START_2XX, now)
        self._perform_timer(Act.START_ACK, now)

    def receive_ack(self, now: float) -> list[Action]:
        return self._step(Input.ACK, now)

    def stop(self) -> None:
        """Superseded (the TU sent a new 2xx for the same INVITE)."""
        self.state = State.TERMINATED
        self._timers.clear()

    def _perform(
        self, act: Act, now: float, message: Request | Response | None, out: list[Action]
    ) -> None:
        if act is Act.RESEND_RESPONSE:
            out.append(Transmit(self.data, self.target))
        elif act is Act.REPORT_ACK_TIMEOUT:
            out.append(AckTimeout(self.call_id, self.cseq, self.transaction.context))
        else:  # pragma: no cover - a table names an act this machine lacks
            raise AssertionError(act)
