"""Building the B-leg INVITE from the A-leg INVITE.

Only identity survives (display names, user parts, allowed headers and the
body as the media layer rewrites it): hosts, tags, Call-ID, Via, Contact and
routes are the SBC's own (DESIGN.md, topology hiding).
"""

from __future__ import annotations

from sbc.b2bua.config import ALLOW_METHODS, CallConfig
from sbc.b2bua.headers import REQUEST_ALLOW, allow_for, copy_allowed, copy_rehosted
from sbc.b2bua.identity import rehost, user_of
from sbc.b2bua.leg import Leg
from sbc.policy import Trunk
from sbc.sip.headers import Headers
from sbc.sip.ids import new_call_id, new_tag
from sbc.sip.message import MAX_FORWARDS_LIMIT, Request
from sbc.sip.params import parse_number
from sbc.sip.uri import SipUri

#: RFC 3261 §20.22: the default and what a UAC puts in.
DEFAULT_MAX_FORWARDS = 70


def build_b_invite(
    a_invite: Request,
    leg: Leg,
    trunk: Trunk | None,
    config: CallConfig,
    *,
    ruri_user: str | None = None,
    source: Trunk | None = None,
    ruri: SipUri | None = None,
) -> Request:
    """A fresh INVITE for ``trunk`` (or to ``ruri``, a registered phone's
    Contact) carrying only what may cross.

    ``ruri_user`` is the called number after routing's translation (default:
    the A-leg's); ``source`` is the calling trunk, whose ``pass_headers`` cross too.
    """
    if ruri is None:
        assert trunk is not None, "a B-leg goes to a trunk or to a registered contact"
        params: dict[str, str | None] = {}
        if trunk.transport != "udp":
            params["transport"] = trunk.transport
        user = ruri_user if ruri_user is not None else user_of(a_invite.uri)
        ruri = SipUri(host=trunk.address, user=user or None, port=trunk.port, params=params)
    from_ = rehost(a_invite.from_, leg.host)
    from_.params = {"tag": new_tag()}
    to = rehost(a_invite.to, ruri.host)
    to.params = {}
    headers = Headers()
    headers.add("From", str(from_))
    headers.add("To", str(to))
    headers.add("Call-ID", new_call_id(leg.host))
    headers.add("CSeq", "1 INVITE")
    headers.add("Max-Forwards", str(_max_forwards(a_invite) - 1))
    headers.add("Allow", ALLOW_METHODS)
    headers.add("Supported", "100rel, timer")
    headers.add("Session-Expires", str(config.session_expires))
    headers.add("Min-SE", str(config.min_se))
    invite = Request("INVITE", ruri, headers)
    allow = allow_for(REQUEST_ALLOW, source)
    copy_allowed(a_invite, invite, allow)
    copy_rehosted(a_invite, invite, leg.host, leg.port, allow)
    leg.stamp_request(invite)
    return invite


def _max_forwards(request: Request) -> int:
    value = parse_number(request.headers.get("Max-Forwards") or "", MAX_FORWARDS_LIMIT)
    return DEFAULT_MAX_FORWARDS if value is None else value
