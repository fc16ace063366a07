"""SDP (RFC 8866) as structured data, with byte-exact round trips.

    session-description = version-field origin-field session-name-field
                          [information-field] [uri-field] *email-field
                          *phone-field [connection-field] *bandwidth-field
                          1*time-description [key-field] *attribute-field
                          *media-description
    media-description   = media-field [information-field] *connection-field
                          *bandwidth-field [key-field] *attribute-field

Every line keeps what it was parsed from (text, line ending and the parsed
values). :meth:`SessionDescription.serialize` writes a line back verbatim
while its values are unchanged, and canonically (``type=value`` + the
original line ending, CRLF for new lines) once they change. So an untouched
body comes out byte for byte identical, unknown lines included, and a media
anchor only has to assign ``connection.address``, ``media.port``,
``origin.address`` or attribute values.

Lines keep their order inside each section: session-level lines are in
:attr:`SessionDescription.lines`, media-level ones in
:attr:`MediaDescription.lines`; typed views (``connection``,
``attributes``…) read from those lists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, NamedTuple

from sbc.sip.errors import SipError
from sbc.sip.params import MAX_PORT, parse_number

CRLF = "\r\n"
SDP_VERSION = 0  # RFC 8866 §5.1
#: RFC 8866 §6.7: media direction attributes; sendrecv is the default.
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
DEFAULT_DIRECTION = "sendrecv"
#: RFC 5761 §5.1.3
RTCP_MUX = "rtcp-mux"
MAX_PAYLOAD_TYPE = 127  # RFC 3550 §5.1: PT is 7 bits
MAX_CLOCK_RATE = 2**32 - 1  # an rtpmap clock rate beyond this is unreadable
#: Other SDP numbers (bandwidth, sess-version, port count, ptime...): up to 20
#: digits, enough for 2**64 (RFC 8866 §5.2 suggests an NTP timestamp as sess-version).
MAX_SDP_NUMBER = 10**20 - 1


class SdpError(SipError):
    """The body is not usable SDP: answered 488 Not Acceptable Here (RFC 3261 §21.4.26)."""

    status = 488


class _Wire(NamedTuple):
    """What a line was parsed from: its text, its line ending, its values."""

    text: str
    eol: str
    key: tuple[object, ...]


class _Line:
    """Shared serialization of one ``<type>=<value>`` line."""

    __slots__ = ()
    TYPE: ClassVar[str] = ""

    def _key(self) -> tuple[object, ...]:
        raise NotImplementedError

    def _value(self) -> str:
        raise NotImplementedError

    def _line_type(self) -> str:
        return self.TYPE

    def _emit(self, out: list[tuple[str, str]]) -> None:
        wire: _Wire | None = getattr(self, "wire", None)
        if wire is not None and wire.key == self._key():
            out.append((wire.text, wire.eol))
            return
        line_type = self._line_type()
        text = f"{line_type}={self._value()}" if line_type else ""
        out.append((text, wire.eol if wire is not None else CRLF))


@dataclass(slots=True)
class Field(_Line):
    """Any line kept as text (``i=``, ``u=``, ``t=``, ``k=``…); ``type`` "" is a blank line."""

    type: str
    value: str
    wire: _Wire | None = field(default=None, repr=False, compare=False)

    def _line_type(self) -> str:
        return self.type

    def _key(self) -> tuple[object, ...]:
        return (self.type, self.value)

    def _value(self) -> str:
        return self.value


@dataclass(slots=True)
class Attribute(_Line):
    """``a=<name>[:<value>]`` (RFC 8866 §5.13)."""

    TYPE: ClassVar[str] = "a"
    name: str
    value: str | None = None
    wire: _Wire | None = field(default=None, repr=False, compare=False)

    def _key(self) -> tuple[object, ...]:
        return (self.name, self.value)

    def _value(self) -> str:
        return self.name if self.value is None else f"{self.name}:{self.value}"


@dataclass(slots=True)
class Connection(_Line):
    """``c=<nettype> <addrtype> <connection-address>`` (RFC 8866 §5.7)."""

    TYPE: ClassVar[str] = "c"
    nettype: str
    addrtype: str
    address: str
    wire: _Wire | None = field(default=None, repr=False, compare=False)

    @property
    def is_hold(self) -> bool:
        """RFC 3264 §8.4 (old style): ``c=IN IP4 0.0.0.0`` puts the stream on hold."""
        return self.address in ("0.0.0.0", "::")

    def _key(self) -> tuple[object, ...]:
        return (self.nettype, self.addrtype, self.address)

    def _value(self) -> str:
        return f"{self.nettype} {self.addrtype} {self.address}"


@dataclass(slots=True)
class Bandwidth(_Line):
    """``b=<bwtype>:<bandwidth>`` (RFC 8866 §5.8)."""

    TYPE: ClassVar[str] = "b"
    bwtype: str
    bandwidth: int
    wire: _Wire | None = field(default=None, repr=False, compare=False)

    def _key(self) -> tuple[object, ...]:
        return (self.bwtype, self.bandwidth)

    def _value(self) -> str:
        return f"{self.bwtype}:{self.bandwidth}"


@dataclass(slots=True)
class Origin(_Line):
    """``o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>``."""

    TYPE: ClassVar[str] = "o"
    username: str
    sess_id: str
    sess_version: int
    nettype: str
    addrtype: str
    address: str
    wire: _Wire | None = field(default=None, repr=False, compare=False)

    def _key(self) -> tuple[object, ...]:
        return (
            self.username,
            self.sess_id,
            self.sess_version,
            self.nettype,
            self.addrtype,
            self.address,
        )

    def _value(self) -> str:
        return " ".join(str(part) for part in self._key())


SdpLine = Field | Attribute | Connection | Bandwidth


class _Section:
    """Typed views over an ordered ``lines`` list (session or media level)."""

    __slots__ = ()
    lines: list[SdpLine]

    @property
    def connection(self) -> Connection | None:
        """The first ``c=`` line of this section."""
        return next((ln for ln in self.lines if isinstance(ln, Connection)), None)

    @connection.setter
    def connection(self, value: Connection | None) -> None:
        index = next((i for i, ln in enumerate(self.lines) if isinstance(ln, Connection)), None)
        if index is None:
            if value is not None:
                self.lines.insert(self._connection_slot(), value)
        elif value is None:
            del self.lines[index]
        else:
            self.lines[index] = value

    def _connection_slot(self) -> int:
        """Where a new ``c=`` goes: before b=, t=, k= and a= lines (RFC 8866 §5)."""
        for i, line in enumerate(self.lines):
            if isinstance(line, Bandwidth | Attribute) or (
                isinstance(line, Field) and line.type in "tk"
            ):
                return i
        return len(self.lines)

    @property
    def bandwidths(self) -> list[Bandwidth]:
        return [ln for ln in self.lines if isinstance(ln, Bandwidth)]

    @property
    def attributes(self) -> list[Attribute]:
        """The ``a=`` lines in order (a view: use the methods below to add/remove)."""
        return [ln for ln in self.lines if isinstance(ln, Attribute)]

    def attribute(self, name: str) -> Attribute | None:
        """The first attribute called ``name``."""
        return next((a for a in self.attributes if a.name == name), None)

    def attribute_values(self, name: str) -> list[str | None]:
        return [a.value for a in self.attributes if a.name == name]

    def add_attribute(self, name: str, value: str | None = None) -> Attribute:
        """Append ``a=name[:value]`` after the last line of the section."""
        attribute = Attribute(name, value)
        self.lines.append(attribute)
        return attribute

    def remove_attributes(self, *names: str) -> int:
        """Remove every attribute with one of ``names``; return how many."""
        before = len(self.lines)
        self.lines[:] = [
            ln for ln in self.lines if not (isinstance(ln, Attribute) and ln.name in names)
        ]
        return before - len(self.lines)

    @property
    def own_direction(self) -> str | None:
        """The direction attribute of this section alone, if any."""
        return next((a.name for a in self.attributes if a.name in DIRECTIONS), None)

    def _replace_direction(self, direction: str) -> None:
        """Rename the first direction attribute in place, drop any other one."""
        if direction not in DIRECTIONS:
            raise ValueError(f"unknown direction {direction!r}")
        current = next((a for a in self.attributes if a.name in DIRECTIONS), None)
        if current is None:
            self.add_attribute(direction)
            return
        current.name = direction
        self.lines[:] = [
            ln
            for ln in self.lines
            if ln is current or not (isinstance(ln, Attribute) and ln.name in DIRECTIONS)
        ]


@dataclass(slots=True)
class MediaDescription(_Section, _Line):
    """``m=<media> <port>[/<number of ports>] <proto> <fmt> ...`` and its lines."""

    TYPE: ClassVar[str] = "m"
    media: str
    port: int
    proto: str
    formats: list[str]
    port_count: int | None = None
    lines: list[SdpLine] = field(default_factory=list)
    session: SessionDescription | None = field(default=None, repr=False, compare=False)
    wire: _Wire | None = field(default=None, repr=False, compare=False)

    @property
    def is_rejected(self) -> bool:
        """RFC 3264 §6: port 0 rejects (or disables) the stream."""
        return self.port == 0

    @property
    def direction(self) -> str:
        """Media direction, else the session-level one, else sendrecv (RFC 8866 §6.7)."""
        own = self.own_direction
        if own is not None:
            return own
        if self.session is not None and self.session.own_direction is not None:
            return self.session.own_direction
        return DEFAULT_DIRECTION

    def set_direction(self, direction: str) -> None:
        """Set the media-level direction (replacing any existing one)."""
        self._replace_direction(direction)

    @property
    def rtpmap(self) -> dict[str, str]:
        """Payload type → ``encoding/clock[/channels]`` (RFC 8866 §6.6)."""
        return dict(_split_fmt_attribute(v) for v in self.attribute_values("rtpmap"))

    @property
    def fmtp(self) -> dict[str, str]:
        """Payload type → format parameters (RFC 8866 §6.15)."""
        return dict(_split_fmt_attribute(v) for v in self.attribute_values("fmtp"))

    @property
    def rtcp_mux(self) -> bool:
        return self.attribute(RTCP_MUX) is not None

    def _key(self) -> tuple[object, ...]:
        return (self.media, self.port, self.port_count, self.proto, tuple(self.formats))

    def _value(self) -> str:
        port = str(self.port) if self.port_count is None else f"{self.port}/{self.port_count}"
        return " ".join([self.media, port, self.proto, *self.formats])

    def _emit_all(self, out: list[tuple[str, str]]) -> None:
        self._emit(out)
        for line in self.lines:
            line._emit(out)


@dataclass(slots=True)
class SessionDescription(_Section):
    """A whole SDP body."""

    origin: Origin
    session_name: str = "-"
    version: int = SDP_VERSION
    lines: list[SdpLine] = field(default_factory=list)
    media: list[MediaDescription] = field(default_factory=list)
    version_wire: _Wire | None = field(default=None, repr=False, compare=False)
    session_name_wire: _Wire | None = field(default=None, repr=False, compare=False)

    def add_media(self, media: MediaDescription) -> MediaDescription:
        media.session = self
        self.media.append(media)
        return media

    def set_direction(self, direction: str) -> None:
        """Set the session-level direction attribute."""
        self._replace_direction(direction)

    def serialize(self) -> bytes:
        """The body: byte-exact for unchanged lines, canonical for changed/new ones."""
        out: list[tuple[str, str]] = []
        Field("v", str(self.version), self.version_wire)._emit(out)
        self.origin._emit(out)
        Field("s", self.session_name, self.session_name_wire)._emit(out)
        for line in self.lines:
            line._emit(out)
        for media in self.media:
            media._emit_all(out)
        last = len(out) - 1
        text = "".join(t + (eol or (CRLF if i < last else "")) for i, (t, eol) in enumerate(out))
        return text.encode("utf-8", "surrogateescape")

    def __bytes__(self) -> bytes:
        return self.serialize()


# --- parsing -----------------------------------------------------------------


def parse_sdp(data: bytes) -> SessionDescription:
    """Parse an SDP body; raises :class:`SdpError` (488) and nothing else."""
    try:
        return _Parser(data).parse()
    except SdpError:
        raise
    except (ValueError, IndexError, UnicodeError) as exc:  # pragma: no cover - last resort
        raise SdpError(f"malformed SDP ({type(exc).__name__})") from None


class _Parser:
    """One pass over the lines: v, o, s first, then the sections in order."""

    def __init__(self, data: bytes) -> None:
        self.lines = _split_lines(data.decode("utf-8", "surrogateescape"))
        self.pos = 0

    def parse(self) -> SessionDescription:
        version_wire = self._expect("v")
        if version_wire.text != f"v={SDP_VERSION}":
            raise SdpError(f"unsupported SDP version {version_wire.text[:20]!r}")
        origin = _parse_origin(self._expect("o"))
        name_wire = self._expect("s")
        session = SessionDescription(
            origin=origin,
            session_name=name_wire.text[2:],
            version=SDP_VERSION,
            version_wire=_rekey(version_wire, ("v", str(SDP_VERSION))),
            session_name_wire=_rekey(name_wire, ("s", name_wire.text[2:])),
        )
        media: MediaDescription | None = None
        for wire in self.lines[self.pos :]:
            if wire.text[:2] == "m=":
                media = session.add_media(_parse_media(wire))
            elif media is None:
                session.lines.append(_parse_line(wire))
            else:
                media.lines.append(_parse_line(wire))
        return session

    def _expect(self, line_type: str) -> _Wire:
        if self.pos >= len(self.lines) or self.lines[self.pos].text[:2] != line_type + "=":
            raise SdpError(f"SDP must have {line_type}= here (RFC 8866 §5)")
        self.pos += 1
        return self.lines[self.pos - 1]


def _split_lines(text: str) -> list[_Wire]:
    """Lines with their own endings (CRLF or LF); blank lines kept.

    Only LF ends a line (``str.splitlines`` would also split on VT, FF…).
    """
    if not text:
        raise SdpError("empty SDP")
    parts = text.split("\n")
    last = len(parts) - 1
    wires = []
    for i, part in enumerate(parts):
        eol = "\n" if i < last else ""
        if i == last and not part:
            break
        if part.endswith("\r"):
            part, eol = part[:-1], "\r" + eol  # noqa: PLW2901
        wires.append(_Wire(part, eol, ()))
    return wires


def _rekey(wire: _Wire, key: tuple[object, ...]) -> _Wire:
    return wire._replace(key=key)


def _parse_line(wire: _Wire) -> SdpLine:
    text = wire.text
    if not text:
        return Field("", "", _rekey(wire, ("", "")))
    if len(text) < 2 or text[1] != "=" or not ("a" <= text[0] <= "z"):
        raise SdpError(f"malformed SDP line {text[:40]!r}")
    line_type, value = text[0], text[2:]
    if line_type == "a":
        return _parse_attribute(wire, value)
    if line_type == "c":
        return _parse_connection(wire, value)
    if line_type == "b":
        return _parse_bandwidth(wire, value)
    return Field(line_type, value, _rekey(wire, (line_type, value)))


def _parse_attribute(wire: _Wire, value: str) -> Attribute:
    """``attribute = (attribute-name ":" attribute-value) / attribute-name``."""
    name, colon, rest = value.partition(":")
    if not name:
        raise SdpError(f"empty attribute name {wire.text[:40]!r}")
    attribute = Attribute(name, rest if colon else None)
    attribute.wire = _rekey(wire, attribute._key())
    return attribute


def _parse_connection(wire: _Wire, value: str) -> Connection:
    parts = value.split(" ")
    if len(parts) != 3 or not all(parts):
        raise SdpError(f"malformed c= line {wire.text[:60]!r}")
    connection = Connection(parts[0], parts[1], parts[2])
    connection.wire = _rekey(wire, connection._key())
    return connection


def _parse_bandwidth(wire: _Wire, value: str) -> Bandwidth:
    bwtype, colon, amount = value.partition(":")
    kbps = parse_number(amount, MAX_SDP_NUMBER)
    if not colon or not bwtype or kbps is None:
        raise SdpError(f"malformed b= line {wire.text[:60]!r}")
    bandwidth = Bandwidth(bwtype, kbps)
    bandwidth.wire = _rekey(wire, bandwidth._key())
    return bandwidth


def _parse_origin(wire: _Wire) -> Origin:
    parts = wire.text[2:].split(" ")
    version = parse_number(parts[2], MAX_SDP_NUMBER) if len(parts) == 6 else None
    if version is None or not all(parts):
        raise SdpError(f"malformed o= line {wire.text[:80]!r}")
    origin = Origin(parts[0], parts[1], version, parts[3], parts[4], parts[5])
    origin.wire = _rekey(wire, origin._key())
    return origin


def _parse_media(wire: _Wire) -> MediaDescription:
    """``m=<media> <port>[/<number of ports>] <proto> 1*(SP <fmt>)`` (RFC 8866 §5.14)."""
    parts = wire.text[2:].split(" ")
    if len(parts) < 3 or not all(parts):
        raise SdpError(f"malformed m= line {wire.text[:80]!r}")
    port_text, slash, count_text = parts[1].partition("/")
    port = parse_number(port_text, MAX_PORT)
    if port is None:
        raise SdpError(f"invalid m= port {parts[1][:20]!r}")
    count = parse_number(count_text, MAX_SDP_NUMBER) if slash else None
    if slash and count is None:
        raise SdpError(f"invalid m= port count {parts[1][:20]!r}")
    media = MediaDescription(
        media=parts[0],
        port=port,
        proto=parts[2],
        formats=parts[3:],
        port_count=count,
    )
    media.wire = _rekey(wire, media._key())
    return media


def _split_fmt_attribute(value: str | None) -> tuple[str, str]:
    """``<payload type> <rest>`` of rtpmap/fmtp values."""
    fmt, _, rest = (value or "").partition(" ")
    return fmt, rest.strip()
