"""Parser benchmark: parse and serialize a typical INVITE with SDP.

Prints one line:
    parser: parse=<N> msg/s parse_repeat=<N> msg/s serialize=<N> msg/s
            bomb_refused=<R>x bomb_parsed=<R>x stray_refused=<R>x (INVITE ...)

``parse`` includes the validation every inbound message gets (Via, From, To,
CSeq, Contact parsed), each message a new call's (its own Via branch, From
tag and Call-ID: nothing the parser remembers from earlier messages helps);
``parse_repeat`` parses the same message again and again, as a call's later
messages repeat its From, To, Call-ID and Via texts
(:mod:`sbc.sip.parse_memo`); ``serialize`` re-encodes a parsed message.
``bomb_refused`` is what refusing a 64 KB datagram of 4,000 headers costs,
as a multiple of one ``parse`` (the default limits refuse it before parsing,
:mod:`sbc.sip.head`); ``bomb_parsed`` is what parsing it would cost with the
limits lifted, as it did before they existed. ``stray_refused`` is the
worst the stray-octet check meets within the limits: 240 long header lines
of escaped quotes and escaped control characters (legal quoted-pairs, so
every line is examined), a bare NUL in the last one. Compare ratios within
one run: the machines are shared and noisy.
"""

from __future__ import annotations

import time

from sbc.sip.errors import ParseError
from sbc.sip.head import HeadLimits
from sbc.sip.message import parse_message

SDP = (
    b"v=0\r\n"
    b"o=user1 53655765 2353687637 IN IP4 192.0.2.10\r\n"
    b"s=-\r\n"
    b"c=IN IP4 192.0.2.10\r\n"
    b"t=0 0\r\n"
    b"m=audio 6000 RTP/AVP 0 8 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-16\r\n"
    b"a=sendrecv\r\n"
)

INVITE = (
    b"INVITE sip:+15551234567@127.0.0.1:5060;user=phone SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-5235-1-0;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b'From: "Carrier" <sip:+15557654321@192.0.2.10:5060>;tag=5235SIPpTag001\r\n'
    b"To: <sip:+15551234567@127.0.0.1:5060>\r\n"
    b"Call-ID: 1-5235@192.0.2.10\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:sipp@192.0.2.10:5060;transport=udp>\r\n"
    b"Allow: INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, PRACK\r\n"
    b"Supported: timer, 100rel\r\n"
    b"User-Agent: SIPp\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: " + str(len(SDP)).encode() + b"\r\n"
    b"\r\n" + SDP
)


def rate(func: object, seconds: float = 1.0) -> float:
    """Calls per second of ``func`` over about ``seconds``."""
    assert callable(func)
    count = 0
    batch = 200
    start = time.perf_counter()
    while True:
        for _ in range(batch):
            func()
        count += batch
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return count / elapsed


def new_calls(count: int) -> list[bytes]:
    """``count`` INVITEs differing the way new calls do: Via branch, From tag, Call-ID."""
    return [
        INVITE.replace(b"-5235-1-0", b"-5235-%d-0" % n)
        .replace(b"SIPpTag001", b"SIPpTag%d" % n)
        .replace(b"1-5235@", b"%d-5235@" % n)
        for n in range(count)
    ]


#: No limit at all: what a header bomb cost before the limits existed.
UNLIMITED = HeadLimits(max_headers=10**6, max_header_line=10**6)
UDP_MAX = 65_507  # the largest IPv4 UDP payload


def header_bomb(headers: int = 4000) -> bytes:
    """The INVITE with ``headers`` short extension headers added: a 64 KB datagram."""
    head, body = INVITE.split(b"\r\n\r\n", 1)
    room = UDP_MAX - len(INVITE) - 2 * headers
    fillers = [b"X-F%d: " % n for n in range(headers)]
    pad = (room - sum(map(len, fillers))) // headers
    lines = b"\r\n".join(f + b"v" * pad for f in fillers)
    return head + b"\r\n" + lines + b"\r\n\r\n" + body


def stray_bomb(headers: int = 240) -> bytes:
    """Lines that make the stray-octet check look hard, then a NUL at the end."""
    head, body = INVITE.split(b"\r\n\r\n", 1)
    line = b'X-Q: "' + b'\\"' * 60 + b"\\\x07" * 60 + b'"'
    return head + b"\r\n" + b"\r\n".join([line] * headers) + b"\x00\r\n\r\n" + body


def refuse(data: bytes, limits: HeadLimits | None = None) -> None:
    try:
        parse_message(data) if limits is None else parse_message(data, limits)
    except ParseError:
        return
    raise AssertionError("the header bomb was not refused")


def main() -> None:
    message = parse_message(INVITE)
    assert message.serialize() == INVITE, "benchmark message must round-trip exactly"
    fresh = iter(new_calls(100_000))  # more than a second of parsing needs
    parse = rate(lambda: parse_message(next(fresh)))
    repeat = rate(lambda: parse_message(INVITE))
    serialize = rate(message.serialize)
    bomb = header_bomb()
    lines = bomb.count(b"\n")
    assert len(bomb) <= UDP_MAX
    assert lines > 4000
    refused = rate(lambda: refuse(bomb))
    parsed = rate(lambda: parse_message(bomb, UNLIMITED), seconds=2.0)
    strays = stray_bomb()
    stray = rate(lambda: refuse(strays))
    print(
        f"parser: parse={parse:.0f} msg/s parse_repeat={repeat:.0f} msg/s "
        f"serialize={serialize:.0f} msg/s bomb_refused={parse / refused:.1f}x "
        f"bomb_parsed={parse / parsed:.0f}x stray_refused={parse / stray:.0f}x "
        f"(INVITE with SDP, {len(message.headers)} headers; "
        f"bomb: {len(bomb)} octets, {lines} lines)"
    )


if __name__ == "__main__":
    main()
