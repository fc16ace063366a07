"""Message parser and serializer: framing, folding, validation, responses."""

from __future__ import annotations

import pytest

from sbc.sip.errors import ParseError
from sbc.sip.headers import Headers
from sbc.sip.message import (
    Request,
    Response,
    build_response,
    error_reason,
    parse_message,
)
from sbc.sip.uri import SipUri, UnparsedUri

BASE = (
    "INVITE sip:bob@example.com SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds;rport\r\n"
    "Max-Forwards: 70\r\n"
    'From: "Alice" <sip:alice@example.com>;tag=1928301774\r\n'
    "To: <sip:bob@example.com>\r\n"
    "Call-ID: a84b4c76e66710@pc33.example.com\r\n"
    "CSeq: 314159 INVITE\r\n"
    "Contact: <sip:alice@192.0.2.1>\r\n"
    "Content-Type: application/sdp\r\n"
    "Content-Length: 4\r\n"
    "\r\n"
    "v=0\n"
)


def build(**replace: str) -> bytes:
    text = BASE
    for old, new in replace.items():
        text = text.replace(old.replace("_", "-"), new)
    return text.encode()


def test_request_fields() -> None:
    request = parse_message(BASE.encode())
    assert isinstance(request, Request)
    assert request.method == "INVITE"
    assert isinstance(request.uri, SipUri)
    assert request.call_id == "a84b4c76e66710@pc33.example.com"
    assert (request.cseq.seq, request.cseq.method) == (314159, "INVITE")
    assert request.from_.tag == "1928301774"
    assert request.to.tag is None
    assert request.top_via.branch == "z9hG4bK776asdhds"
    assert request.content_type == "application/sdp"
    assert request.body == b"v=0\n"


def test_serialize_is_identity_for_canonical_input() -> None:
    assert parse_message(BASE.encode()).serialize() == BASE.encode()


def test_content_length_is_rewritten_in_place() -> None:
    request = parse_message(BASE.encode())
    request.body = b"v=0\r\n"
    out = request.serialize()
    assert b"Content-Type: application/sdp\r\nContent-Length: 5\r\n\r\nv=0\r\n" in out
    request.headers.remove("Content-Length")
    assert parse_message(request.serialize()).headers.get("Content-Length") == "5"


def test_compact_forms_and_folding() -> None:
    data = (
        b"OPTIONS sip:b@h SIP/2.0\r\nv: SIP/2.0/TCP h;branch=z9hG4bK1\r\n"
        b"f: <sip:a@h>;tag=1\r\nt: <sip:b@h>\r\ni: x\r\nCSeq: 1\r\n OPTIONS\r\n"
        b"k: timer,\r\n\t100rel\r\nl: 0\r\n\r\n"
    )
    message = parse_message(data)
    assert message.cseq.method == "OPTIONS"
    assert message.option_tags("Supported") == {"timer", "100rel"}
    assert [n for n, _ in message.headers][:4] == ["Via", "From", "To", "Call-ID"]


def test_lf_only_and_leading_crlf_are_tolerated() -> None:
    message = parse_message(b"\r\n\r\n" + BASE.replace("\r\n", "\n").encode())
    assert message.body == b"v=0\n"


def test_udp_body_without_content_length_runs_to_the_end() -> None:
    data = BASE.replace("Content-Length: 4\r\n", "").encode() + b"extra"
    assert parse_message(data).body == b"v=0\nextra"


def test_response_and_build_response() -> None:
    request = parse_message(BASE.encode())
    assert isinstance(request, Request)
    response = build_response(request, 180, to_tag="xyz")
    assert response.to.tag == "xyz"
    assert response.cseq == request.cseq
    again = parse_message(response.serialize())
    assert isinstance(again, Response)
    assert (again.status, again.reason) == (180, "Ringing")
    trying = build_response(request, 100, to_tag="xyz")
    assert trying.to.tag is None


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"\r\n\r\n", "empty"),
        (build(**{"CSeq: 314159 INVITE": "CSeq: 1 BYE"}), "CSeq method"),
        (build(**{"Max-Forwards: 70": "Max-Forwards: 256"}), "Max-Forwards"),
        (build(**{"Content-Length: 4": "Content-Length: 40"}), "Content-Length"),
        (build(**{"Content-Length: 4": "Content-Length: \u0664"}), "Content-Length"),
        (build(**{"Call-ID: a84b4c76e66710@pc33.example.com\r\n": ""}), "missing Call-ID"),
        (
            build(**{"To: <sip:bob@example.com>": "To: <sip:bob@example.com>\r\nt: <sip:c@h>"}),
            "duplicate To",
        ),
        (build(**{"Max-Forwards: 70": "Max-Forwards 70"}), "malformed header"),
        (build(**{"INVITE sip:": "INVITE  sip:", " SIP/2.0\r\nVia": " SIP/3.0\r\nVia"}), "version"),
        (build(**{"Via: SIP/2.0/UDP": "Via: SIP/2.0/UDP ,"}), "Via"),
    ],
)
def test_rejections_name_the_problem(data: bytes, reason: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_message(data)
    assert reason in info.value.reason


def test_400_carries_the_request_even_with_an_unparsable_uri() -> None:
    with pytest.raises(ParseError) as info:
        parse_message(build(**{"INVITE sip:bob@example.com": "INVITE <sip:bob@example.com>"}))
    request = info.value.message
    assert isinstance(request, Request)
    assert isinstance(request.uri, UnparsedUri)
    response = build_response(request, 400, error_reason(info.value))
    assert response.status == 400
    assert response.reason.startswith("Bad Request (invalid Request-URI")
    assert "\r" not in response.reason


def test_headers_api() -> None:
    headers = Headers()
    headers.add("v", "SIP/2.0/UDP a")
    headers.add("Via", "SIP/2.0/UDP b, SIP/2.0/UDP c")
    headers.prepend("VIA", "SIP/2.0/UDP top")
    assert headers.values("via") == [
        "SIP/2.0/UDP top",
        "SIP/2.0/UDP a",
        "SIP/2.0/UDP b",
        "SIP/2.0/UDP c",
    ]
    assert headers.count("Via") == 3
    headers.set("x-custom-thing", "1")
    assert headers.get("X-Custom-Thing") == "1"
    assert headers.remove("via") == 3
    assert "Via" not in headers
