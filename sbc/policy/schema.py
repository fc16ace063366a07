"""The typed shape of each policy file, as an operator writes it.

These pydantic models validate one file at a time and know nothing about the
other files; names that refer across files (a trunk's interface, a route's
trunks) are checked in :mod:`sbc.policy.crossref`. Every model forbids extra
keys so a typo (``prot: 5060``) is an error, never a silently ignored line.
Scalars are strict: YAML ``port: "5060"`` or ``json: yes``-as-a-string is a
mistake worth reporting, not coercing.
"""

from __future__ import annotations

import ipaddress
import re
import zoneinfo
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationInfo,
    field_validator,
    model_validator,
)

from sbc.auth.secrets import SecretRef
from sbc.fingerprints import normalize_fingerprint
from sbc.policy.regex import RegexError, compile_regex
from sbc.sip.head import HeadLimits
from sbc.sip.headers import canonical_name

# RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens.
_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}\Z){_LABEL}(\.{_LABEL})*\.?")

# RFC 4028 §4: Min-SE may not be configured below 90 seconds.
RFC4028_MIN_SE_S = 90


def _ip_address(value: str) -> str:
    """Accept a literal IPv4/IPv6 address and return its canonical spelling."""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(f"'{value}' is not a valid IP address") from None


def _host(value: str) -> str:
    """Accept a literal IP address or an RFC 1123 host name."""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        # RFC 3696 §2: a top-level label is never all digits, so "10.0.0.300" is a bad IP.
        if _HOSTNAME.fullmatch(value) and not value.rstrip(".").rsplit(".", 1)[-1].isdigit():
            return value.lower()
    raise ValueError(f"'{value}' is not a valid IP address or host name")


def _network(value: str) -> str:
    """Accept a CIDR block (or a single address) and return its canonical spelling."""
    try:
        return str(ipaddress.ip_network(value))
    except ValueError as exc:
        raise ValueError(f"'{value}' is not a valid CIDR network: {exc}") from None


StrictStr = Annotated[str, Strict()]

# RFC 3261 §25.1: text the SBC puts in a header value, URI or reason phrase has
# no control character but HTAB; a CR or LF there would start a new header line.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_ON_THE_WIRE = "this text goes on the wire"


def _wire_text(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError(f"control characters (CR, LF, NUL...) are not allowed: {_ON_THE_WIRE}")
    return value


def check_replacement(regex: str, replacement: str) -> None:
    """A ``re.sub``-style replacement must be valid for ``regex`` (group numbers
    and names it has) and its own text must not expand to a control character
    (``\\r``, ``\\0``, ``\\015``...): what groups capture comes from parsed
    messages, which hold none (sbc.sip.head). Raises ValueError."""
    try:
        template = compile_regex(regex).replacement(replacement)
    except RegexError as exc:
        raise ValueError(f"invalid replacement: {exc}") from None
    literal = b"".join(piece for piece in template.pieces if isinstance(piece, bytes))
    if _CONTROL.search(literal.decode("utf-8", "surrogateescape")):
        raise ValueError(
            "the replacement expands to a control character (CR, LF, NUL...): " + _ON_THE_WIRE
        )


WireText = Annotated[str, Strict(), AfterValidator(_wire_text)]
Name = Annotated[str, Strict(), Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")]
IPAddress = Annotated[str, Strict(), AfterValidator(_ip_address)]
Host = Annotated[str, Strict(), AfterValidator(_host)]
Network = Annotated[str, Strict(), AfterValidator(_network)]
Port = Annotated[int, Strict(), Field(ge=1, le=65535)]
Transport = Literal["udp", "tcp", "tls"]
HeaderName = Annotated[str, Strict(), Field(pattern=r"^[A-Za-z0-9!%*_+`'~.-]+$")]
Milliseconds = Annotated[int, Strict(), Field(gt=0)]
Seconds = Annotated[int, Strict(), Field(ge=0)]


#: Rebuilt by the B2BUA on every leg (RFC 3261 §8.1.1, §16): never copied across.
SBC_OWNED_HEADERS = frozenset(
    canonical_name(name)
    for name in (
        "Via",
        "Route",
        "Record-Route",
        "Contact",
        "Call-ID",
        "CSeq",
        "From",
        "To",
        "Content-Length",
        "Max-Forwards",
    )
)


class _Strict(BaseModel):
    """Base for every policy model: immutable, and unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


Fingerprint = Annotated[str, Strict(), AfterValidator(normalize_fingerprint)]
FilePath = Annotated[str, Strict(), Field(min_length=1)]


class InterfaceTls(_Strict):
    """SIP over TLS on an interface (RFC 3261 §26): certificate, key, client checks."""

    port: Port = 5061
    certfile: FilePath
    keyfile: FilePath
    cafile: FilePath | None = None
    require_client_cert: Annotated[bool, Strict()] = False
    pinned_client_fingerprints: list[Fingerprint] = []

    @model_validator(mode="after")
    def _mutual_needs_ca(self) -> InterfaceTls:
        mutual = self.require_client_cert or bool(self.pinned_client_fingerprints)
        if mutual and self.cafile is None:
            raise ValueError("mutual TLS needs cafile (the CA, or the client's own certificate)")
        return self


class TrunkTls(_Strict):
    """How we check a TLS trunk (and present ourselves to it)."""

    server_name: Host | None = None  # checked against the certificate; default: the address
    cafile: FilePath | None = None  # default: the system's CA store
    certfile: FilePath | None = None  # our client certificate, for trunks requiring mutual TLS
    keyfile: FilePath | None = None
    pinned_fingerprints: list[Fingerprint] = []

    @model_validator(mode="after")
    def _key_with_cert(self) -> TrunkTls:
        if (self.certfile is None) != (self.keyfile is None):
            raise ValueError("certfile and keyfile go together")
        return self


class TrunkAuth(_Strict):
    """Digest credentials we answer this trunk's 401/407 with (RFC 3261 §22)."""

    username: Annotated[WireText, Field(min_length=1)]
    password: SecretRef
    realm: WireText | None = None  # None: answer whatever realm challenges


class RequireAuth(_Strict):
    """Peers of this trunk must authenticate their requests (digest, RFC 3261 §22)."""

    realm: Annotated[str, Strict(), Field(min_length=1, pattern=r"^[^\x00-\x1f\x7f\"]+$")]
    users: dict[Annotated[str, Strict(), Field(min_length=1)], SecretRef] = Field(min_length=1)
    nonce_ttl_s: Annotated[int, Strict(), Field(ge=10, le=3600)] = 300
    algorithm: Literal["SHA-256", "MD5"] = "SHA-256"


class TrunkRegister(_Strict):
    """Keep a registration with this trunk (RFC 3261 §10)."""

    aor_user: Annotated[WireText, Field(min_length=1)]
    domain: Host | None = None  # registrar domain; default: the trunk address
    expires_s: Annotated[int, Strict(), Field(ge=60, le=86400)] = 3600
    contact_user: WireText | None = None


class RegistrationRelaySpec(_Strict):
    """Phones or a PBX on this interface register through the SBC to a registrar trunk."""

    registrar: Name  # a trunk
    client_expires_s: Annotated[int, Strict(), Field(ge=20, le=3600)] = 60
    upstream_expires_s: Annotated[int, Strict(), Field(ge=60, le=86400)] = 3600
    keepalive_s: Annotated[int, Strict(), Field(ge=1, le=3600)] = 25
    # Bounds on what strangers can make the relay remember (docs/policies.md):
    # bindings exist only once the registrar said 2xx; pending REGISTERs are
    # the ones it has not answered yet (unauthenticated, forgotten after 32 s).
    max_bindings: Annotated[int, Strict(), Field(ge=1, le=10_000_000)] = 50_000
    max_bindings_per_source: Annotated[int, Strict(), Field(ge=1, le=10_000_000)] = 1000
    max_pending: Annotated[int, Strict(), Field(ge=1, le=1_000_000)] = 5000
    max_pending_per_source: Annotated[int, Strict(), Field(ge=1, le=1_000_000)] = 100

    @model_validator(mode="after")
    def _per_source_within_total(self) -> RegistrationRelaySpec:
        if self.max_bindings_per_source > self.max_bindings:
            raise ValueError("max_bindings_per_source must not exceed max_bindings")
        if self.max_pending_per_source > self.max_pending:
            raise ValueError("max_pending_per_source must not exceed max_pending")
        return self


class InterfaceSpec(_Strict):
    """A listening address of the SBC (one side of the border)."""

    name: Name
    address: IPAddress
    port: Port = 5060
    transports: list[Transport] = Field(default=["udp"], min_length=1)
    advertised_address: IPAddress | None = None
    media_address: IPAddress | None = None
    media_ports: tuple[Port, Port] = (20000, 29999)
    tls: InterfaceTls | None = None
    registration: RegistrationRelaySpec | None = None

    @model_validator(mode="after")
    def _tls_settings(self) -> InterfaceSpec:
        if "tls" in self.transports and self.tls is None:
            raise ValueError("transport tls needs a 'tls' block (certfile, keyfile)")
        if self.tls is not None and "tls" not in self.transports:
            raise ValueError("a 'tls' block needs tls in transports")
        return self

    @field_validator("media_ports")
    @classmethod
    def _even_ordered_range(cls, value: tuple[int, int]) -> tuple[int, int]:
        """RTP takes the even port and RTCP the odd one above it (RFC 3550 §11)."""
        low, high = value
        if low > high:
            raise ValueError(f"range start {low} is above its end {high}")
        if low % 2:
            raise ValueError(f"range start {low} must be even (RTP uses even ports)")
        return value


CodecName = Annotated[str, Strict(), Field(min_length=1, pattern=r"^[A-Za-z0-9_.+-]+$")]
#: RFC 3264 §5 leaves ptime to the offerer; these are what RTP audio uses in practice.
Ptime = Annotated[int, Strict(), Field(ge=10, le=120)]


class TrunkCodecs(_Strict):
    """Which audio codecs a trunk sees, in what order, and whether to transcode.

    Names are ``a=rtpmap`` encoding names (RFC 8866 §6.6), case-insensitive.
    ``allow`` (absent: all) never removes telephone-event unless it is in ``strip``.
    """

    allow: list[CodecName] | None = None
    prefer: list[CodecName] = []
    strip: list[CodecName] = []
    transcode: Annotated[bool, Strict()] = False
    ptime: Ptime | None = None

    @model_validator(mode="after")
    def _consistent(self) -> TrunkCodecs:
        allowed = {name.lower() for name in self.allow} if self.allow is not None else None
        for name in self.prefer:
            if name.lower() in {n.lower() for n in self.strip}:
                raise ValueError(f"codec {name} is both preferred and stripped")
            if allowed is not None and name.lower() not in allowed:
                raise ValueError(f"preferred codec {name} is not in allow")
        return self


class TrunkSpec(_Strict):
    """A named SIP peer (carrier or PBX) reached through one interface."""

    name: Name
    interface: Name
    address: Host
    port: Port = 5060
    transport: Transport = "udp"
    sources: list[Network] = []
    max_calls: Annotated[int, Strict(), Field(ge=0)] = 0
    max_cps: Annotated[float, Field(ge=0)] = 0
    options_interval_s: Seconds = 0
    pass_headers: list[HeaderName] = []
    tls: TrunkTls | None = None
    auth: TrunkAuth | None = None
    # "register" would shadow pydantic's BaseModel.register: aliased.
    register_: TrunkRegister | None = Field(default=None, alias="register")
    require_auth: RequireAuth | None = None
    srtp: Literal["off", "optional", "required"] = "off"  # SDES-SRTP toward this trunk
    codecs: TrunkCodecs | None = None  # audio codec policy and transcoding toward this trunk
    srtp_keying: Literal["sdes", "dtls"] = "sdes"  # how our SRTP offers to it are keyed
    dtmf: Literal["rfc4733", "info"] = "rfc4733"  # how DTMF crosses to/from this trunk
    dtmf_info: Literal["dtmf-relay", "dtmf"] = "dtmf-relay"  # the INFO body we send it
    # In-dialog trust (docs/policies.md): requests in its dialogs come from its
    # own addresses, and ours go to them, unless these say otherwise.
    peer_may_move: Annotated[bool, Strict()] = False
    trust_route: Annotated[bool, Strict()] = False

    @model_validator(mode="after")
    def _tls_for_tls(self) -> TrunkSpec:
        if self.tls is not None and self.transport != "tls":
            raise ValueError("a 'tls' block needs transport: tls")
        return self

    @field_validator("pass_headers")
    @classmethod
    def _not_owned(cls, names: list[str]) -> list[str]:
        """Headers that route, match or frame a message are always the SBC's own."""
        for name in names:
            if canonical_name(name) in SBC_OWNED_HEADERS:
                raise ValueError(f"{name} is the SBC's own on each leg and cannot be passed")
        return names


def _regex(value: str) -> str:
    """Compile once here (RE2: linear time) so a bad pattern is reported at its line."""
    try:
        compile_regex(value)
    except RegexError as exc:
        raise ValueError(f"invalid regex {value!r}: {exc}") from None
    return value


def _clock(value: str) -> str:
    match = re.fullmatch(r"([01]\d|2[0-3]):([0-5]\d)", value)
    if match is None:
        raise ValueError(f"'{value}' is not a time of day (HH:MM, 00:00-23:59)")
    return value


def _timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone '{value}'") from None
    return value


Regex = Annotated[str, Strict(), AfterValidator(_regex)]
Clock = Annotated[str, Strict(), AfterValidator(_clock)]
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
Digits = Annotated[str, Strict(), Field(pattern=r"^\+?[0-9]{1,20}$")]
Status = Annotated[int, Strict(), Field(ge=300, le=699)]


class NumberRange(_Strict):
    """An inclusive range of numbers of one length: ``{first: "2000", last: "2999"}``."""

    first: Digits
    last: Digits

    @model_validator(mode="after")
    def _ordered(self) -> NumberRange:
        plus = self.first.startswith("+"), self.last.startswith("+")
        if len(self.first) != len(self.last) or plus[0] != plus[1]:
            raise ValueError("first and last must have the same length and form")
        if self.first > self.last:
            raise ValueError(f"first ({self.first}) is above last ({self.last})")
        return self


class TimeWindow(_Strict):
    """When a route applies: days of the week and a daily window in a time zone.

    ``start`` after ``end`` is a window across midnight (22:00-06:00).
    """

    days: list[Day] = Field(default=["mon", "tue", "wed", "thu", "fri", "sat", "sun"], min_length=1)
    start: Clock = "00:00"
    end: Clock = "23:59"
    timezone: Annotated[str, Strict(), AfterValidator(_timezone)] = "UTC"


class WeightedTrunk(_Strict):
    trunk: Name
    weight: Annotated[int, Strict(), Field(ge=1, le=1000)] = 1


class TrunkGroup(_Strict):
    """Trunks that share load: each call picks one at random by weight, the rest follow."""

    group: list[WeightedTrunk] = Field(min_length=1)


class Rejection(_Strict):
    status: Annotated[int, Strict(), Field(ge=400, le=699)]
    reason: WireText | None = None


class Translation(_Strict):
    """Rewrite the Request-URI user sent to the trunk (``re.sub`` semantics, first match)."""

    regex: Regex
    replacement: WireText

    @field_validator("replacement")
    @classmethod
    def _replacement_fits(cls, replacement: str, info: ValidationInfo) -> str:
        regex = info.data.get("regex")
        if regex is not None:  # else the regex itself is reported
            check_replacement(regex, replacement)
        return replacement


#: RFC 3261 §16.7-style failover: no answer (408) or a server that cannot take it.
DEFAULT_FAILOVER = [408, 500, 502, 503, 504]


class RouteSpec(_Strict):
    """Match criteria (all that are set must hold), then route, reject, or translate."""

    name: Name
    from_trunk: Name | None = None
    from_interface: Name | None = None
    prefix: Annotated[str, Strict(), Field(pattern=r"^[^\s]*$")] = ""
    ruri_regex: Regex | None = None
    ruri_range: NumberRange | None = None
    from_prefix: Annotated[str, Strict(), Field(pattern=r"^[^\s]*$")] = ""
    from_regex: Regex | None = None
    headers: dict[HeaderName, Regex] = {}
    time: TimeWindow | None = None
    reject: Rejection | None = None  # before ``to``: its validator reads it
    to_registered: Annotated[bool, Strict()] = False  # to the user's relayed registration
    to: list[Name | TrunkGroup] = Field(default=[], validate_default=True)
    translate: Translation | None = None
    failover_on: list[Status] = Field(default=DEFAULT_FAILOVER)

    @field_validator("to")
    @classmethod
    def _one_action(
        cls, to: list[str | TrunkGroup], info: ValidationInfo
    ) -> list[str | TrunkGroup]:
        actions = [
            name
            for name, given in (
                ("reject", info.data.get("reject") is not None),
                ("to_registered", bool(info.data.get("to_registered"))),
                ("to", bool(to)),
            )
            if given
        ]
        if len(actions) > 1:
            raise ValueError(f"a route has one action, not {' and '.join(actions)}")
        if not actions and "reject" in info.data:
            raise ValueError("a route needs 'to' (at least one trunk), 'to_registered' or 'reject'")
        return to


class InterfacesFile(_Strict):
    """``interfaces.yaml``."""

    interfaces: list[InterfaceSpec] = Field(min_length=1)


class TrunksFile(_Strict):
    """``trunks.yaml``."""

    trunks: list[TrunkSpec]


class RoutesFile(_Strict):
    """``routes.yaml``; order matters: the first matching route wins."""

    routes: list[RouteSpec]


class SipSettings(_Strict):
    """SIP timers (RFC 3261 §17) and session timers (RFC 4028)."""

    t1_ms: Milliseconds = 500
    t2_ms: Milliseconds = 4000
    t4_ms: Milliseconds = 5000
    user_agent: WireText | None = "sbc"
    session_expires_s: Annotated[int, Strict(), Field(ge=RFC4028_MIN_SE_S)] = 1800
    min_se_s: Annotated[int, Strict(), Field(ge=RFC4028_MIN_SE_S)] = 90
    tcp_idle_timeout_s: Annotated[int, Strict(), Field(gt=0)] = 300
    # The header section a message may have, checked before it is parsed (sbc.sip.head).
    max_headers: Annotated[int, Strict(), Field(ge=32, le=4096)] = 256
    max_header_line: Annotated[int, Strict(), Field(ge=256, le=65536)] = 8192

    @property
    def head_limits(self) -> HeadLimits:
        """The parser's limits (:func:`sbc.sip.message.parse_message`)."""
        return HeadLimits(self.max_headers, self.max_header_line)

    @model_validator(mode="after")
    def _timers_consistent(self) -> SipSettings:
        """RFC 3261 §17.1.2.2: T2 caps the interval that starts at T1; RFC 4028 §4:
        Session-Expires may never be below Min-SE. Checked after defaults apply."""
        if self.t2_ms < self.t1_ms:
            raise ValueError(f"t2_ms ({self.t2_ms}) must be at least t1_ms ({self.t1_ms})")
        if self.min_se_s > self.session_expires_s:
            raise ValueError(
                f"min_se_s ({self.min_se_s}) must not exceed"
                f" session_expires_s ({self.session_expires_s})"
            )
        return self


class TransportSettings(_Strict):
    """Edge limits of the SIP transports (docs/security.md, "Connections and message sizes").

    Sizes are checked before anything parses a message; connection caps at
    accept, before any TLS handshake. A hot reload applies them to new
    datagrams and connections at once, and deadlines at the next sweep.
    """

    max_udp_message: Annotated[int, Strict(), Field(ge=1024, le=65535)] = 16384
    max_stream_message: Annotated[int, Strict(), Field(ge=1024, le=1048576)] = 65536
    max_connections: Annotated[int, Strict(), Field(ge=1)] = 10000
    reserved_outbound_connections: Annotated[int, Strict(), Field(ge=0)] = 500
    max_connections_per_source: Annotated[int, Strict(), Field(ge=1)] = 100
    max_connections_per_trunk_source: Annotated[int, Strict(), Field(ge=1)] = 1000
    max_tls_handshakes_per_source: Annotated[int, Strict(), Field(ge=1)] = 20
    message_timeout_s: Annotated[int, Strict(), Field(gt=0)] = 10
    tls_handshake_timeout_s: Annotated[int, Strict(), Field(gt=0)] = 5

    @model_validator(mode="after")
    def _reserve_within_pool(self) -> TransportSettings:
        if self.reserved_outbound_connections >= self.max_connections:
            raise ValueError(
                f"reserved_outbound_connections ({self.reserved_outbound_connections})"
                f" must be below max_connections ({self.max_connections})"
            )
        return self


class CallSettings(_Strict):
    """Call lifetime limits."""

    shutdown_grace_s: Seconds = 30
    max_call_duration_s: Seconds = 0
    no_answer_timeout_s: Annotated[int, Strict(), Field(gt=0)] = 180
    overload_delay_ms: Milliseconds = 100


class MediaSettings(_Strict):
    """Media anchoring: every call's RTP through the SBC's relay."""

    anchor: Annotated[bool, Strict()] = True
    workers: Annotated[int, Strict(), Field(ge=0)] | None = None
    inactivity_timeout_s: Annotated[int, Strict(), Field(gt=0)] = 60
    latch_any_source: Annotated[bool, Strict()] = False
    # m= lines per SDP (more: 488 before any port); a call anchors at most as many streams
    max_streams: Annotated[int, Strict(), Field(ge=1)] = 8


class TranscodingSettings(_Strict):
    """Node transcoding capacity: calls transcoding at once (0 disables transcoding),
    and the Opus encoder's complexity (0-10: CPU per call against quality)."""

    max_sessions: Annotated[int, Strict(), Field(ge=0)] = 100
    opus_complexity: Annotated[int, Strict(), Field(ge=0, le=10)] = 5


class LoggingSettings(_Strict):
    """Log level and format."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    json_: Annotated[bool, Strict()] | None = Field(default=None, alias="json")


class AdminSettings(_Strict):
    """The REST admin plane (bearer token from SBC_ADMIN_TOKEN or ``token_file``)."""

    enabled: Annotated[bool, Strict()] = True
    address: IPAddress = "127.0.0.1"
    port: Port = 8080
    token_file: StrictStr | None = None


class CdrSettings(_Strict):
    """Call detail records: SQLite database path (relative = to the working directory)."""

    enabled: Annotated[bool, Strict()] = True
    path: Annotated[str, Strict(), Field(min_length=1)] = "sbc-cdr.sqlite"


class TopologySettings(_Strict):
    """Topology hiding's last check on every message sent (docs/security.md, "Leak guard"):
    ``auto`` scrubs bodies and rewritable headers and blocks the rest, ``scrub`` rewrites
    wherever it can, ``block`` never sends a leaking message, ``log`` only counts, ``off``
    skips the check (measurement only)."""

    leak_guard: Literal["auto", "scrub", "block", "log", "off"] = "auto"

    @field_validator("leak_guard", mode="before")
    @classmethod
    def _plain_off(cls, value: object) -> object:
        """YAML 1.1 reads a plain ``off`` (or ``false``/``no``) as the boolean false."""
        return "off" if value is False else value


class Settings(_Strict):
    """``sbc.yaml``: global settings, every field optional."""

    sip: SipSettings = SipSettings()
    transport: TransportSettings = TransportSettings()
    calls: CallSettings = CallSettings()
    media: MediaSettings = MediaSettings()
    transcoding: TranscodingSettings = TranscodingSettings()
    logging: LoggingSettings = LoggingSettings()
    admin: AdminSettings = AdminSettings()
    cdr: CdrSettings = CdrSettings()
    topology: TopologySettings = TopologySettings()
