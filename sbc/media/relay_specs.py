"""The relay's view of an anchored stream: a :class:`StreamSpec` per m= position.

:func:`stream_spec` turns what the anchor knows about one m= position
(:class:`~sbc.media.anchor_state.AnchoredStream`: our socket per leg, what
each leg's SDP said) and the call's policies into the frozen, picklable
:class:`~sbc.media.control.StreamSpec` the relay runs on. Each leg's
:class:`~sbc.media.control.SideSpec` says where that leg's SDP receives RTP
and RTCP (RFC 3605; RFC 5761 mux needs both ends, except a DTLS-SRTP leg,
which keeps its own), whom to latch on, the payload-type map from the
other leg's numbering (RFC 3264 §6.1), the ICE-lite credentials its checks
must prove (RFC 8445 §2.5), its SRTP keys (RFC 4568) or DTLS-SRTP ends
(RFC 5763), and its telephone-event (RFC 4733), reported instead of
relayed when the other leg takes DTMF as SIP INFO.

Pure: the anchor compares a new spec with the last one sent and tells the
relay only about changes.
"""

from __future__ import annotations

from dataclasses import replace

from sbc.media.anchor_state import AnchorSession, side_mux, stream_telephone_event
from sbc.media.control import DtlsSpec, Endpoint, SideSpec, SrtpKeys, StreamSpec
from sbc.media.dtls_certificate import DtlsCertificate
from sbc.media.dtls_sdp import LegDtls
from sbc.media.dtmf_sdp import interworks
from sbc.media.interface import LegMedia
from sbc.media.sdp_rewrite import IceCredentials, PeerMedia, payload_map


def stream_spec(session: str, state: AnchorSession, index: int) -> StreamSpec:
    """What the relay needs for one m= position (RFC 5761 mux needs both ends)."""
    stream = state.streams[index]
    peers = stream.peers

    def side(leg: str, other: str) -> SideSpec:
        peer = peers.get(leg)
        ice = state.credentials(leg) if peer is not None and peer.ice_ufrag else None
        crypto = stream.crypto.get(leg)
        srtp = crypto.keys() if crypto is not None else None
        dtls = _dtls_spec(stream.dtls.get(leg), state.certificate)
        spec = _side(
            state.legs[leg],
            stream.local[leg],
            peer,
            peers.get(other),
            side_mux(stream, leg),
            ice=ice,
            srtp=srtp,
            dtls=dtls,
        )
        modes = state.legs[leg].dtmf, state.legs[other].dtmf
        event = stream_telephone_event(stream, leg)
        return replace(
            spec,
            dtmf_pt=event[0] if event is not None else None,
            dtmf_clock=event[1] if event is not None else spec.dtmf_clock,
            dtmf_report=interworks(*modes) and modes[0] == "rfc4733",
        )

    return StreamSpec(
        session=session,
        index=index,
        a=side("a", "b"),
        b=side("b", "a"),
        on_hold=any(p.on_hold for p in peers.values()),
        transcode=state.transcode.get(index),
    )


def _dtls_spec(end: LegDtls | None, certificate: DtlsCertificate | None) -> DtlsSpec | None:
    if end is None or certificate is None:
        return None
    return DtlsSpec(end.role, end.fingerprints, certificate.certificate, certificate.private_key)


def _side(
    leg: LegMedia,
    local: Endpoint,
    peer: PeerMedia | None,
    other: PeerMedia | None,
    mux: bool,
    *,
    ice: IceCredentials | None = None,
    srtp: SrtpKeys | None = None,
    dtls: DtlsSpec | None = None,
) -> SideSpec:
    """One leg's end: where its SDP receives, whom to latch on, its payload numbers,
    and the ICE-lite credentials its checks must prove."""
    if peer is None:
        return SideSpec(
            local, allowed_sources=(leg.peer_ip,), latch_any=leg.latch_any, srtp=srtp, dtls=dtls
        )
    sources = tuple(dict.fromkeys(ip for ip in (peer.connection_ip, leg.peer_ip) if ip))
    return SideSpec(
        local=local,
        remote=peer.remote,
        remote_rtcp=peer.remote if mux else peer.remote_rtcp,
        rtcp_mux=mux,
        allowed_sources=sources,
        latch_any=leg.latch_any,
        pt_map=payload_map(peer, other) if other is not None else (),
        ice_ufrag=ice.ufrag if ice is not None else None,
        ice_pwd=ice.pwd if ice is not None else None,
        ice_remote_ufrag=peer.ice_ufrag if ice is not None else None,
        srtp=srtp,
        dtls=dtls,
    )
