"""URIs, addresses and Via: parsing, round trips, rejections."""

from __future__ import annotations

import pytest

from sbc.sip.address import parse_address, parse_address_list
from sbc.sip.errors import ParseError
from sbc.sip.uri import AbsoluteUri, SipUri, TelUri, parse_uri, unescape
from sbc.sip.via import parse_via, parse_vias


@pytest.mark.parametrize(
    "text",
    [
        "sip:alice@example.com",
        "sips:alice:secret@example.com:5061;transport=tls",
        "sip:[2001:db8::1]:5060",
        "sip:%61lice@host",
        "sip:host;lr;maddr=192.0.2.1?subject=hi&priority=urgent",
        "sip:+15551234567;npdi@gw.example.net;user=phone",
        "tel:+1-201-555-0123;phone-context=example.com",
        "urn:service:sos",
    ],
)
def test_uri_round_trips(text: str) -> None:
    assert str(parse_uri(text)) == text


def test_sip_uri_fields() -> None:
    uri = parse_uri("sips:%61lice:pw@[2001:db8::1]:5061;transport=TLS;lr?h=v")
    assert isinstance(uri, SipUri)
    assert (uri.scheme, uri.user, uri.password) == ("sips", "%61lice", "pw")
    assert (uri.host, uri.host_bare, uri.port) == ("[2001:db8::1]", "2001:db8::1", 5061)
    assert uri.params == {"transport": "TLS", "lr": None}
    assert uri.transport == "tls"
    assert uri.headers == "h=v"
    assert unescape(uri.user or "") == "alice"


def test_tel_and_absolute_uris() -> None:
    tel = parse_uri("tel:+15551234567;ext=12")
    assert isinstance(tel, TelUri)
    assert (tel.number, tel.params) == ("+15551234567", {"ext": "12"})
    assert isinstance(parse_uri("mailto:a@b.example"), AbsoluteUri)


@pytest.mark.parametrize(
    "text",
    [
        "sip:",
        "sip:@host",
        "sip:host:0",
        "sip:host:70000",
        "sip:host:\u00b2",
        "sip:[2001:db8::1",
        "sip:a b@host",
        "sip:host;;lr",
        "sip:host;=x",
        "tel:",
        "tel:xyz",
        "<sip:host>",
        "no-scheme",
    ],
)
def test_bad_uris_raise_parse_error(text: str) -> None:
    with pytest.raises(ParseError):
        parse_uri(text)


def test_name_addr_with_escaped_quoted_display_and_commas() -> None:
    address = parse_address('"Doe, \\"JD\\" \\\\ John" <sip:jd@example.com;lr>;tag=1;x')
    assert address.display_name == 'Doe, "JD" \\ John'
    assert isinstance(address.uri, SipUri)
    assert address.uri.params == {"lr": None}
    assert address.params == {"tag": "1", "x": None}
    assert parse_address(str(address)) == address


def test_addr_spec_params_belong_to_the_header() -> None:
    address = parse_address("sip:bob@example.com;tag=abc;expires=60")
    assert not address.bracketed
    assert isinstance(address.uri, SipUri)
    assert address.uri.params == {}
    assert address.params == {"tag": "abc", "expires": "60"}
    assert str(address) == "sip:bob@example.com;tag=abc;expires=60"


def test_address_list_splits_outside_quotes_and_brackets() -> None:
    contacts = parse_address_list('"a, b" <sip:a,b@h;x=1>, <sip:b@h>;q=0.5 , sip:c@h;expires=0')
    assert [str(c.uri) for c in contacts] == ["sip:a,b@h;x=1", "sip:b@h", "sip:c@h"]


@pytest.mark.parametrize(
    "text",
    [
        '"unterminated <sip:a@h>',
        "<sip:a@h",
        "< sip:a@h>",
        "Bell, Alexander <sip:a@h>",
        "<sip:a@h> junk",
        "<sip:a@h>;;tag=1",
        "sip:a@h?x=y",
        "",
    ],
)
def test_bad_addresses_raise_parse_error(text: str) -> None:
    with pytest.raises(ParseError):
        parse_address(text)


def test_via_with_lws_rport_received_and_ipv6() -> None:
    via = parse_via("SIP / 2.0 / UDP  [2001:db8::5]:5070 ; branch=z9hG4bKx;rport;received=::1")
    assert (via.transport, via.host, via.port) == ("UDP", "[2001:db8::5]", 5070)
    assert via.params == {"branch": "z9hG4bKx", "rport": None, "received": "::1"}
    assert via.rport is None
    assert str(via) == "SIP/2.0/UDP [2001:db8::5]:5070;branch=z9hG4bKx;rport;received=::1"


def test_via_rport_filled_in_and_out_of_range() -> None:
    assert parse_via("SIP/2.0/UDP h;rport=6000").rport == 6000
    assert parse_via("SIP/2.0/UDP h;rport=99999").rport is None
    assert parse_via("SIP/2.0/TLS h").rport is None


def test_via_list_rejects_empty_elements() -> None:
    assert len(parse_vias("SIP/2.0/UDP a;branch=1, SIP/2.0/TCP b")) == 2
    with pytest.raises(ParseError):
        parse_vias("SIP/2.0/UDP a;branch=1,,SIP/2.0/TCP b")
    with pytest.raises(ParseError):
        parse_via("HTTP/1.1/TCP host")
