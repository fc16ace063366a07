"""The parse memo: same text, same parse; failures and list edits do not stick."""

from __future__ import annotations

import pytest

from sbc.sip.errors import ParseError
from sbc.sip.message import Request, parse_message
from sbc.sip.parse_memo import ParseMemo

INVITE = (
    b"INVITE sip:bob@127.0.0.1 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.10:5060;branch=z9hG4bK-1\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.11:5060;branch=z9hG4bK-2\r\n"
    b"From: <sip:alice@127.0.0.10>;tag=a\r\nTo: <sip:bob@127.0.0.1>\r\n"
    b"Call-ID: c1\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@127.0.0.10>\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def test_parses_each_text_once() -> None:
    seen: list[str] = []

    def parse(text: str) -> int:
        seen.append(text)
        return len(text)

    memo = ParseMemo(parse)
    assert [memo("ab"), memo("ab"), memo("abc")] == [2, 2, 3]
    assert seen == ["ab", "abc"]


def test_failures_are_not_remembered() -> None:
    calls = 0

    def parse(text: str) -> int:
        nonlocal calls
        calls += 1
        raise ParseError("bad")

    memo = ParseMemo(parse)
    for _ in range(2):
        with pytest.raises(ParseError):
            memo("x")
    assert calls == 2
    assert len(memo) == 0


def test_bounded() -> None:
    memo = ParseMemo(len, limit=3)
    for text in ("a", "bb", "ccc", "dddd", "eeeee"):
        memo(text)
    assert len(memo) <= 3
    assert memo("a") == 1  # parsed again after the memo was emptied


def test_messages_get_lists_of_their_own() -> None:
    first, second = parse_message(INVITE), parse_message(INVITE)
    assert isinstance(first, Request)
    assert isinstance(second, Request)
    first.vias.pop()
    first.contacts.clear()
    assert [v.host for v in second.vias] == ["127.0.0.10", "127.0.0.11"]
    assert len(second.contacts) == 1
    assert second.from_.tag == "a"
