"""The per-call needles: what names a call's other leg on the wire.

Static needles (:mod:`sbc.b2bua.leaks.needles`) cannot know the other leg's
dialog: its Call-ID, the two tags, the branch of its INVITE, and where its
peer really is (the address a phone or a NATed trunk was observed at, which
no policy file names). The fast path tests them with ``in``, as bytes kept
on the sending leg until what they were read from changes (an answer, a
fork, a failover, a policy reload); a candidate's slow path reads them again,
paired by role with this leg's own values, which scrub writes in their place
(the other leg's Call-ID becomes this leg's).
Identifiers shorter than :data:`MIN_ID` are skipped: a two-letter tag would
match everywhere, and says next to nothing about the other side.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TypeGuard

from sbc.b2bua.call import Call
from sbc.b2bua.leaks.needles import Edge, Needle, NeedleSet, Topology, host_needles
from sbc.b2bua.leg import Side
from sbc.sip.dialog import Dialog
from sbc.sip.errors import ParseError
from sbc.sip.message import Request
from sbc.sip.target import Target

#: RFC 3261 §19.3 asks for 32 random bits in a tag: 6 characters at least.
MIN_ID = 6
#: Written for an identifier this leg has no counterpart of yet (a token).
UNKNOWN_ID = "hidden"
#: RFC 3261 §20.42: the branch parameter of the first Via value.
_BRANCH = re.compile(r";\s*branch\s*=\s*([^;,\s]+)", re.IGNORECASE)


class CallIds:
    """One call as seen from the leg a message leaves on, read when asked: the
    fast path needs only the other leg's values, the pairing is for the slow one."""

    __slots__ = ("call", "side")

    def __init__(self, call: Call, side: Side) -> None:
        self.call = call
        self.side = side

    @property
    def caller_leg(self) -> bool:
        """The A-leg: its dialog's From/To URIs are the ones the caller chose."""
        return self.side is Side.A

    def fast(self, topology: Topology, egress: str) -> tuple[NeedleSet, tuple[bytes, ...]]:
        """What the fast path needs: the static needles for this pair of sides, and
        the other leg's identifiers and peer addresses (unless ``egress`` owns
        them) to test with ``in``. Kept on the sending leg until what they were
        read from changes (an answer, a fork, a failover, a policy reload)."""
        call, side = self.call, self.side
        this, other = (call.a, call.b) if side is Side.A else (call.b, call.a)
        invite = call.b_invite or call.b_invite_pending if side is Side.A else call.a_invite
        dialog = other.dialog
        memo = this.leak_probes
        if (
            isinstance(memo, _Probes)
            and memo.invite is invite
            and memo.dialog is dialog
            and (dialog is None or memo.tag is dialog.remote_tag)
            and memo.observed is other.observed
            and memo.here is this.observed
            and memo.topology is topology
        ):
            return memo.needles, memo.probes
        own = topology.own_hosts(egress)
        found = [i.encode() for i in _leg_ids(call, side.other) if _usable(i)]
        found.extend(host.encode() for host in self._hosts(own))
        needles = topology.needles(other.interface.name, egress)
        this.leak_probes = _Probes(
            invite,
            dialog,
            dialog.remote_tag if dialog is not None else None,
            other.observed,
            this.observed,
            topology,
            needles,
            tuple(found),
        )
        return needles, tuple(found)

    def needles(self, own: frozenset[str], replacement: str) -> list[Needle]:
        """Each identifier with this leg's own of the same role, each peer address
        with ``replacement``."""
        mine = _leg_ids(self.call, self.side)
        theirs = _leg_ids(self.call, self.side.other)
        needles = [
            Needle(t.encode(), (m or UNKNOWN_ID).encode(), Edge.TOKEN)
            for t, m in zip(theirs, mine, strict=True)
            if _usable(t) and t != m
        ]
        for host in self._hosts(own):
            needles.extend(host_needles(host, replacement))
        return needles

    def _hosts(self, own: frozenset[str]) -> list[str]:
        """Where the other leg's peer is (configured, observed), unless this side
        names itself so or this leg's peer is there too. Sources come from sockets
        and trunk addresses from the policy: both are canonical already."""
        this, other = self.call.leg(self.side), self.call.leg(self.side.other)
        hosts = [other.peer.host]
        if other.observed is not None and other.observed.host != other.peer.host:
            hosts.append(other.observed.host)
        here = this.observed.host if this.observed is not None else this.peer.host
        return [h for h in hosts if h not in own and h not in (here, this.peer.host)]


def call_ids(call: Call, side: Side) -> CallIds:
    """The other leg of ``call`` as needles for a message sent on ``side``."""
    return CallIds(call, side)


def _usable(identifier: str | None) -> TypeGuard[str]:
    return identifier is not None and len(identifier) >= MIN_ID


@dataclass(frozen=True, slots=True)
class _Probes:
    """A sending leg's fast-path needles, and the other leg's state they were read
    from, compared by identity (a value replaced by an equal one costs one more
    read). Never the other leg itself: the two legs would hold each other in a
    cycle, and an ended call must be freed by reference counting. A failover's
    new leg comes with a new INVITE."""

    invite: Request | None
    dialog: Dialog | None
    tag: str | None
    observed: Target | None
    here: Target | None  # this leg's observed peer: never a needle here
    topology: Topology
    needles: NeedleSet
    probes: tuple[bytes, ...]


def _invite(call: Call, side: Side) -> Request | None:
    return call.a_invite if side is Side.A else call.b_invite or call.b_invite_pending


def _leg_ids(call: Call, side: Side) -> tuple[str | None, str | None, str | None, str | None]:
    """(Call-ID, our tag, the peer's tag, the INVITE's top branch) of one leg."""
    leg = call.leg(side)
    invite = _invite(call, side)
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
    """The top Via's branch, read from the text (parsing every Via again costs
    more); the regular expression only for spellings with spaces or capitals."""
    via = invite.headers.get("Via") if invite is not None else None
    if not via:
        return None
    first = via.split(",", 1)[0]
    start = first.find(";branch=")
    if start >= 0:
        value = first[start + 8 :].split(";", 1)[0].strip()
        return value or None
    found = _BRANCH.search(first)
    return found.group(1) if found else None
