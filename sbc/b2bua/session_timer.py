"""Session timers (RFC 4028), per leg.

Each leg negotiates its own interval and refresher. When the peer is the
refresher, a session that sees no refresh for the interval (minus the
§10 margin of min(32 s, interval/3)) is stale and the call ends. When we
are the refresher, we send an UPDATE at half the interval; a refresh that
fails ends the call — that is how dead peers are noticed.
"""

from __future__ import annotations

from dataclasses import dataclass

from sbc.b2bua.leg import Leg, Side
from sbc.sip.errors import ParseError
from sbc.sip.message import Request, Response
from sbc.sip.params import MAX_DELTA_SECONDS, parse_number, parse_params


def parse_session_expires(value: str) -> tuple[int, str | None]:
    """``Session-Expires: 1800;refresher=uac`` → (1800, "uac").

    RFC 4028 §4: ``delta-seconds``, so any run of digits is grammatical; one
    beyond 2**32-1 reads as 2**32-1 (RFC 3261 §20.19's range).
    """
    delta, _, params = value.partition(";")
    interval = parse_number(delta.strip(" \t"), MAX_DELTA_SECONDS, clamp=True)
    if interval is None:
        raise ParseError(f"invalid Session-Expires {value[:40]!r}")
    refresher = parse_params(params).get("refresher")
    if refresher is not None:
        refresher = refresher.lower()
        if refresher not in ("uac", "uas"):
            raise ParseError(f"invalid refresher {refresher[:20]!r}")
    return interval, refresher


@dataclass(slots=True)
class SessionTimer:
    interval: int
    we_refresh: bool
    deadline: float = 0.0

    def restart(self, now: float) -> None:
        """A refresh happened (or the session just started)."""
        if self.we_refresh:
            self.deadline = now + self.interval / 2
        else:
            self.deadline = now + self.interval - min(32.0, self.interval / 3)


def _session_expires(message: Request | Response) -> tuple[int, str | None] | None:
    value = message.headers.get("Session-Expires")
    if value is None:
        return None
    try:
        return parse_session_expires(value)
    except ParseError:
        return None  # a peer's malformed value: no session timer with it


def b_leg_timer(response: Response, now: float) -> SessionTimer | None:
    """The B-leg's timer from its 2xx; we asked, so ``uac`` (us) by default."""
    negotiated = _session_expires(response)
    if negotiated is None:
        return None
    interval, refresher = negotiated
    timer = SessionTimer(interval, we_refresh=(refresher or "uac") == "uac")
    timer.restart(now)
    return timer


def a_leg_timer(invite: Request, answer: Response, now: float) -> SessionTimer | None:
    """Accept the caller's Session-Expires (RFC 4028 §9) and state it on ``answer``.

    The caller refreshes when it supports timers (or asked to); otherwise we do.
    """
    requested = _session_expires(invite)
    if requested is None:
        return None
    interval, refresher = requested
    supports = "timer" in invite.option_tags("Supported")
    refresher = refresher or ("uac" if supports else "uas")
    answer.headers.set("Session-Expires", f"{interval};refresher={refresher}")
    if supports:
        answer.headers.add("Require", "timer")
    timer = SessionTimer(interval, we_refresh=refresher == "uas")
    timer.restart(now)
    return timer


def refresh_request(leg: Leg, timer: SessionTimer) -> Request | None:
    """Our refreshing UPDATE (RFC 4028 §9: UPDATE without a body)."""
    if leg.dialog is None:
        return None
    update = leg.dialog.create_request("UPDATE")
    leg.stamp_request(update)
    refresher = "uac" if leg.side is Side.B else "uas"
    update.headers.add("Session-Expires", f"{timer.interval};refresher={refresher}")
    update.headers.add("Supported", "timer")
    return update
