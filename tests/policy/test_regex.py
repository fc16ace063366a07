"""Operator regexes on RE2: what they accept, what they refuse, and that search and
substitution keep Python's ``re.search`` / ``re.sub`` meaning wherever both engines
take a pattern."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sbc.policy.regex import LinearRegex, RegexError, compile_regex


@pytest.mark.parametrize(
    ("pattern", "construct"),
    [
        (r"(a)\1", r"backreference \1"),
        (r"(?P<x>a)(?P=x)", "named backreference (?P=name)"),
        (r"(?=a)", "lookahead (?=...)"),
        (r"a(?!b)", "negative lookahead (?!...)"),
        (r"(?<=a)b", "lookbehind (?<=...)"),
        (r"(?<!a)b", "negative lookbehind (?<!...)"),
        (r"(?>a+)", "atomic group (?>...)"),
        (r"(?(1)a|b)", "conditional (?(...)...)"),
        (r"a++", "possessive repetition"),
    ],
)
def test_constructs_without_a_linear_time_match_are_refused_by_name(
    pattern: str, construct: str
) -> None:
    with pytest.raises(RegexError) as caught:
        compile_regex(pattern)
    assert str(caught.value).startswith(construct)
    assert "linear time" in str(caught.value)


@pytest.mark.parametrize(
    ("pattern", "detail"),
    [
        ("(unclosed", "missing ): (unclosed"),
        ("[a-", "missing ]: [a-"),
        ("*", "no argument for repetition operator: *"),
        (r"a\Z", r"\Z: write \z for the end of the text"),
        (r"\C", r"\C (any byte) is not supported: it can split a character"),
        (r"a|[x]\C", r"\C (any byte) is not supported"),
        ("x{1001}", "invalid repetition size: {1001}"),
    ],
)
def test_invalid_patterns_say_why(pattern: str, detail: str) -> None:
    with pytest.raises(RegexError, match=re.escape(detail)):
        compile_regex(pattern)


def test_a_pattern_too_large_for_the_memory_budget_is_refused() -> None:
    with pytest.raises(RegexError, match="too large"):
        compile_regex(r"(?i)\pL{1000}")  # every letter of Unicode, a thousand times


def test_everyday_syntax_is_accepted() -> None:
    for pattern in (
        r"^\+1([2-9]\d{2}[2-9]\d{6})$",
        r"(?i)sips?:anonymous@",
        r"<sips?:1?([2-9]\d{2}[2-9]\d{6})@[^>]*>",
        r"^(?P<cc>\+\d{1,3})?(?P<rest>\d+)$",
        r"^(911|112)$",
        r"\bfoo\b",
        r"a\z",
        r"\\C",  # a backslash, then C
    ):
        assert isinstance(compile_regex(pattern), LinearRegex), pattern


def test_backtracking_patterns_run_in_linear_time() -> None:
    """(a+)+$ on a+b: Python's re takes 2^n steps; RE2 reads the subject once."""
    regex = compile_regex(r"^(a+)+$")
    assert not regex.search("a" * 5000 + "b")  # re would not finish before the sun does
    assert regex.search("a" * 5000)
    rewrite = regex.replacement(r"<\1>")
    assert regex.sub(rewrite, "a" * 5000 + "b") == "a" * 5000 + "b"


# --- search keeps re.search's meaning ----------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "text", "found"),
    [
        ("^(911|112)$", "911", True),
        ("^(911|112)$", "9111", False),
        ("7$", "+442071234567", True),
        ("^a", "ba", False),
        ("(?i)ANONYMOUS", "sip:anonymous@x", True),
        ("é", "café", True),
        ("^.{4}$", "café", True),  # characters, not bytes
        (r"\d", "\u0663", False),  # \d is ASCII digits (Python's would match Arabic-Indic 3)
    ],
)
def test_search(pattern: str, text: str, found: bool) -> None:
    assert compile_regex(pattern).search(text) is found


def test_undecodable_bytes_are_one_character_each_as_in_re() -> None:
    """Headers keep bytes that are not UTF-8 as lone surrogates (surrogateescape)."""
    undecodable = b"a\xff\xfeb".decode("utf-8", "surrogateescape")
    for pattern, template in (("^a(.*)b$", r"[\1]"), ("^a.{2}b$", "x"), (".", "-"), ("", "|")):
        regex = compile_regex(pattern)
        assert regex.search(undecodable)
        expected = re.sub(pattern, template, undecodable)
        assert regex.sub(regex.replacement(template), undecodable) == expected
    assert compile_regex("^a.b$").sub(compile_regex("^a.b$").replacement("x"), "a\ud800b") == "x"


# --- substitution keeps re.sub's meaning -------------------------------------------------

SAME_AS_RE = [
    (r"^\+1([2-9]\d{2}[2-9]\d{6})$", r"\1", "+12125550123"),
    (r"^1?([2-9]\d{2}[2-9]\d{6})$", r"+1\1", "2125550123"),
    (r"^00", "+", "0044123"),
    (r"sip:\+1(\d{10})@", r"sip:\1@", "<sip:+12125550123@x>;reason=busy"),
    (r"(a)(b)?", r"[\1|\2]", "ab a"),  # an unmatched group is empty
    ("a", r"\n\t\\x", "a"),
    ("a", r"\+", "a"),  # unknown escapes of non-letters stay as written
    ("(a)", r"\0", "a"),
    ("(a)", r"\177", "a"),
    ("(a)", r"\g<0>\g<1>0", "a"),
    ("(?P<n>a)", r"\g<n>-\g<01>", "a"),
    ("(a)", r"\1\1", "xax"),
    ("x*", "-", "abxd"),  # empty matches, including one right after a match
    ("", "-", "é€"),  # an empty match between characters, never inside one
    ("é", "e", "café é"),
    ("(é+)", r"<\1>", "ééa"),
    ("b", "é", "abc"),
    ("(?i)a", "x", "AaA"),
]


@pytest.mark.parametrize(("pattern", "template", "text"), SAME_AS_RE)
def test_sub_is_re_sub(pattern: str, template: str, text: str) -> None:
    regex = compile_regex(pattern)
    replacement = regex.replacement(template)
    assert regex.sub(replacement, text) == re.sub(pattern, template, text)
    assert regex.sub(replacement, text, count=1) == re.sub(pattern, template, text, count=1)


@settings(max_examples=200, deadline=None)
@given(
    pattern=st.sampled_from(
        ["a", "a*", "(a|b)+", "^b", "c$", "(a)(c)?", "[^ab]", "", "(?i)B", r"\+(1)"]
    ),
    template=st.sampled_from(["", "x", r"<\g<0>>", "é", r"\n", "--"]),
    text=st.text(alphabet="abcAB+1é€ \udcff", max_size=12),
    count=st.integers(min_value=0, max_value=3),
)
def test_sub_agrees_with_re_sub(pattern: str, template: str, text: str, count: int) -> None:
    regex = compile_regex(pattern)
    expected = re.sub(pattern, template, text, count=count)
    assert regex.sub(regex.replacement(template), text, count=count) == expected


@pytest.mark.parametrize(
    ("pattern", "template", "error"),
    [
        (r"^\+1(\d+)$", r"\2", "invalid group reference 2 at position 1"),
        ("(a)", r"\g<2>", "invalid group reference 2 at position 3"),
        ("(a)", r"\g<x>", "unknown group name 'x'"),
        ("(a)", r"\g<1", "missing >, unterminated name at position 3"),
        ("(a)", r"\g", "missing < at position 2"),
        ("(a)", r"\g<>", "missing group name at position 3"),
        ("(a)", r"\g<-1>", "bad character in group name '-1' at position 3"),
        ("(a)", r"\g< 1>", "bad character in group name ' 1' at position 3"),
        ("a", r"\q", r"bad escape \q at position 0"),
        ("a", r"\x41", r"bad escape \x at position 0"),
        ("a", "\\", "bad escape (end of template) at position 0"),
        ("(a)", r"\400", r"octal escape value \400 outside of range 0-0o377 at position 0"),
    ],
)
def test_bad_templates_are_refused_as_re_would(pattern: str, template: str, error: str) -> None:
    with pytest.raises(RegexError, match=re.escape(error)):
        compile_regex(pattern).replacement(template)


def test_compiled_regexes_compare_and_hash_by_source() -> None:
    """As re.Pattern objects do: compiled routes and rules stay comparable values."""
    assert compile_regex("^a$") == compile_regex("^a$")
    assert compile_regex("^a$") != compile_regex("^b$")
    assert len({compile_regex("^a$"), compile_regex("^a$")}) == 1
    assert repr(compile_regex("^a$")) == "LinearRegex(source='^a$')"
