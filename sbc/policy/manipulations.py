"""Header normalization: compiled manipulation rules applied to SIP messages.

:func:`compile_manipulations` turns a validated ``manipulations.yaml`` into a
:class:`Manipulations`: per ``(trunk, direction)`` a tuple of rules whose
regexes are compiled (RE2, linear in the subject: :mod:`sbc.policy.regex`) and
whose value templates and replacements are pre-split, so applying them does no
parsing of policy text. A message for a trunk and direction
without rules costs one dict lookup.

Rules run in order, each on the message as the rules before left it. A rule
applies when its conditions hold; it counts as applied when its action
changed the message. Hostile input never raises: a rule that needs a part
the message lacks or that does not parse (a From that is not an address, a
``urn:`` Request-URI without a user part) is skipped. Objects the message shares
(its URI, its parsed From/To) are replaced, never mutated; header edits go
through :class:`~sbc.sip.headers.Headers`, which drops its parsed views.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal, Protocol
from urllib.parse import unquote

from sbc.policy.manipulation_schema import (
    AddHeader,
    Direction,
    HeaderMatch,
    ManipulationsFile,
    RemoveHeader,
    ReplaceHeader,
    RewriteHeader,
    RewriteUser,
    Rule,
    UserTarget,
    parse_template,
)
from sbc.policy.refs import Reference
from sbc.policy.regex import LinearRegex, Replacement, compile_regex
from sbc.sip.address import Address
from sbc.sip.errors import ParseError
from sbc.sip.message import Request, Response
from sbc.sip.uri import SipUri, TelUri, Uri, parse_uri

__all__ = [
    "Action",
    "CompiledRule",
    "Condition",
    "Direction",
    "Manipulations",
    "compile_manipulations",
    "manipulation_references",
]

Message = Request | Response

# RFC 3261 §25.1: user = 1*( unreserved / escaped / user-unreserved ).
_USER_SAFE = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    "-_.!~*'()"  # mark
    "&=+$,;?/"  # user-unreserved
)
# RFC 3261 §20.10: an addr-spec with these must be put in <> to stay one URI.
_NEEDS_BRACKETS = frozenset(",;?")
_INJECTION = frozenset("\r\n\x00")


# --- the parts of a message rules read -------------------------------------------


def user_of(message: Message, target: UserTarget) -> str | None:
    """The user part (escaped, as on the wire) of the Request-URI, From or To.

    None when the message has no such part or it does not parse.
    """
    if target == "ruri":
        return message.uri.user if isinstance(message, Request) else None
    address = _address_of(message, target)
    return address.uri.user if address is not None else None


def _address_of(message: Message, target: UserTarget) -> Address | None:
    try:
        return message.from_ if target == "from" else message.to
    except ParseError:
        return None


def _method_of(message: Message) -> str | None:
    """The request's method; for a response its CSeq method (RFC 3261 §8.1.1.5)."""
    if isinstance(message, Request):
        return message.method
    try:
        return message.cseq.method
    except ParseError:
        return None


def escape_user(user: str) -> str:
    """Percent-encode what RFC 3261 §25.1 does not allow in a URI user part."""
    if all(ch in _USER_SAFE for ch in user):
        return user
    out: list[str] = []
    for ch in user:
        if ch in _USER_SAFE:
            out.append(ch)
        else:
            out.extend(f"%{byte:02X}" for byte in _utf8(ch))
    return "".join(out)


def _utf8(ch: str) -> bytes:
    """The octets of ``ch``; a surrogate from undecodable input gives its byte back."""
    try:
        return ch.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate no decoder made: keep it visible
        return ch.encode("utf-8", "surrogatepass")


def unescape_user(user: str) -> str:
    """Undo %HH escapes; bytes that are not UTF-8 survive a round trip."""
    return unquote(user, errors="surrogateescape") if "%" in user else user


# --- values ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UserRef:
    """Where a template inserts a user part (``{ruri_user}``, ``{from_user}``…)."""

    target: UserTarget


_USER_REFS: dict[str, UserRef] = {
    "ruri_user": UserRef("ruri"),
    "from_user": UserRef("from"),
    "to_user": UserRef("to"),
}


@dataclass(frozen=True, slots=True)
class Template:
    """A header value with ``{placeholders}``; ``{trunk}`` is filled in at load."""

    parts: tuple[str | UserRef, ...]

    @classmethod
    def compile(cls, text: str, trunk: str) -> Template:
        parts: list[str | UserRef] = []
        for part in parse_template(text):
            piece = part if isinstance(part, str) else _USER_REFS.get(part.name, trunk)
            if isinstance(piece, str) and parts and isinstance(parts[-1], str):
                parts[-1] += piece  # keep literal text in one piece
            else:
                parts.append(piece)
        return cls(tuple(parts))

    def render(self, message: Message) -> str | None:
        """The value for ``message``, or None if a placeholder has nothing to insert."""
        if len(self.parts) == 1 and isinstance(self.parts[0], str):
            return self.parts[0]
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            user = user_of(message, part.target)
            if user is None:
                return None
            out.append(user)
        return "".join(out)


# --- conditions ----------------------------------------------------------------


class Condition(Protocol):
    """A test on the message a rule must pass (all of a rule's conditions must)."""

    def holds(self, message: Message) -> bool: ...


@dataclass(frozen=True, slots=True)
class HeaderPresent:
    name: str

    def holds(self, message: Message) -> bool:
        return message.headers.get(self.name) is not None


@dataclass(frozen=True, slots=True)
class HeaderAbsent:
    name: str

    def holds(self, message: Message) -> bool:
        return message.headers.get(self.name) is None


@dataclass(frozen=True, slots=True)
class HeaderMatches:
    """Some line of the header matches (``re.search``); an absent header does not."""

    name: str
    pattern: LinearRegex

    def holds(self, message: Message) -> bool:
        return any(self.pattern.search(line) for line in message.headers.get_all(self.name))


# --- actions -------------------------------------------------------------------


class Action(Protocol):
    """What a rule does; returns True when it changed the message."""

    def apply(self, message: Message) -> bool: ...


@dataclass(frozen=True, slots=True)
class AddLine:
    name: str
    value: Template
    first: bool

    def apply(self, message: Message) -> bool:
        value = self.value.render(message)
        if value is None:
            return False
        if self.first:
            message.headers.prepend(self.name, value)
        else:
            message.headers.add(self.name, value)
        return True


@dataclass(frozen=True, slots=True)
class RemoveLines:
    name: str

    def apply(self, message: Message) -> bool:
        if message.headers.get(self.name) is None:
            return False  # remove() would drop the parsed views even for nothing
        return message.headers.remove(self.name) > 0


@dataclass(frozen=True, slots=True)
class RemovePrefixed:
    """Remove every header whose name starts with ``prefix`` (lower-case)."""

    prefix: str

    def apply(self, message: Message) -> bool:
        names = {name for name, _ in message.headers if name.lower().startswith(self.prefix)}
        for name in names:
            message.headers.remove(name)
        return bool(names)


@dataclass(frozen=True, slots=True)
class SetLine:
    name: str
    value: Template

    def apply(self, message: Message) -> bool:
        value = self.value.render(message)
        if value is None:
            return False
        message.headers.set(self.name, value)
        return True


@dataclass(frozen=True, slots=True)
class RewriteLines:
    name: str
    pattern: LinearRegex
    replacement: Replacement

    def apply(self, message: Message) -> bool:
        lines = message.headers.get_all(self.name)
        if not lines:
            return False
        rewritten = [self.pattern.sub(self.replacement, line) for line in lines]
        if rewritten == lines:
            return False
        if any(not _INJECTION.isdisjoint(line) for line in rewritten):
            return False  # last guard: the schema refuses replacements expanding to one
        message.headers.replace_values(self.name, rewritten)
        return True


@dataclass(frozen=True, slots=True)
class RewriteUserPart:
    """Rewrite the user part of the Request-URI, From or To; nothing else of it."""

    target: UserTarget
    pattern: LinearRegex
    replacement: Replacement

    def apply(self, message: Message) -> bool:
        if self.target == "ruri":
            if not isinstance(message, Request):
                return False
            uri = self._rewritten(message.uri)
            if uri is None:
                return False
            message.uri = uri
            return True
        address = _address_of(message, self.target)
        if address is None:
            return False
        uri = self._rewritten(address.uri)
        if uri is None:
            return False
        # Valid by construction: the parts come from a parse, the user is escaped
        # (RFC 3261 §25.1), and <> are added where §20.10 requires them.
        bracketed = address.bracketed or not _NEEDS_BRACKETS.isdisjoint(str(uri))
        rewritten = Address(uri, address.display, dict(address.params), bracketed)
        name = "From" if self.target == "from" else "To"
        message.headers.set(name, str(rewritten))
        message.headers.remember(name, rewritten)  # what parsing that text gives
        return True

    def _rewritten(self, uri: Uri) -> SipUri | TelUri | None:
        """A copy of ``uri`` with the user rewritten; None if unchanged or invalid."""
        if isinstance(uri, SipUri) and uri.user is not None:
            old = unescape_user(uri.user)
            new = self.pattern.sub(self.replacement, old)
            if new == old or not new:
                return None  # an empty user is not a user (RFC 3261 §25.1: 1*)
            sip = uri.copy()
            sip.user = escape_user(new)
            return sip
        if isinstance(uri, TelUri):
            number = self.pattern.sub(self.replacement, uri.number)
            if number == uri.number:
                return None
            tel = uri.copy()
            tel.number = number
            return tel if _parses(str(tel)) else None
        return None


def _parses(text: str) -> bool:
    try:
        parse_uri(text)
    except ParseError:
        return False
    return True


# --- rules and rule sets -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """One rule: which messages it looks at, its conditions, and its action."""

    label: str
    requests: bool
    responses: bool
    methods: frozenset[str] | None
    conditions: tuple[Condition, ...]
    action: Action

    def apply(self, message: Message, is_request: bool, method: str | None) -> bool:
        """Run the action if every condition holds; True when the message changed."""
        if not (self.requests if is_request else self.responses):
            return False
        if self.methods is not None and method not in self.methods:
            return False
        for condition in self.conditions:
            if not condition.holds(message):
                return False
        return self.action.apply(message)


RuleSetKey = tuple[str, Direction]


class Manipulations:
    """The compiled ``manipulations.yaml``: ordered rules per trunk and direction."""

    __slots__ = ("_sets",)

    def __init__(self, rule_sets: Mapping[RuleSetKey, tuple[CompiledRule, ...]]) -> None:
        self._sets = MappingProxyType({key: rules for key, rules in rule_sets.items() if rules})

    @classmethod
    def empty(cls) -> Manipulations:
        """No rules at all (no ``manipulations.yaml``)."""
        return cls({})

    def apply(
        self,
        message: Request | Response,
        trunk: str,
        direction: Literal["inbound", "outbound"],
    ) -> int:
        """Apply the rules for ``trunk`` and ``direction`` in order; return how many
        changed the message. Never raises for anything the message holds."""
        rules = self._sets.get((trunk, direction))
        if rules is None:
            return 0
        is_request = isinstance(message, Request)
        method = _method_of(message)  # CSeq is owned by the SBC: no rule changes it
        applied = 0
        for rule in rules:
            if rule.apply(message, is_request, method):
                applied += 1
        return applied

    def rules_for(self, trunk: str, direction: Direction) -> tuple[CompiledRule, ...]:
        return self._sets.get((trunk, direction), ())

    def counts(self) -> dict[str, int]:
        """Rules per rule set, keyed ``trunk/direction`` (for logs and metrics)."""
        return {
            f"{trunk}/{direction}": len(rules) for (trunk, direction), rules in self._sets.items()
        }

    @property
    def rule_count(self) -> int:
        return sum(len(rules) for rules in self._sets.values())

    def describe(self) -> str:
        """One-line summary for ``sbc check`` and startup logs."""
        if not self._sets:
            return "no manipulations"
        detail = ", ".join(f"{key} {count}" for key, count in self.counts().items())
        return f"{self.rule_count} manipulation rules ({detail})"


# --- compiling -----------------------------------------------------------------


def compile_manipulations(file: ManipulationsFile) -> Manipulations:
    """Compile every rule once; sets for the same trunk and direction are joined in order."""
    sets: dict[RuleSetKey, list[CompiledRule]] = {}
    for set_index, rule_set in enumerate(file.manipulations):
        rules = sets.setdefault((rule_set.trunk, rule_set.direction), [])
        for rule_index, rule in enumerate(rule_set.rules):
            label = rule.name or f"manipulations[{set_index}].rules[{rule_index}]"
            rules.append(_compile_rule(rule, label, rule_set.trunk))
    return Manipulations({key: tuple(rules) for key, rules in sets.items()})


def manipulation_references(file: ManipulationsFile) -> list[Reference]:
    """The trunk names the file uses, for the cross-file check."""
    return [
        Reference(("manipulations", index, "trunk"), "trunk", rule_set.trunk)
        for index, rule_set in enumerate(file.manipulations)
    ]


def _compile_rule(rule: Rule, label: str, trunk: str) -> CompiledRule:
    conditions: list[Condition] = []
    if rule.header_present is not None:
        conditions.append(HeaderPresent(rule.header_present))
    if rule.header_absent is not None:
        conditions.append(HeaderAbsent(rule.header_absent))
    if rule.header_matches is not None:
        conditions.append(_compile_match(rule.header_matches))
    return CompiledRule(
        label=label,
        requests=rule.messages != "responses",
        responses=rule.messages != "requests",
        methods=frozenset(rule.methods) if rule.methods is not None else None,
        conditions=tuple(conditions),
        action=_compile_action(rule, trunk),
    )


def _compile_match(spec: HeaderMatch) -> HeaderMatches:
    return HeaderMatches(spec.header, compile_regex(spec.regex))


def _compile_action(rule: Rule, trunk: str) -> Action:
    match rule.action:
        case AddHeader(header=name, value=value, position=position):
            return AddLine(name, Template.compile(value, trunk), first=position == "first")
        case RemoveHeader(header=name) if name.endswith("*"):
            return RemovePrefixed(name[:-1].lower())
        case RemoveHeader(header=name):
            return RemoveLines(name)
        case ReplaceHeader(header=name, value=value):
            return SetLine(name, Template.compile(value, trunk))
        case RewriteHeader(header=name, regex=regex, replacement=replacement):
            pattern = compile_regex(regex)
            return RewriteLines(name, pattern, pattern.replacement(replacement))
        case RewriteUser(target=target, regex=regex, replacement=replacement):
            pattern = compile_regex(regex)
            return RewriteUserPart(target, pattern, pattern.replacement(replacement))
    raise AssertionError(f"rule without an action: {rule!r}")  # the schema forbids it
