"""The typed shape of ``manipulations.yaml``: header normalization rules.

Rule sets are chosen by trunk and direction; within a set, rules run in file
order and each sees what the rules before it changed::

    manipulations:
      - trunk: carrier
        direction: inbound          # as received from the carrier, before routing
        rules:
          - name: national-ruri
            methods: [INVITE]
            rewrite_user: {target: ruri, regex: '^\\+1(\\d{10})$', replacement: '\\1'}

Everything that can be wrong is reported here, at the field that is wrong: a
bad regex or replacement, an unknown ``{placeholder}``, a header the SBC owns,
a rule with two actions or none. What passes can be compiled without error by
:mod:`sbc.policy.manipulations`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    Field,
    Strict,
    ValidationInfo,
    field_validator,
    model_validator,
)

from sbc.policy.regex import RegexError, compile_regex
from sbc.policy.schema import Name, _Strict, check_replacement
from sbc.sip.headers import canonical_name

MANIPULATIONS_FILE = "manipulations.yaml"

Direction = Literal["inbound", "outbound"]
MessageKind = Literal["requests", "responses", "both"]
UserTarget = Literal["ruri", "from", "to"]

#: The action keys of a rule, in the order they are declared on :class:`Rule`.
ACTIONS = ("add", "remove", "replace", "rewrite", "rewrite_user")

#: Placeholders a header value may use, resolved per message (``trunk`` at load).
PLACEHOLDERS = {
    "ruri_user": "the Request-URI user part (requests only)",
    "from_user": "the From URI user part",
    "to_user": "the To URI user part",
    "trunk": "the name of the rule set's trunk",
}
#: Placeholders a response cannot fill: it has no Request-URI.
REQUEST_ONLY_PLACEHOLDERS = frozenset({"ruri_user"})

#: Headers the SBC computes for each leg; editing them would break routing,
#: transactions, dialogs, framing or a negotiation the SBC terminates.
OWNED_HEADERS = {
    "Via": "each leg's transactions (RFC 3261 §8.1.1.7)",
    "Call-ID": "each leg's dialog identity (RFC 3261 §8.1.1.4)",
    "CSeq": "each leg's request order (RFC 3261 §8.1.1.5)",
    "Max-Forwards": "loop detection (RFC 3261 §8.1.1.6)",
    "Contact": "each leg's remote target (RFC 3261 §8.1.1.8)",
    "Route": "each leg's route set (RFC 3261 §12.2.1.1)",
    "Record-Route": "each leg's route set (RFC 3261 §16.6)",
    "Content-Length": "message framing (RFC 3261 §18.3)",
    "Content-Type": "the type of the body the SBC rewrites (RFC 3264)",
    "Require": "extensions negotiated per leg (RFC 3261 §20.32)",
    "RSeq": "reliable provisional responses (RFC 3262)",
    "RAck": "reliable provisional responses (RFC 3262)",
    "Session-Expires": "session timers negotiated per leg (RFC 4028)",
    "Min-SE": "session timers negotiated per leg (RFC 4028)",
    "Authorization": "digest authentication per leg (RFC 3261 §22)",
    "Proxy-Authorization": "digest authentication per leg (RFC 3261 §22)",
    "WWW-Authenticate": "digest authentication per leg (RFC 3261 §22)",
    "Proxy-Authenticate": "digest authentication per leg (RFC 3261 §22)",
}
#: From and To carry the dialog's tags: only their user part may change.
USER_ONLY_HEADERS = frozenset({"From", "To"})

# RFC 3261 §25.1 token: header field names and methods.
_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_PLACEHOLDER_RE = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
# RFC 3261 §25.1: a header value is text and LWS; CR/LF would inject headers.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class Placeholder:
    """A ``{name}`` in a header value template."""

    name: str


TemplatePart = str | Placeholder


def parse_template(text: str) -> tuple[TemplatePart, ...]:
    """Split ``text`` into literal text and placeholders; ``{{``/``}}`` are braces.

    Raises :class:`ValueError` naming an unknown placeholder or a lone brace.
    """
    parts: list[TemplatePart] = []
    literal: list[str] = []
    position = 0
    for match in _PLACEHOLDER_RE.finditer(text):
        literal.append(text[position : match.start()])
        position = match.end()
        token = match.group(0)
        if token in ("{{", "}}"):
            literal.append(token[0])
            continue
        name = match.group(1)
        if name is None:
            raise ValueError(f"unmatched '{token}' (write '{token * 2}' for a literal brace)")
        if name not in PLACEHOLDERS:
            known = ", ".join(f"{{{known}}}" for known in sorted(PLACEHOLDERS))
            raise ValueError(f"unknown placeholder '{{{name}}}' (known: {known})")
        if literal:
            parts.append("".join(literal))
            literal = []
        parts.append(Placeholder(name))
    literal.append(text[position:])
    if any(literal):
        parts.append("".join(literal))
    return tuple(part for part in parts if part != "")


def placeholders_in(text: str) -> frozenset[str]:
    """Names of the placeholders ``text`` uses (``text`` must be valid)."""
    return frozenset(p.name for p in parse_template(text) if isinstance(p, Placeholder))


# --- field validators ---------------------------------------------------------


def _header_name(value: str) -> str:
    """A header field name (any case, compact forms allowed) in canonical spelling."""
    if not _TOKEN_RE.fullmatch(value):
        raise ValueError(f"'{value}' is not a header name")
    if value.endswith("*"):
        raise ValueError(f"'{value}': a trailing '*' (every header with that prefix) is for remove")
    return canonical_name(value)


def _refuse_owned(written: str, name: str) -> None:
    label = f"'{name}'" if written == name else f"'{written}' ({name})"
    if name in USER_ONLY_HEADERS:
        raise ValueError(
            f"header {label} carries the dialog's tags: change its user part"
            " with rewrite_user instead"
        )
    if name in OWNED_HEADERS:
        raise ValueError(
            f"header {label} is owned by the SBC and cannot be manipulated:"
            f" it carries {OWNED_HEADERS[name]}"
        )


def _editable_header(value: str) -> str:
    name = _header_name(value)
    _refuse_owned(value, name)
    return name


def _removable_header(value: str) -> str:
    """A header name, or ``Prefix*`` for every header whose name starts with ``Prefix``."""
    if not value.endswith("*"):
        return _editable_header(value)
    prefix = value[:-1]
    if not prefix or not _TOKEN_RE.fullmatch(prefix) or "*" in prefix:
        raise ValueError(f"'{value}' is not a header name or a 'Prefix*' pattern")
    covered = sorted(
        name
        for name in (*OWNED_HEADERS, *USER_ONLY_HEADERS)
        if name.lower().startswith(prefix.lower())
    )
    if covered:
        raise ValueError(f"'{value}' would remove {', '.join(covered)}, which the SBC owns")
    return value


def _regex(value: str) -> str:
    """Compile here (RE2: linear time) so a bad pattern is reported at its line."""
    try:
        compile_regex(value)
    except RegexError as exc:
        raise ValueError(f"invalid regex: {exc}") from None
    return value


def _header_value(value: str) -> str:
    if _CONTROL_RE.search(value):
        raise ValueError("control characters (CR, LF, NUL...) are not allowed in a header value")
    parse_template(value)
    return value


def _method(value: str) -> str:
    if not _TOKEN_RE.fullmatch(value):
        raise ValueError(f"'{value}' is not a SIP method")
    if value != value.upper():
        # RFC 3261 §7.1: the method is case-sensitive; 'invite' would never match.
        raise ValueError(f"SIP methods are case-sensitive (RFC 3261 §7.1): write '{value.upper()}'")
    return value


HeaderField = Annotated[str, Strict(), AfterValidator(_header_name)]
EditableHeader = Annotated[str, Strict(), AfterValidator(_editable_header)]
RemovableHeader = Annotated[str, Strict(), AfterValidator(_removable_header)]
Regex = Annotated[str, Strict(), AfterValidator(_regex)]
HeaderValue = Annotated[str, Strict(), AfterValidator(_header_value)]
Method = Annotated[str, Strict(), AfterValidator(_method)]


def _check_replacement(replacement: str, info: ValidationInfo) -> str:
    """``re.sub`` template: group references must exist in the regex beside it."""
    if _CONTROL_RE.search(replacement):
        raise ValueError("control characters (CR, LF, NUL...) are not allowed in a replacement")
    regex = info.data.get("regex")
    if regex is None:
        return replacement  # the regex itself is reported
    check_replacement(regex, replacement)  # valid, and its escapes expand to no CR/LF/NUL
    return replacement


Replacement = Annotated[str, Strict(), AfterValidator(_check_replacement)]


# --- models -------------------------------------------------------------------


class HeaderMatch(_Strict):
    """Condition: some line of ``header`` matches ``regex`` (``re.search``)."""

    header: HeaderField
    regex: Regex


class AddHeader(_Strict):
    """Add one header line; ``position: first`` puts it above the existing ones."""

    header: EditableHeader
    value: HeaderValue
    position: Literal["first", "last"] = "last"


class RemoveHeader(_Strict):
    """Remove every line of ``header``, or of every header named ``Prefix*``."""

    header: RemovableHeader


class ReplaceHeader(_Strict):
    """Set ``header`` to one line holding ``value``, adding it if absent."""

    header: EditableHeader
    value: HeaderValue


class RewriteHeader(_Strict):
    """``re.sub(regex, replacement, line)`` on every line of ``header``."""

    header: EditableHeader
    regex: Regex
    replacement: Replacement


class RewriteUser(_Strict):
    """``re.sub`` on the user part of the Request-URI, From or To URI.

    The regex sees the unescaped user; the result is escaped again (RFC 3261
    §25.1 ``user``). Host, parameters, display name and tags are untouched.
    """

    target: UserTarget
    regex: Regex
    replacement: Replacement


Action = AddHeader | RemoveHeader | ReplaceHeader | RewriteHeader | RewriteUser


class Rule(_Strict):
    """Conditions (all that are set must hold), then exactly one action."""

    name: Name | None = None
    methods: Annotated[list[Method], Field(min_length=1)] | None = None
    messages: MessageKind = "requests"
    header_present: HeaderField | None = None
    header_absent: HeaderField | None = None
    header_matches: HeaderMatch | None = None
    # Actions last: their validator reads the conditions above from info.data.
    add: AddHeader | None = None
    remove: RemoveHeader | None = None
    replace: ReplaceHeader | None = None
    rewrite: RewriteHeader | None = None
    rewrite_user: RewriteUser | None = None

    @field_validator(*ACTIONS)
    @classmethod
    def _one_action_that_fits(cls, action: Action | None, info: ValidationInfo) -> Action | None:
        if action is None:
            return None
        key = info.field_name or ""
        earlier = [
            name for name in ACTIONS[: ACTIONS.index(key)] if info.data.get(name) is not None
        ]
        if earlier:
            raise ValueError(
                f"a rule has one action and this one already has '{earlier[0]}': write two rules"
            )
        if info.data.get("messages", "requests") != "requests":
            _check_fits_responses(key, action)
        return action

    @model_validator(mode="after")
    def _has_action(self) -> Rule:
        if self.action is None:
            raise ValueError(f"a rule needs one action: {', '.join(ACTIONS)}")
        return self

    @property
    def action(self) -> Action | None:
        """The rule's one action (None only before validation completes)."""
        for key in ACTIONS:
            action: Action | None = getattr(self, key)
            if action is not None:
                return action
        return None


def _check_fits_responses(key: str, action: Action) -> None:
    """A rule that may see responses cannot use what only requests have."""
    if isinstance(action, RewriteUser):
        # RFC 3261 §8.2.6.2: a response's From and To echo its request's.
        raise ValueError("rewrite_user applies to requests only (set messages: requests)")
    if isinstance(action, AddHeader | ReplaceHeader):
        missing = placeholders_in(action.value) & REQUEST_ONLY_PLACEHOLDERS
        if missing:
            names = ", ".join(f"{{{name}}}" for name in sorted(missing))
            raise ValueError(f"{key}.value uses {names}, which responses do not have")


class RuleSet(_Strict):
    """The rules for one trunk in one direction, applied in order.

    ``inbound``: requests and responses as received from the trunk, before
    routing. ``outbound``: as about to be sent to the trunk, after the B2BUA
    built them. Several sets for the same trunk and direction run in file order.
    """

    trunk: Name
    direction: Direction
    rules: list[Rule]


class ManipulationsFile(_Strict):
    """``manipulations.yaml``; an absent or empty file means no manipulation."""

    manipulations: list[RuleSet] = []
