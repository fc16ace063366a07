"""Operator regexes (routes, manipulations) on RE2: matching time linear in the subject.

These patterns run on values an attacker writes (Request-URI and From users,
header lines), so a backtracking engine would let one crafted number cost
seconds per message (``(a+)+$`` on ``aaaa…b``). RE2 reads the subject once,
whatever the pattern, and refuses what it cannot do that way: backreferences,
lookaround, atomic groups, possessive repetition, conditionals. Those are
refused here, at load, by name (:class:`RegexError`), so the schema reports
them at their line.

Syntax is RE2's, which is Python's for everyday patterns, with these
differences (docs/manipulations.md): ``\\d``, ``\\w``, ``\\s`` and ``\\b`` are
ASCII-only; ``\\z`` (not ``\\Z``) is the end of the text; ``$`` without
``(?m)`` matches only at the very end; no ``(?x)``. Subjects are matched as
UTF-8, lone surrogates included (``surrogatepass``: the parser keeps bytes
that are not UTF-8 as surrogates, and RE2 reads each encoded surrogate as one
character, as ``re`` does), so a rewrite gives back exactly those bytes.

Replacements keep ``re.sub``'s template language exactly (``\\1``,
``\\g<name>``, ``\\g<0>``, ``\\n``…; an unmatched group is empty) and its
errors; they are split once into literals and group numbers
(:class:`Replacement`), so a substitution does no parsing. The SBC's own fixed
patterns stay on Python's ``re``: they are ours, not an operator's.

Matching calls google-re2's pybind11 binding (``re2._re2``) directly: its
pure-Python ``re``-like layer costs about twice the match itself per call
(a generator and a match object), which showed in bench/manipulations.py.
The binding is typed in ``stubs/re2``; the tests here pin its behaviour.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import re2
from re2 import _re2

#: What an operator reads when a construct has no linear-time match.
_NOT_LINEAR = "is not supported (RE2 matches in linear time: no backreferences or lookaround)"

#: RE2's "invalid perl operator" fragments, by the construct they begin.
_PERL_OPERATORS = {
    "(?=": "lookahead (?=...)",
    "(?!": "negative lookahead (?!...)",
    "(?<=": "lookbehind (?<=...)",
    "(?<!": "negative lookbehind (?<!...)",
    "(?>": "atomic group (?>...)",
    "(?(": "conditional (?(...)...)",
}

#: re.sub's one-letter template escapes (Python's sre_parse ESCAPES for templates).
_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
}
_OCTAL = "01234567"
_DIGITS = "0123456789"


class RegexError(ValueError):
    """A pattern or replacement that cannot be used; the message says what to change."""


def _options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # a refused pattern is our error to report, not stderr noise
    return options


_RE2_OPTIONS = _options()
_UNANCHORED = _re2.RE2.Anchor.UNANCHORED


def _encode(text: str) -> bytes:
    """``text`` as RE2 reads it: UTF-8, a lone surrogate as its own 3-byte sequence."""
    return text.encode("utf-8", "surrogatepass")


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogatepass")


def _explain(source: str, detail: str) -> str:
    """RE2's complaint, said in terms of what the operator wrote."""
    kind, _, fragment = detail.partition(": ")
    if kind == "invalid escape sequence" and fragment[1:2] in tuple("123456789"):
        return f"backreference {fragment} {_NOT_LINEAR}"
    if kind == "invalid escape sequence" and fragment == "\\Z":
        return "\\Z: write \\z for the end of the text"
    if kind == "invalid perl operator":
        if fragment in _PERL_OPERATORS:
            return f"{_PERL_OPERATORS[fragment]} {_NOT_LINEAR}"
        if fragment == "(?P" and "(?P=" in source:
            return f"named backreference (?P=name) {_NOT_LINEAR}"
    if kind == "bad repetition operator" and fragment.endswith("+"):
        return f"possessive repetition {fragment} {_NOT_LINEAR}"
    if kind == "pattern too large - compile failed":
        return "pattern too large for RE2's memory budget: simplify it"
    return detail


def _any_byte_escape(source: str) -> bool:
    """Whether ``source`` uses RE2's ``\\C`` (one byte: it could split a character)."""
    index = source.find("\\")
    while index >= 0:
        if source.startswith("C", index + 1):
            return True
        index = source.find("\\", index + 2)
    return False


def compile_regex(source: str) -> LinearRegex:
    """Compile an operator's pattern; :class:`RegexError` names what RE2 cannot take."""
    if _any_byte_escape(source):
        raise RegexError("\\C (any byte) is not supported: it can split a character; use .")
    program = _re2.RE2(_encode(source), _RE2_OPTIONS)
    if not program.ok():
        raise RegexError(_explain(source, program.error().decode(errors="replace")))
    names = {_decode(name): index for name, index in program.NamedCapturingGroups()}
    return LinearRegex(source, program, program.NumberOfCapturingGroups(), names)


@dataclass(frozen=True, slots=True)
class LinearRegex:
    """A compiled operator pattern: ``re.search`` and ``re.sub`` meanings, in linear time.

    Equal when their sources are (as ``re.Pattern`` objects are).
    """

    source: str
    program: _re2.RE2 = field(compare=False, repr=False)
    groups: int = field(compare=False, repr=False)
    group_names: Mapping[str, int] = field(compare=False, repr=False)

    def search(self, text: str) -> bool:
        """Whether the pattern matches anywhere in ``text`` (``re.search`` is not None)."""
        data = _encode(text)
        return self.program.Match(_UNANCHORED, data, 0, len(data))[0][0] >= 0

    def replacement(self, template: str) -> Replacement:
        """``template`` checked against this pattern's groups and split once."""
        return Replacement.parse(template, self.groups, self.group_names)

    def sub(self, replacement: Replacement, text: str, count: int = 0) -> str:
        """``re.sub(pattern, template, text, count)``: every match (or the first ``count``)."""
        data = _encode(text)
        pieces: list[bytes] = []
        last = position = done = 0
        end = len(data)
        while position <= end:
            spans = self.program.Match(_UNANCHORED, data, position, end)
            start, stop = spans[0]
            if start < 0:
                break
            pieces.append(data[last:start])
            pieces.append(replacement.expand(data, spans))
            last, done = stop, done + 1
            if done == count or (stop == start == end):
                break
            # After an empty match step over one whole character, as re does.
            position = stop if stop > start else _next_character(data, stop)
        if not done:
            return text
        pieces.append(data[last:])
        try:
            return _decode(b"".join(pieces))
        except UnicodeDecodeError:  # only a split character could cause it (\C is refused)
            return text


def _next_character(data: bytes, index: int) -> int:
    """The index of the character after the one at ``index`` (UTF-8 continuation bytes skipped)."""
    index += 1
    while index < len(data) and 0x80 <= data[index] < 0xC0:
        index += 1
    return index


@dataclass(frozen=True, slots=True)
class Replacement:
    """An ``re.sub`` template split into UTF-8 literals and group numbers."""

    template: str
    pieces: tuple[bytes | int, ...]

    def expand(self, data: bytes, spans: list[tuple[int, int]]) -> bytes:
        """The text for one match; ``spans`` are RE2's, group 0 first, (-1, -1) unmatched."""
        out: list[bytes] = []
        for piece in self.pieces:
            if isinstance(piece, bytes):
                out.append(piece)
            else:
                start, stop = spans[piece]
                if start >= 0:  # an unmatched group is empty (re.sub since Python 3.5)
                    out.append(data[start:stop])
        return b"".join(out)

    @classmethod
    def parse(cls, template: str, groups: int, names: Mapping[str, int]) -> Replacement:
        """Split ``template`` by ``re.sub``'s rules; :class:`RegexError` as ``re`` words it."""
        return cls(template, _TemplateParser(template, groups, names).parse())


class _TemplateParser:
    """``re.sub``'s template grammar (Python's ``sre_parse.parse_template``), with its errors."""

    def __init__(self, template: str, groups: int, names: Mapping[str, int]) -> None:
        self.template = template
        self.groups = groups
        self.names = names
        self.index = 0
        self.pieces: list[bytes | int] = []
        self.literal: list[str] = []

    def parse(self) -> tuple[bytes | int, ...]:
        text = self.template
        while self.index < len(text):
            char = text[self.index]
            if char != "\\":
                self.literal.append(char)
                self.index += 1
                continue
            if self.index + 1 == len(text):
                raise RegexError(f"bad escape (end of template) at position {self.index}")
            self._escape(self.index, text[self.index + 1])
        self._flush()
        return tuple(self.pieces)

    def _escape(self, at: int, char: str) -> None:
        self.index = at + 2
        if char == "g":
            self._named_group(at)
        elif char == "0":
            self._octal(at, max_digits=3)
        elif char in _DIGITS:
            self._numbered_group(at)
        elif char in _ESCAPES:
            self.literal.append(_ESCAPES[char])
        elif char.isascii() and char.isalpha():
            raise RegexError(f"bad escape \\{char} at position {at}")
        else:
            self.literal.append("\\" + char)  # re keeps unknown non-letter escapes as written

    def _named_group(self, at: int) -> None:
        text = self.template
        if not text.startswith("<", self.index):
            raise RegexError(f"missing < at position {self.index}")
        name_at = self.index + 1
        close = text.find(">", name_at)
        if close < 0:
            raise RegexError(f"missing >, unterminated name at position {name_at}")
        name = text[name_at:close]
        self.index = close + 1
        if not name:
            raise RegexError(f"missing group name at position {name_at}")
        if name.isidentifier():
            if name not in self.names:
                raise RegexError(f"unknown group name '{name}'")
            self._group(self.names[name], name_at)
        elif name.isascii() and name.isdigit():
            self._group(int(name), name_at)
        else:
            raise RegexError(f"bad character in group name '{name}' at position {name_at}")

    def _numbered_group(self, at: int) -> None:
        text = self.template
        digits = text[at + 1]
        if self.index < len(text) and text[self.index] in _DIGITS:
            digits += text[self.index]
            self.index += 1
            third = text[self.index] if self.index < len(text) else ""
            if digits[0] in _OCTAL and digits[1] in _OCTAL and third and third in _OCTAL:
                self.index = at + 1
                self._octal(at, max_digits=3)
                return
        self._group(int(digits), at + 1)

    def _octal(self, at: int, max_digits: int) -> None:
        text = self.template
        start = at + 1
        stop = start + 1
        while stop < len(text) and stop - start < max_digits and text[stop] in _OCTAL:
            stop += 1
        value = int(text[start:stop], 8)
        if value > 0o377:
            raise RegexError(
                f"octal escape value \\{text[start:stop]} outside of range 0-0o377 at position {at}"
            )
        self.literal.append(chr(value))
        self.index = stop

    def _group(self, number: int, at: int) -> None:
        if number > self.groups:
            raise RegexError(f"invalid group reference {number} at position {at}")
        self._flush()
        self.pieces.append(number)

    def _flush(self) -> None:
        if self.literal:
            self.pieces.append(_encode("".join(self.literal)))
            self.literal.clear()
