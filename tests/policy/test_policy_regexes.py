"""Operator regexes in routes and manipulations run on attacker-supplied values:
they must match in linear time, and a pattern that cannot is refused at its line."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest
from policy_samples import TRUNKS, WritePolicy, context

from sbc.policy import PolicyError, load_policy
from sbc.sip.message import Request, parse_message

EVIL = r"^(a+)+$"  # nested repetition: 2^n backtracking steps in re on a+b
N = 22  # re needs ~2^22 steps here (a fraction of a second); RE2 a few microseconds
HOSTILE_USER = "a" * N + "b"


def cpu_seconds(work: Callable[[], object]) -> float:
    start = time.thread_time()
    work()
    return time.thread_time() - start


def fastest(work: Callable[[], object], runs: int = 3) -> float:
    return min(cpu_seconds(work) for _ in range(runs))


def errors(write_policy: WritePolicy, **files: str) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        load_policy(write_policy(**files))
    return [str(issue) for issue in caught.value.issues]


def test_a_backtracking_route_regex_costs_nothing_like_re(write_policy: WritePolicy) -> None:
    routes = f"""\
routes:
  - name: evil
    ruri_regex: '{EVIL}'
    from_regex: '{EVIL}'
    headers: {{X-Tenant: '{EVIL}'}}
    to: [carrier]
  - name: rest
    translate: {{regex: '{EVIL}', replacement: 'x'}}
    to: [carrier]
"""
    policy = load_policy(write_policy(routes=routes))
    hostile = context(
        policy.trunks["pbx"],
        "internal",
        HOSTILE_USER,
        from_user=HOSTILE_USER,
        headers={"X-Tenant": HOSTILE_USER},
    )

    def route() -> None:
        chosen = policy.route_for(hostile)
        assert chosen is not None
        assert chosen.name == "rest"
        assert chosen.translate is not None
        assert chosen.translate.apply(HOSTILE_USER) == HOSTILE_USER

    # Four regexes under the SBC against one under re, in the same run.
    with_re = cpu_seconds(lambda: re.search(EVIL, HOSTILE_USER))
    assert with_re > 10 * fastest(route)


def hostile_invite() -> Request:
    text = (
        f"INVITE sip:{HOSTILE_USER}@192.0.2.1 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK1\r\n"
        f"From: <sip:{HOSTILE_USER}@192.0.2.10>;tag=a1\r\n"
        "To: <sip:b@192.0.2.1>\r\n"
        "Call-ID: c1@192.0.2.10\r\n"
        "CSeq: 1 INVITE\r\n"
        f"Subject: {HOSTILE_USER}\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    message = parse_message(text.encode())
    assert isinstance(message, Request)
    return message


def test_backtracking_manipulation_regexes_cost_nothing_like_re(
    write_policy: WritePolicy,
) -> None:
    manipulations = f"""\
manipulations:
  - trunk: carrier
    direction: inbound
    rules:
      - header_matches: {{header: Subject, regex: '{EVIL}'}}
        add: {{header: X-Never, value: '1'}}
      - rewrite: {{header: Subject, regex: '{EVIL}', replacement: 'x'}}
      - rewrite_user: {{target: ruri, regex: '{EVIL}', replacement: 'x'}}
      - rewrite_user: {{target: from, regex: '{EVIL}', replacement: 'x'}}
"""
    policy = load_policy(write_policy(manipulations=manipulations))

    def manipulate() -> None:
        assert policy.manipulations.apply(hostile_invite(), "carrier", "inbound") == 0

    with_re = cpu_seconds(lambda: re.search(EVIL, HOSTILE_USER))
    assert with_re > 10 * fastest(manipulate)


def test_route_regexes_re2_cannot_take_are_refused_at_their_line(
    write_policy: WritePolicy,
) -> None:
    found = errors(
        write_policy,
        trunks=TRUNKS,
        routes="""\
routes:
  - name: backreference
    ruri_regex: '^(\\d)\\1$'
    to: [carrier]
  - name: lookahead
    from_regex: '^(?!0)'
    to: [carrier]
  - name: lookbehind
    headers: {X-Tenant: '(?<=a)b'}
    to: [carrier]
  - name: named-backreference
    translate: {regex: '(?P<d>\\d)(?P=d)', replacement: 'x'}
    to: [carrier]
""",
    )
    assert found == [
        "routes.yaml:3: routes[0].ruri_regex: invalid regex '^(\\\\d)\\\\1$': backreference \\1"
        " is not supported (RE2 matches in linear time: no backreferences or lookaround)",
        "routes.yaml:6: routes[1].from_regex: invalid regex '^(?!0)': negative lookahead (?!...)"
        " is not supported (RE2 matches in linear time: no backreferences or lookaround)",
        "routes.yaml:9: routes[2].headers.X-Tenant: invalid regex '(?<=a)b': lookbehind (?<=...)"
        " is not supported (RE2 matches in linear time: no backreferences or lookaround)",
        "routes.yaml:12: routes[3].translate.regex: invalid regex '(?P<d>\\\\d)(?P=d)': named"
        " backreference (?P=name) is not supported (RE2 matches in linear time: no"
        " backreferences or lookaround)",
    ]


def test_manipulation_regexes_re2_cannot_take_are_refused_at_their_line(
    write_policy: WritePolicy,
) -> None:
    found = errors(
        write_policy,
        manipulations="""\
manipulations:
  - trunk: carrier
    direction: inbound
    rules:
      - header_matches: {header: From, regex: 'sip:(?=\\+)'}
        add: {header: X-Plus, value: '1'}
      - rewrite: {header: Subject, regex: '(\\w)\\1', replacement: '\\1'}
      - rewrite_user: {target: ruri, regex: '^0\\Z', replacement: 'x'}
""",
    )
    assert found == [
        "manipulations.yaml:5: manipulations[0].rules[0].header_matches.regex: invalid regex:"
        " lookahead (?=...) is not supported (RE2 matches in linear time: no backreferences"
        " or lookaround)",
        "manipulations.yaml:7: manipulations[0].rules[1].rewrite.regex: invalid regex:"
        " backreference \\1 is not supported (RE2 matches in linear time: no backreferences"
        " or lookaround)",
        "manipulations.yaml:8: manipulations[0].rules[2].rewrite_user.regex: invalid regex:"
        " \\Z: write \\z for the end of the text",
    ]


def test_a_translation_naming_a_group_its_regex_lacks_is_refused_at_load(
    write_policy: WritePolicy,
) -> None:
    """It used to load, then raise on the first call it routed."""
    found = errors(
        write_policy,
        routes="""\
routes:
  - name: national
    translate: {regex: '^0(\\d+)$', replacement: '+44\\2'}
    to: [carrier]
""",
    )
    assert found == [
        "routes.yaml:3: routes[0].translate.replacement: invalid replacement:"
        " invalid group reference 2 at position 4"
    ]
