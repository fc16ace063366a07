"""The INVITE server transaction (RFC 3261 §17.2.1, as updated by RFC 6026 §7.1).

Rules:

- Proceeding: created on a new INVITE; the SBC answers 100 Trying at once
  (the layer passes it as the first provisional). Retransmitted INVITEs get
  the last provisional again; the TU may send more provisionals.
- A 300-699 from the TU moves to Completed: sent, Timer G (T1, doubling up
  to T2, UDP only) retransmits it, Timer H (64*T1) gives up waiting for the
  ACK. Retransmitted INVITEs get the final again.
- An ACK in Completed moves to Confirmed (absorbed, not passed to the TU);
  Timer I (T4 UDP, 0 reliable) absorbs ACK retransmissions, then ends.
- A 2xx from the TU moves to Accepted (RFC 6026 §7.1): sent; the 2xx is
  retransmitted by the TU core (§13.3.1.4, :mod:`.ack2xx`), not by this
  machine, and further 2xx from the TU are sent. INVITE retransmissions are
  absorbed; ACKs are passed to the TU (the layer reports them). Timer L
  (64*T1) ends Accepted.
"""

from __future__ import annotations

from collections.abc import Hashable

from sbc.sip.message import Request
from sbc.sip.target import Target
from sbc.sip.transaction.base import Act, Input, ServerTransaction, State, Table
from sbc.sip.transaction.config import TimerConfig
from sbc.sip.transaction.events import Action

S, In, Do = State, Input, Act

TRANSITIONS: Table = {
    (S.PROCEEDING, In.REQUEST): (S.PROCEEDING, (Do.RESEND_RESPONSE,)),
    (S.PROCEEDING, In.PROVISIONAL): (S.PROCEEDING, (Do.SEND_RESPONSE,)),
    (S.PROCEEDING, In.FINAL_2XX): (S.ACCEPTED, (Do.SEND_RESPONSE, Do.START_L)),
    (S.PROCEEDING, In.FINAL_NON_2XX): (
        S.COMPLETED,
        (Do.SEND_RESPONSE, Do.START_G, Do.START_H),
    ),
    (S.COMPLETED, In.REQUEST): (S.COMPLETED, (Do.RESEND_RESPONSE,)),
    (S.COMPLETED, In.TIMER_G): (S.COMPLETED, (Do.RESEND_RESPONSE, Do.BACKOFF)),
    (S.COMPLETED, In.TIMER_H): (S.TERMINATED, ()),
    (S.COMPLETED, In.ACK): (S.CONFIRMED, (Do.CANCEL_TIMERS, Do.START_I)),
    (S.CONFIRMED, In.TIMER_I): (S.TERMINATED, ()),
    (S.ACCEPTED, In.FINAL_2XX): (S.ACCEPTED, (Do.SEND_RESPONSE,)),
    (S.ACCEPTED, In.ACK): (S.ACCEPTED, ()),
    (S.ACCEPTED, In.TIMER_L): (S.TERMINATED, ()),
}


class ServerInviteTransaction(ServerTransaction):
    __slots__ = ()

    TRANSITIONS = TRANSITIONS
    RETRANSMIT_TIMER = Input.TIMER_G
    is_invite = True

    def __init__(
        self, key: Hashable, request: Request, source: Target, config: TimerConfig
    ) -> None:
        super().__init__(key, request, source, State.PROCEEDING, config)

    def receive_ack(self, now: float) -> list[Action]:
        """An ACK matching this transaction (§17.2.1; RFC 6026 §7.1)."""
        return self._step(Input.ACK, now)
