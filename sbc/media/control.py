"""The narrow control interface between media anchoring and the relay.

The SDP side (:mod:`sbc.media.anchor`, in the signalling process) decides
what each anchored stream looks like and hands :class:`StreamSpec` values to
a :class:`RelayControl`; the relay (in-process, or in worker processes)
forwards packets between the two legs' sockets. A spec names *what* flows,
never *how*: the relay may forward in userspace or, later, hand a latched
plain-RTP stream to the kernel, without the b2bua noticing.

All values are plain, frozen and picklable: they cross process boundaries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

#: ``on_dtmf(session, from_leg, digit, duration_ms)``: a digit the relay took
#: out of a stream whose side has ``dtmf_report`` (legs are ``"a"``/``"b"``).
DtmfCallback = Callable[[str, str, str, int], None]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A UDP transport address."""

    host: str
    port: int


@dataclass(frozen=True, slots=True)
class SrtpKeys:
    """SDES-SRTP keys for one leg (RFC 4568): the suite, the master key||salt
    the SBC protects with towards the leg, and the one the leg protects with.

    Both keys are secrets: kept out of ``repr`` (and so out of logs).
    """

    suite: str
    send_key: bytes = field(repr=False)
    receive_key: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class DtlsSpec:
    """DTLS-SRTP towards one leg (RFC 5763, RFC 5764): the relay runs the
    handshake on that leg's RTP socket and keys SRTP from it.

    ``role`` is ours (``"server"`` when we answered ``a=setup:passive``),
    ``fingerprints`` the leg's ``a=fingerprint`` values as (hash function,
    hex value) that its certificate must match; ``certificate`` and
    ``private_key`` are the node's PEMs (the key is a secret: kept out of
    ``repr``). Equal specs keep the running association (RFC 5763 §5).
    """

    role: Literal["client", "server"]
    fingerprints: tuple[tuple[str, str], ...]
    certificate: bytes = field(repr=False)
    private_key: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class SideSpec:
    """One leg's end of a relayed stream.

    ``local`` is the SBC's RTP socket for this leg (RTCP on ``port + 1``
    unless ``rtcp_mux``). ``remote``/``remote_rtcp`` are where the peer's SDP
    said to send (None until that leg's SDP is known, or for port 0).
    Latching (symmetric RTP) learns the peer's real source from its packets:
    only from ``allowed_sources`` IPs (its SDP and SIP source addresses),
    from any source when ``latch_any``. ``pt_map`` rewrites RTP payload types
    on packets *sent to* this side (e.g. telephone-event 101 -> 96).

    When this leg's SDP carried ICE, the SBC is an ICE-lite agent towards it
    (RFC 8445 §2.5): ``ice_ufrag``/``ice_pwd`` are the credentials we gave
    that leg (RFC 8839 §5.4) and ``ice_remote_ufrag`` the leg's own ufrag;
    the relay answers connectivity checks that prove them and latches on a
    nominated pair (USE-CANDIDATE). None: no ICE, plain STUN answers only.

    ``srtp``: this leg speaks SRTP/SRTCP (RFC 3711) with these keys; packets
    from it are authenticated and decrypted, packets to it protected. None:
    plain RTP. New keys (a rekey in a re-INVITE) mean new SRTP sessions.
    ``dtls``: this leg keys SRTP with DTLS instead (``srtp`` is then None):
    until its handshake succeeds nothing from or to it is relayed.

    ``dtmf_pt``/``dtmf_clock``: the telephone-event payload number and clock
    rate this leg's SDP gave (RFC 4733), used for digits injected towards it
    (:meth:`RelayControl.send_dtmf`).
    ``dtmf_report``: events *from* this leg with that number are not relayed
    but reported as digits (the other leg takes DTMF as SIP INFO).
    """

    local: Endpoint
    remote: Endpoint | None = None
    remote_rtcp: Endpoint | None = None
    rtcp_mux: bool = False
    allowed_sources: tuple[str, ...] = ()
    latch_any: bool = False
    pt_map: tuple[tuple[int, int], ...] = ()
    ice_ufrag: str | None = None
    ice_pwd: str | None = field(default=None, repr=False)  # a secret: kept out of logs
    ice_remote_ufrag: str | None = None
    srtp: SrtpKeys | None = None
    dtls: DtlsSpec | None = None
    dtmf_pt: int | None = None
    dtmf_clock: int = 8000
    dtmf_report: bool = False


#: libopus encoder complexity the relay uses unless the policy says otherwise.
DEFAULT_OPUS_COMPLEXITY = 5


@dataclass(frozen=True, slots=True)
class CodecEnd:
    """One leg's codec in a transcoded stream, as its SDP named it.

    ``name`` is the lower-case ``a=rtpmap`` encoding name (``pcma``, ``opus``),
    ``payload`` the leg's payload type for it, ``ptime`` the packet duration
    in ms, ``fmtp`` its format parameters (RFC 8866 §6.15) and
    ``event_payload`` the leg's telephone-event payload type (RFC 4733),
    None when events do not cross.
    """

    name: str
    payload: int
    ptime: int = 20
    fmtp: tuple[tuple[str, str], ...] = ()
    event_payload: int | None = None


@dataclass(frozen=True, slots=True)
class TranscodeDirection:
    """What one direction decodes (``source``) and encodes (``destination``);
    ``opus_complexity`` (0-10) for an Opus encoder there: CPU against quality."""

    source: CodecEnd
    destination: CodecEnd
    opus_complexity: int = DEFAULT_OPUS_COMPLEXITY


@dataclass(frozen=True, slots=True)
class TranscodeSpec:
    """The legs share no codec: the relay decodes and re-encodes each direction
    (:mod:`sbc.media.relay.transcoding`); ``a_to_b`` is what leg A sends."""

    a_to_b: TranscodeDirection
    b_to_a: TranscodeDirection


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """One m= line of a call, anchored: leg A's side and leg B's side.

    ``transcode`` is set only when the legs settled on different codecs;
    a stream whose legs share a codec is relayed without decoding.
    """

    session: str  # the call's id
    index: int  # m= line position
    a: SideSpec
    b: SideSpec
    on_hold: bool = False  # excluded from the inactivity timeout
    transcode: TranscodeSpec | None = None


@dataclass(frozen=True, slots=True)
class DirectionStats:
    """Packets received on one side and relayed to the other (RFC 3550 A.3, A.8).

    ``a_to_b`` is what the SBC received from leg A and relayed to leg B. Its
    ``reported_*`` figures come from leg B's RTCP report blocks about that
    stream (RFC 3550 §6.4.1): what B says it received of it, so loss and
    jitter on the SBC-to-B path show up there and not in ``lost``/``jitter_ms``.
    They are the latest report's (0 until one arrives); ``rtcp_packets`` and
    ``rtcp_malformed`` count the RTCP received on this side, like ``packets``.
    """

    packets: int = 0
    octets: int = 0
    lost: int = 0  # expected - received, from RTP sequence numbers
    jitter_ms: float = 0.0  # interarrival jitter (RFC 3550 A.8), in ms
    rtcp_packets: int = 0
    dropped: int = 0  # not relayed: unlatched source, not RTP/RTCP/STUN
    reported_lost: int = 0  # cumulative number of packets lost (may be < 0: duplicates)
    reported_fraction_lost: float = 0.0  # 0..1, since the receiver's previous report
    reported_jitter_ms: float = 0.0  # the receiver's interarrival jitter, in ms
    rtcp_malformed: int = 0  # relayed all the same, but not valid RTCP (RFC 3550 A.2)
    srtp_failed: int = 0  # dropped: SRTP/SRTCP authentication or replay check failed
    stun_malformed: int = 0  # dropped: STUN that does not parse (RFC 8489 §5, §14)
    stun_refused: int = 0  # dropped: Binding requests from a source not trusted, unproven
    rtp_malformed: int = 0  # dropped: RTP whose lengths or payload do not add up
    packet_errors: int = 0  # dropped: a packet whose handling raised (logged, rate-limited)


@dataclass(frozen=True, slots=True)
class StreamStats:
    index: int
    a_to_b: DirectionStats = field(default_factory=DirectionStats)
    b_to_a: DirectionStats = field(default_factory=DirectionStats)
    latched_a: Endpoint | None = None  # the source learnt for leg A
    latched_b: Endpoint | None = None
    idle_s: float = 0.0  # seconds since the last RTP in either direction
    # DTLS-SRTP per side: "" (not DTLS), "connecting", "connected" or "failed"
    dtls_a: str = ""
    dtls_b: str = ""


class RelayControl(Protocol):
    """Implemented by the in-process relay and by the worker-process pool."""

    def update(self, stream: StreamSpec) -> None:
        """Create the stream or change it (idempotent; sockets are kept)."""
        ...

    def remove(self, session: str, index: int) -> None:
        """Stop relaying one stream (rejected in a later offer/answer) and close
        its sockets, so its ports can be reused while the call goes on."""
        ...

    def delete(self, session: str) -> None:
        """Stop relaying every stream of ``session`` and close its sockets."""
        ...

    def stats(self, session: str) -> list[StreamStats]:
        """The latest statistics known for ``session`` (empty if unknown)."""
        ...

    def send_dtmf(self, session: str, index: int, leg: str, digit: str, duration_ms: int) -> None:
        """Send ``digit`` to ``leg``'s peer on stream ``index`` as RFC 4733 events
        (its side's ``dtmf_pt``); ignored when the stream or number is unknown."""
        ...
