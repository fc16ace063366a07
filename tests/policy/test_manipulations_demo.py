"""The shipped ``policies/manipulations.yaml``: it validates, compiles, does the jobs
its comments promise, and leaves the SIPp integration calls alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from sbc.policy.manipulation_schema import MANIPULATIONS_FILE, Direction, ManipulationsFile
from sbc.policy.manipulations import Manipulations, compile_manipulations, manipulation_references
from sbc.policy.source import PolicySource, parse_source, read_source
from sbc.sip.message import Request, Response, parse_message

SHIPPED = Path(__file__).resolve().parents[2] / "policies"


def shipped_file() -> ManipulationsFile:
    source = read_source(SHIPPED / MANIPULATIONS_FILE)
    assert isinstance(source, PolicySource), source
    assert source.duplicate_keys() == []
    return ManipulationsFile.model_validate(source.data)


@pytest.fixture(scope="module")
def demo() -> Manipulations:
    return compile_manipulations(shipped_file())


def sip(text: str) -> Request | Response:
    return parse_message(text.replace("\n", "\r\n").encode())


def test_shipped_file_validates_and_compiles(demo: Manipulations) -> None:
    assert demo.counts() == {
        "carrier/inbound": 4,
        "carrier/outbound": 6,
        "pbx/inbound": 4,
        "pbx/outbound": 1,
    }


def test_shipped_file_names_only_trunks_that_exist() -> None:
    trunks = parse_source("trunks.yaml", (SHIPPED / "trunks.yaml").read_text())
    assert isinstance(trunks, PolicySource)
    declared = {trunk["name"] for trunk in trunks.data["trunks"]}
    used = {reference.name for reference in manipulation_references(shipped_file())}
    assert used == {"carrier", "pbx"} <= declared


def carrier_invite() -> Request:
    message = sip(
        "INVITE sip:+12125550123@127.0.0.1:5060;user=phone SIP/2.0\n"
        "Via: SIP/2.0/UDP 127.0.0.10:5060;branch=z9hG4bK-1\n"
        "From: <sip:+13105550199@127.0.0.10>;tag=c1\n"
        "To: <sip:+12125550123@127.0.0.1>\n"
        "Call-ID: a@127.0.0.10\n"
        "CSeq: 1 INVITE\n"
        "Contact: <sip:carrier@127.0.0.10>\n"
        "X-Carrier-Billing: 42\n"
        "Content-Length: 0\n\n"
    )
    assert isinstance(message, Request)
    return message


def test_carrier_inbound_normalises_e164_to_national(demo: Manipulations) -> None:
    message = carrier_invite()
    assert demo.apply(message, "carrier", "inbound") == 4
    assert str(message.uri) == "sip:2125550123@127.0.0.1:5060;user=phone"
    assert message.headers.get("To") == "<sip:2125550123@127.0.0.1>"
    assert message.headers.get("From") == "<sip:3105550199@127.0.0.10>;tag=c1"
    assert "X-Carrier-Billing" not in message.headers


def test_carrier_inbound_strips_x_headers_from_responses_too(demo: Manipulations) -> None:
    message = sip(
        "SIP/2.0 180 Ringing\n"
        "Via: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK-2\n"
        "From: <sip:2125550123@127.0.0.1>;tag=s1\n"
        "To: <sip:+13105550199@127.0.0.10>;tag=c9\n"
        "Call-ID: b@127.0.0.1\n"
        "CSeq: 1 INVITE\n"
        "X-Trace: 1\n\n"
    )
    assert demo.apply(message, "carrier", "inbound") == 1
    assert "X-Trace" not in message.headers


def pbx_invite(extra: str = "", from_user: str = "3105550199") -> Request:
    message = sip(
        "INVITE sip:2125550123@127.0.0.10:5060 SIP/2.0\n"
        "Via: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bK-3\n"
        f'From: "Desk" <sip:{from_user}@127.0.0.2>;tag=b1\n'
        "To: <sip:2125550123@127.0.0.10>\n"
        "Call-ID: c@127.0.0.2\n"
        "CSeq: 1 INVITE\n"
        "Contact: <sip:sbc@127.0.0.2>\n"
        f"{extra}"
        "Content-Length: 0\n\n"
    )
    assert isinstance(message, Request)
    return message


def test_carrier_outbound_speaks_e164_and_asserts_identity(demo: Manipulations) -> None:
    message = pbx_invite()
    assert demo.apply(message, "carrier", "outbound") == 4
    assert message.uri.user == "+12125550123"
    assert message.to.uri.user == "+12125550123"
    assert message.headers.get("From") == '"Desk" <sip:+13105550199@127.0.0.2>;tag=b1'
    assert message.headers.get_all("P-Asserted-Identity") == [
        "<sip:+13105550199@sbc.example.net;user=phone>"
    ]
    assert "Privacy" not in message.headers


def test_carrier_outbound_privacy_for_anonymous_callers(demo: Manipulations) -> None:
    message = pbx_invite(from_user="Anonymous")
    demo.apply(message, "carrier", "outbound")
    assert message.headers.get_all("Privacy") == ["id"]
    assert "P-Asserted-Identity" not in message.headers  # no E.164 number to assert


def test_carrier_outbound_diversion_as_tel_uri(demo: Manipulations) -> None:
    message = pbx_invite("Diversion: <sip:2125550100@127.0.0.2>;reason=user-busy\n")
    demo.apply(message, "carrier", "outbound")
    assert message.headers.get_all("Diversion") == ["<tel:+12125550100>;reason=user-busy"]


def test_pbx_inbound_drops_identities_and_marks_forwarded_calls(demo: Manipulations) -> None:
    message = pbx_invite(
        "P-Asserted-Identity: <sip:+19999999999@evil>\n"
        "P-Preferred-Identity: <sip:boss@pbx>\n"
        "X-Call-Forwarded: yes\n"
    )
    assert demo.apply(message, "pbx", "inbound") == 4
    assert "P-Asserted-Identity" not in message.headers
    assert "P-Preferred-Identity" not in message.headers
    assert "X-Call-Forwarded" not in message.headers
    assert message.headers.get_all("Diversion") == [
        "<sip:2125550123@sbc.example.net>;reason=unconditional;counter=1"
    ]


def test_pbx_outbound_adds_history_info_for_diverted_calls(demo: Manipulations) -> None:
    message = carrier_invite()
    message.headers.add("Diversion", "<tel:+12125550100>;reason=no-answer")
    demo.apply(message, "carrier", "inbound")
    assert demo.apply(message, "pbx", "outbound") == 1
    assert message.headers.values("History-Info") == [
        "<sip:2125550123@sbc.example.net>;index=1",
        "<sip:2125550123@sbc.example.net>;index=1.1;rc=1",
    ]


# The SIPp scenarios under tests/integration call user "service" from user
# "caller" and check Event, RSeq, Require, Contact, Reason, Refer-To and the
# dialog identifiers on what arrives: the demo rules must change none of it.
SIPP_MESSAGES = (
    "INVITE sip:service@127.0.0.20:5060 SIP/2.0\n"
    "Via: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bK-4\n"
    'From: "caller" <sip:caller@127.0.0.2:5060>;tag=1SIPpTag001\n'
    "To: <sip:service@127.0.0.20:5060>\n"
    "Call-ID: 1-1@127.0.0.2\nCSeq: 1 INVITE\nContact: <sip:sipp@127.0.0.2:5060>\n"
    "Supported: 100rel, timer\nSubject: Performance Test\nContent-Length: 0\n\n",
    "SIP/2.0 180 Ringing\n"
    "Via: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bK-4\n"
    'From: "caller" <sip:caller@127.0.0.2:5060>;tag=1SIPpTag001\n'
    "To: <sip:service@127.0.0.20:5060>;tag=2\n"
    "Call-ID: 1-1@127.0.0.2\nCSeq: 1 INVITE\nContact: <sip:sipp@127.0.0.20>\n"
    "Require: 100rel\nRSeq: 1\n\n",
    "BYE sip:sipp@127.0.0.20:5060 SIP/2.0\n"
    "Via: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bK-5\n"
    'From: "caller" <sip:caller@127.0.0.2:5060>;tag=1SIPpTag001\n'
    "To: <sip:service@127.0.0.20:5060>;tag=2\n"
    'Call-ID: 1-1@127.0.0.2\nCSeq: 2 BYE\nReason: Q.850;cause=16;text="Normal"\n\n',
    "REFER sip:sipp@127.0.0.20:5060 SIP/2.0\n"
    "Via: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bK-6\n"
    'From: "caller" <sip:caller@127.0.0.2:5060>;tag=1SIPpTag001\n'
    "To: <sip:service@127.0.0.20:5060>;tag=2\n"
    "Call-ID: 1-1@127.0.0.2\nCSeq: 3 REFER\nContact: <sip:sipp@127.0.0.2>\n"
    "Refer-To: <sip:transfer@127.0.0.1>\nReferred-By: <sip:caller@127.0.0.2>\n\n",
    "NOTIFY sip:sipp@127.0.0.20:5060 SIP/2.0\n"
    "Via: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bK-7\n"
    'From: "caller" <sip:caller@127.0.0.2:5060>;tag=1SIPpTag001\n'
    "To: <sip:service@127.0.0.20:5060>;tag=2\n"
    "Call-ID: 1-1@127.0.0.2\nCSeq: 4 NOTIFY\nEvent: refer\n"
    "Subscription-State: terminated\n\n",
)


@pytest.mark.parametrize("text", SIPP_MESSAGES)
@pytest.mark.parametrize("trunk", ["carrier", "pbx"])
@pytest.mark.parametrize("direction", ["inbound", "outbound"])
def test_demo_rules_leave_the_sipp_calls_alone(
    demo: Manipulations, text: str, trunk: str, direction: Direction
) -> None:
    message = sip(text)
    before = message.serialize()
    assert demo.apply(message, trunk, direction) == 0
    assert message.serialize() == before
