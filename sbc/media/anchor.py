"""Media anchoring: every stream of a call through the SBC's relay.

:class:`MediaAnchor` implements :class:`~sbc.media.interface.MediaHandler`.
Theory of operation, per call (legs ``"a"`` and ``"b"``):

- **Offer** (RFC 3264 §5, §8) from leg F to leg T: each accepted m= line
  gets, once per call and m= position, an RTP/RTCP port pair on T's media
  address and one on F's (each leg has its own sockets). The body T sees
  names only T's advertised address and our ports (c=, m=, a=rtcp of RFC
  3605), carries our o= line (RFC 8866 §5.2) and no ICE attributes; hold
  (direction attributes, c=0.0.0.0 of RFC 3264 §8.4), codecs and crypto
  cross unchanged. What F's SDP says (where it receives RTP and RTCP,
  rtcp-mux, payload types) goes to the relay as a :class:`StreamSpec` as
  soon as both ports exist, so early media flows before the answer.
- **Answer** (RFC 3264 §6) from T back to F: m= lines match the offer's by
  position; T's side of each stream is filled in and pushed again, a
  rejected stream (port 0) is dropped, and codecs numbered differently by
  the two legs get a payload-type map (RFC 4733 §2.1, RFC 3264 §6.1). A
  repeated answer (183 then 200) is applied again.
- **Re-offers** keep the ports of every m= position already anchored; a new
  position gets new ports; a position rejected later is dropped.
- **ICE** (RFC 8445 §2.5, RFC 8839): ICE lines never cross. Towards a leg
  whose latest SDP for a stream carried ICE, the SBC is an ICE-lite agent:
  a=ice-lite, that leg's own credentials (one random ufrag/pwd per leg,
  kept for the whole call, RFC 8839 §4.4, and replaced only when the leg
  restarts ICE with a new ufrag in an offer, RFC 8445 §9) and one host
  candidate per component of our socket on that leg. The relay answers the
  leg's checks with them (:mod:`sbc.media.relay.stun`).
- **SRTP** (RFC 4568, :mod:`sbc.media.srtp_sdp`): crypto lines never
  cross. An RTP/SAVP leg gets our own key in our answer or offer, and the
  relay decrypts/encrypts on its side; each leg's profile follows its
  ``LegMedia.srtp`` policy. Keys are kept while a leg's crypto is unchanged.
- **Codecs** (:mod:`sbc.media.codec_negotiation`): towards a leg with a
  codec policy, audio formats are filtered, ordered and completed with
  transcodable ones; an answer that picked only those makes the stream
  transcode (:class:`TranscodeSpec` in its :class:`StreamSpec`), holding
  one slot of the node's :class:`TranscodePool` per call until no stream
  of it transcodes any more.
- **DTLS-SRTP** (RFC 5763/5764, :mod:`sbc.media.dtls_sdp`): a leg offering
  UDP/TLS/RTP/SAVP(F) gets the node certificate's fingerprint and our
  a=setup; the relay runs the handshake on that leg's socket. The other leg
  is offered RTP/AVP or SDES per its ``srtp`` policy, or DTLS itself when its
  ``srtp_keying`` says so.
- **DTMF interworking** (:mod:`sbc.media.dtmf_sdp`): when one leg's policy
  carries DTMF as SIP INFO and the other's as RFC 4733 events, telephone-event
  is stripped towards the INFO leg and offered to the RFC 4733 one; that
  leg's side of the stream has its events reported instead of relayed
  (``SideSpec.dtmf_report``), and :meth:`MediaAnchor.send_dtmf` injects
  digits towards it.
- **Limits**: an SDP with more m= lines than ``max_streams`` (default 8,
  ``media.max_streams``) is a :class:`MediaError` (488) before anything is
  allocated; a call never holds more than that many streams' ports.
- **Failure** leaves nothing half set up: unusable SDP is a
  :class:`MediaError` (488) before anything is allocated, port exhaustion a
  503 after the offer's own allocations are released, a relay failure a 503
  after the previous state is restored.

A dropped stream is removed from the relay and its ports are released at
once, while the call goes on.

This module runs the offer/answer steps; the per-call state they work on is
in :mod:`sbc.media.anchor_state`, the offer's SDES/DTLS keying in
:mod:`sbc.media.offer_keying`, and the relay's view of a stream
(:class:`StreamSpec`) is built by :mod:`sbc.media.relay_specs`.
"""

from __future__ import annotations

import secrets
from contextlib import suppress
from itertools import count

from sbc.media.anchor_state import (
    REJECTED,
    AnchoredStream,
    AnchorSession,
    PendingOffer,
    Snapshot,
    side_mux,
    stream_telephone_event,
)
from sbc.media.codec_negotiation import negotiate_answer, negotiate_offer
from sbc.media.control import DEFAULT_OPUS_COMPLEXITY, Endpoint, RelayControl, TranscodeSpec
from sbc.media.dtls_certificate import DtlsCertificate
from sbc.media.dtls_sdp import read_answer as read_dtls_answer
from sbc.media.dtls_sdp import strip_session, write_dtls
from sbc.media.dtmf_sdp import adapt_answer, adapt_offer
from sbc.media.interface import LegMedia, MediaError, MediaStats
from sbc.media.offer_keying import offer_crypto, offer_dtls, record_ends
from sbc.media.ports import PortPool
from sbc.media.relay_specs import stream_spec
from sbc.media.sdp_rewrite import (
    LegOrigin,
    PeerMedia,
    add_ice_lite,
    add_ice_media,
    anchor_media,
    anchor_session,
    is_anchorable,
    read_media,
)
from sbc.media.srtp_sdp import read_answer, write_crypto
from sbc.media.stats import aggregate
from sbc.media.transcode.pool import TranscodePool
from sbc.sip.sdp import MediaDescription, SdpError, SessionDescription, parse_sdp

LEGS = ("a", "b")
RTCP_MUX = "rtcp-mux"  # RFC 5761 §5.1.1
#: What an offer needing transcoding on a full node gets (RFC 3261 §21.5.4).
FULL = 503
#: Calls transcoding at once when the caller sets no capacity.
DEFAULT_TRANSCODING_SESSIONS = 100
#: m= lines an SDP may carry (``media.max_streams``); a call anchors at most that many.
DEFAULT_MAX_STREAMS = 8


class MediaAnchor:
    """SDP rewriting and port bookkeeping for the relay (RFC 3264 offer/answer)."""

    def __init__(
        self,
        relay: RelayControl,
        ports: PortPool,
        *,
        first_session_id: int | None = None,
        transcoding: TranscodePool | None = None,
        opus_complexity: int = DEFAULT_OPUS_COMPLEXITY,
        certificate: DtlsCertificate | None = None,
        max_streams: int = DEFAULT_MAX_STREAMS,
    ) -> None:
        if max_streams < 1:
            raise ValueError(f"max_streams must be at least 1, not {max_streams}")
        self.relay = relay
        self.ports = ports
        self.max_streams = max_streams  # per SDP, and so per call (see _count_streams)
        self.transcoding = transcoding or TranscodePool(DEFAULT_TRANSCODING_SESSIONS)
        self.opus_complexity = opus_complexity  # for the streams that start transcoding
        # One certificate for every call of the process (RFC 5763 §5 allows it).
        self.certificate = certificate if certificate is not None else DtlsCertificate.generate()
        self.fingerprint = self.certificate.fingerprint()
        start = secrets.randbelow(2**31) if first_session_id is None else first_session_id
        self._session_ids = count(start)
        self._sessions: dict[str, AnchorSession] = {}

    @property
    def sessions(self) -> frozenset[str]:
        """The calls that currently have a media session."""
        return frozenset(self._sessions)

    def open(self, session: str, a: LegMedia, b: LegMedia) -> None:
        legs = {"a": a, "b": b}
        known = self._sessions.get(session)
        if known is not None:
            known.legs = legs
            return
        origins = {leg: LegOrigin(next(self._session_ids), m.advertised) for leg, m in legs.items()}
        self._sessions[session] = AnchorSession(legs, origins, certificate=self.certificate)

    def offer(self, session: str, from_leg: str, to_leg: str, sdp: bytes) -> bytes:
        """RFC 3264 §5/§8: anchor an offer from ``from_leg``; return what ``to_leg`` sees."""
        state = self._session(session, from_leg, to_leg)
        body = _parse(sdp)
        self._count_streams(body)
        peers = _read_offer(body)
        crypto = offer_crypto(state, body, peers, from_leg, to_leg)
        try:
            plan = negotiate_offer(
                body,
                [i for i, p in enumerate(peers) if p is not REJECTED],
                from_leg,
                state.legs[to_leg].codecs,
                transcoding=self.transcoding.max_sessions > 0,
                capacity=self.transcoding.available > 0 or bool(state.transcode),
                current={
                    i: (t.a_to_b if to_leg == "a" else t.b_to_a).source
                    for i, t in state.transcode.items()
                },
            )
        except MediaError as exc:
            if exc.status == FULL:  # only a full node makes negotiation answer 503
                self.transcoding.refuse()
            raise
        dtls = offer_dtls(state, body, peers, (from_leg, to_leg), crypto)
        created = self._allocate(state, peers, from_leg, to_leg)
        previous, previous_ice = state.snapshot(), dict(state.ice)
        state.restart_ice(from_leg, peers)
        for index, peer in enumerate(peers):
            if peer is not REJECTED:
                stream = state.streams.get(index) or created[index]
                stream.peers[from_leg] = peer
                record_ends(stream.crypto, crypto[index])
                record_ends(stream.dtls, dtls[index])
                state.streams[index] = stream
        state.answerer, state.offered = to_leg, tuple(p is not REJECTED for p in peers)
        live = [i for i, p in enumerate(peers) if p is not REJECTED]
        try:
            self._apply(session, state, live, previous, created)
        except MediaError:
            state.ice = previous_ice  # no restart happened after all
            raise
        state.pending = PendingOffer(from_leg, previous, previous_ice, created)
        state.offers = plan.streams
        if plan.must_transcode:  # checked free above, and nothing ran in between
            self.transcoding.acquire(session)
        adapt_offer(body, state.legs[from_leg].dtmf, state.legs[to_leg].dtmf)
        return self._outgoing(state, body, to_leg, live)

    def rejected(self, session: str, from_leg: str) -> None:
        """The other side refused ``from_leg``'s offer (e.g. 488, 491 to a
        re-INVITE): back to the session as it was (RFC 3264 §8: a refused
        offer changes nothing), new ports released, the relay told."""
        state = self._sessions.get(session)
        pending = state.pending if state is not None else None
        if state is None or pending is None or pending.leg != from_leg:
            return
        state.pending = None
        state.last_answer = None
        streams, state.answerer, state.offered = pending.previous
        # Streams the offer dropped left the relay and gave their ports back
        # then (_apply): they stay dropped, as after the answer they awaited.
        state.streams = {index: stream for index, stream in streams.items() if stream.local}
        state.ice = pending.ice
        for index, stream in pending.created.items():
            if index not in state.streams:
                self.relay.remove(session, index)
                state.sent.pop(index, None)
                self._release(stream)
        for index in state.streams:
            spec = stream_spec(session, state, index)
            if state.sent.get(index) != spec:
                self.relay.update(spec)
                state.sent[index] = spec
        self._settle_transcoding(session, state)

    def answer(self, session: str, from_leg: str, to_leg: str, sdp: bytes) -> bytes:
        """RFC 3264 §6: anchor an answer from ``from_leg``; return what ``to_leg`` sees."""
        state = self._session(session, from_leg, to_leg)
        if state.answerer != from_leg:
            raise MediaError(f"an answer from leg {from_leg} without an offer to it")
        last = state.last_answer
        if last is not None and last[0] == from_leg and last[1] == sdp:
            return last[2]  # the same answer again (183 then 200): nothing changes
        body = _parse(sdp)
        if len(body.media) != len(state.offered):
            raise MediaError(
                f"the answer has {len(body.media)} m= lines, the offer {len(state.offered)}"
                " (RFC 3264 §6)"
            )
        peers = [
            _read_stream(media, index)
            if state.offered[index] and index in state.streams
            else REJECTED
            for index, media in enumerate(body.media)
        ]
        crypto = {
            index: read_answer(body.media[index], state.streams[index].crypto[from_leg])
            for index, peer in enumerate(peers)
            if peer is not REJECTED and from_leg in state.streams[index].crypto
        }
        dtls = {
            index: read_dtls_answer(body.media[index], state.streams[index].dtls[from_leg])
            for index, peer in enumerate(peers)
            if peer is not REJECTED and from_leg in state.streams[index].dtls
        }
        live = [i for i, p in enumerate(peers) if p is not REJECTED]
        transcode = self._answer_codecs(
            session, state, body, live, from_leg=from_leg, to_leg=to_leg
        )
        previous, previous_transcode = state.snapshot(), state.transcode
        for index, peer in enumerate(peers):
            if peer is not REJECTED:
                state.streams[index].peers[from_leg] = peer
        for index, answered in crypto.items():
            state.streams[index].crypto[from_leg] = answered
        for index, ends in dtls.items():
            state.streams[index].dtls[from_leg] = ends
        state.transcode = transcode
        try:
            self._apply(session, state, live, previous, {})
        except MediaError:
            state.transcode = previous_transcode  # restored: the old codecs again
            self._settle_transcoding(session, state)
            raise
        state.pending = None
        self._settle_transcoding(session, state)
        offered = [
            stream_telephone_event(state.streams.get(index), to_leg)
            for index in range(len(body.media))
        ]
        adapt_answer(body, state.legs[from_leg].dtmf, state.legs[to_leg].dtmf, offered)
        out = self._outgoing(state, body, to_leg, live)
        state.last_answer = (from_leg, sdp, out)
        return out

    def delete(self, session: str) -> None:
        """The call is over: stop its streams and release every port."""
        state = self._sessions.pop(session, None)
        self.transcoding.release(session)
        if state is None:
            return
        try:
            self.relay.delete(session)
        finally:
            for stream in state.streams.values():
                self._release(stream)

    def send_dtmf(self, session: str, to_leg: str, digit: str, duration_ms: int) -> bool:
        """Have the relay send ``digit`` to ``to_leg`` as RFC 4733 events, on the
        first stream where that leg negotiated telephone-event; False if none did."""
        state = self._sessions.get(session)
        if state is None:
            return False
        for index in sorted(state.streams):
            peer = state.streams[index].peers.get(to_leg)
            if (
                peer is not None
                and peer.remote is not None
                and stream_telephone_event(state.streams[index], to_leg) is not None
            ):
                self.relay.send_dtmf(session, index, to_leg, digit, duration_ms)
                return True
        return False

    def stats(self, session: str) -> MediaStats:
        """Counters of every stream of the call, both directions (RFC 3550 §6.4)."""
        return aggregate(self.relay.stats(session))

    # --- steps ---------------------------------------------------------------

    def _answer_codecs(
        self,
        session: str,
        state: AnchorSession,
        body: SessionDescription,
        live: list[int],
        *,
        from_leg: str,
        to_leg: str,
    ) -> dict[int, TranscodeSpec]:
        """The answer's audio lines rewritten for ``to_leg``; which streams transcode.

        A call that starts transcoding takes a slot of the pool: 488 when none is free.
        """
        transcode = {}
        for index in live:
            offered = state.offers.get(index)
            if offered is not None and offered.offerer == to_leg:
                codecs = (state.legs[to_leg].codecs, state.legs[from_leg].codecs)
                spec = negotiate_answer(
                    body.media[index], offered, *codecs, opus_complexity=self.opus_complexity
                )
                if spec is not None:
                    transcode[index] = spec
        if transcode and not self.transcoding.acquire(session):
            raise MediaError("no codec in common and transcoding is full")
        return transcode

    def _settle_transcoding(self, session: str, state: AnchorSession) -> None:
        """Give the call's transcoding slot back once no stream transcodes
        and no offer awaits an answer (one that must transcode took it)."""
        if not state.transcode and state.pending is None:
            self.transcoding.release(session)

    def _count_streams(self, body: SessionDescription) -> None:
        """An m= line bomb is refused before anything is allocated (488, RFC 3264 §6).

        Every m= line counts, port 0 or not: each costs parsing and rewriting.
        The cap holds per call as well: an anchored stream is an m= position
        (RFC 3264 §8: positions are kept, never reused), a re-offer has at
        most ``max_streams`` of them, and streams at positions it no longer
        has are dropped. So a call never holds more than ``max_streams``
        streams, two RTP/RTCP port pairs each (one per leg), whatever its
        re-INVITEs; a lower cap after a reload only stops growth.
        """
        if len(body.media) > self.max_streams:
            raise MediaError(
                f"{len(body.media)} media streams (m= lines), at most {self.max_streams}"
            )

    def _session(self, session: str, from_leg: str, to_leg: str) -> AnchorSession:
        if {from_leg, to_leg} != set(LEGS):
            raise MediaError(f"legs must be 'a' and 'b', not {from_leg!r}/{to_leg!r}", 500)
        state = self._sessions.get(session)
        if state is None:
            raise MediaError(f"media session {session} was not opened", 500)
        return state

    def _allocate(
        self, state: AnchorSession, peers: list[PeerMedia | None], from_leg: str, to_leg: str
    ) -> dict[int, AnchoredStream]:
        """Port pairs for the m= positions that have none yet; all or nothing."""
        created: dict[int, AnchoredStream] = {}
        try:
            for index, peer in enumerate(peers):
                if peer is REJECTED or index in state.streams:
                    continue
                stream = AnchoredStream({})
                created[index] = stream
                for leg in (to_leg, from_leg):
                    media = state.legs[leg]
                    port = self.ports.allocate(media.address, media.ports)
                    stream.local[leg] = Endpoint(media.address, port)
        except MediaError:
            for stream in created.values():
                self._release(stream)
            raise
        return created

    def _apply(
        self,
        session: str,
        state: AnchorSession,
        live: list[int],
        previous: Snapshot,
        created: dict[int, AnchoredStream],
    ) -> None:
        """Tell the relay: ``live`` streams updated, the others dropped.

        Ports of removed streams are released only once the relay agreed; on
        a relay failure the previous state is put back (503).
        """
        dropped = [i for i in state.streams if i not in live]
        state.last_answer = None
        try:
            for index in live:
                spec = stream_spec(session, state, index)
                if state.sent.get(index) != spec:
                    self.relay.update(spec)
                    state.sent[index] = spec
            for index in dropped:
                self.relay.remove(session, index)  # rejected now: RFC 3264 §8.2
                state.sent.pop(index, None)
        except Exception as exc:
            self._restore(session, state, previous, created)
            raise MediaError(f"media relay failed: {exc}", 503) from exc
        for index in dropped:
            self._release(state.streams.pop(index))

    def _restore(
        self,
        session: str,
        state: AnchorSession,
        previous: Snapshot,
        created: dict[int, AnchoredStream],
    ) -> None:
        """Back to the state before this offer/answer, the relay resynchronised."""
        state.streams, state.answerer, state.offered = previous
        for stream in created.values():
            self._release(stream)
        state.sent.clear()
        with suppress(Exception):  # best effort: the relay is failing already
            self.relay.delete(session)
            for index in state.streams:
                spec = stream_spec(session, state, index)
                self.relay.update(spec)
                state.sent[index] = spec

    def _release(self, stream: AnchoredStream) -> None:
        for local in stream.local.values():
            self.ports.release(local.host, local.port)
        stream.local.clear()

    def _outgoing(
        self, state: AnchorSession, body: SessionDescription, to_leg: str, live: list[int]
    ) -> bytes:
        """The body ``to_leg`` sees: our address, our ports, our o= line."""
        address = state.legs[to_leg].advertised
        anchor_session(body, address)
        strip_session(body)
        ice = False
        for index, media in enumerate(body.media):
            stream = state.streams[index] if index in live else None
            local = stream.local[to_leg] if stream is not None else None
            anchor_media(media, local, address)
            write_crypto(media, stream.crypto.get(to_leg) if stream is not None else None)
            write_dtls(media, stream.dtls.get(to_leg) if stream else None, self.fingerprint)
            mux = stream is not None and side_mux(stream, to_leg)
            if mux and not media.rtcp_mux:
                media.add_attribute(RTCP_MUX)  # a WebRTC leg's own mux (RFC 8843 §7.3)
            peer = stream.peers.get(to_leg) if stream is not None else None
            if local is not None and stream is not None and peer is not None and peer.ice_ufrag:
                credentials = state.credentials(to_leg)
                add_ice_media(media, credentials, local, address, mux)
                ice = True
        if ice:
            add_ice_lite(body)
        return state.origins[to_leg].stamp(body)


# --- pure helpers ------------------------------------------------------------


def _parse(sdp: bytes) -> SessionDescription:
    """The body as SDP, or a 488 naming what is wrong (RFC 3264 §5)."""
    try:
        body = parse_sdp(sdp)
    except SdpError as exc:
        raise MediaError(f"malformed SDP: {exc.reason}") from None
    if not body.media:
        raise MediaError("no usable media (no m= lines)")
    return body


def _read_stream(media: MediaDescription, index: int) -> PeerMedia | None:
    """An m= line as one leg's end of a stream; None when rejected or not RTP."""
    if media.is_rejected or not is_anchorable(media):
        return REJECTED
    return read_media(media, index)


def _read_offer(body: SessionDescription) -> list[PeerMedia | None]:
    peers = [_read_stream(media, index) for index, media in enumerate(body.media)]
    if all(p is REJECTED for p in peers) and any(not m.is_rejected for m in body.media):
        protos = ", ".join(sorted({m.proto for m in body.media if not m.is_rejected}))
        raise MediaError(f"no usable media: {protos} cannot be relayed")
    return peers
