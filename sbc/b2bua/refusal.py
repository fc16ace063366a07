"""Stateless refusals: one answer, no transaction, never an amplifier.

Theory of operation. What the core refuses before any call, registration or
transaction exists (a stranger's 403, a screening verdict's 503, a 400 for a
broken request, a 481 for a dialog it does not have, a 405 or 481 out of
dialog, a 403 to an in-dialog request from the wrong source) is answered by
:func:`refuse`, straight back to the source, once. No server transaction is
kept (RFC 3261 §8.2.7 lets a UAS answer statelessly): a retransmitted
request gets another answer, one for one, and nothing is re-sent on a timer
(a stateful 481 to an INVITE was re-sent by Timer G for 32 s).

Reflection. Over UDP the source address is whatever the sender wrote, so an
answer can be aimed at a third party. An answer must echo every Via of the
request (RFC 3261 §8.2.6.2: dropping some is not allowed, and the sender
would not recognise the answer), and over a connection a TCP or TLS
handshake has proved the source address, so only UDP answers are bounded:
never more bytes than the request.

1. The full answer (reason phrase, the headers the caller asked for) goes
   out when it fits — any ordinary request is far larger than its refusal.
2. Otherwise the smallest answer RFC 3261 allows (``refusals_trimmed``):
   compact header names (§7.3.3), no optional headers (a 405 keeps its
   Allow, §21.4.6), no Content-Length (optional over UDP, §18.3), the Vias
   as received, and the reason phrase cut to the room left (it may be
   empty, §25.1; a 400 naming the problem keeps as much of it as fits).
3. If even that is larger (a request crafted with compact names and no
   Max-Forwards: only the To-tag an answer must add makes it grow), nothing
   is sent (``refusals_suppressed``). Dropping rather than truncating: a
   response without all the mandatory headers is no answer at all, and a
   peer that writes requests this small is not a real user agent.

An ACK is never answered (RFC 3261 §17.2.3).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from sbc.b2bua.config import ALLOW_METHODS
from sbc.sip.ids import new_tag
from sbc.sip.message import Request, Response, build_response
from sbc.sip.target import Target
from sbc.sip.transaction import Transmit

#: RFC 3261 §7.3.3 compact names of the headers every answer carries.
_COMPACT = {"Via": "v", "From": "f", "To": "t", "Call-ID": "i"}
#: Headers a status cannot go without (RFC 3261 §20.5, §21.4.6; RFC 3261
#: §20.44, §20.27; RFC 4028 §6): the rest of ``extra`` may be left out.
_REQUIRED_EXTRA = {
    401: "WWW-Authenticate",
    405: "Allow",
    407: "Proxy-Authenticate",
    420: "Unsupported",
    422: "Min-SE",
    423: "Min-Expires",
}
_MANDATORY = frozenset(("Via", "From", "To", "Call-ID", "CSeq"))


class Emitter(Protocol):
    """What a refusal needs of the core: a way out and its counters."""

    @property
    def stats(self) -> dict[str, int]: ...

    def emit(self, transmit: Transmit) -> None: ...


def refuse(
    core: Emitter,
    request: Request,
    source: Target,
    status: int,
    reason: str | None = None,
    *,
    extra: Mapping[str, str] | None = None,
) -> None:
    """Answer ``request`` with ``status`` statelessly, once (see the module doc)."""
    if request.method == "ACK":
        return
    response = build_response(request, status, reason or None, to_tag=new_tag())
    for name, value in (extra or {}).items():
        response.headers.add(name, value)
    if status == 405 and "Allow" not in response.headers:
        response.headers.add("Allow", ALLOW_METHODS)  # RFC 3261 §21.4.6
    data = response.serialize()
    if source.reliable or len(data) <= request.wire_size:
        core.emit(Transmit(data, source))
        return
    data = minimal(response, request.wire_size)
    if len(data) <= request.wire_size:
        core.stats["refusals_trimmed"] += 1
        core.emit(Transmit(data, source))
        return
    core.stats["refusals_suppressed"] += 1


def minimal(response: Response, budget: int) -> bytes:
    """The smallest wire form of ``response`` that RFC 3261 accepts over UDP,
    its reason phrase cut to fit in ``budget`` bytes (empty if nothing fits)."""
    required = _REQUIRED_EXTRA.get(response.status)
    lines = [f"SIP/2.0 {response.status} "]
    for name, value in response.headers:
        if name in _MANDATORY or name == required:
            lines.append(f"{_COMPACT.get(name, name)}:{value.strip()}")
    lines.append("\r\n")
    data = "\r\n".join(lines).encode("utf-8", "surrogateescape")
    room = budget - len(data)
    if room <= 0 or not response.reason:
        return data
    cut = response.reason.encode("utf-8", "replace")[:room]
    reason = cut.decode("utf-8", "ignore").rstrip()
    head = len(f"SIP/2.0 {response.status} ")
    return data[:head] + reason.encode() + data[head:]
