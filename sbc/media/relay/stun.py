"""STUN Binding answers on relay ports (RFC 8489 §6.3, §14; RFC 8445 §2.5, §7.3).

A peer probing its NAT mapping sends a Binding request to a relay port;
:func:`answer_binding` answers it with XOR-MAPPED-ADDRESS (the request's
source, RFC 8489 §14.2) and FINGERPRINT (§14.7). The caller answers only
the sources the stream takes media from (:mod:`sbc.media.relay.stun_answer`):
the relay is no STUN reflector for strangers.

Towards a leg whose SDP carried ICE, the SBC is an ICE-lite agent (RFC 8445
§2.5): it sends no checks of its own and only answers the peer's
connectivity checks with :func:`answer_check`. Rules, in order (RFC 8445
§7.3, RFC 8489 §9.1.3 short-term credentials):

1. A malformed message (:mod:`sbc.media.relay.stun_message`) and anything
   but a Binding request (responses, indications, other methods) are
   dropped silently.
2. A request without both USERNAME and MESSAGE-INTEGRITY gets 400.
3. USERNAME must be ``<our ufrag>:<their ufrag>`` (RFC 8445 §7.2.2; the
   peer's ufrag is checked once its SDP is known) and MESSAGE-INTEGRITY must
   verify with *our* ice-pwd; otherwise 401. Neither error is signed, and
   neither is sent to a source the stream does not trust (``trusted``
   False): a check that proves nothing from a stranger is dropped, so the
   relay reflects nothing for whoever forges a source address.
4. A lite agent is always controlled (RFC 8445 §6.1.1), so a request that
   says ICE-CONTROLLED is a role conflict: 487, which tells a full agent to
   take the controlling role (§7.3.1.1).
5. Otherwise a success response with XOR-MAPPED-ADDRESS, MESSAGE-INTEGRITY
   (our ice-pwd) and FINGERPRINT. A check carrying USE-CANDIDATE nominates
   its source (§7.3.1.5): the caller latches media to it. A valid check is
   how a WebRTC peer's address becomes known, so it is answered whatever
   its source.

Every answer says why nothing is sent (:class:`Refusal`), for the counters.
Pure: bytes in, bytes out; our own parser reads, aioice's codec writes.

Not done yet: consent freshness (RFC 7675: media towards an ICE leg is not
stopped when its checks stop), answering checks with an unknown ufrag after
an ICE restart until the new SDP arrives (they get 401), and ICE over TCP.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import StrEnum

from aioice import stun

from sbc.media.relay.stun_message import (
    HEADER_LENGTH,
    MAGIC_COOKIE,
    BindingRequest,
    StunError,
    parse_binding_request,
)

STUN_HEADER_LENGTH = HEADER_LENGTH  # RFC 8489 §5
_COOKIE = struct.Struct("!I")

#: RFC 8489 §14.8 error codes, RFC 8445 §7.3.1.1 role conflict.
BAD_REQUEST = (400, "Bad Request")
UNAUTHORIZED = (401, "Unauthorized")
ROLE_CONFLICT = (487, "Role Conflict")

XOR_MAPPED_ADDRESS = "XOR-MAPPED-ADDRESS"
ERROR_CODE = "ERROR-CODE"


@dataclass(frozen=True, slots=True)
class IceLite:
    """Our side of one leg's ICE session: what checks must prove (RFC 8445 §7.2.2)."""

    ufrag: str
    password: bytes
    remote_ufrag: str | None = None  # None until the peer's SDP is known

    def accepts(self, username: str) -> bool:
        """USERNAME is ``<our ufrag>:<their ufrag>`` (RFC 8445 §7.2.2)."""
        ours, colon, theirs = username.partition(":")
        if ours != self.ufrag or not colon or not theirs:
            return False
        return self.remote_ufrag is None or theirs == self.remote_ufrag


class Refusal(StrEnum):
    """Why a STUN message gets no answer."""

    MALFORMED = "malformed"  # not STUN as RFC 8489 §5 and §14 write it
    IGNORED = "ignored"  # well-formed, not a Binding request (indications: ICE keepalives)
    REFUSED = "refused"  # a request not ours to answer: an untrusted source, no valid proof


@dataclass(frozen=True, slots=True)
class CheckAnswer:
    """What to do with a Binding request: send ``response``, or drop it for ``refusal``."""

    response: bytes | None
    nominated: bool = False  # valid, with USE-CANDIDATE: latch to its source
    refusal: Refusal | None = None


MALFORMED = CheckAnswer(None, refusal=Refusal.MALFORMED)
IGNORED = CheckAnswer(None, refusal=Refusal.IGNORED)
REFUSED = CheckAnswer(None, refusal=Refusal.REFUSED)


def is_stun(buf: bytes | bytearray | memoryview, length: int) -> bool:
    """First two bits zero and the magic cookie at offset 4 (RFC 8489 §5, RFC 7983 §7)."""
    return (
        length >= STUN_HEADER_LENGTH
        and buf[0] < 2
        and _COOKIE.unpack_from(buf, 4)[0] == MAGIC_COOKIE
    )


def _read(data: bytes) -> BindingRequest | CheckAnswer:
    """The Binding request, or the answer to a message that is none."""
    try:
        request = parse_binding_request(data)
    except StunError:
        return MALFORMED
    return IGNORED if request is None else request


def _reply(request: BindingRequest, message_class: stun.Class) -> stun.Message:
    return stun.Message(
        message_method=stun.Method.BINDING,
        message_class=message_class,
        transaction_id=request.transaction_id,
    )


def answer_binding(
    data: bytes, source: tuple[str, int], password: bytes | None = None
) -> CheckAnswer:
    """The success response to a Binding request from ``source``, or why none.

    Responses, indications, other methods, malformed messages and (with a
    password) requests failing MESSAGE-INTEGRITY are silently dropped
    (RFC 8489 §6.3.1, §9.1.3).
    """
    request = _read(data)
    if isinstance(request, CheckAnswer):
        return request
    if password is not None and not request.verifies(password):
        return REFUSED
    response = _reply(request, stun.Class.RESPONSE)
    response.attributes[XOR_MAPPED_ADDRESS] = source
    if password is not None:
        response.add_message_integrity(password)  # adds FINGERPRINT too
    else:
        response.add_fingerprint()
    return CheckAnswer(bytes(response))


def answer_check(
    data: bytes, source: tuple[str, int], ice: IceLite, *, trusted: bool
) -> CheckAnswer:
    """Answer an ICE connectivity check as a lite agent (rules 1-5 above);
    ``trusted``: the stream takes media from ``source`` (errors go back to it)."""
    request = _read(data)
    if isinstance(request, CheckAnswer):
        return request
    username = request.username
    if username is None or request.integrity is None:
        return _error(request, BAD_REQUEST, None) if trusted else REFUSED
    if not ice.accepts(username) or not request.verifies(ice.password):
        return _error(request, UNAUTHORIZED, None) if trusted else REFUSED
    if request.ice_controlled:
        return _error(request, ROLE_CONFLICT, ice.password)
    response = _reply(request, stun.Class.RESPONSE)
    response.attributes[XOR_MAPPED_ADDRESS] = source
    response.add_message_integrity(ice.password)  # adds FINGERPRINT too
    return CheckAnswer(bytes(response), nominated=request.use_candidate)


def _error(request: BindingRequest, error: tuple[int, str], password: bytes | None) -> CheckAnswer:
    """An error response; signed only when the request's integrity was verified."""
    response = _reply(request, stun.Class.ERROR)
    response.attributes[ERROR_CODE] = error
    if password is not None:
        response.add_message_integrity(password)
    else:
        response.add_fingerprint()
    return CheckAnswer(bytes(response))
