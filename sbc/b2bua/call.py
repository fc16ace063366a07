"""A call: two independent dialogs (A-leg UAS, B-leg UAC) and what joins them.

Theory of operation. The core hands a call everything that concerns it —
responses to requests it sent, requests arriving in either dialog, CANCEL,
timer expiry — and the call reacts by building *new* messages on the other
leg through :class:`Signalling`. The lifecycle is a table
(:data:`sbc.b2bua.call_state.TRANSITIONS`); an input with no edge from the
current state is a bug in the peer or in us, and the call is torn down
rather than left undefined. This module keeps the initial INVITE exchange,
hang-up and the call's timers; the rest sits beside it, as functions of the
call: in-dialog relaying (:mod:`sbc.b2bua.indialog`), digest retries and
failover (:mod:`sbc.b2bua.call_retry`), reliable provisionals
(:mod:`sbc.b2bua.call_prack`), session timers
(:mod:`sbc.b2bua.call_sessions`) and DTMF INFO (:mod:`sbc.b2bua.dtmf`).

Rules (RFC sections next to the code that applies them):
- each leg ACKs its own 2xx (RFC 3261 §13.2.2.4); with a late offer the B-leg
  ACK waits for the A-leg ACK, which carries the answer (RFC 3264 §4);
- CANCEL is sent on the B-leg only after a provisional (RFC 3261 §9.1); a 2xx
  that races the CANCEL is ACKed and then BYEd (§15);
- reliable provisionals are PRACKed per leg (RFC 3262): we PRACK the B-leg
  and send our own reliable provisional to an A-leg that supports 100rel;
- a re-INVITE or UPDATE arriving while one is pending on the same leg gets
  491 (RFC 3261 §14.2, RFC 3311 §5.2);
- session timers are per leg (:mod:`sbc.b2bua.session_timer`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import structlog

from sbc.auth.client import copy_credentials
from sbc.b2bua.call_prack import on_prack, prack_b, retransmit_reliable, send_reliable
from sbc.b2bua.call_retry import answer_challenge, may_fail_over, resend_challenged
from sbc.b2bua.call_sessions import (
    add_session_timer_a,
    arm_session,
    on_refresh_response,
    session_timer_fired,
    start_session_timer_b,
)
from sbc.b2bua.call_state import TRANSITIONS, CallInput, CallState
from sbc.b2bua.config import ALLOW_METHODS
from sbc.b2bua.dtmf import answer_dtmf_info, intercepts, on_info_done
from sbc.b2bua.headers import (
    REDIRECT_ALLOW,
    RESPONSE_ALLOW,
    allow_for,
    copy_allowed,
    copy_rehosted,
)
from sbc.b2bua.indialog import (
    ack_relayed_invite,
    glare,
    offer_refused,
    relay_finished,
    relay_request,
    relay_response,
)
from sbc.b2bua.leg import Leg, Side, has_sdp
from sbc.b2bua.pending import Kind, Pending, Signalling
from sbc.b2bua.relay import (
    ack_for,
    cancel_for,
)
from sbc.b2bua.reliable import ReliableProvisional, is_reliable
from sbc.b2bua.session_timer import SessionTimer
from sbc.media.codecs import codecs_of
from sbc.media.interface import MediaError, MediaStats
from sbc.policy import Trunk
from sbc.sip.dialog import TARGET_REFRESH_METHODS, Dialog
from sbc.sip.errors import SipError
from sbc.sip.ids import random_token
from sbc.sip.message import Request, Response, build_response
from sbc.sip.transaction import ClientTransaction, ServerTransaction

log = structlog.get_logger("sbc.call")

#: RFC 3261 §22.2/§22.3: digest challenges from a server or a proxy.
CHALLENGES = frozenset((401, 407))


@dataclass(eq=False)
class Call:
    sig: Signalling
    a: Leg
    b: Leg
    a_invite: Request
    a_invite_tx: ServerTransaction
    started: float
    id: str = field(default_factory=lambda: random_token(8))
    state: CallState = CallState.CALLING
    b_invite_pending: Request | None = None  # built by the core, sent by start()
    b_invite: Request | None = None
    b_invite_tx: ClientTransaction | None = None
    b_provisional: bool = False
    cancel_pending: bool = False
    late_offer: bool = False
    b_ack_deferred: bool = False
    answered: float | None = None
    ended: float | None = None
    final_status: int | None = None
    end_reason: str = ""
    rseq: int = 0
    reliable: ReliableProvisional | None = None
    sessions: dict[Side, SessionTimer] = field(default_factory=dict)
    awaiting_ack: dict[Side, Pending] = field(default_factory=dict)
    relayed_invites: dict[int, Pending] = field(default_factory=dict)  # by id(server tx)
    byes_pending: int = 0
    deadlines: dict[str, float] = field(default_factory=dict)
    # Routing: the INVITE as inbound rules rewrote it (what B-legs are built
    # from), the route's name, the trunks left to try and when to try them.
    a_invite_view: Request | None = None
    route: str = ""
    b_ruri_user: str = ""
    next_trunks: list[Trunk] = field(default_factory=list)
    failover_on: frozenset[int] = frozenset()
    a_saw_media: bool = False  # the caller got SDP from us: its B-leg is committed
    failovers: int = 0
    ringing: float | None = None  # first 18x from the B-leg
    codecs: tuple[str, ...] = ()  # as the callee's answer settled them
    media_stats: MediaStats | None = None  # kept when the call ends
    # Admission scopes this call holds (released once, when it ends).
    admitted: list[str] = field(default_factory=list)
    egress_scopes: tuple[str, ...] = ()
    # DTMF INFO of ours outstanding per leg, and the digits waiting for it (sbc.b2bua.dtmf).
    dtmf_outbox: dict[Side, list[tuple[str, int]]] = field(default_factory=dict)

    def log(self, event: str, **fields: object) -> None:
        """One line per call event, bound to the call and its trunks (never per packet)."""
        log.info(event, **self._bound(), **fields)

    def debug(self, event: str, **fields: object) -> None:
        log.debug(event, **self._bound(), **fields)

    def log_exception(self, event: str) -> None:
        log.exception(event, **self._bound())

    def _bound(self) -> dict[str, object]:
        return {
            "call": self.id,
            "a_call_id": self.a_invite.call_id,
            "in_trunk": self.a.trunk.name if self.a.trunk else None,
            "out_trunk": self.b.trunk.name if self.b.trunk else None,
        }

    @property
    def a_tag(self) -> str:
        return self.a.dialog.local_tag if self.a.dialog else ""

    def leg(self, side: Side) -> Leg:
        return self.a if side is Side.A else self.b

    def advance(self, event: CallInput) -> CallState:
        new = TRANSITIONS.get((self.state, event))
        if new is None:
            raise SipError(f"no transition from {self.state.name} on {event.name}", 500)
        self.state = new
        return new

    # --- start ------------------------------------------------------------

    def start(self, b_invite: Request, now: float) -> None:
        """Send the B-leg INVITE built by the core."""
        self.late_offer = not has_sdp(self.a_invite)
        if not self.late_offer:
            try:
                b_invite.body = self.sig.media.offer(self.id, "a", "b", self.a_invite.body)
            except MediaError as exc:  # refused before any B-leg exists
                self.final_status = exc.status
                self.answer(self.a_invite_tx, exc.status, exc.reason)
                self.advance(CallInput.FAILED)
                self.terminated(now, f"media: {exc.reason}")
                return
        self.b_invite = b_invite
        self.b_invite_tx = self.sig.send_request(
            self.b, b_invite, Pending(self, self.b, Kind.INVITE)
        )
        # One ringing budget for the whole call, across failovers.
        self.deadlines.setdefault("no_answer", now + self.sig.config.no_answer_timeout)
        self.log(
            "call.start",
            late_offer=self.late_offer,
            b_call_id=b_invite.call_id,
            route=self.route,
        )

    # --- responses to what we sent ----------------------------------------

    def on_response(self, pending: Pending, response: Response, now: float) -> None:
        kind = pending.kind
        if kind is Kind.INVITE:
            self._on_invite_response(response, now)
        elif kind is Kind.BYE:
            if response.status in CHALLENGES and resend_challenged(self, pending, response):
                return
            if response.status >= 200:
                self.bye_done(now)
        elif kind is Kind.REFRESH:
            on_refresh_response(self, pending.leg, response, now)
        elif kind is Kind.RELAY:
            relay_response(self, pending, response, now)
        elif kind is Kind.DTMF and response.status >= 200:
            if response.status in CHALLENGES and resend_challenged(self, pending, response):
                return
            on_info_done(self, pending.leg.side, response.status)
        # CANCEL and PRACK answers need nothing: the INVITE's final decides.

    def on_failure(self, pending: Pending, status: int, now: float) -> None:
        """Timeout (408) or transport failure (503) of a request we sent."""
        kind = pending.kind
        if kind is Kind.INVITE:
            self._on_invite_final(Response(status), now)
        elif kind is Kind.BYE:
            self.bye_done(now)
        elif kind is Kind.REFRESH:
            self.hangup("session refresh failed", now)
        elif kind is Kind.DTMF:
            on_info_done(self, pending.leg.side, status)
        elif kind is Kind.RELAY and pending.origin is not None:
            self.answer(pending.origin, status)
            relay_finished(self, pending)
            offer_refused(self, pending, self.leg(pending.leg.side.other))
            if pending.request is not None and pending.request.method == "BYE":
                self.bye_done(now)

    def _on_invite_response(self, response: Response, now: float) -> None:
        status = response.status
        if status < 200:
            if status > 100:
                self._on_provisional(response, now)
            elif self.cancel_pending:
                self._cancel_b_invite()
            return
        if status < 300:
            self._on_answer(response, now)
        else:
            self._on_invite_final(response, now)

    def _on_provisional(self, response: Response, now: float) -> None:
        self.b_provisional = True
        if self.ringing is None and 180 <= response.status < 190:
            self.ringing = now
            self.sig.call_event("ringing", self)
        self._update_b_dialog(response)
        if self.cancel_pending:
            self._cancel_b_invite()
        self.advance(CallInput.PROVISIONAL)
        if self.state is not CallState.EARLY:
            return
        reliable_b = is_reliable(response)
        if reliable_b:
            prack_b(self, response)
        try:
            out = self._a_response(response, RESPONSE_ALLOW)
        except MediaError as exc:  # unusable early media: ring without it
            self.log("call.early_media_refused", reason=exc.reason)
            out = self._a_response(_without_body(response), RESPONSE_ALLOW)
        self.a_saw_media = self.a_saw_media or bool(out.body)
        if reliable_b and "100rel" in self.a.extensions and self.reliable is None:
            send_reliable(self, out, now)
        else:
            self.sig.send_response(self.a_invite_tx, out)

    def _on_answer(self, response: Response, now: float) -> None:
        self._update_b_dialog(response)
        out: Response | None = None
        if self.state is not CallState.CANCELLING:
            try:
                out = self._a_response(response, RESPONSE_ALLOW)
            except MediaError as exc:  # the callee's SDP is unusable: end both legs
                reason = f"media: {exc.reason}"
                self._give_up_before_answer(exc.status, reason, now, cancel_b=False)
        state = self.advance(CallInput.ANSWERED)
        ack = self._b_ack()
        if state is CallState.TERMINATING:  # 2xx raced our CANCEL (RFC 3261 §15)
            self.sig.send_ack(self.b, ack)
            self._send_bye(self.b, now)
            return
        self.answered = now
        self.final_status = response.status
        if has_sdp(response):
            self.codecs = codecs_of(response.body)
        self.sig.call_event("answered", self)
        self.deadlines.pop("no_answer", None)
        self.reliable = None
        self.deadlines.pop("rel1xx", None)
        if self.late_offer and has_sdp(response):
            self.b_ack_deferred = True  # the answer arrives in the A-leg ACK
        else:
            self.sig.send_ack(self.b, ack)
        start_session_timer_b(self, response, now)
        assert out is not None
        add_session_timer_a(self, out, now)
        self.sig.send_response(self.a_invite_tx, out)
        if self.sig.config.max_call_duration > 0:
            self.deadlines["max_duration"] = now + self.sig.config.max_call_duration
        self.log("call.answered", status=response.status)
        # Established: the INVITEs are kept as raw headers only (fewer live objects).
        self.a_invite.forget_parsed()
        if self.b_invite is not None:
            self.b_invite.forget_parsed()

    def _on_invite_final(self, response: Response, now: float) -> None:
        if response.status in CHALLENGES:
            if answer_challenge(self, response):
                return  # the same INVITE goes again, with credentials
            # The caller never sees the trunk's challenge (it could not answer it).
            response = Response(403, "Trunk Authentication Failed")
        failed = self.b.trunk.name if self.b.trunk else None
        if may_fail_over(self, response.status) and self.sig.failover(self):
            trunk = self.b.trunk.name if self.b.trunk else None
            self.log("call.failover", status=response.status, failed_trunk=failed, trunk=trunk)
            assert self.b_invite_pending is not None  # set by the core's failover
            self.failovers += 1
            self.start(self.b_invite_pending, now)
            return
        if self.state in (CallState.CALLING, CallState.EARLY):
            allow = REDIRECT_ALLOW if 300 <= response.status < 400 else RESPONSE_ALLOW
            out = self._a_response(response, allow)
            self.final_status = response.status
            self.sig.send_response(self.a_invite_tx, out)
        self.advance(CallInput.FAILED)
        self.terminated(now, f"B-leg answered {response.status}")

    def reset_b_leg(self, b: Leg, invite: Request) -> None:
        """Forget the failed B-leg; ``b`` and ``invite`` replace it (failover)."""
        self.b = b
        self.b_invite_pending = invite
        self.b_invite = None
        self.b_invite_tx = None
        self.b_provisional = False

    # --- requests arriving on either leg -------------------------------------

    def on_request(
        self, side: Side, request: Request, tx: ServerTransaction | None, now: float
    ) -> None:
        leg = self.leg(side)
        method = request.method
        if method == "ACK":
            self._on_ack(side, request)
            return
        assert tx is not None
        if leg.dialog is None:
            self.answer(tx, 481)
            return
        try:
            leg.dialog.check_request(request)
        except SipError as exc:
            self.answer(tx, exc.status, exc.reason)
            return
        if method == "BYE":
            self._on_bye(side, tx, now)
        elif method == "PRACK" and side is Side.A:
            on_prack(self, request, tx)
        elif self.state in (CallState.TERMINATING, CallState.TERMINATED, CallState.CANCELLING):
            self.answer(tx, 481)
        elif method in ("INVITE", "UPDATE") and glare(leg):
            self.answer(tx, 491)
        elif method == "INFO" and intercepts(self, side, request):
            answer_dtmf_info(self, side, tx)
        else:
            if method in TARGET_REFRESH_METHODS:
                leg.dialog.refresh_target(request)
            if method in ("INVITE", "UPDATE") and side in self.sessions:
                self.sessions[side].restart(now)
                arm_session(self, side)  # the refresh moves the expiry deadline
            self._relay_request(side, request, tx)

    def _relay_request(self, side: Side, request: Request, tx: ServerTransaction) -> None:
        """Relay ``request`` to the other leg (:func:`sbc.b2bua.indialog.relay_request`)."""
        relay_request(self, side, request, tx)

    def on_cancel(self, invite_tx: ServerTransaction, now: float) -> None:
        """A CANCEL matched one of our INVITE server transactions (RFC 3261 §9.2);
        the layer has answered the CANCEL itself."""
        if invite_tx is self.a_invite_tx:
            if self.state in (CallState.CALLING, CallState.EARLY):
                self._give_up_before_answer(487, "cancelled by caller", now)
            return
        self.answer(invite_tx, 487)
        pending = self.relayed_invites.pop(id(invite_tx), None)
        if pending is not None and pending.request is not None:
            relay_finished(self, pending)
            self.send_cancel(pending.leg, pending.request)

    def on_ack_timeout(self, now: float) -> None:
        """The A-leg never ACKed our 2xx (RFC 3261 §13.3.1.4): end the call."""
        self.hangup("no ACK from caller", now)

    def on_stray_2xx(self, side: Side, response: Response) -> None:
        """A retransmitted 2xx to an INVITE we sent on ``side``: our ACK was lost,
        send it again (RFC 3261 §13.2.2.4) — unless that ACK is still waiting
        for the answer from the other leg's ACK (late offer, RFC 3264 §4)."""
        leg = self.leg(side)
        ack = leg.last_ack
        if ack is None or response.cseq.method != "INVITE" or ack.cseq.seq != response.cseq.seq:
            return
        if side is Side.B and self.b_ack_deferred:
            return
        if any(pending.leg is leg for pending in self.awaiting_ack.values()):
            return
        self.sig.send_ack(leg, ack)

    def hangup(self, reason: str, now: float, status: int = 503) -> None:
        """End the call from our side: CANCEL before answer, BYE after."""
        if self.state in (CallState.CALLING, CallState.EARLY):
            self._give_up_before_answer(status, reason, now)
            return
        if self.state is not CallState.CONFIRMED:
            return
        self.end_reason = reason
        self.advance(CallInput.HANGUP)
        self._send_bye(self.a, now)
        self._send_bye(self.b, now)
        self.log("call.hangup", reason=reason)

    # --- timers ---------------------------------------------------------------

    def get_timer(self) -> float | None:
        return min(self.deadlines.values(), default=None)

    def handle_timer(self, now: float) -> None:
        for name, deadline in sorted(self.deadlines.items(), key=lambda item: item[1]):
            if deadline <= now and self.deadlines.get(name) == deadline:
                del self.deadlines[name]
                self._fire(name, now)

    def _fire(self, name: str, now: float) -> None:
        if name == "no_answer":
            self._give_up_before_answer(408, "no answer", now)
        elif name == "rel1xx":
            retransmit_reliable(self, now)
        elif name == "max_duration":
            self.hangup("maximum call duration", now)
        elif name == "bye_guard":
            self.byes_pending = 0
            self.bye_done(now)
        elif name == "cancel_guard":
            self.advance(CallInput.FAILED)
            self.terminated(now, self.end_reason or "B-leg did not answer the CANCEL")
        elif name.startswith("session_"):
            side = Side(name.removeprefix("session_"))
            session_timer_fired(self, side, now)

    # --- building blocks ------------------------------------------------------

    def answer(self, tx: ServerTransaction, status: int, reason: str | None = None) -> None:
        request = tx.request
        leg = self.a if tx is self.a_invite_tx else None
        response = build_response(request, status, reason, to_tag=self.a_tag if leg else None)
        if status == 405:
            response.headers.add("Allow", ALLOW_METHODS)
        self.sig.send_response(tx, response)

    def _a_response(self, response: Response, allow: frozenset[str]) -> Response:
        """Build the A-leg's response from a B-leg response to the INVITE."""
        out = build_response(self.a_invite, response.status, response.reason, to_tag=self.a_tag)
        allow = allow_for(allow, self.b.trunk)
        copy_allowed(response, out, allow)
        copy_rehosted(response, out, self.a.host, self.a.port, allow)
        creates_dialog = 100 < response.status < 300
        if creates_dialog:  # RFC 3261 §12.1.1: echo the caller's own Record-Route
            for value in self.a_invite.headers.get_all("Record-Route"):
                out.headers.add("Record-Route", value)
        self.a.stamp_response(out, dialog=creates_dialog)
        if response.status < 300:
            out.headers.set("Allow", ALLOW_METHODS)
        if has_sdp(response):
            media = self.sig.media
            if self.late_offer:
                out.body = media.offer(self.id, "b", "a", response.body)
            else:
                out.body = media.answer(self.id, "b", "a", response.body)
        elif response.body and response.status >= 300:
            out.body = response.body
        return out

    def _update_b_dialog(self, response: Response) -> None:
        if not response.to.tag or self.b_invite is None:
            return
        if self.b.dialog is None:
            self.b.dialog = Dialog.as_uac(self.b_invite, response)
        else:
            self.b.dialog.update_from_response(response)

    def _b_ack(self) -> Request:
        assert self.b_invite is not None
        ack = ack_for(self.b, self.b_invite)
        copy_credentials(self.b_invite, ack)  # RFC 3261 §22.1
        return ack

    def _cancel_b_invite(self) -> None:
        self.cancel_pending = False
        if self.b_invite is not None:
            self.send_cancel(self.b, self.b_invite)

    def send_cancel(self, leg: Leg, invite: Request) -> None:
        self.sig.send_request(leg, cancel_for(invite), Pending(self, leg, Kind.CANCEL))

    def _give_up_before_answer(
        self, status: int, reason: str, now: float, *, cancel_b: bool = True
    ) -> None:
        """Answer the A-leg now and cancel the B-leg (no call is half set up)."""
        self.end_reason = reason
        self.final_status = status
        self.deadlines.pop("no_answer", None)
        self.deadlines.pop("rel1xx", None)
        self.reliable = None
        self.answer(self.a_invite_tx, status)
        self.advance(CallInput.CANCELLED)
        if not cancel_b:
            pass  # the B-leg has answered: the caller of this ends it with BYE
        elif self.b_provisional:
            self._cancel_b_invite()
        else:
            self.cancel_pending = True
        # RFC 3261 §9.1: if the B-leg never answers, Timer B ends its INVITE;
        # the guard only makes sure the call object goes away regardless.
        self.deadlines["cancel_guard"] = now + 64 * self.sig.config.t1 + 1
        self.log("call.cancel", status=status, reason=reason)

    def _send_bye(self, leg: Leg, now: float) -> None:
        if leg.dialog is None:
            return
        bye = leg.dialog.create_request("BYE")
        leg.stamp_request(bye)
        if self.end_reason:
            bye.headers.add("Reason", f'SIP;cause=200;text="{self.end_reason}"')
        self.byes_pending += 1
        self.sig.send_request(leg, bye, Pending(self, leg, Kind.BYE))
        # The BYE's own Timer F ends it; the guard makes sure the call goes.
        self.deadlines["bye_guard"] = now + self.sig.config.bye_timeout

    def bye_done(self, now: float) -> None:
        self.byes_pending = max(0, self.byes_pending - 1)
        if self.byes_pending == 0 and self.state is CallState.TERMINATING:
            self.advance(CallInput.BYE_DONE)
            self.terminated(now, self.end_reason or "hung up")

    def _on_bye(self, side: Side, tx: ServerTransaction, now: float) -> None:
        self.answer(tx, 200)
        if self.state is CallState.TERMINATING:
            return
        if self.state is not CallState.CONFIRMED:
            # BYE on an early dialog (RFC 3261 §15): behaves like a CANCEL.
            if side is Side.A:
                self._give_up_before_answer(487, "caller hung up early", now)
            return
        self.end_reason = f"{'caller' if side is Side.A else 'callee'} hung up"
        self.advance(CallInput.HANGUP)
        self._send_bye(self.leg(side.other), now)
        self.debug("call.bye", side=side.value)

    def _on_ack(self, side: Side, ack: Request) -> None:
        if side is Side.A and self.b_ack_deferred:
            self.b_ack_deferred = False
            b_ack = self.b.last_ack
            if b_ack is not None:
                if has_sdp(ack):
                    b_ack.body = self.sig.media.answer(self.id, "a", "b", ack.body)
                    b_ack.headers.set("Content-Type", "application/sdp")
                self.sig.send_ack(self.b, b_ack)
            return
        pending = self.awaiting_ack.pop(side, None)
        if pending is not None:
            ack_relayed_invite(self, pending, ack)

    # --- the end ---------------------------------------------------------------

    def terminated(self, now: float, reason: str) -> None:
        if self.ended is not None:
            return
        self.ended = now
        self.end_reason = self.end_reason or reason
        self.deadlines.clear()
        self.media_stats = self.sig.media.stats(self.id)  # the relay's last word, for the CDR
        self.sig.media.delete(self.id)
        self.sig.call_ended(self)
        self.log(
            "call.end",
            reason=self.end_reason,
            status=self.final_status,
            duration=round(now - self.answered, 3) if self.answered else 0.0,
        )


def _without_body(response: Response) -> Response:
    """The same response with no body (and so no Content-Type)."""
    stripped = Response(response.status, response.reason, response.headers.copy())
    stripped.headers.remove("Content-Type")
    return stripped
