"""The manipulation engine: each action and condition, rule order, placeholders,
rule-set selection, the typical jobs (E.164, PAI, X-*, Diversion) and hostile input."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from sbc.policy.manipulation_schema import Direction, ManipulationsFile
from sbc.policy.manipulations import (
    Manipulations,
    RewriteLines,
    compile_manipulations,
    escape_user,
    manipulation_references,
)
from sbc.policy.refs import Reference
from sbc.policy.source import PolicySource, parse_source
from sbc.sip.errors import ParseError
from sbc.sip.headers import Headers
from sbc.sip.message import Request, Response, parse_message
from sbc.sip.uri import SipUri, TelUri, parse_uri

E164_TO_NATIONAL = {"regex": r"^\+1([2-9]\d{2}[2-9]\d{6})$", "replacement": r"\1"}
NATIONAL_TO_E164 = {"regex": r"^1?([2-9]\d{2}[2-9]\d{6})$", "replacement": r"+1\1"}


def compile_rules(
    *rules: dict[str, Any], trunk: str = "carrier", direction: str = "inbound"
) -> Manipulations:
    data = {"manipulations": [{"trunk": trunk, "direction": direction, "rules": list(rules)}]}
    return compile_manipulations(ManipulationsFile.model_validate(data))


def invite(
    ruri: str = "sip:+12125550123@192.0.2.1;user=phone",
    from_: str = '"Alice" <sip:+15557654321@192.0.2.10>;tag=a1',
    to: str = "<sip:+12125550123@192.0.2.1>",
    extra: str = "",
    method: str = "INVITE",
) -> Request:
    text = (
        f"{method} {ruri} SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK1\r\n"
        f"From: {from_}\r\n"
        f"To: {to}\r\n"
        "Call-ID: c1@192.0.2.10\r\n"
        f"CSeq: 1 {method}\r\n"
        "Contact: <sip:a@192.0.2.10>\r\n"
        f"{extra}"
        "Content-Length: 0\r\n\r\n"
    )
    message = parse_message(text.encode())
    assert isinstance(message, Request)
    return message


def response(status: int = 200, method: str = "INVITE", extra: str = "") -> Response:
    text = (
        f"SIP/2.0 {status} Whatever\r\n"
        "Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK1\r\n"
        "From: <sip:+15557654321@192.0.2.10>;tag=a1\r\n"
        "To: <sip:+12125550123@192.0.2.1>;tag=b2\r\n"
        "Call-ID: c1@192.0.2.10\r\n"
        f"CSeq: 1 {method}\r\n"
        f"{extra}"
        "Content-Length: 0\r\n\r\n"
    )
    message = parse_message(text.encode())
    assert isinstance(message, Response)
    return message


def names(message: Request | Response) -> list[str]:
    return [name for name, _ in message.headers]


# --- actions -------------------------------------------------------------------


def test_add_appends_a_line_by_default() -> None:
    rules = compile_rules({"add": {"header": "diversion", "value": "<sip:100@pbx>"}})
    message = invite(extra="Diversion: <sip:200@pbx>\r\n")
    assert rules.apply(message, "carrier", "inbound") == 1
    assert message.headers.get_all("Diversion") == ["<sip:200@pbx>", "<sip:100@pbx>"]


def test_add_first_goes_above_existing_lines() -> None:
    rule = {"add": {"header": "Diversion", "value": "<sip:100@pbx>", "position": "first"}}
    message = invite(extra="Subject: s\r\nDiversion: <sip:200@pbx>\r\n")
    assert compile_rules(rule).apply(message, "carrier", "inbound") == 1
    assert message.headers.get_all("Diversion") == ["<sip:100@pbx>", "<sip:200@pbx>"]
    assert names(message).index("Subject") < names(message).index("Diversion")


def test_remove_takes_every_line_and_counts_only_when_something_went() -> None:
    rules = compile_rules({"remove": {"header": "p-asserted-identity"}})
    message = invite(extra="P-Asserted-Identity: <sip:1@a>\r\nP-Asserted-Identity: <tel:+1>\r\n")
    assert rules.apply(message, "carrier", "inbound") == 1
    assert "P-Asserted-Identity" not in message.headers
    assert rules.apply(message, "carrier", "inbound") == 0


def test_remove_prefix_takes_the_whole_family_in_any_case() -> None:
    rules = compile_rules({"remove": {"header": "X-*"}})
    message = invite(extra="X-Billing: 1\r\nx-acme-id: 2\r\nXylophone: 3\r\nX-Billing: 4\r\n")
    assert rules.apply(message, "carrier", "inbound") == 1
    assert message.headers.get("Xylophone") == "3"
    assert not [name for name in names(message) if name.lower().startswith("x-")]
    assert rules.apply(message, "carrier", "inbound") == 0


def test_replace_sets_one_line_in_place_of_the_first() -> None:
    rules = compile_rules({"replace": {"header": "Privacy", "value": "id"}})
    message = invite(extra="Privacy: none\r\nSubject: s\r\nPrivacy: header\r\n")
    before = names(message).index("Privacy")
    assert rules.apply(message, "carrier", "inbound") == 1
    assert message.headers.get_all("Privacy") == ["id"]
    assert names(message).index("Privacy") == before


def test_replace_adds_an_absent_header() -> None:
    message = invite()
    rules = compile_rules({"replace": {"header": "Privacy", "value": "id"}})
    assert rules.apply(message, "carrier", "inbound") == 1
    assert message.headers.get_all("Privacy") == ["id"]


def test_rewrite_substitutes_in_every_line() -> None:
    rule = {
        "rewrite": {"header": "Diversion", "regex": r"sip:(\d+)@[^>]*", "replacement": r"tel:+1\1"}
    }
    message = invite(
        extra="Diversion: <sip:5551112222@pbx>;reason=busy\r\nDiversion: <sip:7@h>\r\n"
    )
    assert compile_rules(rule).apply(message, "carrier", "inbound") == 1
    assert message.headers.get_all("Diversion") == [
        "<tel:+15551112222>;reason=busy",
        "<tel:+17>",
    ]


def test_rewrite_without_a_match_changes_nothing() -> None:
    rule = {"rewrite": {"header": "Subject", "regex": "secret", "replacement": "x"}}
    message = invite(extra="Subject: hello\r\n")
    before = message.serialize()
    assert compile_rules(rule).apply(message, "carrier", "inbound") == 0
    assert compile_rules(rule).apply(invite(), "carrier", "inbound") == 0  # header absent
    assert message.serialize() == before


def test_rewrite_refuses_to_produce_a_line_break() -> None:
    # \012 is an octal escape for LF that re.sub expands: it must not inject a header.
    rule = {"rewrite": {"header": "Subject", "regex": "a", "replacement": r"\012Via: evil"}}
    with pytest.raises(ValidationError, match="expands to a control character"):
        compile_rules(rule)  # refused at load (file:line in tests/policy/test_policy_wire_text.py)
    message = invite(extra="Subject: a\r\n")
    rewrite = RewriteLines("Subject", re.compile("a"), r"\012Via: evil")  # past the schema
    assert not rewrite.apply(message)
    assert message.headers.get("Subject") == "a"


def test_rewrite_user_of_the_request_uri_keeps_host_and_parameters() -> None:
    rules = compile_rules({"rewrite_user": {"target": "ruri", **E164_TO_NATIONAL}})
    message = invite()
    original = message.uri
    assert rules.apply(message, "carrier", "inbound") == 1
    assert str(message.uri) == "sip:2125550123@192.0.2.1;user=phone"
    assert str(original) == "sip:+12125550123@192.0.2.1;user=phone"  # replaced, not mutated


def test_rewrite_user_of_from_keeps_display_name_and_tag() -> None:
    rules = compile_rules({"rewrite_user": {"target": "from", **E164_TO_NATIONAL}})
    message = invite()
    cached = message.from_  # a parsed view cached before the edit
    assert rules.apply(message, "carrier", "inbound") == 1
    assert message.headers.get("From") == '"Alice" <sip:5557654321@192.0.2.10>;tag=a1'
    assert message.from_.uri.user == "5557654321"  # the cached view follows the edit
    assert message.from_.tag == "a1"
    assert cached.uri.user == "+15557654321"  # objects others may hold are not mutated


def test_rewrite_user_of_to_keeps_its_tag() -> None:
    rules = compile_rules(
        {"rewrite_user": {"target": "to", **E164_TO_NATIONAL}}, direction="outbound"
    )
    message = invite(to="<sip:+12125550123@192.0.2.1;user=phone>;tag=t9", method="BYE")
    assert rules.apply(message, "carrier", "outbound") == 1
    assert message.headers.get("To") == "<sip:2125550123@192.0.2.1;user=phone>;tag=t9"
    assert message.to.tag == "t9"


def test_rewrite_user_matches_the_unescaped_user_and_escapes_the_result() -> None:
    rule = {"rewrite_user": {"target": "ruri", "regex": r"^\+1(\d+)$", "replacement": r"\1 #x%"}}
    message = invite(ruri="sip:%2B12125550123@h")
    assert compile_rules(rule).apply(message, "carrier", "inbound") == 1
    assert str(message.uri) == "sip:2125550123%20%23x%25@h"
    assert parse_uri(str(message.uri)) == message.uri


def test_user_escaping_follows_rfc3261_user_rules() -> None:
    assert escape_user("+1-555;isub=12?x/&=$,") == "+1-555;isub=12?x/&=$,"
    assert escape_user("a b@c<é>") == "a%20b%40c%3C%C3%A9%3E"
    assert escape_user("\udcff") == "%FF"  # a byte the parser could not decode
    assert escape_user("\ud800") == "%ED%A0%80"  # no decoder makes this; still no crash


def test_rewritten_user_with_a_semicolon_gets_angle_brackets() -> None:
    # RFC 3261 §20.10: without <>, the ';' would start a header parameter.
    rule = {"rewrite_user": {"target": "from", "regex": "^alice$", "replacement": "alice;x=1"}}
    message = invite(from_="sip:alice@example.com;tag=a1")
    assert compile_rules(rule).apply(message, "carrier", "inbound") == 1
    assert message.headers.get("From") == "<sip:alice;x=1@example.com>;tag=a1"
    assert message.from_.uri.user == "alice;x=1"
    assert message.from_.tag == "a1"


def test_rewrite_user_that_would_empty_the_user_is_skipped() -> None:
    rule = {"rewrite_user": {"target": "ruri", "regex": ".*", "replacement": ""}}
    message = invite()
    assert compile_rules(rule).apply(message, "carrier", "inbound") == 0
    assert message.uri.user == "+12125550123"


def test_rewrite_user_of_a_tel_uri_rewrites_the_number() -> None:
    rules = compile_rules({"rewrite_user": {"target": "ruri", **E164_TO_NATIONAL}})
    message = invite(ruri="tel:+12125550123;phone-context=example.com")
    assert rules.apply(message, "carrier", "inbound") == 1
    assert isinstance(message.uri, TelUri)
    assert str(message.uri) == "tel:2125550123;phone-context=example.com"


def test_rewrite_user_of_a_tel_uri_into_a_non_number_is_skipped() -> None:
    rule = {"rewrite_user": {"target": "ruri", "regex": r"^\+1", "replacement": "x y"}}
    message = invite(ruri="tel:+12125550123")
    assert compile_rules(rule).apply(message, "carrier", "inbound") == 0
    assert str(message.uri) == "tel:+12125550123"


def test_rewrite_user_without_a_user_part_is_skipped() -> None:
    rules = compile_rules({"rewrite_user": {"target": "ruri", "regex": "^", "replacement": "x"}})
    for uri in ("sip:192.0.2.1", "urn:service:sos"):
        message = invite(ruri=uri)
        assert rules.apply(message, "carrier", "inbound") == 0
        assert str(message.uri) == uri


# --- conditions ----------------------------------------------------------------

ADD_MARK = {"add": {"header": "X-Mark", "value": "1"}}


def marked(rules: Manipulations, message: Request | Response) -> bool:
    return rules.apply(message, "carrier", "inbound") == 1 and message.headers.get("X-Mark") == "1"


def test_methods_condition_on_requests() -> None:
    rules = compile_rules({"methods": ["INVITE", "UPDATE"], **ADD_MARK})
    assert marked(rules, invite())
    assert marked(rules, invite(method="UPDATE"))
    assert not marked(rules, invite(method="BYE"))


def test_methods_condition_on_responses_reads_the_cseq_method() -> None:
    rules = compile_rules({"methods": ["INVITE"], "messages": "responses", **ADD_MARK})
    assert marked(rules, response(183, "INVITE"))
    assert not marked(rules, response(200, "BYE"))


def test_messages_condition_selects_requests_responses_or_both() -> None:
    requests = compile_rules(ADD_MARK)  # the default
    responses = compile_rules({"messages": "responses", **ADD_MARK})
    both = compile_rules({"messages": "both", **ADD_MARK})
    assert marked(requests, invite())
    assert not marked(requests, response())
    assert marked(responses, response())
    assert not marked(responses, invite())
    assert marked(both, invite())
    assert marked(both, response())


def test_header_present_and_absent() -> None:
    present = compile_rules({"header_present": "subject", **ADD_MARK})
    absent = compile_rules({"header_absent": "s", **ADD_MARK})  # compact form of Subject
    assert marked(present, invite(extra="s: hi\r\n"))
    assert not marked(present, invite())
    assert marked(absent, invite())
    assert not marked(absent, invite(extra="Subject: hi\r\n"))


def test_header_matches_any_line_and_never_an_absent_header() -> None:
    rules = compile_rules(
        {"header_matches": {"header": "Diversion", "regex": "reason=busy"}, **ADD_MARK}
    )
    assert marked(
        rules, invite(extra="Diversion: <sip:1@a>\r\nDiversion: <sip:2@a>;reason=busy\r\n")
    )
    assert not marked(rules, invite(extra="Diversion: <sip:1@a>;reason=no-answer\r\n"))
    assert not marked(rules, invite())


def test_header_matches_can_read_headers_it_may_not_change() -> None:
    rules = compile_rules(
        {"header_matches": {"header": "From", "regex": r"sip:\+1\d{10}@"}, **ADD_MARK}
    )
    assert marked(rules, invite())
    assert not marked(rules, invite(from_="<sip:alice@example.com>;tag=1"))


def test_all_conditions_must_hold() -> None:
    rule = {
        "methods": ["INVITE"],
        "header_present": "Subject",
        "header_absent": "Privacy",
        **ADD_MARK,
    }
    rules = compile_rules(rule)
    assert marked(rules, invite(extra="Subject: s\r\n"))
    assert not marked(rules, invite(extra="Subject: s\r\nPrivacy: id\r\n"))
    assert not marked(rules, invite(extra="Subject: s\r\n", method="OPTIONS"))
    assert not marked(rules, invite())


# --- order, placeholders, selection ---------------------------------------------


def test_rules_run_in_order_and_see_earlier_changes() -> None:
    rules = compile_rules(
        {"add": {"header": "X-Stage", "value": "one"}},
        {
            "header_present": "X-Stage",
            "rewrite": {"header": "X-Stage", "regex": "one", "replacement": "two"},
        },
        {
            "header_matches": {"header": "X-Stage", "regex": "^two$"},
            "remove": {"header": "X-Stage"},
        },
        {"header_absent": "X-Stage", "add": {"header": "X-Done", "value": "yes"}},
    )
    message = invite()
    assert rules.apply(message, "carrier", "inbound") == 4
    assert "X-Stage" not in message.headers
    assert message.headers.get("X-Done") == "yes"


def test_order_decides_what_a_later_rule_sees() -> None:
    remove_then_test = compile_rules(
        {"remove": {"header": "X-Forwarded"}},
        {"header_present": "X-Forwarded", "add": {"header": "Diversion", "value": "<sip:a@b>"}},
    )
    test_then_remove = compile_rules(
        {"header_present": "X-Forwarded", "add": {"header": "Diversion", "value": "<sip:a@b>"}},
        {"remove": {"header": "X-Forwarded"}},
    )
    first = invite(extra="X-Forwarded: yes\r\n")
    second = invite(extra="X-Forwarded: yes\r\n")
    assert remove_then_test.apply(first, "carrier", "inbound") == 1
    assert test_then_remove.apply(second, "carrier", "inbound") == 2
    assert "Diversion" not in first.headers
    assert second.headers.get("Diversion") == "<sip:a@b>"


def test_placeholders_are_filled_per_message() -> None:
    value = "r={ruri_user} f={from_user} t={to_user} via {trunk} {{literal}}"
    rules = compile_rules({"add": {"header": "X-Info", "value": value}}, trunk="pbx")
    message = invite(to="<tel:+15550000000>")
    assert rules.apply(message, "pbx", "inbound") == 1
    assert message.headers.get("X-Info") == (
        "r=+12125550123 f=+15557654321 t=+15550000000 via pbx {literal}"
    )


def test_placeholders_insert_the_escaped_user() -> None:
    rules = compile_rules({"add": {"header": "X-Info", "value": "<sip:{ruri_user}@x>"}})
    message = invite(ruri="sip:a%20b@h")
    assert rules.apply(message, "carrier", "inbound") == 1
    assert message.headers.get("X-Info") == "<sip:a%20b@x>"


def test_a_placeholder_with_nothing_to_insert_skips_the_rule() -> None:
    rules = compile_rules(
        {"add": {"header": "P-Asserted-Identity", "value": "<sip:{from_user}@x>"}}
    )
    message = invite(from_="<sip:example.com>;tag=1")  # no user part
    assert rules.apply(message, "carrier", "inbound") == 0
    assert "P-Asserted-Identity" not in message.headers


def test_placeholders_read_the_message_as_earlier_rules_left_it() -> None:
    rules = compile_rules(
        {"rewrite_user": {"target": "from", **NATIONAL_TO_E164}},
        {"add": {"header": "P-Asserted-Identity", "value": "<sip:{from_user}@x>"}},
        direction="outbound",
    )
    message = invite(from_="<sip:5557654321@pbx>;tag=1")
    assert rules.apply(message, "carrier", "outbound") == 2
    assert message.headers.get("P-Asserted-Identity") == "<sip:+15557654321@x>"


def test_rule_sets_are_chosen_by_trunk_and_direction() -> None:
    data = {
        "manipulations": [
            {
                "trunk": "carrier",
                "direction": "inbound",
                "rules": [{"add": {"header": "X-A", "value": "ci"}}],
            },
            {
                "trunk": "carrier",
                "direction": "outbound",
                "rules": [{"add": {"header": "X-A", "value": "co"}}],
            },
            {
                "trunk": "pbx",
                "direction": "inbound",
                "rules": [{"add": {"header": "X-A", "value": "pi"}}],
            },
        ]
    }
    rules = compile_manipulations(ManipulationsFile.model_validate(data))
    cases: list[tuple[str, Direction, str]] = [
        ("carrier", "inbound", "ci"),
        ("carrier", "outbound", "co"),
        ("pbx", "inbound", "pi"),
    ]
    for trunk, direction, expected in cases:
        message = invite()
        assert rules.apply(message, trunk, direction) == 1
        assert message.headers.get_all("X-A") == [expected]
    untouched = invite()
    before = untouched.serialize()
    assert rules.apply(untouched, "pbx", "outbound") == 0
    assert rules.apply(untouched, "nobody", "inbound") == 0
    assert untouched.serialize() == before


def test_sets_for_the_same_trunk_and_direction_run_in_file_order() -> None:
    data = {
        "manipulations": [
            {
                "trunk": "pbx",
                "direction": "inbound",
                "rules": [{"add": {"header": "X-A", "value": "1"}}],
            },
            {
                "trunk": "carrier",
                "direction": "inbound",
                "rules": [{"add": {"header": "X-A", "value": "c"}}],
            },
            {
                "trunk": "pbx",
                "direction": "inbound",
                "rules": [{"add": {"header": "X-A", "value": "2"}}],
            },
        ]
    }
    rules = compile_manipulations(ManipulationsFile.model_validate(data))
    message = invite()
    assert rules.apply(message, "pbx", "inbound") == 2
    assert message.headers.get_all("X-A") == ["1", "2"]
    assert [rule.label for rule in rules.rules_for("pbx", "inbound")] == [
        "manipulations[0].rules[0]",
        "manipulations[2].rules[0]",
    ]


def test_describe_and_counts() -> None:
    rules = compile_rules(
        {"name": "strip", "remove": {"header": "X-*"}},
        {"add": {"header": "X-A", "value": "1"}},
        trunk="pbx",
    )
    assert rules.counts() == {"pbx/inbound": 2}
    assert rules.rule_count == 2
    assert rules.describe() == "2 manipulation rules (pbx/inbound 2)"
    assert [rule.label for rule in rules.rules_for("pbx", "inbound")] == [
        "strip",
        "manipulations[0].rules[1]",
    ]
    assert Manipulations.empty().describe() == "no manipulations"
    assert Manipulations.empty().apply(invite(), "pbx", "inbound") == 0


def test_empty_rule_sets_cost_nothing() -> None:
    data = {"manipulations": [{"trunk": "pbx", "direction": "inbound", "rules": []}]}
    rules = compile_manipulations(ManipulationsFile.model_validate(data))
    assert rules.counts() == {}
    assert rules.apply(invite(), "pbx", "inbound") == 0


def test_references_name_each_rule_sets_trunk() -> None:
    data = {
        "manipulations": [
            {"trunk": "carrier", "direction": "inbound", "rules": []},
            {"trunk": "pbx", "direction": "outbound", "rules": []},
        ]
    }
    assert manipulation_references(ManipulationsFile.model_validate(data)) == [
        Reference(("manipulations", 0, "trunk"), "trunk", "carrier"),
        Reference(("manipulations", 1, "trunk"), "trunk", "pbx"),
    ]


# --- the typical jobs ------------------------------------------------------------


def test_e164_to_national_inbound_from_the_carrier() -> None:
    rules = compile_rules(
        {"rewrite_user": {"target": "ruri", **E164_TO_NATIONAL}},
        {"rewrite_user": {"target": "to", **E164_TO_NATIONAL}},
        {"rewrite_user": {"target": "from", **E164_TO_NATIONAL}},
    )
    message = invite()
    assert rules.apply(message, "carrier", "inbound") == 3
    assert (message.uri.user, message.to.uri.user, message.from_.uri.user) == (
        "2125550123",
        "2125550123",
        "5557654321",
    )
    foreign = invite(
        ruri="sip:+442071234567@h", to="<sip:+442071234567@h>", from_="<sip:911@h>;tag=1"
    )
    assert rules.apply(foreign, "carrier", "inbound") == 0  # not NANP: left alone
    assert foreign.uri.user == "+442071234567"


def test_national_to_e164_outbound_to_the_carrier() -> None:
    rules = compile_rules(
        {"rewrite_user": {"target": "ruri", **NATIONAL_TO_E164}},
        {"rewrite_user": {"target": "from", **NATIONAL_TO_E164}},
        direction="outbound",
    )
    message = invite(ruri="sip:12125550123@carrier", from_="<sip:5557654321@pbx>;tag=x")
    assert rules.apply(message, "carrier", "outbound") == 2
    assert str(message.uri) == "sip:+12125550123@carrier"
    assert message.headers.get("From") == "<sip:+15557654321@pbx>;tag=x"
    again = rules.apply(message, "carrier", "outbound")
    assert again == 0  # already E.164: the rules are idempotent


def test_pai_stripped_from_the_pbx_and_asserted_toward_the_carrier() -> None:
    data = {
        "manipulations": [
            {
                "trunk": "pbx",
                "direction": "inbound",
                "rules": [
                    {"remove": {"header": "P-Asserted-Identity"}},
                    {"remove": {"header": "P-Preferred-Identity"}},
                ],
            },
            {
                "trunk": "carrier",
                "direction": "outbound",
                "rules": [
                    {
                        "methods": ["INVITE"],
                        "header_absent": "P-Asserted-Identity",
                        "add": {
                            "header": "P-Asserted-Identity",
                            "value": "<sip:{from_user}@sbc.example.net>",
                        },
                    }
                ],
            },
        ]
    }
    rules = compile_manipulations(ManipulationsFile.model_validate(data))
    from_pbx = invite(
        extra="P-Asserted-Identity: <sip:+19995550000@evil>\r\nP-Preferred-Identity: <sip:x@y>\r\n"
    )
    assert rules.apply(from_pbx, "pbx", "inbound") == 2
    assert "P-Asserted-Identity" not in from_pbx.headers
    assert "P-Preferred-Identity" not in from_pbx.headers
    to_carrier = invite()
    assert rules.apply(to_carrier, "carrier", "outbound") == 1
    assert to_carrier.headers.get_all("P-Asserted-Identity") == [
        "<sip:+15557654321@sbc.example.net>"
    ]
    already = invite(extra="P-Asserted-Identity: <sip:1@a>\r\n")
    assert rules.apply(already, "carrier", "outbound") == 0


def test_diversion_and_history_info_set() -> None:
    rules = compile_rules(
        {
            "header_present": "X-Call-Forwarded",
            "add": {
                "header": "Diversion",
                "value": "<sip:{to_user}@sbc.example.net>;reason=unconditional;counter=1",
                "position": "first",
            },
        },
        {
            "header_present": "Diversion",
            "replace": {
                "header": "History-Info",
                "value": "<sip:{to_user}@h>;index=1,<sip:{ruri_user}@h>;index=1.1;rc=1",
            },
        },
        {"remove": {"header": "X-*"}},
        trunk="pbx",
    )
    message = invite(
        ruri="sip:5559990000@carrier",
        to="<sip:5551230000@pbx>",
        extra="X-Call-Forwarded: yes\r\nDiversion: <sip:100@pbx>;reason=user-busy\r\n",
    )
    assert rules.apply(message, "pbx", "inbound") == 3
    assert message.headers.get_all("Diversion") == [
        "<sip:5551230000@sbc.example.net>;reason=unconditional;counter=1",
        "<sip:100@pbx>;reason=user-busy",
    ]
    assert message.headers.values("History-Info") == [
        "<sip:5551230000@h>;index=1",
        "<sip:5559990000@h>;index=1.1;rc=1",
    ]
    assert "X-Call-Forwarded" not in message.headers


# --- hostile input ---------------------------------------------------------------

EVERY_KIND = (
    {"methods": ["INVITE"], "header_matches": {"header": "From", "regex": "x"}, **ADD_MARK},
    {"rewrite_user": {"target": "ruri", "regex": "^(.*)$", "replacement": r"\1 9"}},
    {"rewrite_user": {"target": "from", "regex": "^(.*)$", "replacement": r"\1 9"}},
    {"rewrite_user": {"target": "to", "regex": "^(.*)$", "replacement": r"\1;p?q,r"}},
    {"add": {"header": "X-U", "value": "{ruri_user}/{from_user}/{to_user}"}},
    {"rewrite": {"header": "Subject", "regex": "(.)", "replacement": r"<\1>"}},
    {"remove": {"header": "X-*"}},
)


def hand_built(from_: str | None, to: str | None, cseq: str | None = "1 INVITE") -> Request:
    """A request the parser would refuse, as a bug or a later layer might hand it over."""
    headers = Headers()
    for name, value in (("From", from_), ("To", to), ("CSeq", cseq)):
        if value is not None:
            headers.add(name, value)
    headers.add("Subject", "\udcff\x01 bin\u00e9")
    return Request("INVITE", SipUri("h", user="u"), headers)


@pytest.mark.parametrize(
    ("from_", "to"),
    [
        (None, None),
        ("<sip:alice@", "garbage <<>>"),
        ('"unterminated <sip:a@b>', "<tel:not a number>"),
        ("<mailto:a@b>;tag=1", "<urn:x:y>"),
        ("", ""),
    ],
)
def test_unparseable_from_or_to_skips_the_rule_and_never_raises(
    from_: str | None, to: str | None
) -> None:
    rules = compile_rules(*EVERY_KIND)
    message = hand_built(from_, to)
    rules.apply(message, "carrier", "inbound")
    assert message.headers.get_all("From") == ([] if from_ is None else [from_])
    assert message.headers.get_all("To") == ([] if to is None else [to])
    assert "X-U" not in message.headers  # {from_user} had nothing to insert
    assert str(message.uri) == "sip:u%209@h"  # the Request-URI still could be rewritten


def test_broken_cseq_on_a_response_fails_the_methods_condition() -> None:
    message = Response(200, headers=Headers([("CSeq", "not a cseq")]))
    rules = compile_rules({"methods": ["INVITE"], "messages": "both", **ADD_MARK})
    assert rules.apply(message, "carrier", "inbound") == 0
    assert compile_rules({"messages": "both", **ADD_MARK}).apply(message, "carrier", "inbound") == 1


def test_undecodable_bytes_survive_a_user_rewrite() -> None:
    # The parser keeps bytes that are not UTF-8 as surrogates; %FF must stay %FF.
    rule = {"rewrite_user": {"target": "ruri", "regex": "^p", "replacement": "q"}}
    message = invite(ruri="sip:p%FF@h")
    assert compile_rules(rule).apply(message, "carrier", "inbound") == 1
    assert str(message.uri) == "sip:q%FF@h"


USER_CHARS = st.text(
    alphabet=st.sampled_from("+0123456789abcXYZ-_.!~*'()&=$,;?/%2F éß"), min_size=1, max_size=20
)
VALUE_CHARS = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=40)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(ruri=USER_CHARS, from_user=USER_CHARS, subject=VALUE_CHARS, x=VALUE_CHARS)
def test_any_parsed_message_stays_parseable_after_every_kind_of_rule(
    ruri: str, from_user: str, subject: str, x: str
) -> None:
    text = (
        f"INVITE sip:{ruri}@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
        f"From: <sip:{from_user}@h>;tag=1\r\nTo: sip:{ruri}@h\r\nCall-ID: c\r\n"
        f"CSeq: 1 INVITE\r\nSubject: {subject}\r\nX-Any: {x}\r\n\r\n"
    )
    try:
        message = parse_message(text.encode())
    except ParseError:
        assume(False)
        return
    # An unbracketed To whose "user" holds ";" reads as a user-less URI with
    # header parameters (RFC 3261 §20.10): nothing for rewrite_user to do.
    assume(isinstance(message.to.uri, SipUri) and message.to.uri.user is not None)
    compile_rules(*EVERY_KIND).apply(message, "carrier", "inbound")
    again = parse_message(message.serialize())
    assert again.from_.tag == "1"
    assert again.to.uri.user is not None
    assert again.to.uri.user.endswith(";p?q,r")  # needed <>, and got them
    assert not again.to.params  # nothing of the user leaked into header parameters
    assert "X-Any" not in again.headers


def test_yaml_anchors_share_rules_and_trunk_names_each_copy() -> None:
    text = """\
manipulations:
  - trunk: carrier-a
    direction: outbound
    rules: &tag-trunk
      - replace: {header: X-Route, value: 'via-{trunk}'}
  - trunk: carrier-b
    direction: outbound
    rules: *tag-trunk
"""
    source = parse_source("manipulations.yaml", text)
    assert isinstance(source, PolicySource)
    rules = compile_manipulations(ManipulationsFile.model_validate(source.data))
    for trunk in ("carrier-a", "carrier-b"):
        message = invite()
        assert rules.apply(message, trunk, "outbound") == 1
        assert message.headers.get("X-Route") == f"via-{trunk}"
