"""The signalling core: bytes in, bytes out, no I/O (sans-IO).

Driven by exactly three things, as in aioquic: :meth:`Core.receive` (a
datagram or framed stream message with its source), :meth:`Core.handle_timer`
(the deadline from :meth:`Core.get_timer` passed), and API calls (policy
swap, hang-up, shutdown). Each returns the :class:`Transmit` actions for the
transport. Data flows one way: parse → transaction layer → trust and routing
(policy) → call → transaction layer → bytes.

Errors never escape: a parse error is answered 400 with the problem in the
reason phrase (or dropped when not even a request), a request from no trunk
gets 403, an exception inside one call tears that call down alone, and one
anywhere else in handling a request answers it 500 (:meth:`Core.receive`).
Refusals before any state exists are stateless and bounded in size
(:mod:`sbc.b2bua.refusal`); an in-dialog request must name a dialog we have
and come from that leg's peer (:meth:`Core._dialog_admits`).

The core owns the state and the dispatch; the steps live beside it as
functions of the core: who may reach it (:mod:`sbc.b2bua.screening`), how
an INVITE becomes a call (:mod:`sbc.b2bua.call_setup`), the requests it
sends on its own behalf (:mod:`sbc.b2bua.own_requests`), the calls'
deadlines (:mod:`sbc.b2bua.call_timers`) and what it derives from a policy
(:mod:`sbc.b2bua.policy_values`). Every message it sends passes the leak
guard (:mod:`sbc.b2bua.leaks`) once, on its way to the transaction layer.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from functools import partial
from typing import TypeVar

import structlog

from sbc.auth.client import ClientAuth
from sbc.b2bua.call import Call
from sbc.b2bua.call_setup import fail_over, new_call
from sbc.b2bua.call_state import CallState
from sbc.b2bua.call_timers import CallTimers
from sbc.b2bua.config import ALLOW_METHODS, SUPPORTED_EXTENSIONS
from sbc.b2bua.counters import CallCounters
from sbc.b2bua.dtmf import send_dtmf_info
from sbc.b2bua.failures import FailureLog
from sbc.b2bua.leaks import LeakGuard, call_ids
from sbc.b2bua.leg import Leg, Side
from sbc.b2bua.liveness import Liveness
from sbc.b2bua.own_requests import on_answer, send_due_registrations, send_probes
from sbc.b2bua.pending import Kind, Pending
from sbc.b2bua.policy_values import (
    auth_servers,
    call_config,
    client_auths,
    timer_config,
    wanted_registrations,
)
from sbc.b2bua.refusal import refuse
from sbc.b2bua.registrar import Registrar
from sbc.b2bua.registration import (
    Registrations,
)
from sbc.b2bua.screening import (
    TrunkSources,
    answer_parse_error,
    authenticated,
    call_hosts,
    ingress_trunk,
    prescreened,
    refuse_verdict,
    screened,
    trusted,
)
from sbc.cdr.record import disposition
from sbc.guard import Admission, Guard
from sbc.media.interface import MediaHandler, PassthroughMedia
from sbc.policy import Policy, Trunk
from sbc.sip.dialog import Dialog
from sbc.sip.errors import ParseError, SipError
from sbc.sip.ids import new_tag
from sbc.sip.message import Request, Response, build_response, parse_message
from sbc.sip.target import Target
from sbc.sip.transaction import (
    AckTimeout,
    Action,
    CancelReceived,
    ClientTransaction,
    RequestReceived,
    ResponseReceived,
    ServerTransaction,
    StrayResponse,
    TransactionLayer,
    TransactionTimeout,
    Transmit,
    TransportFailure,
)

log = structlog.get_logger("sbc.core")

M = TypeVar("M", Request, Response)

#: Methods the SBC answers itself when they arrive outside a dialog.
_REJECT_OUT_OF_DIALOG = {"BYE": 481, "PRACK": 481, "UPDATE": 481, "INFO": 481, "NOTIFY": 481}
#: Methods it handles outside a dialog; any other is refused 405 (or the above).
_OUT_OF_DIALOG = frozenset(("INVITE", "OPTIONS", "REGISTER", "ACK", "CANCEL"))


class Core:
    """The B2BUA engine for one signalling process."""

    def __init__(
        self,
        policy: Policy,
        media: MediaHandler | None = None,
        *,
        rng: random.Random | None = None,
        wall_clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.policy = policy
        self.rng = rng or random.Random()
        # Time-of-day routing needs the wall clock; tests pass a fixed one.
        self.wall_clock = wall_clock or (lambda: datetime.now(UTC))
        self.liveness = Liveness()
        self.liveness.set_trunks(policy.trunks, 0.0)
        self.registrar = Registrar()  # relayed registrations outlive policy swaps
        self.registrations = Registrations()  # our own, with trunks that want them
        self.counters = CallCounters()
        # Told of every call event (the runtime writes CDRs from it).
        self.on_call_event: Callable[[str, Call], None] | None = None
        self.auth = client_auths(policy)  # per trunk: nonces and counts
        # Nonces are HMACs under this key: they survive policy reloads.
        self._nonce_key = os.urandom(32)
        self.auth_servers = auth_servers(policy, self._nonce_key)
        self.guard = Guard(policy.security)  # bans and buckets outlive policy swaps
        self.guard.spares = self.registrar.binds_source  # a forged scanner UA bans no phone
        self.trunk_sources = TrunkSources()  # is a source a trunk's, before parsing
        self.admission = Admission(policy.admission)
        self.config = call_config(policy)
        self.registrations.sync(wanted_registrations(policy, self.auth, self.config.user_agent))
        self.media: MediaHandler = media or PassthroughMedia()
        # The last check on everything sent (docs/security.md, "Leak guard"); what a
        # withheld message leaves to do runs once the step's dispatching is over.
        self.leaks = LeakGuard(policy, check_sdp=self._anchoring)
        self._withheld: list[Callable[[], None]] = []
        self.layer = TransactionLayer(timer_config(policy))
        self.calls: dict[str, Call] = {}
        self.dialogs: dict[tuple[str, str], tuple[Call, Side]] = {}
        self.draining = False
        self.overloaded = False  # set by the runtime from event-loop lag
        self.stats: dict[str, int] = {
            "received": 0,
            "parse_errors": 0,
            "forbidden": 0,
            "calls_started": 0,
            "call_errors": 0,
            "shed": 0,
            "screened": 0,
            "admission_rejected": 0,
            "failovers": 0,
            "auth_failures": 0,
            "no_route": 0,
            "rejected_by_route": 0,
            "dtmf_to_info": 0,  # RFC 4733 digits sent on as INFO
            "dtmf_from_info": 0,  # INFO digits sent on as RFC 4733 events
            "dtmf_undelivered": 0,  # INFO digits towards a leg without telephone-event
            "unknown_dialog": 0,  # in-dialog requests for no dialog we have (481)
            "foreign_in_dialog": 0,  # in-dialog requests not from the leg's peer (403)
            "refusals_trimmed": 0,  # stateless answers cut to their minimal form
            "refusals_suppressed": 0,  # ... and not sent, as larger than the request
            "request_errors": 0,  # requests whose handling raised (answered 500)
        }
        self.failures = FailureLog()
        self.now = 0.0
        self._out: list[Transmit] = []
        self.call_timers = CallTimers()

    # --- the three drivers ----------------------------------------------------

    def receive(self, data: bytes, source: Target, now: float) -> list[Transmit]:
        self.now = now
        self.stats["received"] += 1
        verdict = prescreened(self, data, source)
        if verdict.action == "drop":
            return []  # banned, refused by an ACL or over its limit: not even parsed
        try:
            message = parse_message(data, self.config.head_limits)
        except ParseError as exc:
            answer_parse_error(self, exc, source, verdict)
            return self._flush()
        if not verdict.allowed:
            refuse_verdict(self, message, source, verdict)
            return self._flush()
        try:
            if isinstance(message, Request):
                if self._admit(message, source):
                    self._dispatch(self.layer.receive_request(message, source, now))
            else:
                self._dispatch(self.layer.receive_response(message, source, now))
        except Exception as exc:  # a bug or hostile input must not leak state
            self._failed(message, source, exc)
        return self._flush()

    def _admit(self, request: Request, source: Target) -> bool:
        """Whether ``request`` goes on to the transaction layer; what does not
        is refused statelessly here (or dropped), leaving no state behind."""
        # A retransmission goes to its transaction (RFC 3261 §17.2.1): it was
        # screened and charged when it first came, not again now.
        known = self.layer.known(request)
        if not known:
            trunk = ingress_trunk(self, request, source)
            if not (
                screened(self, request, source, trunk)
                and trusted(self, request, source, trunk)
                and authenticated(self, request, source, trunk)
            ):
                return False
        if request.to.tag is not None:
            return self._dialog_admits(request, source, known=known)
        if known or request.method in _OUT_OF_DIALOG:
            return True
        refuse(self, request, source, _REJECT_OUT_OF_DIALOG.get(request.method, 405))
        return False

    def get_timer(self) -> float | None:
        deadlines = [
            self.layer.get_timer(),
            self.liveness.next_deadline(),
            self.registrar.next_deadline(),
            self.registrations.next_deadline(),
            self.call_timers.next_deadline(),
        ]
        return min((d for d in deadlines if d is not None), default=None)

    def handle_timer(self, now: float) -> list[Transmit]:
        self.now = now
        self._dispatch(self.layer.handle_timer(now))
        for call_id in self.call_timers.due(now):
            call = self.calls.get(call_id)
            if call is None:
                continue
            self.guarded(call, lambda c=call: c.handle_timer(now))
        send_probes(self, now)
        self.registrar.on_timer(self, now)
        send_due_registrations(self, now)
        return self._flush()

    # --- API ------------------------------------------------------------------

    def transport_error(self, target: Target, now: float) -> list[Transmit]:
        self.now = now
        self._dispatch(self.layer.transport_error(target, now))
        return self._flush()

    def set_policy(self, policy: Policy, now: float) -> None:
        """Swap the policy: new calls use it, established calls keep their legs."""
        self.policy = policy
        self.leaks.set_policy(policy)
        self.config = call_config(policy)
        self.layer.config = timer_config(policy)  # for transactions started from now on
        self.liveness.set_trunks(policy.trunks, now)
        self.guard.set_policy(policy.security)
        self.auth = client_auths(policy)
        self.auth_servers = auth_servers(policy, self._nonce_key)
        for gone in self.registrations.sync(
            wanted_registrations(policy, self.auth, self.config.user_agent)
        ):
            self.send_new(gone.unregister(), gone.target(), None)
        self.admission.set_policy(policy.admission)

    def hangup(
        self, call_id: str, now: float, reason: str = "hung up by operator"
    ) -> list[Transmit]:
        self.now = now
        call = self.calls.get(call_id)
        if call is not None:
            self.guarded(call, lambda: call.hangup(reason, now))
        return self._flush()

    def dtmf(
        self, call_id: str, from_leg: str, digit: str, duration_ms: int, now: float
    ) -> list[Transmit]:
        """A digit the relay took out of ``from_leg``'s stream (RFC 4733): an INFO
        on the other leg (:mod:`sbc.b2bua.dtmf`), while the call is established."""
        self.now = now
        call = self.calls.get(call_id)
        if call is not None and call.state is CallState.CONFIRMED:
            to = Side(from_leg).other
            self.guarded(call, lambda: send_dtmf_info(call, to, digit, duration_ms))
        return self._flush()

    def begin_drain(self) -> None:
        """Stop accepting calls (503 + Retry-After); established calls go on."""
        self.draining = True

    def hangup_all(self, now: float, reason: str = "shutting down") -> list[Transmit]:
        self.now = now
        for call in list(self.calls.values()):
            self.guarded(call, lambda c=call: c.hangup(reason, now))
        return self._flush()

    # --- Signalling (what calls use) -------------------------------------------

    def send_request(self, leg: Leg, request: Request, pending: Pending) -> ClientTransaction:
        # RFC 3261 §9.1: a CANCEL goes where its INVITE went; everything else
        # follows the dialog (or the peer, before there is one).
        if request.method == "CANCEL":
            target = leg.peer  # and as its INVITE was: RFC 3261 §9.1, no rules
        else:
            target = leg.next_hop()
            self._outbound(request, leg.trunk)
        if pending.kind is Kind.INVITE and leg.trunk is not None:
            self.counters.attempts[(leg.trunk.name, "out")] += 1
        wire = self.leaks.screen(request, target.interface, call_ids(pending.call, leg.side))
        tx, actions = self.layer.send_request(request, target, self.now, wire)
        tx.context = pending
        self._dispatch(actions if wire is not None else self._withhold(tx, actions))
        return tx

    def send_response(self, tx: ServerTransaction, response: Response) -> None:
        source = tx.source
        self._outbound(response, self.policy.trunk_for_source(source.interface, source.host))
        found = self._call_answering(tx)
        wire = self.leaks.screen(response, source.interface, found and call_ids(*found))
        if wire is None:
            # A leaking provisional is not sent; a final becomes a bare 500 built from
            # the request alone; a call that thinks it answered is ended.
            if response.status < 200:
                return
            if found is not None and tx.is_invite and response.status < 300:
                self._withheld.append(partial(self._end_leaking, found[0]))
            response = build_response(tx.request, 500, to_tag=new_tag())
            wire = self.leaks.screen(response, source.interface)
            if wire is None:
                return
        self._dispatch(self.layer.send_response(tx, response, self.now, wire))

    def send_ack(self, leg: Leg, ack: Request) -> None:
        self._outbound(ack, leg.trunk)
        target = leg.next_hop()
        found = self._call_of(ack)
        wire = self.leaks.screen(ack, target.interface, found and call_ids(*found))
        if wire is not None:
            self._dispatch(self.layer.transmit(ack, target, wire))
        elif found is not None:  # the peer's 2xx goes unacknowledged: end the call
            self._withheld.append(partial(self._end_leaking, found[0]))

    def client_auth(self, trunk: Trunk | None) -> ClientAuth | None:
        return self.auth.get(trunk.name) if trunk is not None else None

    def call_event(self, event: str, call: Call) -> None:
        if event == "answered" and call.answered is not None:
            self.counters.setup_time.observe(call.answered - call.started)
            self.guard.call_established(call.id, call_hosts(call))
        elif event == "ended":
            outcome = disposition(call.final_status, call.answered is not None, call.end_reason)
            self.counters.completions[outcome.value] += 1
        if self.on_call_event is not None:
            self.on_call_event(event, call)

    def call_ended(self, call: Call) -> None:
        # Break the call <-> transaction cycles so the call is freed by
        # reference counting now, not by a full GC pass later.
        call.a_invite_tx.context = None
        if call.b_invite_tx is not None:
            call.b_invite_tx.context = None
        self.calls.pop(call.id, None)
        self.call_timers.forget(call.id)
        self.guard.call_ended(call.id)
        self.admission.release(call.admitted)
        call.admitted = []
        self.call_event("ended", call)
        for side in (Side.A, Side.B):
            dialog = call.leg(side).dialog
            key = self.dialog_key(call, side, dialog)
            if key is not None and self.dialogs.get(key, (None,))[0] is call:
                del self.dialogs[key]

    # --- dispatching layer actions ----------------------------------------------

    def _dispatch(self, actions: Iterable[Action]) -> None:
        for action in actions:
            if isinstance(action, Transmit):
                self._out.append(action)
            elif isinstance(action, RequestReceived):
                self._on_request(action.request, action.source, action.transaction)
            elif isinstance(action, ResponseReceived):
                self._on_pending(action.transaction, action.response, None)
            elif isinstance(action, TransactionTimeout):
                self._on_pending(action.transaction, None, 408)
            elif isinstance(action, TransportFailure):
                self._on_pending(action.transaction, None, 503)
            elif isinstance(action, CancelReceived):
                call = action.invite.context
                invite = action.invite
                if isinstance(call, Call):
                    self.guarded(call, lambda c=call, tx=invite: c.on_cancel(tx, self.now))
                else:
                    self.reply(invite, 487)  # RFC 3261 §9.2
            elif isinstance(action, StrayResponse):
                self._on_stray(action.response)
            elif isinstance(action, AckTimeout):
                call = action.context
                if isinstance(call, Call):
                    self.guarded(call, lambda c=call: c.on_ack_timeout(self.now))

    def _on_pending(
        self, tx: ClientTransaction, response: Response | None, status: int | None
    ) -> None:
        pending = tx.context
        if on_answer(self, pending, response, status):
            return  # a probe, registration or keepalive of our own
        if not isinstance(pending, Pending) or pending.call.ended is not None:
            return
        final = response.status if response is not None else status
        if pending.kind is Kind.INVITE and final is not None and final >= 200:
            trunk = pending.leg.trunk.name if pending.leg.trunk is not None else ""
            self.counters.finals[(trunk, final)] += 1
        call = pending.call
        if response is not None:
            if pending.kind is Kind.INVITE and 100 < response.status < 300:
                pending.leg.observed = tx.response_source  # signalling NAT
            view = self.inbound(response, pending.leg.trunk)
            self.guarded(call, lambda: call.on_response(pending, view, self.now))
        elif status is not None:
            self.guarded(call, lambda: call.on_failure(pending, status, self.now))

    def _on_stray(self, response: Response) -> None:
        if not 200 <= response.status < 300:
            return
        try:
            key = (response.call_id, response.from_.tag or "")
        except ParseError:
            return
        entry = self.dialogs.get(key)
        if entry is not None:
            call, side = entry
            self.guarded(call, lambda: call.on_stray_2xx(side, response))

    # --- requests ---------------------------------------------------------------

    def _dialog_admits(self, request: Request, source: Target, *, known: bool) -> bool:
        """An in-dialog request names a dialog we have on the interface it came
        in on (else a stateless 481, RFC 3261 §12.2.2) and comes from that leg's
        peer (else a stateless 403: knowing the Call-ID and tags is not enough,
        :meth:`Leg.sent_by_peer`). An ACK is never answered, only dropped."""
        entry = self.dialogs.get((request.call_id, request.to.tag or ""))
        if entry is None and known:
            return True  # a retransmission, or an ACK its transaction absorbs
        leg = entry[0].leg(entry[1]) if entry is not None else None
        if leg is None or leg.interface.name != source.interface:
            self.stats["unknown_dialog"] += 1
            refuse(self, request, source, 481)
            return False
        if leg.sent_by_peer(source):
            return True
        self.stats["foreign_in_dialog"] += 1
        refuse(self, request, source, 403)
        return False

    def _failed(self, message: Request | Response, source: Target, exc: Exception) -> None:
        """Handling ``message`` raised outside any call's guard: a request is
        answered (its SipError status, else 500) and its transaction, if one
        was made, ends as any answered one does (Timer J or H); a call it
        had started is torn down. Counted, and logged with throttling."""
        self.failures.report("request.error", exc, self.now, source=source.host)
        if not isinstance(message, Request):
            return
        self.stats["request_errors"] += 1
        status = exc.status if isinstance(exc, SipError) else 500
        tx = self.layer.server_transaction(message)
        if tx is None:
            refuse(self, message, source, status)  # nothing kept: answered statelessly
            return
        if isinstance(tx.context, Call) and tx.context.ended is None:
            self._abort(tx.context)
        last = tx.last_response
        if last is None or last.status < 200:
            response = build_response(message, status, to_tag=new_tag())
            self._dispatch(self.layer.send_response(tx, response, self.now))

    def _on_request(self, request: Request, source: Target, tx: ServerTransaction | None) -> None:
        if request.to.tag is not None:
            self._in_dialog(request, source, tx)
        elif tx is None:
            return  # ACK outside any dialog: nothing to do (RFC 3261 §17.2.3)
        elif request.method == "INVITE":
            new_call(self, request, source, tx)
        elif request.method == "OPTIONS":
            self._options(request, source, tx)
        elif request.method == "REGISTER":
            self.registrar.on_register(self, request, source, tx, self.now)

    def _in_dialog(self, request: Request, source: Target, tx: ServerTransaction | None) -> None:
        entry = self.dialogs.get((request.call_id, request.to.tag or ""))
        if entry is None:
            return  # an ACK for a dialog already gone, let through for its transaction
        call, side = entry
        if tx is not None:
            # A CANCEL of a re-INVITE must find the call (see _dispatch); other
            # server transactions outlive the call by Timer J and must not hold it.
            tx.context = call if request.method == "INVITE" else None
        view = self.inbound(request, call.leg(side).trunk)
        self.guarded(call, lambda: call.on_request(side, view, tx, self.now), tx)

    def failover(self, call: Call) -> bool:
        """Send the call to its route's next trunk (:func:`sbc.b2bua.setup.fail_over`)."""
        return fail_over(self, call)

    def _options(self, request: Request, source: Target, tx: ServerTransaction) -> None:
        """OPTIONS outside a dialog is for us: keepalive and monitoring (RFC 3261 §11).
        While draining it says 503, so carriers probing us stop sending calls."""
        if self.draining:
            self.reply(tx, 503, "Shutting Down", {"Retry-After": "30"})
            return
        response = build_response(request, 200, to_tag=new_tag())
        response.headers.add("Allow", ALLOW_METHODS)
        response.headers.add("Accept", "application/sdp")
        response.headers.add("Supported", ", ".join(sorted(SUPPORTED_EXTENSIONS)))
        if self.config.user_agent:
            response.headers.add("Server", self.config.user_agent)
        self.send_response(tx, response)

    def inbound(self, message: M, trunk: Trunk | None) -> M:
        """``message`` as the trunk's inbound rules rewrite it. A copy: the
        transaction keeps what was received, which its answers must echo."""
        rules = self.policy.manipulations
        if trunk is None or not rules.rules_for(trunk.name, "inbound"):
            return message
        view = message.copy()
        rules.apply(view, trunk.name, "inbound")
        return view

    def _outbound(self, message: Request | Response, trunk: Trunk | None) -> None:
        if trunk is not None and not message.manipulated:
            message.manipulated = True
            self.policy.manipulations.apply(message, trunk.name, "outbound")

    def _anchoring(self) -> bool:
        """SDP is ours to check only when media is anchored (else it crosses as is)."""
        return not isinstance(self.media, PassthroughMedia)

    @property
    def user_agent(self) -> str | None:
        return self.config.user_agent

    def send_new(self, request: Request, target: Target, context: object) -> None:
        """Send a request of our own (probe, registration, keepalive) with its context."""
        wire = self.leaks.screen(request, target.interface)
        tx, actions = self.layer.send_request(request, target, self.now, wire)
        tx.context = context
        self._dispatch(actions if wire is not None else self._withhold(tx, actions))

    def _withhold(self, tx: ClientTransaction, actions: list[Action]) -> list[Action]:
        """A request the leak guard blocked: never on the wire, and its transaction
        fails as a transport error would (RFC 3261 §8.1.3.1), once this step is done."""
        self._withheld.append(lambda: self._dispatch(self.layer.fail(tx, self.now)))
        return [a for a in actions if not isinstance(a, Transmit)]

    def _end_leaking(self, call: Call) -> None:
        if call.ended is None:
            self.guarded(call, lambda: call.hangup("topology leak blocked", self.now, status=500))

    def _call_of(self, request: Request) -> tuple[Call, Side] | None:
        """The call and leg a request we send belongs to (our From tag names the dialog)."""
        try:
            return self.dialogs.get((request.call_id, request.from_.tag or ""))
        except ParseError:
            return None

    def _call_answering(self, tx: ServerTransaction) -> tuple[Call, Side] | None:
        """The call and leg whose request ``tx`` answers: the caller's INVITE, or a
        request in one of its dialogs (our tag in its To, parsed when it came)."""
        context = tx.context
        if isinstance(context, Call) and tx is context.a_invite_tx:
            return context, Side.A
        try:
            return self.dialogs.get((tx.request.call_id, tx.request.to.tag or ""))
        except ParseError:
            return None

    # --- helpers ---------------------------------------------------------------------

    def reply(
        self,
        tx: ServerTransaction,
        status: int,
        reason: str | None = None,
        extra: dict[str, str] | None = None,
    ) -> None:
        response = build_response(tx.request, status, reason, to_tag=new_tag())
        for name, value in (extra or {}).items():
            response.headers.add(name, value)
        if status == 405:
            response.headers.add("Allow", ALLOW_METHODS)
        if self.config.user_agent:
            response.headers.add("Server", self.config.user_agent)
        self.send_response(tx, response)

    def emit(self, transmit: Transmit) -> None:
        """Send bytes no transaction keeps (stateless answers)."""
        data = self.leaks.screen_wire(transmit.data, transmit.target.interface)
        if data is not None:
            self._out.append(transmit if data is transmit.data else Transmit(data, transmit.target))

    def guarded(self, call: Call, action: object, tx: ServerTransaction | None = None) -> None:
        """Run one call's handler; an exception tears down that call only.

        ``tx`` is the request being handled: if the handler failed before
        answering it, it is answered 500 rather than left to hang.
        """
        assert callable(action)
        try:
            action()
        except Exception:  # a bug or hostile peer must not take the process down
            self.stats["call_errors"] += 1
            call.log_exception("call.error")
            self._abort(call)
            last = tx.last_response if tx is not None else None
            if tx is not None and (last is None or last.status < 200):
                self.reply(tx, 500)
        self._schedule(call)

    def _abort(self, call: Call) -> None:
        try:
            if call.state in (CallState.CALLING, CallState.EARLY, CallState.CONFIRMED):
                call.hangup("internal error", self.now, status=500)
        except Exception:
            call.log_exception("call.abort_failed")
        if call.ended is None and call.state is not CallState.TERMINATING:
            call.state = CallState.TERMINATED
            call.ended = self.now
            call.media_stats = self.media.stats(call.id)
            self.media.delete(call.id)
            self.call_ended(call)

    def _schedule(self, call: Call) -> None:
        self.call_timers.schedule(call.id, call.get_timer() if call.ended is None else None)

    def dialog_key(self, call: Call, side: Side, dialog: Dialog | None) -> tuple[str, str] | None:
        if side is Side.A:
            return (call.a_invite.call_id, call.a_tag)
        invite = call.b_invite or call.b_invite_pending
        if invite is None:
            return None
        return (invite.call_id, invite.from_.tag or "")

    def _flush(self) -> list[Transmit]:
        while self._withheld:
            self._withheld.pop(0)()
        out, self._out = self._out, []
        return out
