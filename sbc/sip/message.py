"""SIP requests and responses: the message model, parser and serializer.

RFC 3261 §7 (message format), §20 (header fields), §25 (ABNF):

    generic-message = start-line *message-header CRLF [ message-body ]
    Request-Line    = Method SP Request-URI SP SIP-Version CRLF
    Status-Line     = SIP-Version SP Status-Code SP Reason-Phrase CRLF
    message-header  = field-name HCOLON field-value   (LWS folds lines)

:func:`parse_message` never raises anything but :class:`ParseError`. When the
message is well-formed enough to answer, the error carries it (``.message``)
so the core can send a 400 whose reason phrase names the problem.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sbc.sip.address import Address, parse_address, parse_address_list
from sbc.sip.errors import ParseError, UnsupportedVersionError
from sbc.sip.head import DEFAULT_HEAD_LIMITS, HeadLimits, check_size, has_stray, stray_octet
from sbc.sip.headers import CANONICAL_SPELLINGS, Headers, canonical_name
from sbc.sip.params import MAX_DELTA_SECONDS, is_digits, parse_number
from sbc.sip.parse_memo import ParseMemo
from sbc.sip.reasons import reason_phrase
from sbc.sip.uri import SipUri, UnparsedUri, Uri, parse_uri
from sbc.sip.via import Via, parse_vias

SIP_VERSION = "SIP/2.0"
MAX_CSEQ = 2**31 - 1  # RFC 3261 §8.1.1.5: sequence number < 2**31
MAX_FORWARDS_LIMIT = 255  # RFC 3261 §20.22: Max-Forwards = 1*DIGIT, 0-255
MAX_CONTENT_LENGTH = 2**32 - 1  # beyond any body: read as "larger than the body"
_TOKEN_RE = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~]+$")
_FOLD_RE = re.compile(r"\r?\n[ \t]+")
#: Never inside a line on the wire (Message.serialize): CR, LF, NUL.
_LINE_BREAKERS = str.maketrans("\r\n\0", "   ")
#: Headers that may appear once only; two of them make the request invalid.
_SINGLE = ("Call-ID", "CSeq", "From", "To", "Max-Forwards", "Content-Length")
_REQUIRED = ("Call-ID", "CSeq", "From", "To", "Via")


@dataclass(frozen=True, slots=True)
class CSeq:
    seq: int
    method: str

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


def parse_cseq(value: str) -> CSeq:
    """``CSeq = "CSeq" HCOLON 1*DIGIT LWS Method`` (RFC 3261 §20.16)."""
    parts = value.split()
    if len(parts) != 2 or not is_digits(parts[0]) or not _TOKEN_RE.match(parts[1]):
        raise ParseError(f"invalid CSeq {value[:40]!r}")
    seq = parse_number(parts[0], MAX_CSEQ)
    if seq is None:
        raise ParseError("CSeq number out of range")
    return CSeq(seq, parts[1])


# Header texts recur across a call's messages (sbc.sip.parse_memo): each is
# parsed once. Lists are kept as tuples and handed out as new lists.
_cseq_memo = ParseMemo(parse_cseq)
_address_memo = ParseMemo(parse_address)
_vias_memo = ParseMemo(lambda line: tuple(parse_vias(line)))
_address_line_memo: ParseMemo[tuple[Address, ...]] = ParseMemo(
    lambda line: tuple(_address_line(line))
)


class Message:
    """What requests and responses share: headers, body and typed views."""

    __slots__ = ("body", "headers", "manipulated", "wire_size")

    def __init__(self, headers: Headers | None = None, body: bytes = b"") -> None:
        self.headers = headers if headers is not None else Headers()
        self.body = body
        # Policy rules ran on it already: a re-sent message (an ACK for a
        # retransmitted 2xx, a reliable provisional) must not get them twice.
        self.manipulated = False
        # Bytes it had on the wire (0: built here): what an answer to an
        # unproven source may not exceed (sbc.b2bua.refusal).
        self.wire_size = 0

    # --- typed views of the headers every transaction and dialog needs ---

    # Each view is parsed once per header text and kept by Headers until that
    # header changes; the parse functions take the header's name, so an access
    # that finds the view builds no closure.

    @property
    def call_id(self) -> str:
        return self.headers.parsed("Call-ID", self._parse_call_id)

    @property
    def cseq(self) -> CSeq:
        return self.headers.parsed("CSeq", self._parse_cseq)

    @property
    def from_(self) -> Address:
        return self.headers.parsed("From", self._parse_single_address)

    @property
    def to(self) -> Address:
        return self.headers.parsed("To", self._parse_single_address)

    @property
    def vias(self) -> list[Via]:
        return self.headers.parsed("Via", self._parse_vias)

    @property
    def top_via(self) -> Via:
        vias = self.vias
        if not vias:
            raise ParseError("missing Via")
        return vias[0]

    @property
    def contacts(self) -> list[Address]:
        """Contact addresses; ``Contact: *`` gives an empty list."""
        return self.headers.parsed("Contact", self._parse_addresses)

    @property
    def record_routes(self) -> list[Address]:
        return self.headers.parsed("Record-Route", self._parse_addresses)

    @property
    def routes(self) -> list[Address]:
        return self.headers.parsed("Route", self._parse_addresses)

    @property
    def content_type(self) -> str | None:
        value = self.headers.get("Content-Type")
        return value.split(";", 1)[0].strip().lower() if value else None

    def option_tags(self, name: str) -> set[str]:
        """Option tags of Supported / Require / Unsupported, lower-cased."""
        return {v.lower() for v in self.headers.values(name)}

    def _parse_call_id(self, name: str) -> str:
        value = self.headers.get(name)
        if value is None:
            raise ParseError("missing Call-ID")
        return value.strip()

    def _parse_cseq(self, name: str) -> CSeq:
        value = self.headers.get(name)
        if value is None:
            raise ParseError("missing CSeq")
        return _cseq_memo(value)

    def _parse_single_address(self, name: str) -> Address:
        value = self.headers.get(name)
        if value is None:
            raise ParseError(f"missing {name}")
        try:
            return _address_memo(value)
        except ParseError as exc:
            raise ParseError(f"invalid {name}: {exc.reason}") from None

    def _parse_vias(self, name: str) -> list[Via]:
        try:
            return [via for line in self.headers.get_all(name) for via in _vias_memo(line)]
        except ParseError as exc:
            raise ParseError(f"invalid Via: {exc.reason}") from None

    def _parse_addresses(self, name: str) -> list[Address]:
        try:
            return [a for line in self.headers.get_all(name) for a in _address_line_memo(line)]
        except ParseError as exc:
            raise ParseError(f"invalid {name}: {exc.reason}") from None

    def forget_parsed(self) -> None:
        """See :meth:`Headers.forget_parsed`."""
        self.headers.forget_parsed()

    # --- serialization ---

    def start_line(self) -> str:
        raise NotImplementedError

    def serialize(self) -> bytes:
        """Wire bytes; Content-Length always reflects the body (§18.3).

        Headers keep their order; the first Content-Length is rewritten in
        place (any other copy dropped), or appended when there is none. No
        line carries CR, LF or NUL, whatever was written into a value, reason
        phrase or URI: each becomes SP (what a fold reads as), so nothing the
        SBC builds or copies can break a line on the wire (:mod:`sbc.sip.head`).
        """
        lines = [self.start_line()]
        length = str(len(self.body))
        placed = False
        for name, value in self.headers:
            if name == "Content-Length":
                if placed:
                    continue
                value, placed = length, True  # noqa: PLW2901 - rewritten in place
            lines.append(f"{name}: {value}")
        if not placed:
            lines.append(f"Content-Length: {length}")
        probe = "".join(lines)  # then three memchr scans: cheaper than counting
        if "\r" in probe or "\n" in probe or "\0" in probe:
            lines = [line.translate(_LINE_BREAKERS) for line in lines]
        lines.append("\r\n")
        return "\r\n".join(lines).encode("utf-8", "surrogateescape") + self.body

    def __bytes__(self) -> bytes:
        return self.serialize()


class Request(Message):
    __slots__ = ("method", "uri", "version")

    def __init__(
        self,
        method: str,
        uri: Uri,
        headers: Headers | None = None,
        body: bytes = b"",
        version: str = SIP_VERSION,
    ) -> None:
        super().__init__(headers, body)
        self.method = method
        self.uri = uri
        self.version = version

    def start_line(self) -> str:
        return f"{self.method} {self.uri} {self.version}"

    def copy(self) -> Request:
        """An independent copy: editing it leaves this request as received."""
        return Request(self.method, self.uri.copy(), self.headers.copy(), self.body, self.version)

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri}>"


class Response(Message):
    __slots__ = ("reason", "status", "version")

    def __init__(
        self,
        status: int,
        reason: str | None = None,
        headers: Headers | None = None,
        body: bytes = b"",
        version: str = SIP_VERSION,
    ) -> None:
        super().__init__(headers, body)
        self.status = status
        self.reason = reason if reason is not None else reason_phrase(status)
        self.version = version

    def start_line(self) -> str:
        return f"{self.version} {self.status} {self.reason}"

    def copy(self) -> Response:
        """An independent copy: editing it leaves this response as received."""
        return Response(self.status, self.reason, self.headers.copy(), self.body, self.version)

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}>"


def _address_line(value: str) -> list[Address]:
    if value == "*":  # Contact: * (RFC 3261 §10.2.2)
        return []
    return parse_address_list(value)


# --- parsing -----------------------------------------------------------------


def parse_message(data: bytes, limits: HeadLimits = DEFAULT_HEAD_LIMITS) -> Request | Response:
    """Parse one complete message (a datagram or a framed stream message).

    Raises :class:`ParseError` and nothing else, whatever the bytes. A head
    over ``limits`` is refused before it is parsed (:mod:`sbc.sip.head`).
    """
    try:
        message = _parse_message(data, limits)
    except ParseError as exc:
        if exc.message is not None:
            exc.message.wire_size = len(data)
        raise
    except (ValueError, IndexError, UnicodeError, OverflowError) as exc:  # pragma: no cover
        # Last resort only: every case found by the fuzz tests is fixed above.
        raise ParseError(f"malformed message ({type(exc).__name__})") from None
    message.wire_size = len(data)
    return message


def _parse_message(data: bytes, limits: HeadLimits) -> Request | Response:
    head, body = _split_head(data)
    check_size(head, limits)
    text = head.decode("utf-8", "surrogateescape")
    if "\n " in text or "\n\t" in text:
        text = _FOLD_RE.sub(" ", text)
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    stray = stray_octet(head) if has_stray(head, text) else None
    lines = text.split("\n")
    try:
        headers = Headers(_parse_header_lines(lines, 1))
        message = _parse_start_line(lines[0], headers)
    except ParseError as exc:
        if stray is None:
            raise
        raise _renamed(exc, stray) from None  # the octet is what went wrong
    try:
        if stray is not None:
            raise ParseError(stray)  # RFC 3261 §25.1; 400 naming it (sbc.sip.head)
        message.body = _frame_body(headers, body)
        _validate(message)
    except ParseError as exc:
        exc.message = message
        raise
    return message


def _renamed(exc: ParseError, reason: str) -> ParseError:
    """``exc`` with ``reason`` instead, as a plain 400 still carrying its message."""
    renamed = ParseError(reason)
    renamed.message = exc.message
    return renamed


def _split_head(data: bytes) -> tuple[bytes, bytes]:
    """Split at the empty line; tolerate leading CRLFs (RFC 3261 §7.5)."""
    if data[:1] in (b"\r", b"\n"):
        data = data.lstrip(b"\r\n")
    if not data:
        raise ParseError("empty message")
    end = data.find(b"\r\n\r\n")
    if end >= 0:
        return data[:end], data[end + 4 :]
    end = data.find(b"\n\n")
    if end >= 0:
        return data[:end], data[end + 2 :]
    return data.rstrip(b"\r\n"), b""


def _parse_header_lines(lines: list[str], first: int) -> list[tuple[str, str]]:
    """``field-name HCOLON field-value`` per line (folding already undone)."""
    items: list[tuple[str, str]] = []
    for i in range(first, len(lines)):
        line = lines[i]
        if not line:
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise ParseError(f"malformed header line {line[:40]!r}")
        name = name.rstrip(" \t")
        canonical = CANONICAL_SPELLINGS.get(name)
        if canonical is None:
            if not _TOKEN_RE.match(name):
                raise ParseError(f"malformed header line {line[:40]!r}")
            canonical = canonical_name(name)
        items.append((canonical, value.strip(" \t\r")))
    return items


def _parse_start_line(line: str, headers: Headers) -> Request | Response:
    line = line.rstrip(" \t\r")  # trailing SP: RFC 4475 §3.1.2.10, accepted
    if line[:4].upper() == "SIP/":
        return _parse_status_line(line, headers)
    return _parse_request_line(line, headers)


def _parse_status_line(line: str, headers: Headers) -> Response:
    """``Status-Line = SIP-Version SP Status-Code SP Reason-Phrase``."""
    version, _, rest = line.partition(" ")
    code, _, reason = rest.partition(" ")
    if version.upper() != SIP_VERSION:
        raise UnsupportedVersionError(f"unsupported version {version[:20]!r}")
    status = parse_number(code, 699) if len(code) == 3 else None
    if status is None or status < 100:
        raise ParseError(f"invalid status code {code[:20]!r}")
    return Response(status, reason, headers)


def _parse_request_line(line: str, headers: Headers) -> Request:
    """``Request-Line = Method SP Request-URI SP SIP-Version``.

    Runs of SP between the elements are tolerated (RFC 4475 §3.1.2.9); a
    Request-URI with LWS inside (§3.1.2.8), in ``<>`` (§3.1.2.7) or with
    headers (§3.1.2.11) is a 400 that still carries the request.
    """
    parts = line.split()
    if len(parts) < 3:
        raise ParseError("malformed Request-Line")
    method, version = parts[0], parts[-1]
    if not _TOKEN_RE.match(method):
        raise ParseError(f"invalid method {method[:40]!r}")
    uri_text = " ".join(parts[1:-1])
    request = Request(method, UnparsedUri(uri_text), headers, version=version)
    if version.upper() != SIP_VERSION:
        version_error = UnsupportedVersionError(f"unsupported version {version[:20]!r}")
        version_error.message = request
        raise version_error
    try:
        request.uri = _parse_request_uri(uri_text)
    except ParseError as exc:
        exc.message = request
        raise
    return request


def _parse_request_uri(text: str) -> Uri:
    if " " in text:
        raise ParseError("whitespace in Request-URI")
    try:
        uri = parse_uri(text)
    except ParseError as exc:
        raise ParseError(f"invalid Request-URI: {exc.reason}") from None
    if isinstance(uri, SipUri) and uri.headers is not None:
        # RFC 3261 §19.1.1 table 1: headers are not allowed in a Request-URI.
        raise ParseError("headers in Request-URI")
    return uri


def _frame_body(headers: Headers, body: bytes) -> bytes:
    """Cut the body to Content-Length (RFC 3261 §18.3); extra octets are noise."""
    value = headers.get("Content-Length")
    if value is None:
        return body  # datagram: the body runs to the end (RFC 3261 §18.3)
    length = parse_number(value, MAX_CONTENT_LENGTH, clamp=True)
    if length is None:
        raise ParseError(f"invalid Content-Length {value[:20]!r}")
    if length > len(body):
        raise ParseError("Content-Length larger than the body")
    return body[:length] if length < len(body) else body


def _validate(message: Request | Response) -> None:
    """Header presence, uniqueness and the scalar ranges of RFC 3261 §20."""
    counts: dict[str, int] = {}
    for name, _ in message.headers:
        counts[name] = counts.get(name, 0) + 1
    for name in _REQUIRED:
        if name not in counts:
            raise ParseError(f"missing {name}")
    for name in _SINGLE:
        if counts.get(name, 0) > 1:
            raise ParseError(f"duplicate {name}")
    headers = message.headers
    if not headers.get("Call-ID"):
        raise ParseError("empty Call-ID")
    cseq = message.cseq
    message.from_  # noqa: B018 - parse now so errors surface as 400
    message.to  # noqa: B018
    message.vias  # noqa: B018
    if "Contact" in counts:
        message.contacts  # noqa: B018
    max_forwards = headers.get("Max-Forwards")
    if max_forwards is not None and parse_number(max_forwards, MAX_FORWARDS_LIMIT) is None:
        raise ParseError(f"invalid Max-Forwards {max_forwards[:20]!r}")
    if isinstance(message, Request):
        if cseq.method != message.method:
            raise ParseError("CSeq method does not match the Request-Line")
        expires = headers.get("Expires")
        if expires is not None and parse_number(expires, MAX_DELTA_SECONDS) is None:
            # RFC 3261 §20.19: 0 to 2**32-1; a 5,000-digit value is not one.
            raise ParseError(f"invalid Expires {expires[:20]!r}")


def error_reason(exc: ParseError) -> str:
    """A safe reason phrase naming the problem (no CR/LF, bounded length)."""
    text = "".join(ch if ch.isprintable() else "?" for ch in exc.reason)
    return f"Bad Request ({text[:100]})"


def build_response(
    request: Request, status: int, reason: str | None = None, to_tag: str | None = None
) -> Response:
    """A response to ``request`` per RFC 3261 §8.2.6.2 (Via, From, To, Call-ID, CSeq)."""
    headers = Headers()
    for value in request.headers.get_all("Via"):
        headers.add("Via", value)
    headers.add("From", request.headers.get("From") or "")
    to = request.headers.get("To") or ""
    if to_tag is not None and status > 100:
        try:
            if request.to.tag is None:
                to = f"{to};tag={to_tag}"
        except ParseError:
            pass
    headers.add("To", to)
    headers.add("Call-ID", request.headers.get("Call-ID") or "")
    headers.add("CSeq", request.headers.get("CSeq") or "")
    if status == 100 and (timestamp := request.headers.get("Timestamp")):
        headers.add("Timestamp", timestamp)  # RFC 3261 §8.2.6.1
    return Response(status, reason, headers)
