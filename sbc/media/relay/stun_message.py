"""STUN messages as a relay port receives them: a strict, bounded parser (RFC 8489).

Every datagram on a relay port is untrusted, so this parser is written for
hostile input: :func:`parse_binding_request` either returns what the relay
needs of a Binding request, returns None for any other well-formed message,
or raises :class:`StunError` (a :class:`ValueError`) — nothing else, for
any bytes (``tests/media/test_stun_hostile.py`` fuzzes it). The rules:

- Header (RFC 8489 §5): the two top bits zero, the magic cookie, a length
  that is a multiple of 4 and exactly the rest of the datagram, which is at
  most :data:`MAX_MESSAGE_SIZE` octets (§6.1: a STUN message over UDP fits a
  path MTU; no ICE check comes near it).
- Attributes (§14): type, length, value padded to 4 octets; every attribute
  must fit in the message, and the walk must end exactly at its end.
- Attributes with a fixed form are checked, whatever the message (§14.1,
  §14.2 addresses of family 1 or 2 and their exact lengths, §14.3 USERNAME
  of at most 763 octets (UTF-8 where read), §14.5 MESSAGE-INTEGRITY of 20, §14.7
  FINGERPRINT of 4, §14.8 ERROR-CODE of at least 4, RFC 8445 §16.1 PRIORITY,
  USE-CANDIDATE, ICE-CONTROLLED/-CONTROLLING); unknown ones are skipped.
- The first occurrence of an attribute counts (§14). After
  MESSAGE-INTEGRITY only FINGERPRINT is read (§14.5); FINGERPRINT must be
  the last attribute and match (§14.7), so it is computed once.

Cost is linear in the (capped) message, with at most one CRC-32 and no
copies beyond the signed prefix of a message carrying MESSAGE-INTEGRITY.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import struct
from dataclasses import dataclass

HEADER_LENGTH = 20  # RFC 8489 §5
MAGIC_COOKIE = 0x2112A442
#: The largest message parsed: an Ethernet MTU. Anything bigger is malformed here.
MAX_MESSAGE_SIZE = 1500
BINDING_REQUEST = 0x0001  # method Binding (0x001), class request (RFC 8489 §5, §18.2)
FINGERPRINT_XOR = 0x5354554E  # RFC 8489 §14.7
INTEGRITY_LENGTH = 20  # HMAC-SHA1 (RFC 8489 §14.5)

# Attribute types (RFC 8489 §18.3, RFC 8445 §16.1).
MAPPED_ADDRESS = 0x0001
USERNAME = 0x0006
MESSAGE_INTEGRITY = 0x0008
ERROR_CODE = 0x0009
XOR_MAPPED_ADDRESS = 0x0020
PRIORITY = 0x0024
USE_CANDIDATE = 0x0025
SOFTWARE = 0x8022
ALTERNATE_SERVER = 0x8023
FINGERPRINT = 0x8028
ICE_CONTROLLED = 0x8029
ICE_CONTROLLING = 0x802A

MAX_USERNAME = 763  # RFC 8489 §14.3: what an agent must parse (RFC 5389 compatible)
#: Address family -> value length (RFC 8489 §14.1: family, port, 4 or 16 octets).
ADDRESS_LENGTHS = {0x01: 8, 0x02: 20}
ADDRESSES = frozenset({MAPPED_ADDRESS, XOR_MAPPED_ADDRESS, ALTERNATE_SERVER})
#: Attributes whose value has one exact length.
FIXED_LENGTHS = {
    MESSAGE_INTEGRITY: INTEGRITY_LENGTH,
    PRIORITY: 4,
    USE_CANDIDATE: 0,
    FINGERPRINT: 4,
    ICE_CONTROLLED: 8,
    ICE_CONTROLLING: 8,
}

_HEADER = struct.Struct("!HHI12s")
_ATTRIBUTE = struct.Struct("!HH")
_LENGTH = struct.Struct("!H")
_WORD = struct.Struct("!I")


class StunError(ValueError):
    """Not a well-formed STUN message (RFC 8489 §5, §14)."""


@dataclass(frozen=True, slots=True)
class BindingRequest:
    """What the relay reads of a Binding request (RFC 8489 §6.3; ICE, RFC 8445 §7.3)."""

    transaction_id: bytes
    username: str | None = None
    integrity: bytes | None = None  # the MESSAGE-INTEGRITY value
    signed: bytes = b""  # what it covers, with the length adjusted (RFC 8489 §14.5)
    use_candidate: bool = False
    ice_controlled: bool = False

    def verifies(self, key: bytes) -> bool:
        """MESSAGE-INTEGRITY is the HMAC-SHA1 of the signed part under ``key``."""
        if self.integrity is None:
            return False
        expected = hmac.new(key, self.signed, hashlib.sha1).digest()
        return hmac.compare_digest(self.integrity, expected)


def parse_binding_request(data: bytes) -> BindingRequest | None:
    """The Binding request in ``data``; None for another well-formed message
    (a response, an indication, another method); :class:`StunError` otherwise."""
    size = len(data)
    if not HEADER_LENGTH <= size <= MAX_MESSAGE_SIZE:
        raise StunError(f"{size} octets: not a STUN message this relay reads")
    kind, length, cookie, transaction_id = _HEADER.unpack_from(data)
    if kind & 0xC000 or cookie != MAGIC_COOKIE:
        raise StunError("no STUN header (top bits, magic cookie)")
    if length % 4 or HEADER_LENGTH + length != size:
        raise StunError(f"message length {length} for a {size}-octet datagram")
    found = _walk(data)
    if kind != BINDING_REQUEST:
        return None
    integrity_at = found.get(MESSAGE_INTEGRITY)
    return BindingRequest(
        transaction_id,
        username=_username(data, found.get(USERNAME)),
        integrity=None if integrity_at is None else data[integrity_at : integrity_at + 20],
        signed=b"" if integrity_at is None else _signed(data, integrity_at - 4),
        use_candidate=USE_CANDIDATE in found,
        ice_controlled=ICE_CONTROLLED in found,
    )


def _walk(data: bytes) -> dict[int, int]:
    """Check every attribute; the value offset of the first of each type."""
    found: dict[int, int] = {}
    end = len(data)
    position = HEADER_LENGTH
    signed = False  # MESSAGE-INTEGRITY seen: only FINGERPRINT is read after it
    while position < end:
        if end - position < 4:
            raise StunError(f"truncated attribute header at octet {position}")
        kind, length = _ATTRIBUTE.unpack_from(data, position)
        value = position + 4
        position = value + length + (-length % 4)
        if position > end:
            raise StunError(f"attribute {kind:#06x} runs past the message")
        if signed and kind != FINGERPRINT:
            continue  # not covered by MESSAGE-INTEGRITY: ignored (RFC 8489 §14.5)
        _check_value(data, kind, value, length)
        if kind == FINGERPRINT:
            if position != end:
                raise StunError("FINGERPRINT is not the last attribute (RFC 8489 §14.7)")
            _check_fingerprint(data, value - 4)
        found.setdefault(kind, value)
        signed = signed or kind == MESSAGE_INTEGRITY
    return found


def _check_value(data: bytes, kind: int, value: int, length: int) -> None:
    """The form of a known attribute (RFC 8489 §14; RFC 8445 §16.1)."""
    fixed = FIXED_LENGTHS.get(kind)
    if fixed is not None and length != fixed:
        raise StunError(f"attribute {kind:#06x} of {length} octets, not {fixed}")
    if kind in ADDRESSES:
        if length < 2 or ADDRESS_LENGTHS.get(data[value + 1]) != length:
            raise StunError(f"address attribute {kind:#06x}: unknown family or {length} octets")
    elif kind == USERNAME and length > MAX_USERNAME:
        raise StunError(f"USERNAME of {length} octets")
    elif kind == ERROR_CODE and length < 4:
        raise StunError("ERROR-CODE shorter than 4 octets")


def _check_fingerprint(data: bytes, at: int) -> None:
    """CRC-32 of everything before it, XOR 0x5354554E (RFC 8489 §14.7)."""
    expected = binascii.crc32(memoryview(data)[:at]) ^ FINGERPRINT_XOR
    if _WORD.unpack_from(data, at + 4)[0] != expected:
        raise StunError("FINGERPRINT does not match")


def _username(data: bytes, value: int | None) -> str | None:
    if value is None:
        return None
    length = _LENGTH.unpack_from(data, value - 2)[0]
    try:
        return data[value : value + length].decode("utf-8")
    except UnicodeDecodeError:
        raise StunError("USERNAME is not UTF-8") from None


def _signed(data: bytes, at: int) -> bytes:
    """The message up to MESSAGE-INTEGRITY at ``at``, its length counting that
    attribute and nothing after it (RFC 8489 §14.5)."""
    length = _LENGTH.pack(at + 4 + INTEGRITY_LENGTH - HEADER_LENGTH)
    return data[:2] + length + data[4:at]
