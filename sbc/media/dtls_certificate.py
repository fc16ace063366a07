"""The node's DTLS-SRTP certificate and its SDP fingerprint (RFC 5763 §5, RFC 8122 §5).

One self-signed ECDSA P-256 certificate serves every call of the process:
what a peer checks is the ``a=fingerprint`` we put in SDP, never a chain or a
name. It is made with ``cryptography`` alone, the same way aiortc makes its
own, so that the signalling process (which writes fingerprints into SDP)
does not import aiortc and, through it, PyAV and NumPy; only a relay that
runs a handshake does (:mod:`sbc.media.dtls`). Kept as PEMs so that it
pickles to relay workers; both are kept out of ``repr``. The role and state
names both sides of the relay speak live here too.
"""

from __future__ import annotations

import datetime
import enum
import secrets
from dataclasses import dataclass, field
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

DtlsRole = Literal["client", "server"]


class DtlsState(enum.Enum):
    """Where a side's DTLS association stands (reported in stream stats)."""

    NEW = "new"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    FAILED = "failed"


#: RFC 8122 §5: the hash function we put in our own a=fingerprint.
FINGERPRINT_HASH = "sha-256"
#: RFC 8122 §5 (the IANA "Hash Function Textual Names"): what we can check.
DIGESTS: dict[str, type[hashes.HashAlgorithm]] = {
    "sha-1": hashes.SHA1,
    "sha-224": hashes.SHA224,
    "sha-256": hashes.SHA256,
    "sha-384": hashes.SHA384,
    "sha-512": hashes.SHA512,
}
#: The certificate outlives any call by far; peers check the fingerprint, not dates.
VALIDITY = datetime.timedelta(days=365)


def certificate_digest(cert: x509.Certificate, algorithm: str) -> str:
    """``AB:CD:...``: the certificate's DER hash as an a=fingerprint value."""
    digest = cert.fingerprint(DIGESTS[algorithm.lower()]())
    return ":".join(f"{byte:02X}" for byte in digest)


@dataclass(frozen=True, slots=True)
class DtlsCertificate:
    """The node's self-signed certificate and key, as PEMs (picklable)."""

    certificate: bytes = field(repr=False)
    private_key: bytes = field(repr=False)

    @classmethod
    def generate(cls) -> DtlsCertificate:
        """A fresh ECDSA P-256 key and a self-signed certificate with a random name."""
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, secrets.token_hex(16))])
        now = datetime.datetime.now(tz=datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + VALIDITY)
            .sign(key, hashes.SHA256())
        )
        return cls(
            certificate=cert.public_bytes(serialization.Encoding.PEM),
            private_key=key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )

    def fingerprint(self, algorithm: str = FINGERPRINT_HASH) -> str:
        """``a=fingerprint`` value of our certificate (RFC 8122 §5)."""
        return certificate_digest(x509.load_pem_x509_certificate(self.certificate), algorithm)

    def __repr__(self) -> str:
        return f"DtlsCertificate({FINGERPRINT_HASH} {self.fingerprint()})"
