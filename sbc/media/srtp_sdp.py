"""SDES-SRTP in offer/answer: which profile and ``a=crypto`` lines each leg sees.

Pure. Each leg has its own keys (RFC 4568 §7.1): a leg's crypto lines
never cross to the other leg; the SBC answers an SRTP offer with its own
key and offers its own keys towards an SRTP leg. Per-leg policy
(:data:`SrtpMode`): ``required`` offers RTP/SAVP and refuses plain RTP from
that leg, ``optional`` keeps the profile the other leg offered, ``off``
offers plain RTP/AVP. An RTP/SAVP offer we cannot match is refused (488,
RFC 4568 §7.1.2). DTLS-SRTP profiles (UDP/TLS/...) are not handled here.

Keys stay the same while a leg's crypto does not change (RFC 4568 §7.1.4),
so an unchanged re-offer yields the same SDP (and o= version); changed
crypto from a leg gets a new answer key: new relay sessions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sbc.media.control import SrtpKeys
from sbc.media.interface import MediaError
from sbc.media.sdes import (
    CRYPTO_ATTRIBUTE,
    CryptoAttribute,
    answer_for,
    choose,
    our_offer,
    read_crypto,
)
from sbc.sip.sdp import MediaDescription

SrtpMode = Literal["off", "optional", "required"]
#: RFC 3711 §7 / RFC 5124: SRTP profiles keyed by SDES, and their plain twins.
SECURE_PROFILES = {"RTP/SAVP": "RTP/AVP", "RTP/SAVPF": "RTP/AVPF"}
PLAIN_PROFILES = {plain: secure for secure, plain in SECURE_PROFILES.items()}


@dataclass(frozen=True, slots=True)
class LegCrypto:
    """One leg's end of a stream: its profile, the crypto lines we gave it
    (our keys) and the line it sent (its key). Keys stay out of ``repr``."""

    proto: str
    ours: tuple[CryptoAttribute, ...] = ()
    theirs: CryptoAttribute | None = None

    @property
    def secure(self) -> bool:
        return self.proto in SECURE_PROFILES

    def keys(self) -> SrtpKeys | None:
        """The relay's keys once both ends are known (same tag, RFC 4568 §5.1.2)."""
        theirs = self.theirs
        if theirs is None:
            return None
        for ours in self.ours:
            if ours.tag == theirs.tag and ours.suite == theirs.suite:
                return SrtpKeys(theirs.suite, send_key=ours.key, receive_key=theirs.key)
        return None


def _crypto_values(media: MediaDescription) -> list[str]:
    return [value for value in media.attribute_values(CRYPTO_ATTRIBUTE) if value is not None]


def read_offer(
    media: MediaDescription, mode: SrtpMode, known: LegCrypto | None
) -> LegCrypto | None:
    """The offering leg's end: its key and our answer key; None for other profiles.

    Raises :class:`MediaError` (488) for an SRTP offer with no crypto-suite
    we support, or plain RTP from a leg whose policy requires SRTP.
    """
    if media.proto in SECURE_PROFILES:
        chosen = choose(read_crypto(_crypto_values(media)))
        if chosen is None:
            raise MediaError(f"{media.proto} offer without an a=crypto we support (RFC 4568)")
        if known is not None and known.theirs == chosen and known.ours:
            return LegCrypto(media.proto, known.ours, chosen)  # unchanged: same keys
        return LegCrypto(media.proto, (answer_for(chosen),), chosen)
    if media.proto in PLAIN_PROFILES:
        if mode == "required":
            raise MediaError(f"SRTP is required on this trunk, {media.proto} was offered")
        return LegCrypto(media.proto)
    return None


def offer_towards(offered_proto: str, mode: SrtpMode, known: LegCrypto | None) -> LegCrypto | None:
    """Our end towards the answering leg: the profile to offer and our crypto lines."""
    secure_twin = PLAIN_PROFILES.get(offered_proto, offered_proto)
    if secure_twin not in SECURE_PROFILES:
        return None
    if mode == "required" or (mode == "optional" and offered_proto in SECURE_PROFILES):
        if known is not None and known.proto == secure_twin and known.ours:
            return known  # keys kept while the leg keeps its own (RFC 4568 §7.1.4)
        return LegCrypto(secure_twin, tuple(our_offer()))
    return LegCrypto(SECURE_PROFILES[secure_twin])


def read_answer(media: MediaDescription, offered: LegCrypto) -> LegCrypto:
    """The answering leg's end, once it answered what we offered it.

    Raises :class:`MediaError` when we offered SRTP and the answer has no
    crypto line matching one of ours (tag and suite, RFC 4568 §7.1.2).
    """
    if not offered.secure:
        return offered
    for line in read_crypto(_crypto_values(media)):
        for ours in offered.ours:
            if line.usable and (line.tag, line.suite) == (ours.tag, ours.suite):
                return LegCrypto(offered.proto, (ours,), line)  # re-offers keep this line
    raise MediaError("SRTP answer without an a=crypto matching our offer (RFC 4568 §7.1.2)")


def write_crypto(media: MediaDescription, crypto: LegCrypto | None) -> None:
    """A leg's m= line: no crypto from the other leg ever; our profile and lines."""
    media.remove_attributes(CRYPTO_ATTRIBUTE)
    if crypto is None:
        return
    media.proto = crypto.proto
    for line in crypto.ours:
        media.add_attribute(CRYPTO_ATTRIBUTE, line.format())
