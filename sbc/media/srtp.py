"""SRTP/SRTCP sessions for one leg (RFC 3711), from SDES keys, over libsrtp.

Pure (no sockets, no clock): :class:`SrtpContext` turns a
:class:`~sbc.media.control.SrtpKeys` into two pylibsrtp sessions: inbound
(the leg's key; any SSRC) to authenticate and decrypt what the leg sends,
outbound (our key) to protect what we send to it. A packet that fails
authentication or the replay check raises :class:`SrtpError`.
"""

from __future__ import annotations

import pylibsrtp

from sbc.media.control import SrtpKeys

#: SDES suite name -> libsrtp profile (RFC 4568 §6.2, RFC 7714 §12).
PROFILES: dict[str, int] = {
    "AES_CM_128_HMAC_SHA1_80": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    "AES_CM_128_HMAC_SHA1_32": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
    "AEAD_AES_128_GCM": pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
    "AEAD_AES_256_GCM": pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_256_GCM,
}

SrtpError = pylibsrtp.Error


def session(suite: str, key: bytes, inbound: bool) -> pylibsrtp.Session:
    """A libsrtp session for every SSRC in one direction (RFC 3711 §3.2.3)."""
    policy = pylibsrtp.Policy(
        key=key,
        ssrc_type=(
            pylibsrtp.Policy.SSRC_ANY_INBOUND if inbound else pylibsrtp.Policy.SSRC_ANY_OUTBOUND
        ),
        srtp_profile=PROFILES[suite],
    )
    if not inbound:
        # The plain leg may resend a sequence number; that is not ours to refuse.
        policy.allow_repeat_tx = True
    return pylibsrtp.Session(policy=policy)


class SrtpContext:
    """Both directions of one SRTP leg; its repr names the suite, never a key."""

    __slots__ = ("inbound", "keys", "outbound")

    def __init__(self, keys: SrtpKeys) -> None:
        self.keys = keys  # compared on reconfigure: new keys -> new context
        self.inbound = session(keys.suite, keys.receive_key, inbound=True)
        self.outbound = session(keys.suite, keys.send_key, inbound=False)

    def __repr__(self) -> str:
        return f"SrtpContext({self.keys.suite})"
