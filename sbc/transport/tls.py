"""TLS settings for SIP over TLS (RFC 3261 §26.2.1, RFC 5630): contexts, pins, identities.

The policy names files and options; this module turns them into
``ssl.SSLContext`` objects once (loading keys and CA bundles is slow and
must not happen per connection) and checks what ``ssl`` cannot:

- a pinned SHA-256 fingerprint of the peer's certificate, compared after
  the handshake (the pin replaces chain checks for a self-signed trunk on
  the client side; on the server side OpenSSL must still verify the client
  certificate, so pinning a client needs ``cafile``);
- whether a verified peer certificate names a host, for RFC 5923 aliases.

Every context enforces TLS 1.2 or later, ECDHE with AEAD ciphers for 1.2
(1.3 suites are all AEAD), no compression and no renegotiation.
Configuration mistakes raise :class:`TlsConfigError` naming the file, never
its contents: key material must not reach logs.
"""

from __future__ import annotations

import hashlib
import ipaddress
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from sbc.fingerprints import normalize_fingerprint as _normalize
from sbc.transport.types import Peer

__all__ = [
    "CIPHERS",
    "TlsClientConfig",
    "TlsClientSettings",
    "TlsClients",
    "TlsConfigError",
    "TlsServerConfig",
    "certificate_names",
    "client_context",
    "fingerprint",
    "names_host",
    "normalize_fingerprint",
    "server_context",
]

#: TLS 1.2 suites: forward secrecy (ECDHE) and authenticated encryption only.
CIPHERS: Final = "ECDHE+AESGCM:ECDHE+CHACHA20"


class TlsConfigError(ValueError):
    """A TLS setting that cannot be used (missing file, bad key, bad fingerprint)."""


def normalize_fingerprint(text: str) -> str:
    """:func:`sbc.fingerprints.normalize_fingerprint`, failing as a TLS setting."""
    try:
        return _normalize(text)
    except ValueError as exc:
        raise TlsConfigError(str(exc)) from None


def fingerprint(der: bytes) -> str:
    """SHA-256 of a DER certificate, as :func:`normalize_fingerprint` spells it."""
    return hashlib.sha256(der).hexdigest()


def _pins(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(normalize_fingerprint(value) for value in values)


@dataclass(frozen=True, slots=True)
class TlsServerConfig:
    """A TLS listener: its certificate chain and key, and what clients must present.

    ``require_client_cert`` turns on mutual TLS: a client without a
    certificate that chains to ``cafile`` is refused during the handshake.
    ``pinned_client_fingerprints`` (SHA-256) further restricts the accepted
    certificates and implies mutual TLS; OpenSSL verifies a client
    certificate before we see it, so ``cafile`` must hold its issuer (or the
    certificate itself when it is self-signed).
    """

    certfile: str
    keyfile: str
    cafile: str | None = None
    require_client_cert: bool = False
    pinned_client_fingerprints: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "pinned_client_fingerprints", _pins(self.pinned_client_fingerprints)
        )
        if (self.require_client_cert or self.pinned_client_fingerprints) and not self.cafile:
            raise TlsConfigError("mutual TLS needs cafile to verify client certificates against")

    @property
    def mutual(self) -> bool:
        return self.require_client_cert or bool(self.pinned_client_fingerprints)


@dataclass(frozen=True, slots=True)
class TlsClientConfig:
    """How to open TLS connections toward one destination (a trunk).

    ``cafile`` None means the system's CA store. ``server_hostname`` is sent
    as SNI (unless an IP literal) and checked against the certificate; None
    checks the destination's IP address instead (an iPAddress SAN).
    ``certfile``/``keyfile`` are our client certificate for mutual TLS.
    With ``pinned_fingerprints`` and no ``cafile`` the pin alone authenticates
    the peer (a self-signed trunk); with a ``cafile`` both must pass.
    """

    cafile: str | None = None
    server_hostname: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    pinned_fingerprints: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "pinned_fingerprints", _pins(self.pinned_fingerprints))
        if self.keyfile and not self.certfile:
            raise TlsConfigError("keyfile given without certfile")

    @property
    def pin_only(self) -> bool:
        return bool(self.pinned_fingerprints) and self.cafile is None


def _harden(context: ssl.SSLContext) -> ssl.SSLContext:
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(CIPHERS)
    # CRIME (compression) and renegotiation attacks; both are off in modern
    # OpenSSL builds already, set here so an old build cannot turn them on.
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    return context


def _load_chain(context: ssl.SSLContext, certfile: str, keyfile: str | None) -> None:
    try:
        context.load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise TlsConfigError(f"cannot load certificate {certfile} / key {keyfile}: {exc}") from exc


def _load_cas(context: ssl.SSLContext, cafile: str) -> None:
    try:
        context.load_verify_locations(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise TlsConfigError(f"cannot load CA bundle {cafile}: {exc}") from exc


def server_context(config: TlsServerConfig) -> ssl.SSLContext:
    """The context of a TLS listener (raises :class:`TlsConfigError`)."""
    context = _harden(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    _load_chain(context, config.certfile, config.keyfile)
    if config.cafile:
        _load_cas(context, config.cafile)
    context.verify_mode = ssl.CERT_REQUIRED if config.mutual else ssl.CERT_NONE
    return context


def client_context(config: TlsClientConfig) -> ssl.SSLContext:
    """The context for connections toward a destination (raises :class:`TlsConfigError`)."""
    context = _harden(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
    if config.pin_only:
        # The fingerprint check after the handshake is the authentication.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif config.cafile:
        _load_cas(context, config.cafile)
    else:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if config.certfile:
        _load_chain(context, config.certfile, config.keyfile)
    return context


@dataclass(frozen=True, slots=True)
class TlsClientSettings:
    """What an outbound connection needs: the context, the name to check, the pins."""

    context: ssl.SSLContext
    server_hostname: str | None
    pins: tuple[str, ...] = ()


@dataclass(slots=True)
class TlsClients:
    """Per-destination client configs, each turned into a context once.

    ``configs`` are keyed by ``(host, port)``; a destination without an entry
    uses ``default`` (None refuses TLS toward unlisted destinations).
    """

    configs: Mapping[tuple[str, int], TlsClientConfig] = field(default_factory=dict)
    default: TlsClientConfig | None = field(default_factory=TlsClientConfig)
    _contexts: dict[TlsClientConfig, ssl.SSLContext] = field(default_factory=dict, init=False)

    def build(self) -> None:
        """Load every listed config now, so a bad file fails before it is used."""
        for config in self.configs.values():
            self._context(config)

    def for_peer(self, peer: Peer) -> TlsClientSettings | None:
        config = self.configs.get((peer.host, peer.port), self.default)
        if config is None:
            return None
        hostname = None if config.pin_only else config.server_hostname or peer.host
        return TlsClientSettings(self._context(config), hostname, config.pinned_fingerprints)

    def _context(self, config: TlsClientConfig) -> ssl.SSLContext:
        context = self._contexts.get(config)
        if context is None:
            context = self._contexts[config] = client_context(config)
        return context


def certificate_names(certificate: Mapping[str, object]) -> frozenset[str]:
    """The subjectAltName DNS names and IP addresses of a *verified* peer certificate.

    ``certificate`` is ``SSLObject.getpeercert()`` (empty unless verified).
    IP addresses are normalized so ``::1`` and ``0:0::1`` compare equal.
    """
    names: set[str] = set()
    entries = certificate.get("subjectAltName", ())
    if not isinstance(entries, tuple):
        return frozenset()
    for kind, value in entries:
        if kind == "DNS":
            names.add(str(value).lower().rstrip("."))
        elif kind == "IP Address":
            names.add(_normal_host(str(value)))
    return frozenset(names)


def _normal_host(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host.strip()))
    except ValueError:
        return host.strip().lower().rstrip(".")


def names_host(names: frozenset[str], host: str) -> bool:
    """Whether a certificate's names cover ``host``: exact, or a ``*.`` over one DNS label."""
    wanted = _normal_host(host)
    if wanted in names:
        return True
    if _is_ip(wanted):
        return False
    label, _, parent = wanted.partition(".")
    return bool(label and parent) and f"*.{parent}" in names


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
