"""The per-call needles: what names a call's other leg on the wire.

Static needles (:mod:`sbc.b2bua.leaks.needles`) cannot know the other leg's
dialog: its Call-ID, the two tags, the branch of its INVITE, and where its
peer really is (the address a phone or a NATed trunk was observed at, which
no policy file names). They are read from the call each time one of its
messages leaves, paired by role with this leg's own values, which scrub
writes in their place (the other leg's Call-ID becomes this leg's).
Identifiers shorter than :data:`MIN_ID` are skipped: a two-letter tag would
match everywhere, and says next to nothing about the other side.
"""

from __future__ import annotations

from dataclasses import dataclass

from sbc.b2bua.call import Call
from sbc.b2bua.leaks.needles import Edge, Needle, canonical, host_needles
from sbc.b2bua.leg import Side
from sbc.sip.errors import ParseError
from sbc.sip.message import Request

#: RFC 3261 §19.3 asks for 32 random bits in a tag: 6 characters at least.
MIN_ID = 6
#: Written for an identifier this leg has no counterpart of yet (a token).
UNKNOWN_ID = "hidden"


@dataclass(frozen=True, slots=True)
class CallIds:
    """One call as seen from the leg a message leaves on."""

    other_interface: str  # where the other leg is: picks the static needle set
    pairs: tuple[tuple[str, str], ...]  # (other leg's identifier, this leg's of the same role)
    hosts: tuple[str, ...]  # the other leg's peer: configured and observed address
    caller_leg: bool  # the A-leg: its dialog's From/To URIs are the ones the caller chose

    def probes(self, own: frozenset[str]) -> list[bytes]:
        """What the fast path tests with ``in``: identifiers and hosts not ``own``."""
        found = [theirs.encode() for theirs, _ in self.pairs]
        found.extend(host.encode() for host in self.hosts if host not in own)
        return found

    def needles(self, own: frozenset[str], replacement: str) -> list[Needle]:
        needles = [
            Needle(theirs.encode(), mine.encode(), Edge.TOKEN) for theirs, mine in self.pairs
        ]
        for host in self.hosts:
            if host not in own:
                needles.extend(host_needles(host, replacement))
        return needles


def call_ids(call: Call, side: Side) -> CallIds:
    """The other leg of ``call`` as needles for a message sent on ``side``."""
    this, other = call.leg(side), call.leg(side.other)
    mine, theirs = _leg_ids(call, side), _leg_ids(call, side.other)
    pairs = tuple(
        (t, m or UNKNOWN_ID)
        for t, m in zip(theirs, mine, strict=True)
        if t is not None and len(t) >= MIN_ID and t != m
    )
    here = {this.peer.host, this.observed.host if this.observed is not None else this.peer.host}
    seen = {other.peer.host, other.observed.host if other.observed is not None else ""}
    hosts = tuple(canonical(h) for h in seen - here if h)
    return CallIds(other.interface.name, pairs, hosts, side is Side.A)


def _leg_ids(call: Call, side: Side) -> tuple[str | None, str | None, str | None, str | None]:
    """(Call-ID, our tag, the peer's tag, the INVITE's top branch) of one leg."""
    leg = call.leg(side)
    invite = call.a_invite if side is Side.A else call.b_invite or call.b_invite_pending
    dialog = leg.dialog
    if dialog is not None:
        return dialog.call_id, dialog.local_tag, dialog.remote_tag, _branch(invite)
    if invite is None:
        return None, None, None, None
    try:
        return invite.call_id, invite.from_.tag, None, _branch(invite)
    except ParseError:
        return None, None, None, None


def _branch(invite: Request | None) -> str | None:
    if invite is None:
        return None
    try:
        return invite.top_via.branch
    except ParseError:
        return None
