"""Property tests: only ParseError escapes the parser; values round-trip."""

from __future__ import annotations

import contextlib
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sbc.sip.address import parse_address, quote_string
from sbc.sip.errors import ParseError
from sbc.sip.message import parse_message
from sbc.sip.uri import SipUri, parse_uri
from sbc.sip.via import parse_via

CORPUS = sorted((Path(__file__).parent / "torture").glob("*/*.sip"))
SEEDS = [p.read_bytes() for p in CORPUS]
NASTY = [b"\r", b"\n", b"\r\n", b"\x00", b'"', b"<", b">", b";", b",", b":", b" ", b"\\", b"%"]
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def parse_or_reject(data: bytes) -> None:
    """Parse; if it parses, its serialization must parse to the same thing."""
    try:
        message = parse_message(data)
    except ParseError:
        return
    again = parse_message(message.serialize())
    assert again.start_line() == message.start_line()
    assert again.body == message.body


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        if action == "flip" and pos < len(data):
            data[pos] = draw(st.integers(0, 255))
        elif action == "insert":
            data[pos:pos] = draw(st.sampled_from(NASTY))
        elif action == "delete":
            del data[pos : pos + draw(st.integers(1, 8))]
        elif action == "truncate":
            del data[pos:]
    return bytes(data)


@FUZZ
@given(st.binary(max_size=300))
@example(b"")
@example(b"\r\n\r\n")
@example(b"SIP/2.0 \xb2\xb2\xb2 OK\r\n\r\n")
@example(b"INVITE sip:a@b:\xc2\xb2 SIP/2.0\r\n\r\n")
def test_random_bytes_raise_only_parse_error(data: bytes) -> None:
    parse_or_reject(data)


@FUZZ
@given(mutated())
def test_mutated_corpus_raises_only_parse_error(data: bytes) -> None:
    parse_or_reject(data)


@FUZZ
@given(st.text(max_size=80))
def test_uri_address_via_raise_only_parse_error(text: str) -> None:
    for parse in (parse_uri, parse_address, parse_via):
        with contextlib.suppress(ParseError):
            parse(text)


# --- structured round trips ---------------------------------------------------

USER = st.text("abcXYZ019-_.!~*'()&=+$,;?/%", min_size=1, max_size=12).filter(
    lambda u: "%" not in u or u.endswith("%41")
)
HOSTS = st.sampled_from(
    ["example.com", "a.b-c.example.org", "192.0.2.1", "[2001:db8::1]", "[::1]", "h"]
)
PORTS = st.none() | st.integers(1, 65535)
TOKEN = st.text("abcdefghijklmnopqrstuvwxyz0123456789-.!%*_+`'~", min_size=1, max_size=8)
PARAMS = st.dictionaries(TOKEN.map(str.lower), st.none() | TOKEN, max_size=4)


@st.composite
def sip_uris(draw: st.DrawFn) -> SipUri:
    headers = draw(st.none() | st.sampled_from(["subject=hi", "h=a&b=%3Cx%3E", "x=[y]"]))
    return SipUri(
        host=draw(HOSTS),
        user=draw(st.none() | USER),
        port=draw(PORTS),
        scheme=draw(st.sampled_from(["sip", "sips"])),
        params=draw(PARAMS),
        headers=headers,
    )


@settings(max_examples=300, deadline=None)
@given(sip_uris())
def test_sip_uri_round_trip(uri: SipUri) -> None:
    assert parse_uri(str(uri)) == uri


DISPLAY = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n"))


@settings(max_examples=300, deadline=None)
@given(sip_uris(), st.none() | DISPLAY, PARAMS)
def test_name_addr_round_trip(
    uri: SipUri, display: str | None, params: dict[str, str | None]
) -> None:
    uri.headers = None if display is None else uri.headers
    text = f"{quote_string(display)} <{uri}>" if display is not None else f"<{uri}>"
    text += "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())
    address = parse_address(text)
    assert address.uri == uri
    assert address.display_name == display
    assert address.params == params
    assert parse_address(str(address)) == address


@settings(max_examples=300, deadline=None)
@given(HOSTS, PORTS, st.sampled_from(["UDP", "TCP", "TLS", "WS"]), PARAMS)
def test_via_round_trip(
    host: str, port: int | None, transport: str, params: dict[str, str | None]
) -> None:
    sent_by = host if port is None else f"{host}:{port}"
    via = parse_via(
        f"SIP/2.0/{transport} {sent_by}"
        + "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())
    )
    assert (via.host, via.port, via.transport, via.params) == (host, port, transport, params)
    assert parse_via(str(via)) == via
