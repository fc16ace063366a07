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
from sbc.sip.headers import Headers, canonical_name
from sbc.sip.reasons import reason_phrase
from sbc.sip.uri import SipUri, Uri, parse_uri
from sbc.sip.via import Via, parse_via

SIP_VERSION = "SIP/2.0"
MAX_CSEQ = 2**31 - 1  # RFC 3261 §8.1.1.5: sequence number < 2**31
_TOKEN_RE = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~]+$")
_FOLD_RE = re.compile(r"\r?\n[ \t]+")
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
    parts = value.split()
    if len(parts) != 2 or not parts[0].isdigit() or not _TOKEN_RE.match(parts[1]):
        raise ParseError(f"invalid CSeq {value!r}")
    seq = int(parts[0])
    if seq > MAX_CSEQ:
        raise ParseError("CSeq number out of range")
    return CSeq(seq, parts[1])


class Message:
    """What requests and responses share: headers, body and typed views."""

    __slots__ = ("body", "headers")

    def __init__(self, headers: Headers | None = None, body: bytes = b"") -> None:
        self.headers = headers if headers is not None else Headers()
        self.body = body

    # --- typed views of the headers every transaction and dialog needs ---

    @property
    def call_id(self) -> str:
        value = self.headers.get("Call-ID")
        if value is None:
            raise ParseError("missing Call-ID")
        return value.strip()

    @property
    def cseq(self) -> CSeq:
        return self.headers.parsed("CSeq", self._parse_cseq)

    @property
    def from_(self) -> Address:
        return self.headers.parsed("From", lambda: self._parse_single_address("From"))

    @property
    def to(self) -> Address:
        return self.headers.parsed("To", lambda: self._parse_single_address("To"))

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
        return self.headers.parsed(
            "Contact", lambda: [a for v in self.headers.get_all("Contact") for a in _contacts(v)]
        )

    @property
    def record_routes(self) -> list[Address]:
        return self.headers.parsed(
            "Record-Route", lambda: _address_lines(self.headers.get_all("Record-Route"))
        )

    @property
    def routes(self) -> list[Address]:
        return self.headers.parsed("Route", lambda: _address_lines(self.headers.get_all("Route")))

    @property
    def content_type(self) -> str | None:
        value = self.headers.get("Content-Type")
        return value.split(";", 1)[0].strip().lower() if value else None

    def option_tags(self, name: str) -> set[str]:
        """Option tags of Supported / Require / Unsupported, lower-cased."""
        return {v.lower() for v in self.headers.values(name)}

    def _parse_cseq(self) -> CSeq:
        value = self.headers.get("CSeq")
        if value is None:
            raise ParseError("missing CSeq")
        return parse_cseq(value)

    def _parse_single_address(self, name: str) -> Address:
        value = self.headers.get(name)
        if value is None:
            raise ParseError(f"missing {name}")
        try:
            return parse_address(value)
        except ParseError as exc:
            raise ParseError(f"invalid {name}: {exc.reason}") from None

    def _parse_vias(self) -> list[Via]:
        return [parse_via(v) for v in self.headers.values("Via")]

    # --- serialization ---

    def start_line(self) -> str:
        raise NotImplementedError

    def serialize(self) -> bytes:
        """Wire bytes; Content-Length always reflects the body (§18.3)."""
        lines = [self.start_line()]
        lines.extend(f"{n}: {v}" for n, v in self.headers if n != "Content-Length")
        lines.append(f"Content-Length: {len(self.body)}")
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

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}>"


def _address_lines(lines: list[str]) -> list[Address]:
    return [a for line in lines for a in parse_address_list(line)]


def _contacts(value: str) -> list[Address]:
    if value.strip() == "*":
        return []
    return parse_address_list(value)


# --- parsing -----------------------------------------------------------------


def parse_message(data: bytes) -> Request | Response:
    """Parse one complete message (a datagram or a framed stream message)."""
    head, body = _split_head(data)
    text = head.decode("utf-8", "surrogateescape")
    text = _FOLD_RE.sub(" ", text)
    lines = text.split("\n")
    start = lines[0].rstrip("\r")
    headers = Headers(_parse_header_lines(lines[1:]))
    message = _parse_start_line(start, headers)
    message.body = _frame_body(headers, body)
    try:
        _validate(message)
    except ParseError as exc:
        exc.message = message
        raise
    return message


def _split_head(data: bytes) -> tuple[bytes, bytes]:
    # Skip leading CRLFs (RFC 3261 §7.5 tolerance, keepalives).
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


def _parse_header_lines(lines: list[str]) -> list[tuple[str, str]]:
    items: list[tuple[str, str]] = []
    for raw in lines:
        line = raw.rstrip("\r")
        if not line:
            continue
        name, colon, value = line.partition(":")
        name = name.rstrip(" \t")
        if not colon or not name or not _TOKEN_RE.match(name):
            raise ParseError(f"malformed header line {line[:40]!r}")
        items.append((canonical_name(name), value.strip(" \t")))
    return items


def _parse_start_line(line: str, headers: Headers) -> Request | Response:
    if line.startswith("SIP/"):
        version, _, rest = line.partition(" ")
        code, _, reason = rest.partition(" ")
        if version != SIP_VERSION:
            raise UnsupportedVersionError(f"unsupported version {version!r}")
        if len(code) != 3 or not code.isdigit() or not 100 <= int(code) <= 699:
            raise ParseError(f"invalid status code {code!r}")
        return Response(int(code), reason, headers)
    parts = line.split(" ")
    if len(parts) != 3 or not all(parts):
        raise ParseError("malformed Request-Line")
    method, uri_text, version = parts
    if not _TOKEN_RE.match(method):
        raise ParseError(f"invalid method {method!r}")
    try:
        uri = parse_uri(uri_text)
    except ParseError as exc:
        raise ParseError(f"invalid Request-URI: {exc.reason}") from None
    request = Request(method, uri, headers, version=version)
    if version.upper() != SIP_VERSION:
        error = UnsupportedVersionError(f"unsupported version {version!r}")
        error.message = request
        raise error
    return request


def _frame_body(headers: Headers, body: bytes) -> bytes:
    value = headers.get("Content-Length")
    if value is None:
        return body  # datagram: the body runs to the end (RFC 3261 §18.3)
    value = value.strip()
    if not value.isdigit():
        raise ParseError(f"invalid Content-Length {value!r}")
    length = int(value)
    if length > len(body):
        raise ParseError("Content-Length larger than the body")
    return body[:length]


def _validate(message: Request | Response) -> None:
    headers = message.headers
    for name in _REQUIRED:
        if name not in headers:
            raise ParseError(f"missing {name}")
    for name in _SINGLE:
        if headers.count(name) > 1:
            raise ParseError(f"duplicate {name}")
    if not headers.get("Call-ID"):
        raise ParseError("empty Call-ID")
    cseq = message.cseq
    message.from_  # noqa: B018 - parse now so errors surface as 400
    message.to  # noqa: B018
    message.vias  # noqa: B018
    message.contacts  # noqa: B018
    max_forwards = headers.get("Max-Forwards")
    if max_forwards is not None and (not max_forwards.isdigit() or int(max_forwards) > 255):
        raise ParseError(f"invalid Max-Forwards {max_forwards!r}")
    if isinstance(message, Request):
        if cseq.method != message.method:
            raise ParseError("CSeq method does not match the Request-Line")
        expires = headers.get("Expires")
        if expires is not None and not expires.isdigit():
            raise ParseError(f"invalid Expires {expires!r}")


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


def is_sip_uri(uri: Uri) -> bool:
    return isinstance(uri, SipUri)
