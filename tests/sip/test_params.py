"""parse_number: the one reader of numeric fields from the wire."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sbc.sip.params import parse_number

MAX32 = 2**32 - 1


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("1800", 1800),
        ("0068", 68),  # RFC 4475 §3.1.1.1 wsinv: leading zeros
        ("0" * 5000 + "5", 5),  # many leading zeros are still a small number
        (str(MAX32), MAX32),
    ],
)
def test_reads_ascii_digits(text: str, value: int) -> None:
    assert parse_number(text, MAX32) == value


@pytest.mark.parametrize(
    "text",
    [
        *("", " ", " 70", "70\t", "-1", "+1", "1 2", "1.5", "0x10", "1_000", "12a"),
        *("²", "1²", "\u0664", "١٢"),  # str.isdigit() takes these; int() does not
    ],
)
def test_anything_but_ascii_digits_is_none(text: str) -> None:
    assert parse_number(text, MAX32) is None
    assert parse_number(text, MAX32, clamp=True) is None


def test_above_the_maximum_is_none_or_the_maximum_when_clamped() -> None:
    assert parse_number(str(MAX32 + 1), MAX32) is None
    assert parse_number(str(MAX32 + 1), MAX32, clamp=True) == MAX32
    assert parse_number("256", 255) is None
    assert parse_number("255", 255) == 255


def test_a_5000_digit_value_is_never_converted() -> None:
    """int() refuses more than 4,300 digits (ValueError): it must never see them."""
    huge = "9" * 5000
    assert parse_number(huge, MAX32) is None
    assert parse_number(huge, MAX32, clamp=True) == MAX32


@given(st.integers(0, 10**12), st.integers(0, 10**12))
def test_matches_int_within_range(number: int, maximum: int) -> None:
    text = str(number)
    expected = number if number <= maximum else None
    assert parse_number(text, maximum) == expected
    assert parse_number(text, maximum, clamp=True) == min(number, maximum)
