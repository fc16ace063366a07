"""Call setup: an out-of-dialog INVITE becomes a :class:`Call`, or an answer saying why not.

Theory of operation. :func:`new_call` runs the checks in the order a caller
should hear about them: drain and overload (503), Max-Forwards (483),
unsupported extensions (420), a too-short Session-Expires (422, RFC 4028
§8.1); then the trunk's inbound rules rewrite a *view* of the INVITE (the
transaction keeps what was received), the policy routes it, and admission
is charged for the caller's scopes and the first route trunk with room
before any B-leg exists. Only then are the legs, the B-leg INVITE and the
media built and the call registered with the core's call and dialog tables.

A call to a registered user goes to the binding's observed address
(:func:`_call_registered`); a failed B-leg is replaced by the route's next
trunk (:func:`fail_over`), with its admission scopes and media ports moved
over. These functions act on the core they are given and own no state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from sbc.b2bua.call import Call
from sbc.b2bua.config import SUPPORTED_EXTENSIONS
from sbc.b2bua.identity import user_of
from sbc.b2bua.leg import Leg, Side
from sbc.b2bua.outbound import build_b_invite
from sbc.b2bua.policy_values import leg_media
from sbc.b2bua.screening import ingress_trunk
from sbc.b2bua.session_timer import parse_session_expires
from sbc.guard import Rejection
from sbc.policy import RouteContext, Trunk
from sbc.policy.admission import call_scopes, interface_scope, trunk_scope
from sbc.sip.dialog import Dialog
from sbc.sip.errors import ParseError, SipError
from sbc.sip.ids import new_tag
from sbc.sip.message import MAX_FORWARDS_LIMIT, Request, error_reason
from sbc.sip.params import parse_number
from sbc.sip.target import Target
from sbc.sip.transaction import ServerTransaction

if TYPE_CHECKING:
    from sbc.b2bua.core import Core


class Arrival(NamedTuple):
    """The out-of-dialog INVITE being set up, and what is known of it."""

    request: Request  # as received: the transaction's answers echo it
    source: Target
    tx: ServerTransaction
    trunk: Trunk  # the caller's
    view: Request  # as the trunk's inbound rules rewrote it: B-legs are built from it


def new_call(core: Core, request: Request, source: Target, tx: ServerTransaction) -> None:
    """An out-of-dialog INVITE from ``trunk``: checked, routed, admitted, then
    started as a call on the first trunk with room, or answered with why not."""
    policy = core.policy
    trunk = ingress_trunk(core, request, source)
    if trunk is None:  # checked on receipt; a policy swap may have raced it
        core.reply(tx, 403)
        return
    rejection = _refusal(core, request)
    if rejection is not None:
        status, reason, extra = rejection
        core.reply(tx, status, reason, extra)
        return
    view = core.inbound(request, trunk)  # the caller's INVITE as policy rewrote it
    arrival = Arrival(request, source, tx, trunk, view)
    ruri_user = user_of(view.uri) or ""
    route = policy.route_for(
        RouteContext(
            trunk=trunk.name,
            interface=source.interface,
            ruri_user=ruri_user,
            from_user=user_of(view.from_.uri) or "",
            headers=view.headers,
            wall=core.wall_clock(),
        )
    )
    if route is None:
        core.stats["no_route"] += 1
        core.reply(tx, 404, "No Route")
        return
    if route.reject is not None:
        core.stats["rejected_by_route"] += 1
        core.reply(tx, *route.reject)
        return
    if route.to_registered:
        _call_registered(core, arrival, ruri_user, route.name)
        return
    candidates = [
        policy.trunks[name]
        for name in route.trunks(core.rng)
        if name in policy.trunks and core.liveness.is_up(name)
    ]
    if not candidates:
        core.reply(tx, 503, "No Trunk Available", {"Retry-After": "30"})
        return
    # Admission before any B-leg exists: the caller's side, then the first
    # trunk of the route with room (a full trunk is passed over).
    ingress = call_scopes(source.interface, trunk.name)
    refused = core.admission.admit(ingress, core.now)
    picked = refused or _admit_egress(core, candidates, ingress)
    if not isinstance(picked, tuple):
        assert picked is not None  # there were candidates: one admitted or refused
        if refused is None:
            core.admission.release(ingress)
        core.stats["admission_rejected"] += 1
        core.reply(tx, picked.status, picked.reason, dict(picked.headers))
        return
    to, egress = picked
    if route.translate is not None:
        ruri_user = route.translate.apply(ruri_user)
    try:
        call = _create_call(core, arrival, to, ruri_user)
    except SipError as exc:
        core.admission.release((*ingress, *egress))
        core.reply(tx, exc.status, exc.reason)
        return
    except Exception:
        core.admission.release((*ingress, *egress))  # Core answers 500 (Core._failed)
        raise
    call.admitted = [*ingress, *egress]
    call.egress_scopes = egress
    call.route = route.name
    call.failover_on = route.failover_on
    call.next_trunks = candidates
    core.stats["calls_started"] += 1
    core.counters.attempts[(trunk.name, "in")] += 1
    b_invite = call.b_invite_pending
    assert b_invite is not None
    core.call_event("started", call)
    core.guarded(call, lambda: call.start(b_invite, core.now))


def fail_over(core: Core, call: Call) -> bool:
    """Send the call to its route's next trunk (the last one failed before
    answering). False when no trunk is left: the failure goes to the caller."""
    core.admission.release(call.egress_scopes)
    for scope in call.egress_scopes:
        call.admitted.remove(scope)
    call.egress_scopes = ()
    picked = _admit_egress(core, call.next_trunks, call.admitted)
    if picked is None or isinstance(picked, Rejection):
        return False
    to, call.egress_scopes = picked
    call.admitted.extend(call.egress_scopes)
    old_key = core.dialog_key(call, Side.B, None)
    if old_key is not None and core.dialogs.get(old_key, (None,))[0] is call:
        del core.dialogs[old_key]
    view = call.a_invite_view or call.a_invite
    b, b_invite = _b_leg(core, view, call.a.trunk, to, call.b_ruri_user)
    call.reset_b_leg(b, b_invite)
    core.media.delete(call.id)  # the failed B-leg's ports go back
    open_media(core, call)
    core.dialogs[(b_invite.call_id, b_invite.from_.tag or "")] = (call, Side.B)
    core.stats["failovers"] += 1
    return True


def _refusal(core: Core, request: Request) -> tuple[int, str | None, dict[str, str]] | None:
    """Why this INVITE is refused before routing (status, reason, headers), if it is."""
    if core.draining:
        return 503, "Shutting Down", {"Retry-After": "30"}
    if core.overloaded:
        core.stats["shed"] += 1
        return 503, "Overloaded", {"Retry-After": "5"}
    max_forwards = request.headers.get("Max-Forwards")
    if max_forwards is not None and parse_number(max_forwards, MAX_FORWARDS_LIMIT) == 0:
        return 483, None, {}
    unsupported = request.option_tags("Require") - SUPPORTED_EXTENSIONS
    if unsupported:
        return 420, None, {"Unsupported": ", ".join(sorted(unsupported))}
    value = request.headers.get("Session-Expires")
    if value is not None:
        try:
            interval, _ = parse_session_expires(value)
        except ParseError as exc:
            return 400, error_reason(exc), {}
        if interval < core.config.min_se:  # RFC 4028 §8.1
            return 422, None, {"Min-SE": str(core.config.min_se)}
    return None


def _create_call(
    core: Core,
    arrival: Arrival,
    to: Trunk,
    ruri_user: str,
    b_leg: tuple[Leg, Request] | None = None,
) -> Call:
    """The call for ``arrival``: its legs, media and dialog entries (SipError: refused)."""
    request, source, tx, trunk, view = arrival
    policy = core.policy
    a = Leg(
        Side.A,
        policy.interfaces[source.interface],
        source.transport,
        source,
        trunk,
        core.config,
    )
    a.extensions = frozenset(
        (request.option_tags("Supported") | request.option_tags("Require")) & SUPPORTED_EXTENSIONS
    )
    a.dialog = Dialog.as_uas(request, new_tag())
    a.observed = source  # in-dialog requests go back where the caller is
    b, b_invite = b_leg or _b_leg(core, view, trunk, to, ruri_user)
    call = Call(core, a, b, request, tx, started=core.now)
    call.a_invite_view = view
    call.b_invite_pending = b_invite
    call.b_ruri_user = ruri_user
    open_media(core, call)
    tx.context = call
    core.calls[call.id] = call
    core.dialogs[(request.call_id, a.dialog.local_tag)] = (call, Side.A)
    core.dialogs[(b_invite.call_id, b_invite.from_.tag or "")] = (call, Side.B)
    return call


def _call_registered(core: Core, arrival: Arrival, ruri_user: str, route: str) -> None:
    """A call to a phone registered through us: to its Contact, at its
    observed address and connection (RFC 5626 §5), never to the private
    address its Contact names."""
    _, source, tx, trunk, view = arrival
    found = core.registrar.target_of(ruri_user, core.now)
    if found is None:
        core.reply(tx, 480, "Not Registered")
        return
    binding, contact = found
    scopes = tuple(
        dict.fromkeys(
            (*call_scopes(source.interface, trunk.name), interface_scope(binding.interface))
        )
    )
    refused = core.admission.admit(scopes, core.now)
    if refused is not None:
        core.stats["admission_rejected"] += 1
        core.reply(tx, refused.status, refused.reason, dict(refused.headers))
        return
    interface = core.policy.interfaces[binding.interface]
    b = Leg(Side.B, interface, binding.source.transport, binding.source, None, core.config)
    b.observed = binding.source
    b.binding = binding  # its requests must come from the phone's flow
    b_invite = build_b_invite(view, b, None, core.config, source=trunk, ruri=contact)
    try:
        call = _create_call(core, arrival, trunk, ruri_user, b_leg=(b, b_invite))
    except SipError as exc:
        core.admission.release(scopes)
        core.reply(tx, exc.status, exc.reason)
        return
    except Exception:
        core.admission.release(scopes)  # Core answers 500 (Core._failed)
        raise
    call.admitted = list(scopes)
    call.route = route
    core.stats["calls_started"] += 1
    core.call_event("started", call)
    core.guarded(call, lambda: call.start(b_invite, core.now))


def _admit_egress(
    core: Core, candidates: list[Trunk], taken: Sequence[str]
) -> tuple[Trunk, tuple[str, ...]] | Rejection | None:
    """Pop candidates until one has room (its trunk and interface scopes);
    the last refusal when none has, None when there were none."""
    refused = None
    while candidates:
        to = candidates.pop(0)
        scopes = tuple(
            scope
            for scope in (trunk_scope(to.name), interface_scope(to.interface))
            if scope not in taken
        )
        refused = core.admission.admit(scopes, core.now)
        if refused is None:
            return to, scopes
    return refused


def _b_leg(
    core: Core, a_invite: Request, source: Trunk | None, to: Trunk, ruri_user: str
) -> tuple[Leg, Request]:
    """The B-leg towards trunk ``to`` and its INVITE, built from the caller's."""
    interface = core.policy.interfaces[to.interface]
    target = Target(interface.name, to.transport, to.address, to.port)
    b = Leg(Side.B, interface, to.transport, target, to, core.config)
    invite = build_b_invite(a_invite, b, to, core.config, ruri_user=ruri_user, source=source)
    return b, invite


def open_media(core: Core, call: Call) -> None:
    """Open the call's media for its current legs."""
    latch_any = core.policy.settings.media.latch_any_source
    core.media.open(
        call.id,
        leg_media(call.a, call.a.peer.host, latch_any=latch_any),
        leg_media(call.b, call.b.peer.host, latch_any=latch_any),
    )
