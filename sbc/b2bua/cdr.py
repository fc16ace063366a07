"""A call as its call detail record (sbc.cdr), at any point of its life.

Numbers are the called and calling users as the B-leg's INVITE carried them
(after routing's translation and the outbound manipulations). Call times are the engine's clock
(the event loop's); ``to_wall`` turns them into epoch seconds.
"""

from __future__ import annotations

from collections.abc import Callable

from sbc.b2bua.call import Call
from sbc.b2bua.identity import user_of
from sbc.cdr import CdrRecord, completed
from sbc.sip.errors import ParseError
from sbc.sip.message import Request


def record_of(call: Call, to_wall: Callable[[float], float]) -> CdrRecord:
    """The record as far as the call has got (``end`` is set once it ended)."""
    a, b = call.a, call.b
    b_invite = call.b_invite or call.b_invite_pending
    record = CdrRecord(
        id=call.id,
        a_call_id=call.a_invite.call_id,
        b_call_id=b_invite.call_id if b_invite is not None else "",
        a_local_tag=a.dialog.local_tag if a.dialog else "",
        a_remote_tag=a.dialog.remote_tag or "" if a.dialog else "",
        b_local_tag=b.dialog.local_tag if b.dialog else _from_tag(b_invite),
        b_remote_tag=b.dialog.remote_tag or "" if b.dialog else "",
        ingress_trunk=a.trunk.name if a.trunk else "",
        egress_trunk=b.trunk.name if b.trunk else "",
        ingress_interface=a.interface.name,
        egress_interface=b.interface.name,
        route=call.route,
        calling=_from_user(b_invite),
        called=(user_of(b_invite.uri) or "") if b_invite is not None else call.b_ruri_user,
        start=to_wall(call.started),
        ring=to_wall(call.ringing) if call.ringing is not None else None,
        answer=to_wall(call.answered) if call.answered is not None else None,
        codecs=",".join(call.codecs),
        failovers=call.failovers,
    )
    if call.ended is None:
        return record
    if call.media_stats is not None:
        record = record.with_media(call.media_stats)
    return completed(
        record,
        end=to_wall(call.ended),
        final_status=call.final_status,
        end_reason=call.end_reason,
    )


def _from_user(request: Request | None) -> str:
    try:
        return user_of(request.from_.uri) or "" if request is not None else ""
    except ParseError:
        return ""


def _from_tag(request: Request | None) -> str:
    try:
        return request.from_.tag or "" if request is not None else ""
    except ParseError:
        return ""
