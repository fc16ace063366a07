"""``manipulations.yaml`` schema: every mistake is a pydantic error at the exact field."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from sbc.policy.manipulation_schema import ManipulationsFile, Placeholder, parse_template
from sbc.policy.source import PolicySource, parse_source

Loc = tuple[str | int, ...]


def validate_rules(*rules: dict[str, Any]) -> ManipulationsFile:
    data = {"manipulations": [{"trunk": "carrier", "direction": "inbound", "rules": list(rules)}]}
    return ManipulationsFile.model_validate(data)


def errors_of(*rules: dict[str, Any]) -> list[tuple[Loc, str]]:
    with pytest.raises(ValidationError) as caught:
        validate_rules(*rules)
    return [(tuple(error["loc"]), _message(error)) for error in caught.value.errors()]


def _message(error: Any) -> str:
    """What the loader prints: a value error's own text, else pydantic's message."""
    if error["type"] == "value_error":
        return str(error["ctx"]["error"])
    return str(error["msg"])


def rule_loc(index: int, *rest: str | int) -> Loc:
    return ("manipulations", 0, "rules", index, *rest)


ADD = {"add": {"header": "X-A", "value": "1"}}


def test_bad_regex_is_reported_at_its_field() -> None:
    bad = {"rewrite": {"header": "Subject", "regex": "(unclosed", "replacement": "x"}}
    assert errors_of(ADD, ADD, bad) == [
        (
            rule_loc(2, "rewrite", "regex"),
            "invalid regex: missing ): (unclosed",
        )
    ]


@pytest.mark.parametrize(
    ("rule", "loc"),
    [
        ({"header_matches": {"header": "Subject", "regex": "[a-"}}, ("header_matches", "regex")),
        (
            {"rewrite_user": {"target": "ruri", "regex": "*", "replacement": ""}},
            ("rewrite_user", "regex"),
        ),
    ],
)
def test_every_regex_is_compiled_at_validation(rule: dict[str, Any], loc: tuple[str, ...]) -> None:
    [(where, message)] = errors_of({**ADD, **rule} if "header_matches" in rule else rule)
    assert where == rule_loc(0, *loc)
    assert message.startswith("invalid regex: ")


def test_replacement_referring_to_a_missing_group() -> None:
    rule = {"rewrite_user": {"target": "to", "regex": r"^\+1(\d+)$", "replacement": r"\2"}}
    assert errors_of(rule) == [
        (
            rule_loc(0, "rewrite_user", "replacement"),
            "invalid replacement: invalid group reference 2 at position 1",
        )
    ]


def test_replacement_with_a_line_break_is_refused() -> None:
    rule = {"rewrite": {"header": "Subject", "regex": "a", "replacement": "b\r\nVia: x"}}
    [(loc, message)] = errors_of(rule)
    assert loc == rule_loc(0, "rewrite", "replacement")
    assert "control characters" in message


@pytest.mark.parametrize(
    ("action", "written", "expected"),
    [
        ("add", "Via", "header 'Via' is owned by the SBC"),
        ("add", "v", "header 'v' (Via) is owned by the SBC"),
        ("replace", "call-id", "header 'call-id' (Call-ID) is owned by the SBC"),
        ("remove", "Contact", "header 'Contact' is owned by the SBC"),
        ("remove", "Route", "header 'Route' is owned by the SBC"),
        ("remove", "Record-Route", "header 'Record-Route' is owned by the SBC"),
        ("remove", "l", "header 'l' (Content-Length) is owned by the SBC"),
        ("replace", "Max-Forwards", "header 'Max-Forwards' is owned by the SBC"),
        ("add", "CSeq", "header 'CSeq' is owned by the SBC"),
        ("replace", "From", "header 'From' carries the dialog's tags"),
        ("remove", "t", "header 't' (To) carries the dialog's tags"),
    ],
)
def test_headers_the_sbc_owns_cannot_be_manipulated(
    action: str, written: str, expected: str
) -> None:
    spec: dict[str, str] = {"header": written}
    if action != "remove":
        spec["value"] = "x"
    [(loc, message)] = errors_of({action: spec})
    assert loc == rule_loc(0, action, "header")
    assert message.startswith(expected)


def test_owned_header_in_a_rewrite() -> None:
    rule = {"rewrite": {"header": "Via", "regex": "a", "replacement": "b"}}
    [(loc, message)] = errors_of(rule)
    assert loc == rule_loc(0, "rewrite", "header")
    assert message == (
        "header 'Via' is owned by the SBC and cannot be manipulated:"
        " it carries each leg's transactions (RFC 3261 §8.1.1.7)"
    )


def test_a_prefix_that_covers_owned_headers_is_refused() -> None:
    [(loc, message)] = errors_of({"remove": {"header": "Content-*"}})
    assert loc == rule_loc(0, "remove", "header")
    assert message == "'Content-*' would remove Content-Length, Content-Type, which the SBC owns"
    [(_, message)] = errors_of({"remove": {"header": "f*"}})
    assert message == "'f*' would remove From, which the SBC owns"


@pytest.mark.parametrize("pattern", ["*", "X-**", "X *"])
def test_malformed_prefix_patterns(pattern: str) -> None:
    [(loc, message)] = errors_of({"remove": {"header": pattern}})
    assert loc == rule_loc(0, "remove", "header")
    assert message == f"'{pattern}' is not a header name or a 'Prefix*' pattern"


def test_prefix_patterns_are_for_remove_only() -> None:
    [(loc, message)] = errors_of({"add": {"header": "X-*", "value": "1"}})
    assert loc == rule_loc(0, "add", "header")
    assert "is for remove" in message
    [(loc, _)] = errors_of({"header_present": "X-*", **ADD})
    assert loc == rule_loc(0, "header_present")


def test_unknown_placeholder() -> None:
    rule = {"add": {"header": "X-A", "value": "<sip:{caller}@x>"}}
    assert errors_of(rule) == [
        (
            rule_loc(0, "add", "value"),
            "unknown placeholder '{caller}' (known: {from_user}, {ruri_user}, {to_user}, {trunk})",
        )
    ]


@pytest.mark.parametrize(("value", "brace"), [("a{b", "{"), ("a}b", "}"), ("{ruri_user", "{")])
def test_lone_brace(value: str, brace: str) -> None:
    [(loc, message)] = errors_of({"replace": {"header": "X-A", "value": value}})
    assert loc == rule_loc(0, "replace", "value")
    assert message == f"unmatched '{brace}' (write '{brace * 2}' for a literal brace)"


def test_templates_split_into_text_and_placeholders() -> None:
    assert parse_template("<sip:{from_user}@{{h}}>;t={trunk}") == (
        "<sip:",
        Placeholder("from_user"),
        "@{h}>;t=",
        Placeholder("trunk"),
    )
    assert parse_template("") == ()


def test_header_value_with_a_line_break_is_refused() -> None:
    [(loc, message)] = errors_of({"add": {"header": "X-A", "value": "1\r\nVia: evil"}})
    assert loc == rule_loc(0, "add", "value")
    assert message.startswith("control characters")


def test_two_actions_in_one_rule_are_reported_at_the_second() -> None:
    rule = {"add": {"header": "X-A", "value": "1"}, "remove": {"header": "X-B"}}
    assert errors_of(rule) == [
        (
            rule_loc(0, "remove"),
            "a rule has one action and this one already has 'add': write two rules",
        )
    ]


def test_a_rule_without_an_action() -> None:
    assert errors_of({"name": "lazy", "methods": ["INVITE"]}) == [
        (rule_loc(0), "a rule needs one action: add, remove, replace, rewrite, rewrite_user")
    ]


def test_methods_are_case_sensitive_tokens() -> None:
    assert errors_of({"methods": ["INVITE", "bye"], **ADD}) == [
        (rule_loc(0, "methods", 1), "SIP methods are case-sensitive (RFC 3261 §7.1): write 'BYE'")
    ]
    [(loc, _)] = errors_of({"methods": [], **ADD})
    assert loc == rule_loc(0, "methods")
    [(loc, message)] = errors_of({"methods": ["IN VITE"], **ADD})
    assert (loc, message) == (rule_loc(0, "methods", 0), "'IN VITE' is not a SIP method")


def test_rewrite_user_is_for_requests_only() -> None:
    rule = {
        "messages": "both",
        "rewrite_user": {"target": "from", "regex": "a", "replacement": "b"},
    }
    assert errors_of(rule) == [
        (
            rule_loc(0, "rewrite_user"),
            "rewrite_user applies to requests only (set messages: requests)",
        )
    ]


def test_responses_have_no_request_uri_user() -> None:
    rule = {"messages": "responses", "replace": {"header": "X-A", "value": "{ruri_user}"}}
    assert errors_of(rule) == [
        (rule_loc(0, "replace"), "replace.value uses {ruri_user}, which responses do not have")
    ]
    fine = {"messages": "responses", "add": {"header": "X-A", "value": "{from_user} {trunk}"}}
    validate_rules(fine)


@pytest.mark.parametrize(
    ("rule_set", "loc", "fragment"),
    [
        ({"direction": "sideways"}, ("manipulations", 0, "direction"), "'inbound' or 'outbound'"),
        ({"trunk": "bad name"}, ("manipulations", 0, "trunk"), "should match pattern"),
        ({"trunk": 7}, ("manipulations", 0, "trunk"), "valid string"),
        ({"rules": None}, ("manipulations", 0, "rules"), "valid list"),
        ({"rule": []}, ("manipulations", 0, "rule"), "Extra inputs are not permitted"),
    ],
)
def test_rule_set_fields(rule_set: dict[str, Any], loc: Loc, fragment: str) -> None:
    data = {"trunk": "carrier", "direction": "inbound", "rules": [], **rule_set}
    with pytest.raises(ValidationError) as caught:
        ManipulationsFile.model_validate({"manipulations": [data]})
    found = [(tuple(error["loc"]), _message(error)) for error in caught.value.errors()]
    assert any(where == loc and fragment in message for where, message in found), found


@pytest.mark.parametrize(
    ("rule", "loc", "fragment"),
    [
        (
            {"rewrite_user": {"target": "contact", "regex": "a", "replacement": ""}},
            ("rewrite_user", "target"),
            "'ruri', 'from' or 'to'",
        ),
        ({"messages": "all", **ADD}, ("messages",), "'requests', 'responses' or 'both'"),
        ({"add": {"header": "X-A", "value": 5}}, ("add", "value"), "valid string"),
        (
            {"add": {"header": "X-A", "value": "1", "positon": "first"}},
            ("add", "positon"),
            "Extra inputs",
        ),
        (
            {"add": {"header": "X-A", "value": "1", "position": "top"}},
            ("add", "position"),
            "'first' or 'last'",
        ),
        ({"remove": {"header": "Bad:Name"}}, ("remove", "header"), "is not a header name"),
        ({"header_present": "", **ADD}, ("header_present",), "is not a header name"),
        ({"name": "a rule", **ADD}, ("name",), "should match pattern"),
        ({"when": "always", **ADD}, ("when",), "Extra inputs"),
    ],
)
def test_rule_fields(rule: dict[str, Any], loc: tuple[str, ...], fragment: str) -> None:
    found = errors_of(rule)
    assert any(where == rule_loc(0, *loc) and fragment in message for where, message in found), (
        found
    )


def test_header_names_are_normalised() -> None:
    file = validate_rules(
        {
            "header_present": "f",
            "header_absent": "p-asserted-identity",
            "add": {"header": "x-acme-ID", "value": "1"},
        },
        {"header_matches": {"header": "SUBJECT", "regex": "x"}, "remove": {"header": "x-*"}},
    )
    first, second = file.manipulations[0].rules
    assert (first.header_present, first.header_absent) == ("From", "P-Asserted-Identity")
    assert first.add is not None
    assert first.add.header == "X-Acme-Id"
    assert second.header_matches is not None
    assert second.header_matches.header == "Subject"
    assert second.remove is not None
    assert second.remove.header == "x-*"


def test_an_empty_file_means_no_manipulations() -> None:
    assert ManipulationsFile.model_validate({}).manipulations == []


def test_errors_map_to_the_line_an_operator_must_edit() -> None:
    text = """\
manipulations:
  - trunk: carrier
    direction: inbound
    rules:
      - name: ok
        remove: {header: X-*}
      - name: broken
        rewrite:
          header: Subject
          regex: '(unclosed'
          replacement: x
      - add: {header: Via, value: x}
"""
    source = parse_source("manipulations.yaml", text)
    assert isinstance(source, PolicySource)
    with pytest.raises(ValidationError) as caught:
        ManipulationsFile.model_validate(source.data)
    reported = [
        f"{source.name}:{source.line_of(tuple(error['loc']))}: {_path(tuple(error['loc']))}:"
        f" {_message(error)}"
        for error in caught.value.errors()
    ]
    assert reported == [
        "manipulations.yaml:10: manipulations[0].rules[1].rewrite.regex:"
        " invalid regex: missing ): (unclosed",
        "manipulations.yaml:12: manipulations[0].rules[2].add.header: header 'Via' is owned"
        " by the SBC and cannot be manipulated: it carries each leg's transactions"
        " (RFC 3261 §8.1.1.7)",
    ]


def _path(loc: Loc) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text
