"""When a B-leg failure is retried instead of passed to the caller.

Theory of operation. Two failures are worth another attempt before the
caller hears of them: a digest challenge (401/407) from a trunk we hold
credentials for, answered by sending the same request again with them
(RFC 3261 §22.2, :func:`answer_challenge` for the INVITE,
:func:`resend_challenged` for in-dialog requests), and a final status the
route lists under ``failover_on``, which moves the call to the route's next
trunk (:func:`may_fail_over`; the core builds the new B-leg). Neither loops:
a nonce that already failed, or no trunk left, makes the failure final.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sbc.b2bua.call_state import CallState
from sbc.b2bua.pending import Kind, Pending
from sbc.b2bua.relay import renew
from sbc.sip.message import Response

if TYPE_CHECKING:
    from sbc.b2bua.call import Call


def answer_challenge(call: Call, response: Response) -> bool:
    """A 401/407 from the trunk: resend the INVITE with digest credentials
    (RFC 3261 §22.2) unless that cannot help (no credentials, a nonce that
    already failed): then the challenge is final and no retry loop starts."""
    invite = call.b_invite
    auth = call.sig.client_auth(call.b.trunk)
    if invite is None or auth is None or call.cancel_pending:
        return False
    if call.state not in (CallState.CALLING, CallState.EARLY):
        return False
    if not auth.authorize(invite, response):
        call.log("call.auth_failed", status=response.status)
        return False
    renew(invite, call.b)
    call.b_invite_tx = call.sig.send_request(call.b, invite, Pending(call, call.b, Kind.INVITE))
    call.debug("call.auth_retry", status=response.status)
    return True


def resend_challenged(call: Call, pending: Pending, response: Response) -> bool:
    """An in-dialog request we sent was challenged: send it again, answered."""
    request = pending.request
    auth = call.sig.client_auth(pending.leg.trunk)
    if request is None or auth is None or pending.leg.dialog is None:
        return False
    if not auth.authorize(request, response):
        return False
    renew(request, pending.leg, seq=pending.leg.dialog.next_cseq())
    call.sig.send_request(pending.leg, request, pending)
    return True


def may_fail_over(call: Call, status: int) -> bool:
    """RFC 3261 §16.7-style serial forking: only before any answer, while the
    caller still waits, and only if it has not been given the B-leg's media."""
    return (
        status in call.failover_on
        and bool(call.next_trunks)
        and call.state in (CallState.CALLING, CallState.EARLY)
        and not call.cancel_pending
        and not call.a_saw_media
    )
