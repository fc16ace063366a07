"""Hostile STUN at the relay's parser: malformed messages are refused, never raised.

Anyone on the network can send a datagram to a relay port, so every byte
of a STUN message is untrusted: a truncated attribute, a length that
overruns the message, an address with an unknown family, a FINGERPRINT of
the wrong size must all end as "dropped, malformed" (RFC 8489 §5, §14),
and no input may raise anything out of the answering functions.
"""

from __future__ import annotations

import struct
import zlib

import pytest
from aioice import stun
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sbc.media.relay.stun import IceLite, answer_binding, answer_check
from sbc.media.relay.stun_message import StunError, parse_binding_request

SOURCE = ("203.0.113.5", 40000)
ICE = IceLite("ours", b"ourpasswordourpassword12", "theirs")
COOKIE = 0x2112A442
BINDING_REQUEST = 0x0001
TRANSACTION = bytes(range(12))


def message(*attributes: bytes, kind: int = BINDING_REQUEST, length: int | None = None) -> bytes:
    """A STUN header (RFC 8489 §5) and the attributes as given, raw."""
    body = b"".join(attributes)
    size = len(body) if length is None else length
    return struct.pack("!HHI12s", kind, size, COOKIE, TRANSACTION) + body


def attribute(kind: int, value: bytes, *, length: int | None = None, pad: bool = True) -> bytes:
    """A TLV (RFC 8489 §14): type, length, value, padding to 4 octets."""
    size = len(value) if length is None else length
    padding = bytes(-len(value) % 4) if pad else b""
    return struct.pack("!HH", kind, size) + value + padding


def with_fingerprint(data: bytes) -> bytes:
    """``data`` with a correct FINGERPRINT appended (RFC 8489 §14.7)."""
    size = struct.unpack_from("!H", data, 2)[0] + 8
    data = data[:2] + struct.pack("!H", size) + data[4:]
    crc = zlib.crc32(data) ^ 0x5354554E
    return data + attribute(0x8028, struct.pack("!I", crc))


#: One well-formed-looking message per way of getting an attribute wrong.
MALFORMED = {
    "truncated-attribute-header": message(b"\x00\x06\x00"),
    "attribute-overruns-message": message(attribute(0x0006, b"user", length=40)),
    "length-not-multiple-of-4": message(attribute(0x0006, b"abc", pad=False)),
    "header-length-too-long": message(attribute(0x0006, b"user"), length=64),
    "header-length-too-short": message(attribute(0x0006, b"user"), length=4),
    "xor-mapped-bad-family": message(attribute(0x0020, b"\x00\x07\x12\x34" + bytes(4))),
    "xor-mapped-truncated": message(attribute(0x0020, b"\x00\x01\x12")),
    "mapped-ipv6-short": message(attribute(0x0001, b"\x00\x02\x12\x34" + bytes(4))),
    "priority-short": message(attribute(0x0024, b"\x01\x02")),
    "fingerprint-short": message(attribute(0x8028, b"\x01\x02")),
    "fingerprint-wrong": message(attribute(0x8028, b"\x01\x02\x03\x04")),
    "integrity-short": message(attribute(0x0006, b"ours:theirs"), attribute(0x0008, bytes(8))),
    "ice-controlling-short": message(attribute(0x802A, bytes(4))),
    "use-candidate-with-value": message(attribute(0x0025, bytes(4))),
    "username-not-utf8": message(attribute(0x0006, b"\xff\xfe:\xfd")),
    "error-code-short": message(attribute(0x0009, b"\x00")),
    "not-stun-top-bits": b"\x40" + message()[1:],
}


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_message_is_dropped_as_malformed(data: bytes) -> None:
    plain = answer_binding(data, SOURCE)
    assert plain.response is None
    assert plain.refusal == "malformed"
    checked = answer_check(data, SOURCE, ICE, trusted=True)
    assert checked.response is None
    assert checked.refusal == "malformed"
    assert not checked.nominated


def test_a_fingerprinted_request_is_answered() -> None:
    data = with_fingerprint(message(attribute(0x8022, b"agent")))
    answer = answer_binding(data, SOURCE)
    assert answer.response is not None
    response = stun.parse_message(answer.response)
    assert response.transaction_id == TRANSACTION
    assert response.attributes["XOR-MAPPED-ADDRESS"] == SOURCE


def test_an_indication_is_ignored_not_malformed() -> None:
    indication = message(kind=0x0011)  # a Binding indication: an ICE keepalive (RFC 8445 §11)
    assert answer_binding(indication, SOURCE).refusal == "ignored"
    assert answer_check(indication, SOURCE, ICE, trusted=False).refusal == "ignored"


def test_an_oversized_message_is_malformed() -> None:
    """No ICE check or Binding request needs more than a path MTU (RFC 8489 §6.1)."""
    big = message(*[attribute(0x8022, bytes(100))] * 20)
    assert answer_binding(big, SOURCE).refusal == "malformed"


def test_many_fingerprints_cost_one_check() -> None:
    """FINGERPRINT must be the last attribute (RFC 8489 §14.7): a second one is malformed."""
    data = with_fingerprint(with_fingerprint(message()))
    assert answer_binding(data, SOURCE).refusal == "malformed"


# --- fuzzing -----------------------------------------------------------------------


def stun_like() -> st.SearchStrategy[bytes]:
    """A STUN header with the cookie and attributes of known and unknown types,
    lengths honest or not: the inputs a parser bug would hide behind."""
    types = st.sampled_from(
        [0x0001, 0x0006, 0x0008, 0x0009, 0x0020, 0x0024, 0x0025, 0x8022, 0x8028, 0x8029, 0x802A]
    ) | st.integers(0, 0xFFFF)
    one = st.tuples(types, st.binary(max_size=40), st.none() | st.integers(0, 0xFFFF))
    kinds = st.sampled_from([0x0001, 0x0011, 0x0101, 0x0111, 0x0002]) | st.integers(0, 0x3FFF)
    return st.builds(
        lambda kind, attrs, length: message(
            *(attribute(t, v, length=n) for t, v, n in attrs), kind=kind, length=length
        ),
        kinds,
        st.lists(one, max_size=8),
        st.none() | st.integers(0, 0xFFFF),
    )


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=200) | stun_like(), trusted=st.booleans())
@example(data=MALFORMED["priority-short"], trusted=True)
def test_no_input_raises(data: bytes, trusted: bool) -> None:
    plain = answer_binding(data, SOURCE)
    assert (plain.response is None) == (plain.refusal is not None)
    checked = answer_check(data, SOURCE, ICE, trusted=trusted)
    assert (checked.response is None) == (checked.refusal is not None)
    if checked.response is not None:
        assert stun.parse_message(checked.response).transaction_id == data[8:20]


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=200) | stun_like())
def test_the_parser_raises_only_stun_error(data: bytes) -> None:
    try:
        request = parse_binding_request(data)
    except StunError:
        return
    assert request is None or request.transaction_id == data[8:20]


@settings(max_examples=200)
@given(
    username=st.text(min_size=1, max_size=60),
    key=st.binary(min_size=1, max_size=40),
    nominate=st.booleans(),
    controlled=st.booleans(),
)
def test_what_aioice_writes_reads_back(
    username: str, key: bytes, nominate: bool, controlled: bool
) -> None:
    """A check as a full ICE agent writes it (RFC 8445 §7.2.2): every field read,
    the integrity verified with the right key only."""
    message = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
    message.attributes["USERNAME"] = username
    message.attributes["PRIORITY"] = 1845501695
    message.attributes["ICE-CONTROLLED" if controlled else "ICE-CONTROLLING"] = 42
    if nominate:
        message.attributes["USE-CANDIDATE"] = None
    message.add_message_integrity(key)
    request = parse_binding_request(bytes(message))
    assert request is not None
    assert request.transaction_id == message.transaction_id
    assert request.username == username
    assert (request.use_candidate, request.ice_controlled) == (nominate, controlled)
    assert request.verifies(key)
    assert not request.verifies(key + b"x")


def test_attributes_after_message_integrity_are_ignored() -> None:
    """Only FINGERPRINT may follow MESSAGE-INTEGRITY (RFC 8489 §14.5): a
    USE-CANDIDATE added after it must not nominate."""
    message = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
    message.attributes["USERNAME"] = "ours:theirs"
    message.add_message_integrity(ICE.password)
    signed = bytes(message)[:-8]  # without its FINGERPRINT
    tail = attribute(0x0025, b"")
    data = signed[:2] + struct.pack("!H", len(signed) - 20 + len(tail)) + signed[4:] + tail
    request = parse_binding_request(data)
    assert request is not None
    assert not request.use_candidate
    assert request.verifies(ICE.password)
