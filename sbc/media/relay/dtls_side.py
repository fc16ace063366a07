"""DTLS-SRTP on one relay side: the handshake on the leg's RTP socket.

Theory of operation. A side whose :class:`~sbc.media.control.SideSpec`
carries ``dtls`` owns a :class:`DtlsSide`: the sans-IO
:class:`~sbc.media.dtls.DtlsEndpoint` plus the socket's ``sendto``. The
relay demultiplexes what arrives on that socket by its first byte (RFC 7983
§7): 0-3 STUN, 20-63 DTLS (:func:`is_dtls_record`, handed to
:meth:`DtlsSide.receive` when :func:`may_handshake` trusts the source, the
same sources latching trusts), 128-191 RTP/RTCP. Replies go back to the
datagram's source (the ICE-nominated or latched address); a client's first
flight and retransmissions go to the side's current destination, from
:meth:`DtlsSide.poll` (called when the spec arrives and on every relay sweep,
so a retransmission may leave up to one sweep interval, 1 s by default, after
OpenSSL's own timer: RFC 6347 §4.2.4.1 only asks for at least its timeout).

Until the handshake succeeds, the side's SRTP context is
:class:`PendingSrtp`: libsrtp sessions without any stream, so every
protect/unprotect fails and the relay's existing SRTP path drops the packet
and counts it (``srtp_failed`` inbound, ``dropped`` outbound). Nothing
crosses in clear, by construction, and a failed handshake (fingerprint
mismatch, no use_srtp profile) simply stays that way: state ``failed`` in
the stream's stats. Once keys are exported, the side gets a real
:class:`~sbc.media.srtp.SrtpContext` and media flows.

A spec equal to the running one keeps the association (a re-INVITE with
the same fingerprint and role, RFC 5763 §5); a spec that only brings the
fingerprint (the answer to our actpass offer) keeps it too; any other
change starts a new handshake.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import pylibsrtp

from sbc.media.control import DtlsSpec, SrtpKeys
from sbc.media.dtls_certificate import DtlsCertificate, DtlsState
from sbc.media.relay.latch import Address, Latch
from sbc.media.srtp import SrtpContext

log = logging.getLogger(__name__)

#: RFC 7983 §7: a first byte in 20..63 is DTLS.
DTLS_FIRST = 20
DTLS_LAST = 63
_NO_KEYS = SrtpKeys("", send_key=b"", receive_key=b"")

Send = Callable[[bytes, Address], object]


def is_dtls_record(first_byte: int) -> bool:
    return DTLS_FIRST <= first_byte <= DTLS_LAST


def may_handshake(latch: Latch, source: Address) -> bool:
    """DTLS only from the latched (or ICE-nominated) source or an allowed one:
    a spoofed ClientHello must not make us send a certificate flight anywhere."""
    return latch.admits(source)


class PendingSrtp(SrtpContext):
    """The SRTP context of a DTLS side without keys yet: refuses every packet."""

    __slots__ = ()

    def __init__(self) -> None:  # no keys to build sessions from
        self.keys = _NO_KEYS
        self.inbound = pylibsrtp.Session()  # no stream: "no appropriate context"
        self.outbound = pylibsrtp.Session()

    def __repr__(self) -> str:
        return "PendingSrtp()"


class DtlsSide:
    """One side's DTLS association and the SRTP context it has produced so far."""

    __slots__ = ("endpoint", "peer", "send", "spec", "srtp")

    def __init__(self, spec: DtlsSpec, send: Send) -> None:
        self.spec = spec
        self.send = send
        # Imported here: aiortc brings PyAV and NumPy, wanted only where a handshake runs.
        from sbc.media.dtls import DtlsEndpoint

        self.endpoint = DtlsEndpoint(
            DtlsCertificate(spec.certificate, spec.private_key), spec.role, spec.fingerprints
        )
        self.srtp: SrtpContext = PendingSrtp()
        self.peer: Address | None = None  # where the last DTLS record came from

    def __repr__(self) -> str:
        return f"DtlsSide({self.spec.role}, {self.state})"

    @property
    def state(self) -> str:
        return self.endpoint.state.value

    def receive(self, data: bytes, source: Address, now: float) -> SrtpContext:
        """A DTLS datagram from ``source``: answer it; the side's SRTP context after it."""
        self.peer = source
        endpoint = self.endpoint
        was = endpoint.state
        endpoint.receive_datagram(data, now)
        self._transmit(source)
        if endpoint.state is not was and endpoint.state is DtlsState.FAILED:
            log.warning("DTLS-SRTP with %s:%s failed: %s", *source, endpoint.failure)
        return self.context()

    def poll(self, now: float, destination: Address | None) -> None:
        """Start the handshake (a client needs somewhere to send its ClientHello),
        and retransmit when the DTLS timer is due."""
        endpoint = self.endpoint
        target = self.peer or destination
        if endpoint.state is DtlsState.NEW:
            if endpoint.role == "server" or target is not None:
                endpoint.start(now)
        else:
            due = endpoint.get_timer()
            if due is not None and now >= due:
                endpoint.handle_timer(now)
        if target is not None:
            self._transmit(target)

    def _transmit(self, target: Address) -> None:
        for datagram in self.endpoint.datagrams_to_send():
            try:
                self.send(datagram, target)
            except OSError:
                return  # lost like any datagram: the DTLS timer resends the flight

    def context(self) -> SrtpContext:
        """The SRTP context: :class:`PendingSrtp` until the handshake gave keys."""
        keys = self.endpoint.keys
        if keys is not None and isinstance(self.srtp, PendingSrtp):
            self.srtp = SrtpContext(keys)
        return self.srtp


def configure(
    current: DtlsSide | None,
    spec: DtlsSpec | None,
    send: Send,
    now: float,
    destination: Address | None,
) -> DtlsSide | None:
    """The side's DTLS association under ``spec``: kept, completed or new."""
    if spec is None:
        return None
    if current is not None and current.spec == spec:
        return current
    if current is not None and _only_fingerprints_added(current.spec, spec):
        current.spec = spec
        current.endpoint.set_fingerprints(spec.fingerprints)
        current.context()  # verified now: the keys become usable
        return current
    side = DtlsSide(spec, send)
    side.poll(now, destination)
    return side


def _only_fingerprints_added(old: DtlsSpec, new: DtlsSpec) -> bool:
    """Our actpass offer's association, now answered (RFC 5763 §5): same role."""
    return not old.fingerprints and (old.role, old.certificate) == (new.role, new.certificate)
