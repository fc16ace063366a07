"""STUN answered on a relay socket: a plain Binding, or an ICE-lite check.

A STUN Binding request (RFC 8489 §6.3) on a relay socket is answered on
the socket it came in on, to its source, when the socket takes media from
that source (:meth:`~sbc.media.relay.latch.Latch.admits`: the latched
source, the peer's SDP or signalling IP, anyone with ``latch_any``);
from anyone else a plain Binding request is dropped unread, so the relay
reflects nothing to a forged source. On a side whose peer does ICE
(the side has :class:`~sbc.media.relay.stun.IceLite` credentials) it is a
connectivity check, answered as an ICE-lite agent (RFC 8445 §7.3); a
nominated one (USE-CANDIDATE) latches that socket to its source (RFC 8445
§7.3.1.5, §8.1.1). The STUN parsing and building is pure
(:mod:`sbc.media.relay.stun`); this module only sends, latches and counts
what it drops: ``stun_malformed`` (does not parse), ``stun_refused`` (not
ours to answer), ``dropped`` (well-formed but no request: indications).
"""

from __future__ import annotations

import socket

from sbc.media.relay.latch import NO_SSRC, Address, Latch
from sbc.media.relay.side import Side
from sbc.media.relay.stats import DirectionCounter
from sbc.media.relay.stun import Refusal, answer_binding, answer_check


def answer_stun(
    side: Side, sock: socket.socket, data: bytes, source: Address, latch: Latch
) -> None:
    """Answer a Binding request on ``sock``: a plain one, or an ICE check (RFC 8445 §7.3)."""
    counter = side.counter
    trusted = latch.admits(source)
    if side.ice is None:
        if not trusted:
            counter.stun_refused += 1  # not even parsed
            return
        answer = answer_binding(data, source)
    else:
        answer = answer_check(data, source, side.ice, trusted=trusted)
        if answer.nominated:
            _nominate(latch, source)
    if answer.response is None:
        _count(counter, answer.refusal)
        return
    try:
        sock.sendto(answer.response, source)
    except OSError:
        counter.dropped += 1


def _count(counter: DirectionCounter, refusal: Refusal | None) -> None:
    if refusal is Refusal.MALFORMED:
        counter.stun_malformed += 1
    elif refusal is Refusal.REFUSED:
        counter.stun_refused += 1
    else:
        counter.dropped += 1


def _nominate(latch: Latch, source: Address) -> None:
    """ICE nomination decides the path (RFC 8445 §8.1.1): media goes to ``source``.

    The check proved our ice-pwd, so the source need not be an allowed one;
    the next RTP from it sets the SSRC.
    """
    if latch.latched != source:
        latch.latched = source
        latch.ssrc = NO_SSRC
        latch.destination = source
