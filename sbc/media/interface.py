"""The narrow interface between the B2BUA and media handling.

The b2bua opens a media session per call (:meth:`MediaHandler.open`, with
what each leg's media needs: addresses, port range, the peer's signalling
IP) and hands every SDP body that crosses from one leg to the other to the
handler, which returns the body the other leg sees. Implementations:
:class:`PassthroughMedia` (no anchoring: SDP crosses unchanged) and
:class:`sbc.media.anchor.MediaAnchor` (every stream through the SBC's
relay). Calls are synchronous on purpose: port allocation is local
bookkeeping, and a process-based relay is told about changes asynchronously.
Legs are named ``"a"`` (the caller's side) and ``"b"``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

from sbc.media.dtmf_sdp import DtmfMode
from sbc.sip.errors import SipError


class MediaError(SipError):
    """SDP that cannot be handled (answered 488, RFC 3261 §21.4.26)."""

    status = 488


@dataclass(frozen=True, slots=True)
class CodecPolicy:
    """A trunk's audio codec policy (:mod:`sbc.media.codec_negotiation`).

    Names are lower-case ``a=rtpmap`` encoding names (``pcma``, ``opus``,
    ``telephone-event``). ``allow`` None: every codec; ``prefer``: their order
    first in offers towards the leg; ``strip``: never shown to it;
    ``transcode``: offers towards it also list transcodable codecs it allows
    that the offerer lacks; ``ptime``: what the SBC asks of it when transcoding.
    """

    allow: tuple[str, ...] | None = None
    prefer: tuple[str, ...] = ()
    strip: frozenset[str] = frozenset()
    transcode: bool = False
    ptime: int | None = None


@dataclass(frozen=True, slots=True)
class LegMedia:
    """What anchoring needs to know about one leg of a call."""

    address: str  # local IP the relay binds for this leg (the interface's media address)
    advertised: str  # IP written into this leg's SDP (public address behind 1:1 NAT)
    ports: tuple[int, int]  # inclusive media port range of the interface
    peer_ip: str  # the peer's observed signalling source IP (trusted for latching)
    latch_any: bool = False  # policy: learn the media source from any address
    # policy: SDES-SRTP towards this leg (sbc.media.srtp_sdp): offer RTP/SAVP
    # ("required", plain refused), keep the offered profile ("optional"), plain ("off").
    srtp: Literal["off", "optional", "required"] = "off"
    codecs: CodecPolicy | None = None  # policy: audio codecs towards this leg, transcoding
    # policy: how SRTP towards this leg is keyed when we offer it: SDES a=crypto,
    # or DTLS-SRTP (RFC 5763/5764, sbc.media.dtls_sdp). Offers from the leg may use either.
    srtp_keying: Literal["sdes", "dtls"] = "sdes"
    # policy: how this leg carries DTMF (sbc.media.dtmf_sdp): RFC 4733 events or SIP INFO.
    dtmf: DtmfMode = "rfc4733"


@dataclass(frozen=True, slots=True)
class MediaStats:
    packets: int = 0
    octets: int = 0
    lost: int = 0
    extra: dict[str, float] = field(default_factory=dict)


class MediaHandler(Protocol):
    def open(self, session: str, a: LegMedia, b: LegMedia) -> None:
        """A call starts: remember its legs (nothing is allocated yet)."""
        ...

    def offer(self, session: str, from_leg: str, to_leg: str, sdp: bytes) -> bytes:
        """An offer leaves ``from_leg`` for ``to_leg``: return what ``to_leg`` sees."""
        ...

    def answer(self, session: str, from_leg: str, to_leg: str, sdp: bytes) -> bytes:
        """An answer leaves ``from_leg`` for ``to_leg``: return what ``to_leg`` sees."""
        ...

    def rejected(self, session: str, from_leg: str) -> None:
        """``from_leg``'s last offer was refused by the other leg: undo it."""
        ...

    def delete(self, session: str) -> None:
        """The call is over: release everything held for ``session``."""
        ...

    def send_dtmf(self, session: str, to_leg: str, digit: str, duration_ms: int) -> bool:
        """Send ``digit`` to ``to_leg`` as RFC 4733 events; False when that leg
        negotiated no telephone-event (nothing can carry it)."""
        ...

    def stats(self, session: str) -> MediaStats: ...


class PassthroughMedia:
    """No media anchoring: SDP crosses unchanged (the foundation's behaviour)."""

    def __init__(self) -> None:
        self.sessions: set[str] = set()

    def open(self, session: str, a: LegMedia, b: LegMedia) -> None:
        self.sessions.add(session)

    def offer(self, session: str, from_leg: str, to_leg: str, sdp: bytes) -> bytes:
        self.sessions.add(session)
        return sdp

    def answer(self, session: str, from_leg: str, to_leg: str, sdp: bytes) -> bytes:
        self.sessions.add(session)
        return sdp

    def rejected(self, session: str, from_leg: str) -> None:
        pass

    def delete(self, session: str) -> None:
        self.sessions.discard(session)

    def send_dtmf(self, session: str, to_leg: str, digit: str, duration_ms: int) -> bool:
        return False  # no relay: the endpoints' own RTP carries their events

    def stats(self, session: str) -> MediaStats:
        return MediaStats()
