"""A call's session timers (RFC 4028): armed per leg, refreshed or expired.

Theory of operation. Each leg that negotiated a session timer has a
:class:`~sbc.b2bua.session_timer.SessionTimer` in ``call.sessions``; its
deadline sits in ``call.deadlines`` as ``session_a`` / ``session_b``, so
the call's one timer covers it. When it fires, the refresher side (us)
sends an UPDATE (:func:`~sbc.b2bua.session_timer.refresh_request`) and
re-arms; the other side missing its refresh ends the call. A refresh
answered 405/501 means the peer has no UPDATE: refreshing stops rather than
ending a working call; any other failure (but 491 glare) ends it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sbc.b2bua.call_state import CallState
from sbc.b2bua.leg import Leg, Side
from sbc.b2bua.pending import Kind, Pending
from sbc.b2bua.session_timer import a_leg_timer, b_leg_timer, refresh_request
from sbc.sip.message import Response

if TYPE_CHECKING:
    from sbc.b2bua.call import Call


def start_session_timer_b(call: Call, response: Response, now: float) -> None:
    """The B-leg's timer, as the callee's 2xx settled it."""
    timer = b_leg_timer(response, now)
    if timer is not None:
        call.sessions[Side.B] = timer
        arm_session(call, Side.B)


def add_session_timer_a(call: Call, out: Response, now: float) -> None:
    """The A-leg's timer, added to the 2xx we send the caller."""
    timer = a_leg_timer(call.a_invite, out, now)
    if timer is not None:
        call.sessions[Side.A] = timer
        arm_session(call, Side.A)


def arm_session(call: Call, side: Side) -> None:
    """Put ``side``'s expiry among the call's deadlines."""
    call.deadlines[f"session_{side.value}"] = call.sessions[side].deadline


def session_timer_fired(call: Call, side: Side, now: float) -> None:
    """Refresh now if we are the refresher; otherwise the session expired."""
    timer = call.sessions.get(side)
    if timer is None or call.state is not CallState.CONFIRMED:
        return
    if not timer.we_refresh:
        call.hangup("session expired", now)
        return
    leg = call.leg(side)
    update = refresh_request(leg, timer)
    if update is not None:
        call.sig.send_request(leg, update, Pending(call, leg, Kind.REFRESH, request=update))
    timer.restart(now)
    arm_session(call, side)


def on_refresh_response(call: Call, leg: Leg, response: Response, now: float) -> None:
    """The answer to our refresh UPDATE on ``leg``."""
    status = response.status
    if status < 300 or status == 491:
        return
    if status in (405, 501):
        call.sessions.pop(leg.side, None)  # no UPDATE support: stop refreshing
        call.deadlines.pop(f"session_{leg.side.value}", None)
        return
    call.hangup(f"session refresh answered {status}", now)
