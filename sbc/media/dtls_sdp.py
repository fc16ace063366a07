"""DTLS-SRTP in offer/answer (RFC 5763, RFC 8842): what each leg's m= line says.

Pure. The SBC terminates DTLS-SRTP per leg: a leg that offers
``UDP/TLS/RTP/SAVP(F)`` with ``a=fingerprint`` gets our answer on the same
profile with the node certificate's ``a=fingerprint:sha-256`` and an
``a=setup`` choosing the DTLS roles (RFC 5763 §5, RFC 4145 §4); the other
leg sees plain RTP/AVP, or SDES-SRTP when its own ``srtp`` policy is
``optional`` or ``required``: fingerprints, setup
and tls-id lines never cross, like the keys they lead to.

Roles (RFC 4145 §4, RFC 5763 §5): ``a=setup:active`` opens the connection
(the DTLS client), ``passive`` accepts it (the server), ``actpass`` lets the
answerer choose and ``holdconn`` is not usable for media. A missing
``a=setup`` means ``active`` (RFC 4145 §4). We answer ``passive`` to
``actpass`` and to ``active`` (the peer sends the ClientHello as soon as
its ICE checks succeed, which suits an ICE-lite agent), ``active`` to
``passive``. Offering DTLS towards a leg ourselves (policy
``srtp_keying: dtls``) writes ``actpass``; until the answer decides, we
are ready to be the server (RFC 5763 §5), and the fingerprint arrives
with the answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from sbc.media.dtls_certificate import FINGERPRINT_HASH, DtlsRole
from sbc.media.interface import MediaError
from sbc.media.srtp_sdp import LegCrypto
from sbc.sip.sdp import MediaDescription, SessionDescription

#: RFC 5764 §8: the DTLS-SRTP profiles, and the SDES profile the other leg's
#: offer is made from (its ``srtp`` policy then decides: ``off`` gives RTP/AVP).
#: SAVPF maps to SAVP too: SIP trunks rarely speak AVPF (RFC 4585).
DTLS_PROFILES = {"UDP/TLS/RTP/SAVP": "RTP/SAVP", "UDP/TLS/RTP/SAVPF": "RTP/SAVP"}
#: The DTLS profile we offer towards a leg whose policy asks for DTLS keying.
OFFERED_PROFILE = "UDP/TLS/RTP/SAVP"
FINGERPRINT = "fingerprint"  # RFC 8122 §5
SETUP = "setup"  # RFC 4145 §4
TLS_ID = "tls-id"  # RFC 8842 §5
MID = "mid"  # RFC 5888 §4
ACTIVE, PASSIVE, ACTPASS, HOLDCONN = "active", "passive", "actpass", "holdconn"
#: RFC 5763 §5: our a=setup in an answer, by the offer's.
ANSWER_SETUP = {ACTPASS: PASSIVE, ACTIVE: PASSIVE, PASSIVE: ACTIVE}
#: RFC 4145 §4: an answer's a=setup decides our role.
ROLE_FROM_ANSWER: dict[str, DtlsRole] = {ACTIVE: "server", PASSIVE: "client"}

Fingerprints = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class LegDtls:
    """One leg's DTLS-SRTP end: its profile, the a=setup we write towards it,
    our DTLS role and the fingerprints its certificate must match. ``mid``
    is the a=mid it offered: a WebRTC peer wants it back in our answer (RFC
    8843 §7.3, RFC 5888 §9.1) even when the other leg knows nothing of it."""

    proto: str
    setup: str
    role: DtlsRole
    fingerprints: Fingerprints = ()
    mid: str | None = None


def is_dtls(media: MediaDescription) -> bool:
    return media.proto in DTLS_PROFILES


def sdes_profile(proto: str) -> str:
    """The profile the other leg's offer starts from: RTP/SAVP for a DTLS profile."""
    return DTLS_PROFILES.get(proto, proto)


def _values(media: MediaDescription, name: str) -> list[str]:
    """Media-level values of ``name``, else session-level ones (RFC 8122 §5)."""
    values = [v.strip() for v in media.attribute_values(name) if v]
    if not values and media.session is not None:
        values = [v.strip() for v in media.session.attribute_values(name) if v]
    return values


def read_fingerprints(media: MediaDescription) -> Fingerprints:
    """``a=fingerprint:<hash-func> <hex:hex:...>`` values (RFC 8122 §5), malformed ones left out."""
    found = []
    for value in _values(media, FINGERPRINT):
        parts = value.split()
        if len(parts) == 2 and all(len(b) == 2 for b in parts[1].split(":")):
            found.append((parts[0].lower(), parts[1].upper()))
    return tuple(found)


def read_setup(media: MediaDescription) -> str:
    """The m= line's ``a=setup`` (RFC 4145 §4: ``active`` when absent)."""
    values = _values(media, SETUP)
    return values[0].lower() if values else ACTIVE


def read_offer(media: MediaDescription) -> LegDtls | None:
    """The offering leg's DTLS end and our answer's setup; None for other profiles.

    Raises :class:`MediaError` (488) without a usable fingerprint or with an
    ``a=setup`` that leaves no role for us (``holdconn``, unknown values).
    """
    if not is_dtls(media):
        return None
    fingerprints = _require_fingerprints(media)
    theirs = read_setup(media)
    ours = ANSWER_SETUP.get(theirs)
    if ours is None:
        raise MediaError(f"a=setup:{theirs} leaves no DTLS role to answer (RFC 5763 §5)")
    role: DtlsRole = "server" if ours == PASSIVE else "client"
    mid = media.attribute(MID)
    return LegDtls(media.proto, ours, role, fingerprints, mid.value if mid else None)


def offer_towards() -> LegDtls:
    """Our DTLS offer towards a leg: actpass, server until its answer (RFC 5763 §5)."""
    return LegDtls(OFFERED_PROFILE, ACTPASS, "server")


def offer_ends(known: LegDtls | None, sdes: LegCrypto | None, keying: str) -> LegDtls | None:
    """Our end towards the answering leg: the association it has (kept, RFC
    5763 §5), else our offer when its policy wants SRTP keyed by DTLS."""
    if known is None and sdes is not None and sdes.secure and keying == "dtls":
        return offer_towards()
    return known


def read_answer(media: MediaDescription, offered: LegDtls) -> LegDtls:
    """The answering leg's end once it answered our DTLS offer (RFC 5763 §5).

    Raises :class:`MediaError` when the answer left DTLS, has no fingerprint
    or an ``a=setup`` other than active/passive (RFC 4145 §4.1).
    """
    if not is_dtls(media):
        raise MediaError(f"answered {media.proto} to our DTLS-SRTP offer (RFC 5763 §5)")
    fingerprints = _require_fingerprints(media)
    theirs = read_setup(media)
    role = ROLE_FROM_ANSWER.get(theirs)
    if role is None:
        raise MediaError(f"a=setup:{theirs} is not a valid answer (RFC 4145 §4.1)")
    return LegDtls(media.proto, offered.setup, role, fingerprints)


def _require_fingerprints(media: MediaDescription) -> Fingerprints:
    fingerprints = read_fingerprints(media)
    if not fingerprints:
        raise MediaError(f"{media.proto} without a usable a=fingerprint (RFC 5763 §5)")
    return fingerprints


def strip_session(sdp: SessionDescription) -> None:
    """Session-level DTLS lines name the other leg's certificate: never cross."""
    sdp.remove_attributes(FINGERPRINT, SETUP, TLS_ID)


def write_dtls(media: MediaDescription, dtls: LegDtls | None, fingerprint: str) -> None:
    """A leg's m= line: no DTLS line from the other leg; ours when it does DTLS.

    ``fingerprint`` is our certificate's :data:`FINGERPRINT_HASH` value.
    """
    media.remove_attributes(FINGERPRINT, SETUP, TLS_ID)
    if dtls is None:
        return
    media.proto = dtls.proto
    media.add_attribute(FINGERPRINT, f"{FINGERPRINT_HASH} {fingerprint}")
    media.add_attribute(SETUP, dtls.setup)
    if dtls.mid and media.attribute(MID) is None:
        media.add_attribute(MID, dtls.mid)
    if media.own_direction is None:  # JSEP peers want it spelt out (RFC 8829 §5.3.1)
        media.set_direction(media.direction)
