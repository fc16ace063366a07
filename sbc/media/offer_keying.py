"""Keying of an offer's streams: SDES crypto and DTLS-SRTP ends per leg.

Crypto lines never cross the SBC: each leg gets its own keys from us.
For every live m= line of an offer from leg F to leg T, before anything is
allocated (so that unusable crypto is a 488 with nothing to undo):

- :func:`offer_crypto` reads F's SDES crypto (RFC 4568 §6) against F's
  ``srtp`` policy, and chooses what T is offered per T's ``srtp`` policy
  and the m= line's profile (:mod:`sbc.media.srtp_sdp`); keys a leg
  already has are kept while its crypto is unchanged;
- :func:`offer_dtls` reads F's DTLS-SRTP fingerprint and a=setup (RFC
  5763 §5) and decides whether T is offered DTLS-SRTP, per T's
  ``srtp_keying`` (:mod:`sbc.media.dtls_sdp`); a leg keying with DTLS gets
  no SDES.

:func:`record_ends` then keeps the chosen ends on the stream (``None``:
that leg has none any more).
"""

from __future__ import annotations

from typing import TypeVar

from sbc.media.anchor_state import REJECTED, AnchorSession
from sbc.media.dtls_sdp import LegDtls, offer_ends, sdes_profile
from sbc.media.dtls_sdp import read_offer as read_dtls_offer
from sbc.media.sdp_rewrite import PeerMedia
from sbc.media.srtp_sdp import LegCrypto, offer_towards, read_offer
from sbc.sip.sdp import SessionDescription

End = TypeVar("End", LegCrypto, LegDtls)


def offer_crypto(
    state: AnchorSession,
    body: SessionDescription,
    peers: list[PeerMedia | None],
    from_leg: str,
    to_leg: str,
) -> dict[int, dict[str, LegCrypto | None]]:
    """Each live m= line's SDES ends (RFC 4568), before anything is allocated (488)."""
    crypto: dict[int, dict[str, LegCrypto | None]] = {}
    for index, peer in enumerate(peers):
        if peer is REJECTED:
            continue
        media = body.media[index]
        stream = state.streams.get(index)
        known = stream.crypto if stream is not None else {}
        crypto[index] = {
            from_leg: read_offer(media, state.legs[from_leg].srtp, known.get(from_leg)),
            to_leg: offer_towards(
                sdes_profile(media.proto), state.legs[to_leg].srtp, known.get(to_leg)
            ),
        }
    return crypto


def offer_dtls(
    state: AnchorSession,
    body: SessionDescription,
    peers: list[PeerMedia | None],
    legs: tuple[str, str],
    crypto: dict[int, dict[str, LegCrypto | None]],
) -> dict[int, dict[str, LegDtls | None]]:
    """Each live m= line's DTLS-SRTP ends (``legs``: offerer, answerer), before
    anything is allocated (488); a leg keying with DTLS gets no SDES."""
    from_leg, to_leg = legs
    ends: dict[int, dict[str, LegDtls | None]] = {}
    for index, peer in enumerate(peers):
        if peer is not REJECTED:
            stream = state.streams.get(index)
            towards = offer_ends(
                stream.dtls.get(to_leg) if stream is not None else None,
                crypto[index].get(to_leg),
                state.legs[to_leg].srtp_keying,
            )
            if towards is not None:
                crypto[index][to_leg] = None
            ends[index] = {from_leg: read_dtls_offer(body.media[index]), to_leg: towards}
    return ends


def record_ends(known: dict[str, End], chosen: dict[str, End | None]) -> None:
    """Keep each leg's chosen end (SDES crypto or DTLS) in ``known``; ``None``
    means that leg has none any more."""
    for leg, end in chosen.items():
        if end is None:
            known.pop(leg, None)
        else:
            known[leg] = end
