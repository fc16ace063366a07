"""What the media anchor keeps per call, between offers and answers.

An :class:`AnchorSession` is one call's media: each leg's policy
(:class:`~sbc.media.interface.LegMedia`) and o= line, and per m= position an
:class:`AnchoredStream` — our socket on each leg and what each leg's SDP
said (addresses, codecs, ICE, SDES crypto, DTLS-SRTP ends). It also keeps
which leg answers the last offer (RFC 3264 §5), the relay's last view (to
send only changes), our ICE-lite credentials per leg (RFC 8839 §4.4), the
codec offer awaiting its answer and the streams that transcode.

Failure handling rests on :meth:`AnchorSession.snapshot`: an offer or
answer takes one before it changes anything, and puts it back when the
relay fails or the peer refuses the offer (:class:`PendingOffer`, RFC 3264
§8: a refused offer changes nothing). The helpers at the end read a
stream's state the same way for the SDP rewriting and for the relay specs:
its telephone-event (RFC 4733) and whether a leg muxes RTCP (RFC 5761).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sbc.media.codec_negotiation import OfferedStream
from sbc.media.control import Endpoint, StreamSpec, TranscodeSpec
from sbc.media.dtls_certificate import DtlsCertificate
from sbc.media.dtls_sdp import LegDtls
from sbc.media.dtmf_sdp import telephone_event
from sbc.media.interface import LegMedia
from sbc.media.sdp_rewrite import IceCredentials, LegOrigin, PeerMedia
from sbc.media.srtp_sdp import LegCrypto

#: RFC 3264 §6: a rejected stream.
REJECTED = None


@dataclass(slots=True)
class AnchoredStream:
    """One anchored m= position: our socket per leg, what each leg's SDP said."""

    local: dict[str, Endpoint]
    peers: dict[str, PeerMedia] = field(default_factory=dict)
    crypto: dict[str, LegCrypto] = field(default_factory=dict)  # SDES, per leg
    dtls: dict[str, LegDtls] = field(default_factory=dict)  # DTLS-SRTP, per leg


#: What an offer/answer may change: the streams, who answers, what was offered.
Snapshot = tuple[dict[int, AnchoredStream], str | None, tuple[bool, ...]]


@dataclass(slots=True)
class PendingOffer:
    leg: str  # who offered
    previous: Snapshot
    ice: dict[str, IceCredentials]
    created: dict[int, AnchoredStream]


@dataclass(slots=True)
class AnchorSession:
    legs: dict[str, LegMedia]
    origins: dict[str, LegOrigin]
    streams: dict[int, AnchoredStream] = field(default_factory=dict)
    answerer: str | None = None  # the leg that answers the last offer
    offered: tuple[bool, ...] = ()  # per m= position: anchored in the last offer
    ice: dict[str, IceCredentials] = field(default_factory=dict)  # ours, per leg
    # The relay's view, to send only changes (a 200 repeating the 183's answer
    # changes nothing), and the last answer rewritten, returned again as is.
    sent: dict[int, StreamSpec] = field(default_factory=dict)
    last_answer: tuple[str, bytes, bytes] | None = None
    # The offer awaiting its answer, and how to undo it if the peer refuses it.
    pending: PendingOffer | None = None
    # Codec negotiation: the last offer's audio lines, and the streams transcoding.
    offers: dict[int, OfferedStream] = field(default_factory=dict)
    transcode: dict[int, TranscodeSpec] = field(default_factory=dict)
    certificate: DtlsCertificate | None = None  # the node's, for DTLS-SRTP legs

    def credentials(self, leg: str) -> IceCredentials:
        """Our ICE-lite credentials towards ``leg``: made once, kept (RFC 8839 §4.4)."""
        credentials = self.ice.get(leg)
        if credentials is None:
            credentials = self.ice[leg] = IceCredentials.generate()
        return credentials

    def restart_ice(self, leg: str, peers: list[PeerMedia | None]) -> None:
        """A new ufrag from ``leg`` in an offer restarts ICE: new credentials (RFC 8445 §9)."""
        for index, peer in enumerate(peers):
            stream = self.streams.get(index)
            known = stream.peers.get(leg) if stream is not None else None
            if (
                peer is not None
                and known is not None
                and None not in (peer.ice_ufrag, known.ice_ufrag)
                and peer.ice_ufrag != known.ice_ufrag
            ):
                self.ice.pop(leg, None)
                return

    def snapshot(self) -> Snapshot:
        streams = {
            i: AnchoredStream(s.local, dict(s.peers), dict(s.crypto), dict(s.dtls))
            for i, s in self.streams.items()
        }
        return streams, self.answerer, self.offered


def stream_telephone_event(stream: AnchoredStream | None, leg: str) -> tuple[int, int] | None:
    """The telephone-event (number, clock rate) ``leg``'s SDP gave this stream."""
    peer = stream.peers.get(leg) if stream is not None else None
    return telephone_event(peer.codecs) if peer is not None else None


def side_mux(stream: AnchoredStream, leg: str) -> bool:
    """A DTLS-SRTP leg (WebRTC: JSEP demands rtcp-mux) has its own: offered to
    it, kept when it wants it, whatever the other leg does; else :func:`_mux`."""
    peer = stream.peers.get(leg)
    if leg in stream.dtls:
        return peer.rtcp_mux if peer is not None else True  # RFC 5761 §5.1.1 offer
    return _mux(stream)


def _mux(stream: AnchoredStream) -> bool:
    """RFC 5761: RTP and RTCP share a port only when every known end says so."""
    return all(p.rtcp_mux for p in stream.peers.values())
