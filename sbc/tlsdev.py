"""Development certificates: a throwaway CA and the certificates it signs.

Tests and the demo need SIP over TLS (RFC 3261 §26) without a real PKI, so
this module mints EC P-256 keys and X.509 certificates with ``cryptography``.
Everything is PEM bytes in memory; only :func:`main` touches files:

    python -m sbc.tlsdev DIR        # demo CA plus the demo topology's certificates

Never use these for production: the CA key sits beside the certificates.

The functions take ``now`` so results are reproducible in tests; the CLI
passes the current time. Names in ``sans`` that parse as IP addresses become
iPAddress entries, the rest dNSName entries (RFC 5280 §4.2.1.6), which is
what TLS name verification toward an IP-addressed SIP trunk checks.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import sys
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["DEMO_CERTIFICATES", "CertificateAuthority", "main", "make_ca", "make_cert"]

#: A (certificate PEM, private key PEM) pair, as written to ``.pem``/``.key`` files.
CertificateAuthority = tuple[bytes, bytes]

#: Validity bounds in days: at least a day (clock skew), at most a year.
MIN_DAYS = 1
MAX_DAYS = 365
#: Certificates start this long before ``now`` so a peer's slow clock accepts them.
_BACKDATE = datetime.timedelta(hours=1)

#: The demo topology (DESIGN.md): file stem -> (common name, subjectAltNames, client only).
DEMO_CERTIFICATES: dict[str, tuple[str, tuple[str, ...], bool]] = {
    "sbc-external": ("sbc external", ("127.0.0.1", "localhost"), False),
    "sbc-internal": ("sbc internal", ("127.0.0.2",), False),
    "carrier": ("carrier", ("127.0.0.10",), False),
    "pbx": ("pbx", ("127.0.0.20",), False),
    "client": ("demo client", ("127.0.0.10",), True),
}


def make_ca(
    common_name: str, *, days: int = MAX_DAYS, now: datetime.datetime | None = None
) -> CertificateAuthority:
    """A self-signed CA certificate and its key (PEM), allowed to sign leaf certificates only."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name)
    start, end = _validity(days, now)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(signing=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _pem(certificate, key)


def make_cert(
    ca: CertificateAuthority,
    common_name: str,
    sans: Sequence[str],
    client: bool = False,
    *,
    days: int = MAX_DAYS,
    now: datetime.datetime | None = None,
) -> tuple[bytes, bytes]:
    """A leaf certificate signed by ``ca`` for ``sans`` (DNS names and IP literals), and its key.

    A SIP element is both TLS server and client (it accepts and opens
    connections), so a default certificate carries both serverAuth and
    clientAuth; ``client=True`` makes a clientAuth-only certificate.
    """
    if not sans:
        raise ValueError("a certificate needs at least one subjectAltName")
    ca_cert = x509.load_pem_x509_certificate(ca[0])
    ca_key = serialization.load_pem_private_key(ca[1], password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError("the CA key must be an EC key (made by make_ca)")
    key = ec.generate_private_key(ec.SECP256R1())
    start, end = _validity(days, now)
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
    if not client:
        usages.insert(0, ExtendedKeyUsageOID.SERVER_AUTH)
    ca_key_id = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(signing=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectAlternativeName(_general_names(sans)), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_key_id),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return _pem(certificate, key)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _validity(
    days: int, now: datetime.datetime | None
) -> tuple[datetime.datetime, datetime.datetime]:
    if not MIN_DAYS <= days <= MAX_DAYS:
        raise ValueError(f"validity must be {MIN_DAYS}..{MAX_DAYS} days, got {days}")
    start = (now or datetime.datetime.now(datetime.UTC)) - _BACKDATE
    return start, start + _BACKDATE + datetime.timedelta(days=days)


def _key_usage(*, signing: bool) -> x509.KeyUsage:
    """CA keys sign certificates; leaf EC keys sign handshakes (ECDHE-ECDSA)."""
    return x509.KeyUsage(
        digital_signature=not signing,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=signing,
        crl_sign=signing,
        encipher_only=False,
        decipher_only=False,
    )


def _general_names(sans: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for san in sans:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(san)))
        except ValueError:
            names.append(x509.DNSName(san))
    return names


def _pem(certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> tuple[bytes, bytes]:
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


# -- command line -------------------------------------------------------------


def _write_pair(directory: Path, stem: str, pair: tuple[bytes, bytes]) -> None:
    (directory / f"{stem}.pem").write_bytes(pair[0])
    key_path = directory / f"{stem}.key"
    key_path.touch(mode=0o600)
    key_path.chmod(0o600)  # touch keeps an existing file's mode
    key_path.write_bytes(pair[1])


def _read_pair(directory: Path, stem: str) -> tuple[bytes, bytes] | None:
    cert, key = directory / f"{stem}.pem", directory / f"{stem}.key"
    if cert.exists() and key.exists():
        return cert.read_bytes(), key.read_bytes()
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Write ``ca`` and the demo certificates into DIR; existing ones are kept unless --force."""
    parser = argparse.ArgumentParser(
        prog="python -m sbc.tlsdev", description=__doc__.split("\n")[0]
    )
    parser.add_argument("directory", type=Path, help="where to write NAME.pem and NAME.key")
    parser.add_argument("--force", action="store_true", help="replace existing files")
    parser.add_argument("--days", type=int, default=MAX_DAYS, help="validity in days (1..365)")
    args = parser.parse_args(argv)
    directory: Path = args.directory
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca = None if args.force else _read_pair(directory, "ca")
    # Certificates of a replaced CA would no longer verify: a new CA renews them all.
    renew = ca is None
    if ca is None:
        ca = make_ca("sbc demo CA", days=args.days, now=now)
        _write_pair(directory, "ca", ca)
        print(f"wrote {directory / 'ca.pem'}")
    for stem, (common_name, sans, client) in DEMO_CERTIFICATES.items():
        if not renew and _read_pair(directory, stem) is not None:
            print(f"kept {directory / stem}.pem")
            continue
        pair = make_cert(ca, common_name, list(sans), client, days=args.days, now=now)
        _write_pair(directory, stem, pair)
        print(f"wrote {directory / stem}.pem ({', '.join(sans)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
