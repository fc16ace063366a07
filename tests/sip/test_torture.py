"""RFC 4475 torture tests: the corpus under ``torture/`` (see its README)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sbc.sip.address import Address
from sbc.sip.errors import ParseError, UnsupportedVersionError
from sbc.sip.message import Request, Response, parse_message
from sbc.sip.uri import AbsoluteUri, SipUri, unescape

CORPUS = Path(__file__).parent / "torture"
VALID = sorted(p.stem for p in (CORPUS / "valid").glob("*.sip"))
INVALID = sorted(p.stem for p in (CORPUS / "invalid").glob("*.sip"))

#: §3.1.2 cases the RFC lets a liberal element accept; sbc does (README).
LIBERAL = {"lwsstart", "trws", "baddate"}

#: What the reason of each rejected case must mention.
REASONS = {
    "badinv01": "Via",
    "clerr": "Content-Length",
    "ncl": "Content-Length",
    "scalar02": "CSeq",
    "scalarlg": "CSeq",
    "quotbal": "quoted",
    "ltgtruri": "Request-URI",
    "lwsruri": "Request-URI",
    "escruri": "Request-URI",
    "regbadct": "Contact",
    "badaspec": "To",
    "baddn": "display name",
    "badvers": "version",
    "mismatch01": "CSeq method",
    "mismatch02": "CSeq method",
    "bigcode": "status code",
    "insuf": "missing",
    "multi01": "duplicate",
    "mcl01": "duplicate Content-Length",
}

#: Responses are dropped, never answered, so they need not carry a message.
UNANSWERABLE = {"bigcode", "scalarlg"}


def load(kind: str, name: str) -> bytes:
    return (CORPUS / kind / f"{name}.sip").read_bytes()


def parsed(name: str) -> Request | Response:
    return parse_message(load("valid", name))


def request(name: str) -> Request:
    message = parsed(name)
    assert isinstance(message, Request)
    return message


def sip_uri(address: Address) -> SipUri:
    assert isinstance(address.uri, SipUri)
    return address.uri


def shape(message: Request | Response) -> tuple[str, list[tuple[str, str]], bytes]:
    """What must survive a round trip: start line, header list, body."""
    headers = [(n, v) for n, v in message.headers if n != "Content-Length"]
    return message.start_line(), headers, message.body


def test_corpus_is_complete() -> None:
    assert len(VALID) + len(INVALID) == 49
    assert set(REASONS) | LIBERAL == set(INVALID)


def sent(message: Request | Response) -> tuple[str, list[tuple[str, str]], bytes]:
    """The shape once sent: the serializer never emits NUL, even as the quoted-pair
    ``intmeth`` has (sbc.sip.head): it becomes SP, still a valid quoted-pair."""
    start, headers, body = shape(message)
    return start, [(n, v.replace("\x00", " ")) for n, v in headers], body


@pytest.mark.parametrize("name", VALID)
def test_valid_message_parses_and_round_trips(name: str) -> None:
    message = parsed(name)
    again = parse_message(message.serialize())
    assert shape(again) == sent(message)
    assert again.serialize() == message.serialize()


@pytest.mark.parametrize("name", sorted(LIBERAL))
def test_liberal_cases_are_accepted_and_normalized(name: str) -> None:
    message = parse_message(load("invalid", name))
    start = message.serialize().split(b"\r\n", 1)[0]
    assert b"  " not in start
    assert not start.endswith(b" ")


@pytest.mark.parametrize("name", sorted(REASONS))
def test_invalid_message_raises_parse_error_naming_the_problem(name: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_message(load("invalid", name))
    assert REASONS[name] in info.value.reason
    if name not in UNANSWERABLE:
        assert isinstance(info.value.message, Request)


def test_badvers_is_answered_505() -> None:
    with pytest.raises(UnsupportedVersionError) as info:
        parse_message(load("invalid", "badvers"))
    assert info.value.status == 505


def test_wsinv_structure() -> None:
    message = request("wsinv")
    assert message.method == "INVITE"
    assert isinstance(message.uri, SipUri)
    assert message.uri.params == {"unknownparam": None}
    assert message.to.tag == "1918181833n"
    assert message.from_.tag == "98asjd8"
    assert message.from_.display_name == 'J Rosenberg \\"'
    assert message.headers.get("Max-Forwards") == "0068"
    assert message.cseq.seq == 9
    assert [(v.transport, v.host) for v in message.vias] == [
        ("UDP", "192.0.2.2"),
        ("TCP", "spindle.example.com"),
        ("UDP", "192.168.255.111"),
    ]
    assert message.vias[2].branch == "z9hG4bK30239"
    assert message.headers.get("Subject") == ""
    assert message.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    assert message.headers.get("NewFangledHeader") == (
        "newfangled value continued newfangled value"
    )
    (contact,) = message.contacts
    assert contact.display_name == 'Quoted string ""'
    assert contact.params == {"newparam": "newvalue", "secondparam": None, "q": "0.33"}
    assert sip_uri(message.routes[0]).params["unknown-no-value"] is None
    assert len(message.body) == 150


def test_intmeth_structure() -> None:
    message = request("intmeth")
    assert message.method == "!interesting-Method0123456789_*+`.%indeed'~"
    uri = message.uri
    assert isinstance(uri, SipUri)
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert uri.host == "example.com"
    assert message.to.display_name == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert parse_message(message.serialize()).to.display_name == "BEL:\x07 NUL:  DEL:\x7f"
    assert message.from_.display == "token1~` token2'+_ token3*%!.-"
    assert message.from_.tag == "_token~1'+`*%!-."
    assert message.from_.params["fromparam''~+*_!.-%"] == '"работающий"'
    assert message.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert message.headers.get("extensionHeader-!.%*+_`'~") == "\ufeff大停電"


def test_escapes_are_kept_on_the_wire_and_undone_for_comparison() -> None:
    message = request("esc01")
    assert isinstance(message.uri, SipUri)
    assert unescape(message.uri.user or "") == "sips:user@example.com"
    assert unescape(sip_uri(message.to).user or "") == "user"
    assert unescape(sip_uri(message.from_).user or "") == "I have spaces"
    contact = sip_uri(message.contacts[0])
    assert contact.params == {"%6c%72": None, "n%61me": "v%61lue%25%34%31"}
    assert b"n%61me=v%61lue%25%34%31" in message.serialize()


def test_escaped_nulls_keep_distinct_contacts() -> None:
    users = [sip_uri(a).user for a in request("escnull").contacts]
    assert users == ["%00", "%00%00"]
    assert [unescape(u or "") for u in users] == ["\x00", "\x00\x00"]


def test_percent_is_not_an_escape_outside_uris() -> None:
    message = request("esc02")
    assert message.method == "RE%47IST%45R"
    assert message.to.display == '"%Z%45"'
    assert len(message.contacts) == 2
    assert message.headers.get("C%6fntact") == "<sip:alias2@host2.example.com>"


def test_longreq_keeps_all_vias_in_order() -> None:
    message = request("longreq")
    hosts = [v.host for v in message.vias]
    assert hosts[:33] == [f"sip{i}.example.com" for i in range(33, 0, -1)]
    assert hosts[33] == "host.example.com"
    assert sip_uri(message.to).port == 6000
    assert len(message.from_.tag or "") > 100


def test_dblreq_ignores_octets_after_content_length() -> None:
    message = request("dblreq")
    assert message.method == "REGISTER"
    assert message.body == b""
    assert b"INVITE" not in message.serialize()


def test_semicolon_in_user_part() -> None:
    uri = request("semiuri").uri
    assert isinstance(uri, SipUri)
    assert uri.user == "user;par=u%40example.net"
    assert uri.host == "example.com"
    assert uri.params == {}


def test_transports_and_accept_list() -> None:
    message = request("transports")
    assert [v.transport for v in message.vias] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]
    assert len(request("semiuri").headers.values("Accept")) == 6


def test_multipart_binary_body_is_framed_exactly() -> None:
    message = request("mpart01")
    assert len(message.body) == 553
    assert b"\x00" in message.body
    assert message.top_via.params["rport"] is None


def test_reason_phrases() -> None:
    unreason = parsed("unreason")
    assert isinstance(unreason, Response)
    assert unreason.reason.startswith("= 2**3 * 5**2 но сто")
    noreason = parsed("noreason")
    assert isinstance(noreason, Response)
    assert (noreason.status, noreason.reason) == (100, "")


def test_application_layer_cases_parse() -> None:
    assert isinstance(request("unkscm").uri, AbsoluteUri)
    assert str(request("novelsc").uri) == "soap.beep://192.0.2.103:3002"
    unksm2 = request("unksm2")
    assert str(unksm2.to.uri) == "isbn:2983792873"
    assert str(unksm2.contacts[0].uri) == "name:John_Smith"
    assert request("bext01").option_tags("Require") == {
        "nothingsupportsthis",
        "nothingsupportsthiseither",
    }
    assert request("zeromf").headers.get("Max-Forwards") == "0"
    assert request("cparam01").contacts[0].params == {"unknownparam": None}
    assert sip_uri(request("cparam02").contacts[0]).params == {"unknownparam": None}
    assert sip_uri(request("regescrt").contacts[0]).headers == ("Route=%3Csip:sip.example.com%3E")
    assert request("badbranch").top_via.branch == "z9hG4bK"


def test_rfc2543_invite_without_branch_or_content_length() -> None:
    message = request("inv2543")
    assert message.top_via.branch is None
    assert message.body.endswith(b"m=audio 49217 RTP/AVP 0\r\n")
    assert message.to.params == {"user": "phone"}
