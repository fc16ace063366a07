"""Parser benchmark: parse and serialize a typical INVITE with SDP.

Prints one line:
    parser: parse=<N> msg/s serialize=<N> msg/s (INVITE with SDP, 12 headers)

``parse`` includes the validation every inbound message gets (Via, From, To,
CSeq, Contact parsed); ``serialize`` re-encodes a parsed message. Compare
ratios within one run: the machines are shared and noisy.
"""

from __future__ import annotations

import time

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


def main() -> None:
    message = parse_message(INVITE)
    assert message.serialize() == INVITE, "benchmark message must round-trip exactly"
    parse = rate(lambda: parse_message(INVITE))
    serialize = rate(message.serialize)
    print(
        f"parser: parse={parse:.0f} msg/s serialize={serialize:.0f} msg/s "
        f"(INVITE with SDP, {len(message.headers)} headers)"
    )


if __name__ == "__main__":
    main()
