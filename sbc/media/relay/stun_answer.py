"""STUN answered on a relay socket: a plain Binding, or an ICE-lite check.

A STUN Binding request (RFC 8489 §6.3) on a relay socket is answered on
the socket it came in on, to its source. On a side whose peer does ICE
(the side has :class:`~sbc.media.relay.stun.IceLite` credentials) it is a
connectivity check, answered as an ICE-lite agent (RFC 8445 §7.3); a
nominated one (USE-CANDIDATE) latches that socket to its source (RFC 8445
§7.3.1.5, §8.1.1). The STUN parsing and building is pure
(:mod:`sbc.media.relay.stun`); this module only sends and latches.
"""

from __future__ import annotations

import socket

from sbc.media.relay.latch import NO_SSRC, Address, Latch
from sbc.media.relay.side import Side
from sbc.media.relay.stun import answer_binding, answer_check


def answer_stun(
    side: Side, sock: socket.socket, data: bytes, source: Address, latch: Latch
) -> None:
    """Answer a Binding request on ``sock``: a plain one, or an ICE check (RFC 8445 §7.3)."""
    if side.ice is None:
        response = answer_binding(data, source)
    else:
        answer = answer_check(data, source, side.ice)
        response = answer.response
        if answer.nominated:
            _nominate(latch, source)
    if response is None:
        side.counter.dropped += 1
        return
    try:
        sock.sendto(response, source)
    except OSError:
        side.counter.dropped += 1


def _nominate(latch: Latch, source: Address) -> None:
    """ICE nomination decides the path (RFC 8445 §8.1.1): media goes to ``source``.

    The check proved our ice-pwd, so the source need not be an allowed one;
    the next RTP from it sets the SSRC.
    """
    if latch.latched != source:
        latch.latched = source
        latch.ssrc = NO_SSRC
        latch.destination = source
