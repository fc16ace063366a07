"""The leak guard: a last check that nothing of one side leaves by another.

Topology hiding is done by building each leg fresh and rewriting what
crosses (:mod:`sbc.b2bua.headers`, :mod:`sbc.b2bua.identity`, the media
anchor); this module checks the result. Every message the core sends —
requests, responses, ACKs, its own probes and registrations, stateless
answers — passes :meth:`LeakGuard.screen` (or :meth:`LeakGuard.screen_wire`)
once, after the policy's manipulation rules ran and before the transaction
layer stores the bytes, so retransmissions re-send what was checked.

What it looks for (docs/security.md, "Leak guard"):

- the other side's addresses, host names and ``address:port`` pairs, from
  the policy, compiled per interface pair (:mod:`sbc.b2bua.leaks.needles`);
- for a call's message, the other leg's Call-ID, tags, INVITE branch and its
  peer's configured and observed address (:mod:`sbc.b2bua.leaks.ids`);

anywhere in the message: start line, every header, every body (SDP,
sipfrag, INFO/MESSAGE text, each part of a multipart body). Addresses and
names are exempt where what is there came from the very peer it goes back
to: the Via, From, To, Call-ID and CSeq of a response, copied from the
request it answers (RFC 3261 §8.2.6.2), and the From and To of a request on
a call's A-leg, which are the URIs the caller chose for its dialog (§12.1.1;
a PBX that puts the SBC's public address in its From gets it back). An
identifier in From or To is never exempt (the tags are there). SDP is
exempt when media is not anchored (``media.anchor: false`` sends the
peers' SDP across by design). Digest credentials and challenges are never
checked: the registration relay passes them between a phone and its
registrar as they are, and a digest covers them.

Cost: the message is serialized here, once — the transaction layer sends
and retransmits these very bytes — then one automaton pass and a few ``in``
tests for the call's identifiers; only a candidate goes on to the slow path
(:mod:`sbc.b2bua.leaks.scan`).

On a hit, each part is counted (``sbc_topology_leaks_total{header,action}``;
``header`` is the header name, ``start-line``, or the body's content type),
logged by name only — never the value — on the 1st, 2nd, 4th, 8th...
occurrence per part and interface, and the policy's ``topology.leak_guard``
decides:

- ``auto`` (default): scrub if every hit is in a body or in a header the SBC
  may rewrite; block if one is in the start line or a header the SBC owns on
  each leg (Via, Route, Record-Route, Contact — but a 3xx's Contact is the
  relayed redirect target, rewritable —, Call-ID, CSeq, From, To,
  Max-Forwards);
- ``scrub``: rewrite every hit; ``block``: never send; ``log``: send as is;
- ``off``: no check at all (to measure what the guard costs).

Scrub writes the egress interface's advertised address (with its port for an
``address:port``) and, for identifiers, this leg's own of the same role;
serialization recomputes Content-Length, and multipart parts that carry one
get theirs fixed. A scrubbed message is checked again and blocked if
anything is left. What "block" does to the message is the core's business
(:mod:`sbc.b2bua.core`): the guard answers with the bytes to send, or None.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Callable

import structlog

from sbc.b2bua.leaks.ids import CallIds
from sbc.b2bua.leaks.multipart import fix_part_lengths
from sbc.b2bua.leaks.needles import Edge, Needle, Topology
from sbc.b2bua.leaks.scan import BODY, START_LINE, body_start, find, scrub, scrub_text, where
from sbc.policy import Policy
from sbc.policy.schema import SBC_OWNED_HEADERS
from sbc.sip.errors import ParseError
from sbc.sip.headers import canonical_name
from sbc.sip.message import Message, Request, Response, parse_message
from sbc.sip.uri import parse_uri

log = structlog.get_logger("sbc.leaks")


class Mode(enum.Enum):
    AUTO = "auto"
    SCRUB = "scrub"
    BLOCK = "block"
    LOG = "log"
    OFF = "off"


#: Not rewritten under ``auto``: they route, match or authenticate the message.
PROTECTED = SBC_OWNED_HEADERS | {START_LINE}
#: Digest credentials and challenges, relayed as they are between a phone and its
#: registrar by the registration relay: a digest covers them (RFC 3261 §22.4), so
#: they cannot be rewritten, and what they name (a realm, the URI the phone
#: addressed) is the phone's and the registrar's own business. Never checked.
DIGEST = frozenset(
    canonical_name(name)
    for name in (
        "Authorization",
        "Proxy-Authorization",
        "WWW-Authenticate",
        "Proxy-Authenticate",
        "Authentication-Info",
    )
)
#: A response copies these from the request it answers (RFC 3261 §8.2.6.2).
ECHOED = frozenset(canonical_name(n) for n in ("Via", "From", "To", "Call-ID", "CSeq"))
#: Requests on the A-leg: the dialog URIs are the caller's (RFC 3261 §12.1.1).
CALLER_URIS = frozenset(("From", "To"))
#: Body labels: known content types; anything else is counted as ``body``.
BODY_TYPES = frozenset(
    (
        "application/sdp",
        "message/sipfrag",
        "message/sip",
        "multipart/mixed",
        "multipart/alternative",
        "multipart/related",
        "text/plain",
        "application/dtmf-relay",
        "application/dtmf",
        "application/pidf+xml",
        "application/isup",
    )
)
_SDP = "application/sdp"
#: Distinct label pairs kept; header names come from the policy, but bound them.
MAX_LABELS = 256


class LeakGuard:
    """Checks outgoing messages against one policy's topology (see module doc)."""

    __slots__ = ("_seen", "check_sdp", "counts", "mode", "topology")

    def __init__(self, policy: Policy, *, check_sdp: Callable[[], bool] = lambda: True) -> None:
        self.check_sdp = check_sdp  # False while media is not anchored (asked on hits only)
        self.counts: dict[tuple[str, str], int] = {}  # (part, action) -> messages
        self._seen: dict[tuple[str, str], int] = {}  # (part, interface) -> hits, for logs
        self.set_policy(policy)

    def set_policy(self, policy: Policy) -> None:
        """Compile the new policy's needle sets (hot reload); counts are kept."""
        self.mode = Mode(policy.settings.topology.leak_guard)
        self.topology = Topology(policy)

    # --- the check -----------------------------------------------------------------

    def screen(self, message: Message, egress: str, ids: CallIds | None = None) -> bytes | None:
        """The bytes to send for ``message`` leaving by ``egress`` (scrubbed in place
        first if it must be), or None: it must not leave. The caller hands these
        bytes to the transaction layer, so what is checked is what is sent."""
        data = message.serialize()
        if self.mode is Mode.OFF:
            return data
        if ids is None:
            static = self.topology.needles(None, egress)
            if not static.suspects(data):
                return data
        else:
            static, probes = ids.fast(self.topology, egress)
            if not static.suspects(data) and not any(p in data for p in probes):
                return data
        needles = list(static.needles)
        if ids is not None:
            own = self.topology.own_hosts(egress)
            needles.extend(ids.needles(own, self.topology.replacement(egress)))
            needles.sort(key=lambda n: -len(n.text))
        return self._judge(message, data, egress, needles, ids)

    def screen_wire(self, data: bytes, egress: str) -> bytes | None:
        """:meth:`screen` for bytes sent without a transaction (stateless answers):
        the bytes to send, or None. What cannot be parsed back is not sent."""
        if self.mode is Mode.OFF or not self.topology.needles(None, egress).suspects(data):
            return data
        try:
            message = parse_message(data)
        except ParseError:
            message = None
        if message is None:  # e.g. a 400 echoing a broken header
            action = "logged" if self.mode is Mode.LOG else "blocked"
            self._count(["unparsed"], egress, action)
            return data if action == "logged" else None
        needles = list(self.topology.needles(None, egress).needles)
        return self._judge(message, data, egress, needles)

    # --- the slow path: confirmed hits ---------------------------------------------

    def _judge(
        self,
        message: Message,
        data: bytes,
        egress: str,
        needles: list[Needle],
        ids: CallIds | None = None,
    ) -> bytes | None:
        echoed = _echoed(message, ids)
        parts = self._parts(message, data, needles, echoed)
        if not parts:
            return data  # a candidate only, or an echo
        action = self._action(parts, message)
        self._count(sorted({_label(message, part) for part in parts}), egress, action)
        if action == "logged":
            return data
        if action == "blocked":
            return None
        _scrub(message, parts, needles)
        # Whatever could not be cleaned (a URI scrub that would not parse) is never sent.
        data = message.serialize()
        return None if self._parts(message, data, needles, echoed) else data

    def _parts(
        self, message: Message, data: bytes, needles: list[Needle], echoed: frozenset[str]
    ) -> set[str]:
        """The parts of ``message`` (header names, START_LINE, BODY) with a real hit
        (not in an ``echoed`` header, unless it is an identifier in From or To)."""
        start = body_start(data)
        parts: set[str] = set()
        for hit in find(data, needles):
            part = where(data, start, hit.start)
            if part in echoed and not (part in CALLER_URIS and hit.needle.edge is Edge.TOKEN):
                continue
            if part == BODY and message.content_type == _SDP and not self.check_sdp():
                continue
            parts.add(part)
        return parts

    def _action(self, parts: set[str], message: Message) -> str:
        mode = self.mode
        if mode is Mode.LOG:
            return "logged"
        if mode is Mode.BLOCK or (mode is Mode.AUTO and parts & _protected(message)):
            return "blocked"
        return "scrubbed"

    def _count(self, parts: list[str], egress: str, action: str) -> None:
        for part in parts:
            key = (part, action)
            if key not in self.counts and len(self.counts) >= MAX_LABELS:
                key = ("other", action)
            self.counts[key] = self.counts.get(key, 0) + 1
            seen = self._seen.get((part, egress), 0) + 1
            if len(self._seen) < MAX_LABELS or (part, egress) in self._seen:
                self._seen[(part, egress)] = seen
            if seen & (seen - 1) == 0:  # 1, 2, 4, 8...: a flood logs log2(n) lines
                log.warning(
                    "topology.leak", header=part, interface=egress, action=action, count=seen
                )


def _label(message: Message, part: str) -> str:
    """The metric label of a part: a body is named by its content type if known."""
    if part != BODY:
        return part
    content_type = message.content_type or ""
    return content_type if content_type in BODY_TYPES else BODY


def _protected(message: Message) -> frozenset[str]:
    """What ``auto`` never rewrites in ``message``. The Contact of a 3xx is the
    redirect target relayed from the other leg (RFC 3261 §21.3), not the SBC's
    own: an internal one becomes the SBC's address, so the redirected call
    comes back through the SBC, which the caller can reach."""
    if isinstance(message, Response) and 300 <= message.status < 400:
        return PROTECTED - {"Contact"}
    return PROTECTED


def _echoed(message: Message, ids: CallIds | None) -> frozenset[str]:
    """The headers of ``message`` not checked: those that carry what its recipient
    sent us itself, and digest credentials or challenges."""
    if isinstance(message, Response):
        return ECHOED | DIGEST
    return CALLER_URIS | DIGEST if ids is not None and ids.caller_leg else DIGEST


def _scrub(message: Message, parts: set[str], needles: list[Needle]) -> None:
    for part in parts:
        if part == BODY:
            body = scrub(message.body, needles)
            content_type = message.headers.get("Content-Type") or ""
            message.body = fix_part_lengths(body, content_type)
        elif part == START_LINE:
            _scrub_start_line(message, needles)
        else:
            values = [scrub_text(v, needles) for v in message.headers.get_all(part)]
            message.headers.replace_values(part, values)


def _scrub_start_line(message: Message, needles: list[Needle]) -> None:
    if isinstance(message, Request):
        with contextlib.suppress(ParseError):  # left as it is: blocked after the re-check
            message.uri = parse_uri(scrub_text(str(message.uri), needles))
    elif isinstance(message, Response):
        message.reason = scrub_text(message.reason, needles)


__all__ = ["LeakGuard", "Mode"]
