"""SDES: SRTP keys carried in SDP ``a=crypto`` attributes (RFC 4568).

Pure: parsing, formatting, key generation and answer selection; no I/O.
Grammar handled (RFC 4568 §9.1, one key-param)::

    a=crypto:<tag> <crypto-suite> <key-params> [<session-param> ...]
    tag        = 1*9DIGIT
    key-params = "inline:" <key||salt base64> ["|" lifetime] ["|" MKI ":" length]

Keys are secrets: every type here keeps them out of ``repr`` and nothing
here logs. Keys come from :func:`secrets.token_bytes` (a CSPRNG, RFC 4568
§8.2 requires a cryptographically random master key per direction).
Suites: RFC 4568 §6.2 (AES_CM_128_HMAC_SHA1_80/_32) and RFC 7714 §12
(AEAD_AES_128_GCM / AEAD_AES_256_GCM: 12-octet salts).
"""

from __future__ import annotations

import base64
import binascii
import secrets
from dataclasses import dataclass, field

from sbc.sip.params import parse_number

CRYPTO_ATTRIBUTE = "crypto"
INLINE = "inline:"
MAX_TAG_DIGITS = 9  # RFC 4568 §9.1: tag = 1*9DIGIT
MAX_TAG = 10**MAX_TAG_DIGITS - 1


class SdesError(ValueError):
    """An ``a=crypto`` value that does not follow RFC 4568 §9.1."""


@dataclass(frozen=True, slots=True)
class Suite:
    """An SRTP crypto-suite: its SDES name and master key/salt lengths (octets)."""

    name: str
    key_length: int
    salt_length: int

    @property
    def material_length(self) -> int:
        """Octets of the inline key||salt (RFC 4568 §6.1)."""
        return self.key_length + self.salt_length


#: Suites we offer, in our order of preference.
SUITES: tuple[Suite, ...] = (
    Suite("AES_CM_128_HMAC_SHA1_80", 16, 14),  # RFC 4568 §6.2.1
    Suite("AES_CM_128_HMAC_SHA1_32", 16, 14),  # RFC 4568 §6.2.2
    Suite("AEAD_AES_128_GCM", 16, 12),  # RFC 7714 §12
    Suite("AEAD_AES_256_GCM", 32, 12),  # RFC 7714 §12
)
SUITES_BY_NAME: dict[str, Suite] = {suite.name: suite for suite in SUITES}
DEFAULT_SUITE = SUITES[0]


@dataclass(frozen=True, slots=True)
class CryptoAttribute:
    """One ``a=crypto`` line. ``key`` is the master key||salt (a secret)."""

    tag: int
    suite: str
    key: bytes = field(repr=False)
    lifetime: str | None = None
    mki: str | None = None  # "value:length", unsupported by the relay
    session_params: tuple[str, ...] = ()

    @classmethod
    def parse(cls, value: str) -> CryptoAttribute:
        """Parse the value after ``a=crypto:``; :class:`SdesError` when malformed.

        A suite we do not know is kept (``key`` then holds whatever the
        inline base64 decodes to): offers may list suites we skip.
        """
        fields = value.split()
        if len(fields) < 3:
            raise SdesError("crypto attribute needs a tag, a suite and key params")
        tag_text, suite, key_params, *session_params = fields
        tag = parse_number(tag_text, MAX_TAG) if len(tag_text) <= MAX_TAG_DIGITS else None
        if tag is None:
            raise SdesError("crypto tag must be 1 to 9 digits")
        if ";" in key_params:
            raise SdesError("more than one key-param is not supported")
        if not key_params.startswith(INLINE):
            raise SdesError("key method must be inline")
        key, lifetime, mki = _split_key_info(key_params[len(INLINE) :])
        known = SUITES_BY_NAME.get(suite)
        if known is not None and len(key) != known.material_length:
            raise SdesError(f"{suite} needs {known.material_length} octets of key and salt")
        return cls(tag, suite, key, lifetime, mki, tuple(session_params))

    def format(self) -> str:
        """The attribute value (what follows ``a=crypto:``)."""
        inline = INLINE + base64.b64encode(self.key).decode("ascii")
        if self.lifetime is not None:
            inline += "|" + self.lifetime
        if self.mki is not None:
            inline += "|" + self.mki
        return " ".join((str(self.tag), self.suite, inline, *self.session_params))

    @property
    def usable(self) -> bool:
        """A suite we implement, no MKI and no session parameters we would ignore."""
        return self.suite in SUITES_BY_NAME and self.mki is None and not self.session_params


def _split_key_info(info: str) -> tuple[bytes, str | None, str | None]:
    """``key||salt ["|" lifetime] ["|" mki:length]`` (RFC 4568 §9.1 key-info)."""
    parts = info.split("|")
    if len(parts) > 3:
        raise SdesError("too many '|' fields in key-info")
    try:
        key = base64.b64decode(parts[0], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SdesError("inline key is not base64") from exc
    lifetime: str | None = None
    mki: str | None = None
    for extra in parts[1:]:
        if ":" in extra:
            if mki is not None or not _is_mki(extra):
                raise SdesError("malformed MKI")
            mki = extra
        elif lifetime is None and mki is None and _is_lifetime(extra):
            lifetime = extra
        else:
            raise SdesError("malformed lifetime")
    return key, lifetime, mki


def _is_lifetime(text: str) -> bool:
    """``["2^"] 1*DIGIT`` (RFC 4568 §9.1)."""
    digits = text.removeprefix("2^")
    return digits.isascii() and digits.isdigit() and len(digits) <= 20


def _is_mki(text: str) -> bool:
    """``mki-value ":" mki-length``: 1*128DIGIT ":" 1*3DIGIT (RFC 4568 §9.1)."""
    value, _, length = text.partition(":")
    return (
        value.isascii()
        and value.isdigit()
        and len(value) <= 128
        and length.isascii()
        and length.isdigit()
        and len(length) <= 3
    )


def generate_key(suite: Suite) -> bytes:
    """A fresh master key||salt for ``suite`` from the system CSPRNG."""
    return secrets.token_bytes(suite.material_length)


def our_offer(suites: tuple[Suite, ...] = SUITES) -> list[CryptoAttribute]:
    """Crypto lines for an offer: one fresh key per suite, tags 1, 2, ..."""
    return [
        CryptoAttribute(tag, suite.name, generate_key(suite))
        for tag, suite in enumerate(suites, start=1)
    ]


def choose(offered: list[CryptoAttribute]) -> CryptoAttribute | None:
    """The first offered line we can use (RFC 4568 §7.1.2: the answer picks one)."""
    for attribute in offered:
        if attribute.usable:
            return attribute
    return None


def answer_for(offer: CryptoAttribute) -> CryptoAttribute:
    """Our answer to the chosen offer line: same tag and suite, our own key (§7.1.2)."""
    return CryptoAttribute(offer.tag, offer.suite, generate_key(SUITES_BY_NAME[offer.suite]))


def read_crypto(values: list[str]) -> list[CryptoAttribute]:
    """Parse a media section's ``a=crypto`` values, skipping malformed ones (§7.1.1)."""
    parsed: list[CryptoAttribute] = []
    for value in values:
        try:
            parsed.append(CryptoAttribute.parse(value))
        except SdesError:
            continue
    return parsed
