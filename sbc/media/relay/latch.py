"""Symmetric RTP / latching: learn where a NATed peer really sends from.

RFC 4961 (symmetric RTP) lets the relay answer a peer at the transport
address its packets come from, whatever its SDP says (RFC 7362 §4 calls
this "latching"). Rules, per socket (RTP, and RTCP when not rtcp-mux):

1. Before latching, send to the SDP address (``remote``).
2. Latch on the first packet from an allowed source: an IP in
   ``allowed_sources`` (the peer's SDP and SIP source addresses), or any
   source when ``latch_any``.
3. Once latched, packets from the latched address are accepted; a packet
   from another *allowed* address with a *different* SSRC re-latches (the
   stream was handed to another endpoint, e.g. after a transfer); anything
   else is dropped (and counted by the caller), which keeps a stray or
   spoofed source from hijacking the stream (RFC 7362 §5.3).

RTCP without rtcp-mux latches on its own socket; until it has, it follows
the RTP latch to ``port + 1`` (RFC 3550 §11), else the SDP's RTCP address.
Pure: no sockets, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable

Address = tuple[str, int]
NO_SSRC = -1


class Latch:
    """The learnt source of one peer socket, and where to send to it."""

    __slots__ = ("allowed", "destination", "latch_any", "latched", "remote", "ssrc")

    def __init__(
        self,
        remote: Address | None = None,
        allowed: Iterable[str] = (),
        latch_any: bool = False,
    ) -> None:
        self.remote = remote
        self.allowed = frozenset(allowed)
        self.latch_any = latch_any
        self.latched: Address | None = None
        self.ssrc = NO_SSRC
        self.destination: Address | None = remote  # latched, else remote

    def configure(self, remote: Address | None, allowed: Iterable[str], latch_any: bool) -> None:
        """Apply a new SDP address / policy; an existing latch is kept."""
        self.remote = remote
        self.allowed = frozenset(allowed)
        self.latch_any = latch_any
        self.destination = self.latched if self.latched is not None else remote

    def may_latch(self, source: Address) -> bool:
        return self.latch_any or source[0] in self.allowed

    def admits(self, source: Address) -> bool:
        """A source this socket takes packets from: the latched one, or one it may latch.

        What the relay answers (STUN) or handshakes with (DTLS) beyond media:
        a stranger, or a spoofed source, gets nothing sent back."""
        return source == self.latched or self.may_latch(source)

    def accept(self, source: Address, ssrc: int = NO_SSRC) -> bool:
        """Should a packet from ``source`` carrying ``ssrc`` be relayed? Latches as needed."""
        if source == self.latched:
            self.ssrc = ssrc
            return True
        if not self.may_latch(source):
            return False
        if self.latched is not None and ssrc == self.ssrc:
            return False  # same stream from a second address: not a transfer
        self.latched = source
        self.ssrc = ssrc
        self.destination = source
        return True


def rtcp_destination(rtcp: Latch, rtp: Latch) -> Address | None:
    """Where to send RTCP without rtcp-mux (RFC 3550 §11: RTP port + 1 by default)."""
    if rtcp.latched is not None:
        return rtcp.latched
    if rtp.latched is not None:
        return (rtp.latched[0], rtp.latched[1] + 1)
    return rtcp.remote
