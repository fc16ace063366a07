"""In-dialog requests relayed from one leg of a call to the other, and their answers.

Theory of operation. Once a leg has a dialog, what its peer sends in it
(re-INVITE, UPDATE, INFO, MESSAGE... but BYE, PRACK and DTMF INFO, which
the call answers itself) is rebuilt on the other
leg (:func:`sbc.b2bua.relay.relayed_request`, SDP through the media
handler) and sent with a :class:`Pending` of kind ``RELAY`` that remembers
the server transaction to answer (``origin``). Its responses come back
through :func:`relay_response`, rebuilt for the origin leg.

Rules applied here: a re-INVITE or UPDATE on a leg with one pending either
way is glare, answered 491 by the caller of :func:`glare` (RFC 3261 §14.2,
RFC 3311 §5.2); each leg ACKs its own re-INVITE 2xx, except with a late
offer, where the ACK waits for the origin's ACK carrying the answer (RFC
3264 §4, :func:`ack_relayed_invite`); an offer the far end refused leaves
the session as it was (RFC 3264 §8, :func:`offer_refused`); a 2xx to an
offer refreshes the leg's session timer (RFC 4028 §10).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sbc.b2bua.call_sessions import arm_session
from sbc.b2bua.leg import Leg, Side, has_sdp
from sbc.b2bua.pending import Kind, Pending
from sbc.b2bua.relay import OFFER_METHODS, ack_for, relayed_request, relayed_response
from sbc.media.interface import MediaError
from sbc.sip.dialog import TARGET_REFRESH_METHODS
from sbc.sip.message import Request, Response
from sbc.sip.transaction import ServerTransaction

if TYPE_CHECKING:
    from sbc.b2bua.call import Call


def glare(leg: Leg) -> bool:
    """A re-INVITE or UPDATE is pending on ``leg``, either way."""
    return leg.pending_incoming_invite or leg.pending_outgoing_invite


def relay_request(call: Call, side: Side, request: Request, tx: ServerTransaction) -> None:
    """Send ``request`` from ``side`` on to the other leg (a bad re-offer: refused)."""
    source, target = call.leg(side), call.leg(side.other)
    try:
        out = relayed_request(request, source, target, call.sig.media, call.id)
    except MediaError as exc:  # a bad re-offer is refused; the call goes on
        call.answer(tx, exc.status, exc.reason)
        return
    if out is None:
        call.answer(tx, 481)
        return
    if request.method in OFFER_METHODS:
        source.pending_incoming_invite = True
        target.pending_outgoing_invite = True
    pending = Pending(call, target, Kind.RELAY, origin=tx, request=out)
    if request.method == "INVITE":
        call.relayed_invites[id(tx)] = pending  # a CANCEL may follow (§9.2)
    call.sig.send_request(target, out, pending)


def relay_response(call: Call, pending: Pending, response: Response, now: float) -> None:
    """A response to a relayed request: sent back on the origin leg, rebuilt for it."""
    origin, sent = pending.origin, pending.request
    if origin is None or sent is None or response.status == 100:
        return
    origin_leg = call.leg(pending.leg.side.other)
    legs = (pending.leg, origin_leg)
    try:
        out = relayed_response(origin.request, response, legs, call.sig.media, call.id)
    except MediaError as exc:  # the legs could no longer agree on media
        relay_finished(call, pending)
        if 200 <= response.status < 300 and sent.method == "INVITE":
            call.sig.send_ack(pending.leg, ack_for(pending.leg, sent))
        call.answer(origin, exc.status, exc.reason)
        call.hangup(f"media: {exc.reason}", now)
        return
    if response.status >= 200:
        relay_finished(call, pending)
    if 200 <= response.status < 300:
        _relayed_2xx(call, pending, sent, response, origin_leg, now)
    elif response.status >= 300:
        offer_refused(call, pending, origin_leg)
    call.sig.send_response(origin, out)


def offer_refused(call: Call, pending: Pending, origin: Leg) -> None:
    """A relayed re-INVITE/UPDATE carrying an offer failed: the session
    stays as it was (RFC 3264 §8), so the media side undoes the offer."""
    sent = pending.request
    if sent is not None and sent.method in OFFER_METHODS and has_sdp(sent):
        call.sig.media.rejected(call.id, origin.side.value)


def _relayed_2xx(  # noqa: PLR0917 - the relayed exchange, as relay_response has it
    call: Call, pending: Pending, sent: Request, response: Response, origin: Leg, now: float
) -> None:
    leg = pending.leg
    if sent.method in TARGET_REFRESH_METHODS and leg.dialog is not None:
        leg.dialog.refresh_target(response)
    if sent.method == "INVITE":
        _after_relayed_invite_2xx(call, pending, response, origin)
    if sent.method in OFFER_METHODS and leg.side in call.sessions:
        call.sessions[leg.side].restart(now)  # a refresh, RFC 4028 §10
        arm_session(call, leg.side)


def relay_finished(call: Call, pending: Pending) -> None:
    """The relayed request is final: no CANCEL can reach it, no offer is pending."""
    if pending.origin is not None:
        call.relayed_invites.pop(id(pending.origin), None)
    if pending.request is not None and pending.request.method in ("INVITE", "UPDATE"):
        pending.leg.pending_outgoing_invite = False
        call.leg(pending.leg.side.other).pending_incoming_invite = False


def _after_relayed_invite_2xx(
    call: Call, pending: Pending, response: Response, origin: Leg
) -> None:
    """ACK the re-INVITE's 2xx on its leg, at once or when the origin ACKs."""
    assert pending.request is not None
    ack = ack_for(pending.leg, pending.request)
    if has_sdp(response) and not has_sdp(pending.request):
        call.awaiting_ack[origin.side] = pending  # late offer: answer comes in the ACK
    else:
        call.sig.send_ack(pending.leg, ack)


def ack_relayed_invite(call: Call, pending: Pending, ack: Request) -> None:
    """The origin's ACK releases the leg's waiting ACK, with the answer it carries."""
    leg_ack = pending.leg.last_ack
    if leg_ack is None:
        return
    if has_sdp(ack):
        side = pending.leg.side
        leg_ack.body = call.sig.media.answer(call.id, side.other.value, side.value, ack.body)
        leg_ack.headers.set("Content-Type", "application/sdp")
    call.sig.send_ack(pending.leg, leg_ack)
