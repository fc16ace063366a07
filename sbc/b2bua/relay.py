"""Requests and responses carried across: one leg's message rebuilt on the other.

Nothing is forwarded: the outgoing message is built from the target leg's
own dialog (its Call-ID, tags, CSeq sequence, route set), and only allowed
headers and the body (through the media handler) cross. So CSeq numbers map
per leg, and responses come back through the transaction they answer.
"""

from __future__ import annotations

from sbc.b2bua.headers import (
    REQUEST_ALLOW,
    RESPONSE_ALLOW,
    allow_for,
    copy_allowed,
    copy_rehosted,
)
from sbc.b2bua.leg import Leg, has_sdp
from sbc.media.interface import MediaHandler
from sbc.sip.dialog import TARGET_REFRESH_METHODS
from sbc.sip.message import CSeq, Request, Response, build_response

#: Methods whose body is an offer (RFC 3264; RFC 3311 for UPDATE).
OFFER_METHODS = frozenset(("INVITE", "UPDATE"))


def relayed_request(
    request: Request, source: Leg, target: Leg, media: MediaHandler, session: str
) -> Request | None:
    """``request`` from ``source`` rebuilt in ``target``'s dialog (None: no dialog)."""
    if target.dialog is None:
        return None
    out = target.dialog.create_request(request.method)
    allow = allow_for(REQUEST_ALLOW, source.trunk)
    copy_allowed(request, out, allow)
    copy_rehosted(request, out, target.host, target.port, allow)
    target.stamp_request(out)
    if has_sdp(request):
        convert = media.offer if request.method in OFFER_METHODS else media.answer
        out.body = convert(session, source.side.value, target.side.value, request.body)
    elif request.body:
        out.body = request.body
    return out


def relayed_response(
    request: Request,
    response: Response,
    legs: tuple[Leg, Leg],
    media: MediaHandler,
    session: str,
) -> Response:
    """``response`` rebuilt as the answer to ``request``; ``legs`` = (source, origin):
    the response came from ``source``, the request from ``origin``."""
    source, origin = legs
    out = build_response(request, response.status, response.reason)
    allow = allow_for(RESPONSE_ALLOW, source.trunk)
    copy_allowed(response, out, allow)
    copy_rehosted(response, out, origin.host, origin.port, allow)
    refresh = request.method in TARGET_REFRESH_METHODS and response.status < 300
    origin.stamp_response(out, dialog=refresh)
    if has_sdp(response):
        offer = request.method == "INVITE" and not has_sdp(request)  # late offer
        convert = media.offer if offer else media.answer
        out.body = convert(session, source.side.value, origin.side.value, response.body)
    elif response.body:
        out.body = response.body
    return out


def ack_for(leg: Leg, invite: Request) -> Request:
    """The ACK for a 2xx to ``invite`` (RFC 3261 §13.2.2.4: same CSeq number)."""
    assert leg.dialog is not None
    ack = leg.dialog.create_request("ACK", seq=invite.cseq.seq)
    leg.stamp_request(ack)
    leg.last_ack = ack
    return ack


def renew(request: Request, leg: Leg, seq: int | None = None) -> None:
    """Make a sent request new again for a resend after a challenge (RFC 3261
    §22.2): the next CSeq number and a fresh Via branch, all else kept."""
    cseq = request.cseq
    request.headers.set("CSeq", str(CSeq(seq if seq is not None else cseq.seq + 1, cseq.method)))
    request.headers.remove("Via")
    request.headers.prepend("Via", leg.via())


def cancel_for(invite: Request) -> Request:
    """CANCEL an INVITE we sent (RFC 3261 §9.1: same Via, R-URI, CSeq number;
    §22.1: the INVITE's credentials, as a CANCEL cannot be challenged)."""
    cancel = Request("CANCEL", invite.uri.copy())
    for name in (
        "Via",
        "Route",
        "From",
        "To",
        "Call-ID",
        "Max-Forwards",
        "Authorization",
        "Proxy-Authorization",
    ):
        for value in invite.headers.get_all(name):
            cancel.headers.add(name, value)
    cancel.headers.add("CSeq", str(CSeq(invite.cseq.seq, "CANCEL")))
    return cancel
