"""Reading and rewriting SDP for media anchoring (RFC 3264, RFC 8866).

Pure functions over :mod:`sbc.sip.sdp`'s model. :func:`read_media` says
what one leg's m= line asks for (where to send RTP and RTCP, rtcp-mux, the
payload types, hold); :func:`anchor_media` and :func:`anchor_session` make
a body name only the SBC's own address and ports and drop what names the
peer's product, host or people (i=, u=, e=, p=, a=tool); :class:`LegOrigin` keeps
the o= and s= lines the SBC writes towards one leg (RFC 3264 §8: the version moves
only when the body changes); :func:`payload_map` derives RTP payload-type
rewrites between legs that number a codec differently (RFC 4733 §2.1, RFC
3264 §6.1). Towards a leg whose SDP carried ICE the SBC is an ICE-lite
agent (RFC 8445 §2.5): :func:`add_ice_lite` and :func:`add_ice_media` write
its session flag, credentials (:class:`IceCredentials`) and one host
candidate per component (RFC 8839 §5).
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import string
from dataclasses import dataclass, field

from sbc.media.control import Endpoint
from sbc.media.interface import MediaError
from sbc.sip.params import MAX_PORT, parse_number
from sbc.sip.sdp import (
    DEFAULT_DIRECTION,
    MAX_PAYLOAD_TYPE,
    Connection,
    Field,
    MediaDescription,
    SdpLine,
    SessionDescription,
)

#: Transport protocols the relay can anchor (RFC 3551, RFC 4585, RFC 3711, RFC 5764).
RTP_PROTOS = frozenset(
    ("RTP/AVP", "RTP/AVPF", "RTP/SAVP", "RTP/SAVPF", "UDP/TLS/RTP/SAVP", "UDP/TLS/RTP/SAVPF")
)
#: ICE attributes (RFC 8839 §5): the SBC terminates media, so they never cross.
ICE_ATTRIBUTES = (
    "candidate",
    "remote-candidates",
    "end-of-candidates",
    "ice-ufrag",
    "ice-pwd",
    "ice-options",
    "ice-lite",
    "ice-mismatch",
    "ice-pacing",
)
ICE_LITE = "ice-lite"
ICE_UFRAG = "ice-ufrag"
ICE_PWD = "ice-pwd"
CANDIDATE = "candidate"
END_OF_CANDIDATES = "end-of-candidates"
#: RFC 8839 §5.4: ``ice-char = ALPHA / DIGIT / "+" / "/"``; ufrag 4-256, pwd 22-256 chars.
ICE_CHARS = string.ascii_letters + string.digits + "+/"
_ICE_UFRAG_RE = re.compile(r"[A-Za-z0-9+/]{4,256}")
#: Ours: 8 and 24 ice-chars (48 and 144 random bits; RFC 8445 §5.3 asks >= 24 and 128).
UFRAG_LENGTH = 8
PWD_LENGTH = 24
#: RFC 8445 §5.1.2.1: ``(2^24)*type + (2^8)*local + (256 - component)``; host type
#: preference 126, and one address per leg, so the highest local preference.
HOST_TYPE_PREFERENCE = 126
LOCAL_PREFERENCE = 65535
COMPONENT_RTP = 1
COMPONENT_RTCP = 2
#: RFC 8445 §5.1.1.3: one type, one base, one transport: one foundation.
HOST_FOUNDATION = "1"
#: RFC 3605 §2.1: ``a=rtcp:<port> [<nettype> <addrtype> <connection-address>]``.
RTCP = "rtcp"
#: ``a=rtcp:9 IN IP4 0.0.0.0``: WebRTC's dummy a=rtcp next to a=rtcp-mux (RFC 8829 §5.2.1).
UNSPECIFIED = frozenset(("0.0.0.0", "::"))
ORIGIN_USERNAME = "sbc"
#: RFC 8866 §5.3 (RFC 4566 §5.3): "s=-" when there is nothing to say; the
#: peer's own name (often its product or host name) never crosses.
SESSION_NAME = "-"
NETTYPE = "IN"
#: RFC 8866 §5.4-5.6: session information (media title at media level), URI,
#: e-mail and phone. All optional, and they name the peer's product, host or
#: people: they never cross. (k=, obsolete since RFC 8866 §5.12, is left alone.)
IDENTITY_FIELDS = frozenset("iuep")
#: RFC 8866 §6.3: the session-level ``a=tool:`` names the peer's product.
TOOL = "tool"


@dataclass(frozen=True, slots=True)
class PeerMedia:
    """What one leg's SDP says about one m= line: where that leg receives."""

    remote: Endpoint | None  # RTP destination; None when on hold with c=0.0.0.0
    remote_rtcp: Endpoint | None  # RTCP destination without rtcp-mux (a=rtcp, else RTP + 1)
    rtcp_mux: bool  # RFC 5761 §5.1.1
    connection_ip: str | None  # the c= IP (None when 0.0.0.0)
    formats: tuple[str, ...]
    codecs: tuple[tuple[int, str], ...]  # a=rtpmap: payload type -> encoding/clock
    on_hold: bool  # RFC 3264 §8.4: not sendrecv, or c=0.0.0.0
    ice_ufrag: str | None = None  # the leg does ICE (RFC 8839 §5.4); None: it does not


def addrtype(address: str) -> str:
    """``IP4`` or ``IP6`` for an address (RFC 8866 §5.7)."""
    return "IP6" if ":" in address else "IP4"


def is_anchorable(media: MediaDescription) -> bool:
    """RTP over UDP with a single port: what the relay forwards."""
    return media.proto in RTP_PROTOS and media.port_count in (None, 1)


def read_media(media: MediaDescription, index: int) -> PeerMedia:
    """The transport addresses and codecs of an accepted m= line.

    Raises :class:`MediaError` (488) for what cannot be anchored: no c= at
    either level (RFC 8866 §5.7), a host name or multicast address, a bad
    a=rtcp (RFC 3605).
    """
    connection = media.connection or (media.session.connection if media.session else None)
    if connection is None:
        raise MediaError(f"m= line {index} has no c= line (RFC 8866 §5.7)")
    hold = connection.is_hold
    ip = None if hold else _unicast_ip(connection.address, index)
    mux = media.rtcp_mux
    remote = None if ip is None else Endpoint(ip, media.port)
    return PeerMedia(
        remote=remote,
        remote_rtcp=None if ip is None else _rtcp_endpoint(media, ip, index),
        rtcp_mux=mux,
        connection_ip=ip,
        formats=tuple(media.formats),
        codecs=_codecs(media),
        on_hold=hold or media.direction != DEFAULT_DIRECTION,
        ice_ufrag=read_ice_ufrag(media),
    )


def read_ice_ufrag(media: MediaDescription) -> str | None:
    """The peer's ice-ufrag when its m= line does ICE, else None (RFC 8839 §5.4).

    ICE needs both a=ice-ufrag and a=ice-pwd, at media level or else at session
    level. A malformed ufrag counts as no ICE: the lines are stripped anyway and
    the call goes on with plain latching.
    """
    ufrag = _ice_value(media, ICE_UFRAG)
    if ufrag is None or _ice_value(media, ICE_PWD) is None:
        return None
    return ufrag if _ICE_UFRAG_RE.fullmatch(ufrag) else None


def _ice_value(media: MediaDescription, name: str) -> str | None:
    attribute = media.attribute(name)
    if attribute is None and media.session is not None:
        attribute = media.session.attribute(name)
    return attribute.value.strip() if attribute is not None and attribute.value else None


def _unicast_ip(address: str, index: int) -> str:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise MediaError(
            f"m= line {index}: c= must be an IP address, not {address[:40]!r}"
        ) from None
    if ip.is_multicast or ip.is_unspecified:
        raise MediaError(f"m= line {index}: c= {address} is not a unicast address")
    return str(ip)


def _rtcp_endpoint(media: MediaDescription, ip: str, index: int) -> Endpoint:
    """RFC 3605 a=rtcp, else RTP + 1 (RFC 3550 §11); kept under rtcp-mux too, for
    the answer may decline it (RFC 5761 §5.1.1)."""
    attribute = media.attribute(RTCP)
    if attribute is None or not attribute.value:
        return Endpoint(ip, media.port + 1)
    parts = attribute.value.split()
    port = parse_number(parts[0], MAX_PORT)
    if port is None or len(parts) not in (1, 4):
        raise MediaError(f"m= line {index}: malformed a=rtcp (RFC 3605 §2.1)")
    if len(parts) == 4:
        if media.rtcp_mux and parts[3] in UNSPECIFIED:
            return Endpoint(ip, media.port)  # JSEP's placeholder (RFC 8829 §5.2.1): mux
        ip = _unicast_ip(parts[3], index)
    return Endpoint(ip, port)


def _codecs(media: MediaDescription) -> tuple[tuple[int, str], ...]:
    """a=rtpmap as (payload type, lower-case ``encoding/clock[/channels]``)."""
    codecs = []
    for fmt, name in media.rtpmap.items():
        number = parse_number(fmt, MAX_PAYLOAD_TYPE)
        if number is not None and name:
            codecs.append((number, name.lower()))
    return tuple(codecs)


# --- rewriting ---------------------------------------------------------------


def anchor_session(sdp: SessionDescription, address: str) -> None:
    """Session-level lines: c= names ``address`` (0.0.0.0 hold kept), no ICE,
    no i=/u=/e=/p= and no a=tool (:data:`IDENTITY_FIELDS`, :data:`TOOL`)."""
    _rewrite_connections(sdp.lines, address)
    _drop_identity(sdp.lines)
    sdp.remove_attributes(*ICE_ATTRIBUTES, TOOL)


def anchor_media(media: MediaDescription, local: Endpoint | None, address: str) -> None:
    """One m= line sent to a leg: our ``address`` and ``local`` port, no ICE, no i=.

    ``local`` None rejects the stream (port 0, RFC 3264 §6) in position.
    Direction attributes, codecs, crypto and fingerprints are left alone.
    """
    _rewrite_connections(media.lines, address)
    _drop_identity(media.lines)
    media.remove_attributes(*ICE_ATTRIBUTES)
    if local is None:
        media.port, media.port_count = 0, None
        media.remove_attributes(RTCP)
        return
    media.port = local.port
    attribute = media.attribute(RTCP)
    if attribute is not None:
        connection = media.connection or (media.session.connection if media.session else None)
        rtcp_address = connection.address if connection is not None else address
        attribute.value = f"{local.port + 1} {NETTYPE} {addrtype(rtcp_address)} {rtcp_address}"


@dataclass(frozen=True, slots=True)
class IceCredentials:
    """The ice-ufrag/ice-pwd the SBC gives one leg (RFC 8839 §5.4; a secret: never logged)."""

    ufrag: str
    pwd: str = field(repr=False)

    @classmethod
    def generate(cls) -> IceCredentials:
        """Fresh random credentials (RFC 8445 §5.3), from :mod:`secrets`."""
        return cls(_random_ice_chars(UFRAG_LENGTH), _random_ice_chars(PWD_LENGTH))


def _random_ice_chars(length: int) -> str:
    return "".join(secrets.choice(ICE_CHARS) for _ in range(length))


def host_priority(component: int) -> int:
    """RFC 8445 §5.1.2.1 priority of our host candidate for ``component``."""
    return (HOST_TYPE_PREFERENCE << 24) + (LOCAL_PREFERENCE << 8) + (256 - component)


def host_candidate(component: int, address: str, port: int) -> str:
    """``a=candidate`` value (RFC 8839 §5.1) of our relay socket, UDP, typ host."""
    return f"{HOST_FOUNDATION} {component} UDP {host_priority(component)} {address} {port} typ host"


def add_ice_lite(sdp: SessionDescription) -> None:
    """Session level ``a=ice-lite`` (RFC 8839 §5.3): we only answer checks."""
    sdp.add_attribute(ICE_LITE)


def add_ice_media(
    media: MediaDescription, credentials: IceCredentials, local: Endpoint, address: str, mux: bool
) -> None:
    """Our credentials and host candidates on one anchored m= line (RFC 8839 §5).

    Component 1 is the RTP port, component 2 the RTCP port (``port + 1``)
    unless ``mux`` (RFC 5761); ``address`` is the leg's advertised IP.
    Candidates are complete, hence a=end-of-candidates (RFC 8840 §8.2).
    """
    media.add_attribute(ICE_UFRAG, credentials.ufrag)
    media.add_attribute(ICE_PWD, credentials.pwd)
    media.add_attribute(CANDIDATE, host_candidate(COMPONENT_RTP, address, local.port))
    if not mux:
        media.add_attribute(CANDIDATE, host_candidate(COMPONENT_RTCP, address, local.port + 1))
    media.add_attribute(END_OF_CANDIDATES)


def _drop_identity(lines: list[SdpLine]) -> None:
    """Remove the :data:`IDENTITY_FIELDS` lines; the others keep their bytes.

    Done before :meth:`LegOrigin.stamp` compares bodies, so a re-offer that
    differs only in these lines is unchanged for the other leg (RFC 3264 §8).
    """
    lines[:] = [ln for ln in lines if not (isinstance(ln, Field) and ln.type in IDENTITY_FIELDS)]


def _rewrite_connections(lines: list[SdpLine], address: str) -> None:
    """Every c= names ``address``, except the old hold 0.0.0.0 (RFC 3264 §8.4).

    Lines are changed in place so they keep their own line endings.
    """
    for line in lines:
        if isinstance(line, Connection) and not line.is_hold:
            line.nettype, line.addrtype, line.address = NETTYPE, addrtype(address), address


class LegOrigin:
    """The o= and s= lines the SBC writes towards one leg (RFC 8866 §5.2, §5.3;
    RFC 3264 §8).

    One session id per leg for the whole call; the version starts at
    ``version`` and goes up by one whenever the body sent to the leg differs
    from the previous one, so an unchanged re-offer keeps it. The session
    name is always :data:`SESSION_NAME`, so a peer that renames its session
    does not move the version either.
    """

    __slots__ = ("_last", "address", "sess_id", "version")

    def __init__(self, sess_id: int, address: str, version: int = 1) -> None:
        self.sess_id = sess_id
        self.address = address
        self.version = version
        self._last: bytes | None = None

    def stamp(self, sdp: SessionDescription) -> bytes:
        """Write our o= and s= into ``sdp`` and serialize it."""
        body = self._serialize(sdp)
        if self._last is not None and body != self._last:
            self.version += 1
            body = self._serialize(sdp)
        self._last = body
        return body

    def _serialize(self, sdp: SessionDescription) -> bytes:
        origin = sdp.origin  # changed in place: it keeps its line ending
        origin.username, origin.sess_id, origin.sess_version = (
            ORIGIN_USERNAME,
            str(self.sess_id),
            self.version,
        )
        origin.nettype, origin.addrtype, origin.address = (
            NETTYPE,
            addrtype(self.address),
            self.address,
        )
        sdp.session_name = SESSION_NAME  # its line keeps its own ending
        return sdp.serialize()


def payload_map(receiver: PeerMedia, sender: PeerMedia) -> tuple[tuple[int, int], ...]:
    """Rewrites for RTP sent *to* ``receiver``: the sender's number -> the receiver's.

    A codec both SDPs name (same encoding, clock and channels, once each) under
    different dynamic payload numbers is mapped (RFC 4733 §2.1 telephone-event,
    RFC 3264 §6.1). A number that means something else to the receiver is never
    rewritten, so an endpoint that already honours the receiver's numbering is
    untouched.
    """
    mine = _unique_names(receiver.codecs)
    theirs = _unique_names(sender.codecs)
    taken = {n for f in receiver.formats if (n := parse_number(f, MAX_PAYLOAD_TYPE)) is not None}
    pairs = []
    for name, number in theirs.items():
        own = mine.get(name)
        if own is not None and own != number and number not in taken:
            pairs.append((number, own))
    return tuple(sorted(pairs))


def _unique_names(codecs: tuple[tuple[int, str], ...]) -> dict[str, int]:
    """Encoding name -> payload type, leaving out names listed more than once."""
    names: dict[str, int] = {}
    repeated = set()
    for number, name in codecs:
        if name in names:
            repeated.add(name)
        names[name] = number
    return {name: number for name, number in names.items() if name not in repeated}
