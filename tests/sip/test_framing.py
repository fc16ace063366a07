"""StreamFramer and datagram keepalives: RFC 3261 §18.3 framing, RFC 5626 pings."""

from __future__ import annotations

import pytest

from sbc.sip.errors import ParseError
from sbc.sip.framing import (
    KEEPALIVE_PING,
    FramingError,
    StreamFramer,
    datagram_is_keepalive,
)


def message(body: bytes = b"", *, header: bytes | None = None, method: bytes = b"OPTIONS") -> bytes:
    """A minimal request whose Content-Length matches ``body`` unless overridden."""
    if header is None:
        header = b"Content-Length: %d" % len(body)
    return (
        method + b" sip:pbx@127.0.0.20 SIP/2.0\r\n"
        b"Via: SIP/2.0/TCP 127.0.0.10:5060;branch=z9hG4bK1\r\n"
        b"Call-ID: a@b\r\n"
        b"CSeq: 1 " + method + b"\r\n" + header + b"\r\n\r\n" + body
    )


SDP = b"v=0\r\no=- 1 1 IN IP4 127.0.0.10\r\ns=-\r\nc=IN IP4 127.0.0.10\r\nt=0 0\r\n"


def feed_bytewise(framer: StreamFramer, data: bytes) -> list[bytes]:
    frames: list[bytes] = []
    for index in range(len(data)):
        frames += framer.feed(data[index : index + 1])
    return frames


def test_single_message_without_body() -> None:
    framer = StreamFramer()
    msg = message()
    assert framer.feed(msg) == [msg]
    assert framer.buffered == 0


def test_message_with_body_is_returned_exactly() -> None:
    msg = message(SDP, method=b"INVITE")
    assert StreamFramer().feed(msg) == [msg]


def test_body_containing_crlf_crlf_is_not_a_boundary() -> None:
    body = b"\r\n\r\nabc\r\n\r\n"
    msg = message(body)
    assert StreamFramer().feed(msg + message()) == [msg, message()]


def test_several_messages_in_one_chunk() -> None:
    msgs = [message(), message(SDP, method=b"INVITE"), message(b"x")]
    assert StreamFramer().feed(b"".join(msgs)) == msgs


def test_partial_feeds_byte_by_byte() -> None:
    msgs = [message(SDP, method=b"INVITE"), message(), message(b"hello")]
    framer = StreamFramer()
    assert feed_bytewise(framer, b"".join(msgs)) == msgs
    assert framer.buffered == 0


def test_split_at_every_position() -> None:
    stream = message(SDP) + b"\r\n\r\n" + message()
    for cut in range(len(stream) + 1):
        framer = StreamFramer()
        frames = framer.feed(stream[:cut]) + framer.feed(stream[cut:])
        assert frames == [message(SDP), KEEPALIVE_PING, message()], cut


def test_incomplete_body_waits_for_more() -> None:
    msg = message(SDP)
    framer = StreamFramer()
    assert framer.feed(msg[:-1]) == []
    assert framer.buffered == len(msg) - 1
    assert framer.feed(msg[-1:]) == [msg]


@pytest.mark.parametrize(
    "header",
    [b"l: 5", b"L:5", b"content-length:5", b"CONTENT-LENGTH :  5 ", b"Content-Length:\t5"],
)
def test_content_length_spellings(header: bytes) -> None:
    msg = message(b"12345", header=header)
    assert StreamFramer().feed(msg + message()) == [msg, message()]


def test_header_named_like_l_prefix_is_not_content_length() -> None:
    msg = message(b"abc", header=b"Location: x\r\nLength: 99\r\nContent-Length: 3")
    assert StreamFramer().feed(msg) == [msg]


def test_repeated_equal_content_length_is_accepted() -> None:
    msg = message(b"abc", header=b"Content-Length: 3\r\nl: 3")
    assert StreamFramer().feed(msg) == [msg]


def test_double_crlf_is_a_ping() -> None:
    framer = StreamFramer()
    assert framer.feed(b"\r\n\r\n") == [KEEPALIVE_PING]
    assert framer.feed(b"\r\n\r\n\r\n\r\n") == [KEEPALIVE_PING, KEEPALIVE_PING]
    assert framer.buffered == 0


def test_ping_split_across_feeds() -> None:
    framer = StreamFramer()
    assert feed_bytewise(framer, b"\r\n\r\n") == [KEEPALIVE_PING]


def test_single_crlf_before_message_is_ignored() -> None:
    framer = StreamFramer()
    assert framer.feed(b"\r\n" + message()) == [message()]
    # A pong (single CRLF) from the other side is not a ping either.
    assert framer.feed(b"\r\n") == []
    assert framer.feed(message()) == [message()]
    assert framer.feed(b"\r\n") == []
    assert framer.feed(b"\r\n") == [KEEPALIVE_PING]


def test_pings_keep_their_place_among_messages() -> None:
    stream = b"\r\n\r\n" + message() + b"\r\n\r\n\r\n" + message(b"x")
    assert StreamFramer().feed(stream) == [KEEPALIVE_PING, message(), KEEPALIVE_PING, message(b"x")]


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (b"Max-Forwards: 70", "missing Content-Length"),
        (b"Content-Length: ", "invalid Content-Length"),
        (b"Content-Length: -1", "invalid Content-Length"),
        (b"Content-Length: 1.5", "invalid Content-Length"),
        (b"Content-Length: 0x10", "invalid Content-Length"),
        (b"Content-Length: 99999999999", "body too large"),  # 1*DIGIT, just too many
        (b"Content-Length: " + b"9" * 5000, "body too large"),  # never given to int()
        ("Content-Length: \u00b2".encode(), "invalid Content-Length"),
        (b"Content-Length: 1\r\nl: 2", "conflicting Content-Length headers"),
    ],
)
def test_content_length_errors(header: bytes, reason: str) -> None:
    with pytest.raises(FramingError) as caught:
        StreamFramer().feed(message(header=header))
    assert caught.value.reason == reason


def test_body_over_limit() -> None:
    framer = StreamFramer(max_body=10)
    assert framer.feed(message(b"x" * 10)) == [message(b"x" * 10)]
    with pytest.raises(FramingError, match="body too large"):
        framer.feed(message(b"x" * 11))


def test_whole_message_over_limit() -> None:
    """Header section and body each under their caps, together over the message cap."""
    fits = message(b"x" * 100)
    framer = StreamFramer(max_message=len(fits))
    assert framer.feed(fits) == [fits]
    with pytest.raises(FramingError, match="message too large"):
        framer.feed(message(b"x" * 101))


def test_message_limit_also_caps_an_unterminated_header_section() -> None:
    framer = StreamFramer(max_message=100)
    with pytest.raises(FramingError, match="header section too large"):
        framer.feed(b"OPTIONS sip:a SIP/2.0\r\nX: " + b"a" * 100)


def test_header_section_over_limit_without_terminator() -> None:
    framer = StreamFramer(max_header=1024)
    framer.feed(b"OPTIONS sip:a SIP/2.0\r\n")
    for _ in range(25):  # 25 * 40 bytes: still under the limit
        assert framer.feed(b"X-Junk: " + b"a" * 30 + b"\r\n") == []
    with pytest.raises(FramingError, match="header section too large"):
        framer.feed(b"X-Junk: " + b"a" * 30 + b"\r\n")


def test_header_section_over_limit_with_terminator() -> None:
    big = message(header=b"X-Junk: " + b"a" * 2000 + b"\r\nContent-Length: 0")
    with pytest.raises(FramingError, match="header section too large"):
        StreamFramer(max_header=1024).feed(big)


def test_default_header_limit_is_64k() -> None:
    framer = StreamFramer()
    framer.feed(b"OPTIONS sip:a SIP/2.0\r\nX: " + b"a" * 65000)
    with pytest.raises(FramingError):
        framer.feed(b"a" * 1000)


def test_error_keeps_earlier_messages_and_is_sticky() -> None:
    framer = StreamFramer()
    with pytest.raises(FramingError) as caught:
        framer.feed(message() + message(header=b"Max-Forwards: 70"))
    assert caught.value.messages == (message(),)
    with pytest.raises(FramingError, match="missing Content-Length"):
        framer.feed(message())


def test_framing_error_is_a_parse_error() -> None:
    error = FramingError("missing Content-Length")
    assert isinstance(error, ParseError)
    assert error.status == 400
    assert error.messages == ()


@pytest.mark.parametrize("data", [b"", b"\r\n", b"\r\n\r\n", b"\n", b"\r\n\r\n\r\n"])
def test_datagram_keepalive(data: bytes) -> None:
    assert datagram_is_keepalive(data)


@pytest.mark.parametrize("data", [message(), b"x\r\n", b"\r\n\x00", b"\x00"])
def test_datagram_not_keepalive(data: bytes) -> None:
    assert not datagram_is_keepalive(data)
