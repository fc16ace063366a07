"""STUN Binding answers on relay ports (RFC 5389 §7.3, §15.2; RFC 8445 §7.3).

A peer doing ICE connectivity checks, or just probing its NAT mapping, sends
a Binding request to the relay's RTP port; the relay answers with a success
response carrying XOR-MAPPED-ADDRESS (the request's source, RFC 5389 §15.2)
and FINGERPRINT (§15.5). With a ``password`` (the SBC's ICE password for the
stream, RFC 8445 §7.2.2) the request's MESSAGE-INTEGRITY is checked first
(short-term credentials, RFC 5389 §10.1) and the answer is signed with it;
without one a plain answer is given. Encoding is aioice's STUN codec.

Missing for ICE-lite (RFC 8445 §2.5), to come with ICE credentials on the
SideSpec: USERNAME checking (``local_ufrag:remote_ufrag``), 400/401/487
error responses (role conflict, ICE-CONTROLLING/CONTROLLED tie-breaking),
USE-CANDIDATE nomination feeding the latch, and consent freshness (RFC 7675).
"""

from __future__ import annotations

import struct

from aioice import stun

STUN_HEADER_LENGTH = 20  # RFC 5389 §6
MAGIC_COOKIE = stun.COOKIE  # 0x2112A442
_COOKIE = struct.Struct("!I")


def is_stun(buf: bytes | bytearray | memoryview, length: int) -> bool:
    """First two bits zero and the magic cookie at offset 4 (RFC 5389 §6, RFC 7983 §7)."""
    return (
        length >= STUN_HEADER_LENGTH
        and buf[0] < 2
        and _COOKIE.unpack_from(buf, 4)[0] == MAGIC_COOKIE
    )


def answer_binding(
    data: bytes, source: tuple[str, int], password: bytes | None = None
) -> bytes | None:
    """The success response to a Binding request from ``source``, or None to drop it.

    Responses, indications, other methods, malformed messages and (with a
    password) requests failing MESSAGE-INTEGRITY are silently dropped
    (RFC 5389 §7.3, §10.1.3).
    """
    try:
        request = stun.parse_message(data)
    except ValueError:
        return None
    if request.message_method != stun.Method.BINDING or request.message_class != stun.Class.REQUEST:
        return None
    if password is not None and not request.check_message_integrity(password):
        return None
    response = stun.Message(
        message_method=stun.Method.BINDING,
        message_class=stun.Class.RESPONSE,
        transaction_id=request.transaction_id,
    )
    response.attributes["XOR-MAPPED-ADDRESS"] = source
    if password is not None:
        response.add_message_integrity(password)  # adds FINGERPRINT too
    else:
        response.add_fingerprint()
    return bytes(response)
