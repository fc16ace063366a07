"""Message framing on stream transports (RFC 3261 §18.3), sans-IO.

A TCP (or TLS) byte stream carries SIP messages back to back with no
delimiter other than the header/body boundary: a message is its start line
and headers up to the first empty line (CRLF CRLF), followed by exactly
``Content-Length`` body bytes. Content-Length is therefore mandatory on
streams (RFC 3261 §18.3, §20.14); without it the stream cannot be resynced,
so every framing failure is fatal for the connection.

Between messages, RFC 3261 §7.5 says CRLFs before a start line are ignored.
RFC 5626 §3.5.1 gives them meaning: a double CRLF is a keepalive "ping" that
the receiver answers with a single CRLF "pong". The framer reports pings in
order, in the same list as messages, as the constant :data:`KEEPALIVE_PING`
(no SIP message can equal those four bytes), so the transport answers each
one with :data:`KEEPALIVE_PONG` and hands everything else to the core.

Nothing here touches sockets, clocks or asyncio; :class:`StreamFramer` is
fed bytes and returns frames, in the style of h11 and wsproto.
"""

from __future__ import annotations

import re

from sbc.sip.errors import ParseError
from sbc.sip.params import parse_number

__all__ = [
    "DEFAULT_MAX_BODY",
    "DEFAULT_MAX_HEADER",
    "KEEPALIVE_PING",
    "KEEPALIVE_PONG",
    "FramingError",
    "StreamFramer",
    "datagram_is_keepalive",
]

#: RFC 5626 §3.5.1 keepalive sent by a client ("ping")...
KEEPALIVE_PING = b"\r\n\r\n"
#: ...and the server's answer ("pong").
KEEPALIVE_PONG = b"\r\n"

#: Upper bound on the start line plus headers of one message.
DEFAULT_MAX_HEADER = 64 * 1024
#: Upper bound on one body; the same default as the largest UDP datagram.
DEFAULT_MAX_BODY = 65535

_CRLF = b"\r\n"
_HEADER_END = b"\r\n\r\n"
# Longest Content-Length value accepted as digits: bounds int() work on junk.

# Content-Length = ( "Content-Length" / "l" ) HCOLON 1*DIGIT  (RFC 3261 §20.14, §25.1)
# Anchored on the CRLF that ends the previous line, so it only matches a header
# name at the start of a line (the start line never begins with CRLF). The value
# is captured raw and validated in Python so junk gives a precise reason.
_CONTENT_LENGTH = re.compile(rb"\r\n(?:content-length|l)[ \t]*:([^\r\n]*)", re.IGNORECASE)


class FramingError(ParseError):
    """The stream cannot be split into messages; the connection must be closed.

    Unlike other parse errors it is not answered: once framing is lost the
    receiver cannot tell where the next message starts, so the transport
    sends nothing more and closes the connection.

    ``messages`` holds the frames completed in the same :meth:`StreamFramer.feed`
    call before the failure, so a valid request that arrived just ahead of
    garbage is not lost.
    """

    def __init__(self, reason: str, messages: tuple[bytes, ...] = ()) -> None:
        super().__init__(reason)
        self.messages = messages


class StreamFramer:
    """Splits one connection's byte stream into SIP messages and keepalive pings.

    :meth:`feed` takes whatever the socket produced and returns every frame
    it completed: message bytes exactly as received (start line, headers,
    CRLF CRLF, body), or :data:`KEEPALIVE_PING`. Partial data is buffered.
    After a :class:`FramingError` the framer stays failed: every later call
    raises again, because the stream has no recovery point.
    """

    __slots__ = (
        "_buffer",
        "_crlfs",
        "_error",
        "_max_body",
        "_max_header",
        "_max_message",
        "_message_end",
        "_scan_from",
    )

    def __init__(
        self,
        *,
        max_header: int = DEFAULT_MAX_HEADER,
        max_body: int = DEFAULT_MAX_BODY,
        max_message: int | None = None,
    ) -> None:
        # ``max_message`` caps a whole message (header section plus body), so a
        # peer cannot send a full-size header section and a full-size body.
        self._max_message = max_message if max_message is not None else max_header + max_body
        self._max_header = min(max_header, self._max_message)
        self._max_body = max_body
        self._buffer = bytearray()
        # Where the next search for CRLF CRLF resumes, so byte-by-byte feeding
        # stays linear instead of rescanning the whole header section.
        self._scan_from = 0
        # End offset of the current message once its header section is parsed.
        self._message_end: int | None = None
        # CRLFs seen between messages: two of them make one ping.
        self._crlfs = 0
        self._error: str | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as part of a frame."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """Consume ``data``; return completed messages and pings, in stream order."""
        if self._error is not None:
            raise FramingError(self._error)
        buffer = self._buffer
        buffer += data
        frames: list[bytes] = []
        start = 0
        try:
            while True:
                start = self._skip_crlfs(start, frames)
                if start >= len(buffer):
                    break
                end = self._message_end
                if end is None:
                    end = self._parse_head(start)
                    if end is None:
                        break
                    self._message_end = end
                if len(buffer) < end:
                    break
                with memoryview(buffer) as view:
                    frames.append(view[start:end].tobytes())
                self._message_end = None
                self._scan_from = end
                start = end
        except FramingError as exc:
            self._error = exc.reason
            self._buffer = bytearray()
            raise FramingError(exc.reason, tuple(frames)) from None
        if start:
            del buffer[:start]
            self._scan_from -= start
            if self._message_end is not None:
                self._message_end -= start
        return frames

    def _skip_crlfs(self, start: int, frames: list[bytes]) -> int:
        """Skip CRLFs before a start line (RFC 3261 §7.5), reporting each ping."""
        if self._message_end is not None:
            return start
        buffer = self._buffer
        while buffer.startswith(_CRLF, start):
            start += 2
            self._crlfs += 1
            if self._crlfs == 2:
                frames.append(KEEPALIVE_PING)
                self._crlfs = 0
        if start < len(buffer) and buffer[start] != 0x0D:
            # A start line begins: a lone CRLF before it was just padding.
            self._crlfs = 0
        self._scan_from = max(self._scan_from, start)
        return start

    def _parse_head(self, start: int) -> int | None:
        """Find the header section's end; return the message's end offset."""
        buffer = self._buffer
        # CR of a CRLF CRLF may already be in the scanned part: step back 3.
        head_end = buffer.find(_HEADER_END, max(start, self._scan_from - 3))
        if head_end < 0:
            self._scan_from = len(buffer)
            if len(buffer) - start > self._max_header:
                raise FramingError("header section too large")
            return None
        if head_end + 4 - start > self._max_header:
            raise FramingError("header section too large")
        end = head_end + 4 + self._content_length(start, head_end + 2)
        if end - start > self._max_message:
            raise FramingError("message too large")
        return end

    def _content_length(self, start: int, end: int) -> int:
        """Read the mandatory Content-Length (§18.3); all copies must agree."""
        found = _CONTENT_LENGTH.findall(self._buffer, start, end)
        values = {value.strip(b" \t") for value in found}
        if not values:
            raise FramingError("missing Content-Length")
        if len(values) > 1:
            raise FramingError("conflicting Content-Length headers")
        value = values.pop()
        # latin-1 decodes any octet: a non-ASCII one is then simply not a digit.
        length = parse_number(value.decode("latin-1"), self._max_body + 1, clamp=True)
        if length is None:
            raise FramingError("invalid Content-Length")
        if length > self._max_body:
            raise FramingError("body too large")
        return length


def datagram_is_keepalive(data: bytes) -> bool:
    """True for a UDP datagram made only of CRLFs (or empty): a NAT keepalive.

    RFC 5626 §3.5.1 and common practice send bare CRLFs over UDP to keep NAT
    bindings open; they carry no message and are dropped without an answer.
    ``rstrip`` only walks the trailing bytes, so real messages cost almost nothing.
    """
    return not data.rstrip(b"\r\n")
