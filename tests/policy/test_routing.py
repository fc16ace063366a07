"""Routing criteria and actions, compiled from routes.yaml."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime

import pytest
from policy_samples import TRUNKS, WritePolicy, context

from sbc.policy import Policy, PolicyError, load_policy

TWO_CARRIERS = (
    TRUNKS
    + """\
  - name: carrier2
    interface: external
    address: 127.0.0.11
  - name: carrier3
    interface: external
    address: 127.0.0.12
"""
)


def policy_with(write_policy: WritePolicy, routes: str) -> Policy:
    return load_policy(write_policy(trunks=TWO_CARRIERS, routes=routes))


def route_name(policy: Policy, user: str, **kwargs: object) -> str | None:
    pbx = policy.trunks["pbx"]
    route = policy.route_for(context(pbx, "internal", user, **kwargs))  # type: ignore[arg-type]
    return None if route is None else route.name


def errors(write_policy: WritePolicy, routes: str) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        policy_with(write_policy, routes)
    return [str(issue) for issue in caught.value.issues]


def test_regex_range_and_from_criteria(write_policy: WritePolicy) -> None:
    policy = policy_with(
        write_policy,
        """\
routes:
  - name: emergency
    ruri_regex: "^(911|112)$"
    to: [carrier]
  - name: extensions
    ruri_range: {first: "2000", last: "2999"}
    to: [carrier2]
  - name: vip-callers
    from_prefix: "+4420"
    from_regex: "7$"
    to: [carrier3]
  - name: rest
    to: [carrier]
""",
    )
    assert route_name(policy, "911") == "emergency"
    assert route_name(policy, "9111") == "rest"
    assert route_name(policy, "2000") == "extensions"
    assert route_name(policy, "2999") == "extensions"
    assert route_name(policy, "3000") == "rest"
    assert route_name(policy, "20000") == "rest"  # the range is of 4-digit numbers
    assert route_name(policy, "2a00") == "rest"
    assert route_name(policy, "555", from_user="+442071234567") == "vip-callers"
    assert route_name(policy, "555", from_user="+442071234568") == "rest"


def test_header_criteria(write_policy: WritePolicy) -> None:
    policy = policy_with(
        write_policy,
        """\
routes:
  - name: tenant-a
    headers: {x-tenant: "^a$"}
    to: [carrier2]
  - name: rest
    to: [carrier]
""",
    )
    assert route_name(policy, "1", headers={"X-Tenant": "a"}) == "tenant-a"
    assert route_name(policy, "1", headers={"X-Tenant": "ab"}) == "rest"
    assert route_name(policy, "1") == "rest"


def test_time_of_day_in_a_time_zone_and_across_midnight(write_policy: WritePolicy) -> None:
    policy = policy_with(
        write_policy,
        """\
routes:
  - name: office
    time: {days: [mon, tue, wed, thu, fri], start: "08:00", end: "18:00",
           timezone: America/New_York}
    to: [carrier2]
  - name: night
    time: {days: [fri], start: "22:00", end: "06:00"}
    to: [carrier3]
  - name: rest
    to: [carrier]
""",
    )

    def at(*when: int) -> str | None:
        return route_name(policy, "1", wall=datetime(*when, tzinfo=UTC))

    assert at(2026, 11, 18, 14, 0) == "office"  # Wednesday 09:00 in New York
    assert at(2026, 11, 18, 12, 0) == "rest"  # 07:00 there
    assert at(2026, 11, 21, 14, 0) == "rest"  # Saturday
    assert at(2026, 11, 20, 23, 30) == "night"  # Friday night
    assert at(2026, 11, 21, 5, 59) == "night"  # Saturday early: Friday's window
    assert at(2026, 11, 21, 6, 1) == "rest"
    assert at(2026, 11, 22, 1, 0) == "rest"  # Sunday early: Saturday opened no window


def test_weighted_group_spreads_calls_and_keeps_the_rest_for_failover(
    write_policy: WritePolicy,
) -> None:
    policy = policy_with(
        write_policy,
        """\
routes:
  - name: out
    to:
      - group: [{trunk: carrier, weight: 3}, {trunk: carrier2, weight: 1}]
      - carrier3
""",
    )
    route = policy.routes[0]
    rng = random.Random(7)
    orders = [route.trunks(rng) for _ in range(4000)]
    assert all(sorted(order) == ["carrier", "carrier2", "carrier3"] for order in orders)
    assert all(order[2] == "carrier3" for order in orders)
    first = Counter(order[0] for order in orders)
    assert 0.70 < first["carrier"] / 4000 < 0.80  # weight 3 of 4


def test_reject_translate_and_failover_codes(write_policy: WritePolicy) -> None:
    policy = policy_with(
        write_policy,
        """\
routes:
  - name: premium
    prefix: "1900"
    reject: {status: 403, reason: Premium Numbers Barred}
  - name: international
    prefix: "00"
    translate: {regex: "^00", replacement: "+"}
    failover_on: [503]
    to: [carrier, carrier2]
""",
    )
    premium, international = policy.routes
    assert premium.reject == (403, "Premium Numbers Barred")
    assert international.translate is not None
    assert international.translate.apply("0044123") == "+44123"
    assert international.failover_on == frozenset({503})
    assert international.trunks(random.Random()) == ["carrier", "carrier2"]


def test_default_failover_codes(write_policy: WritePolicy) -> None:
    policy = policy_with(write_policy, "routes:\n  - name: r\n    to: [carrier]\n")
    assert policy.routes[0].failover_on == frozenset({408, 500, 502, 503, 504})


def test_route_errors_name_their_line(write_policy: WritePolicy) -> None:
    found = errors(
        write_policy,
        """\
routes:
  - name: bad-regex
    ruri_regex: "(["
    to: [carrier]
  - name: bad-range
    ruri_range: {first: "300", last: "2999"}
    to: [carrier]
  - name: bad-zone
    time: {timezone: Mars/Olympus, start: "25:00"}
    to: [carrier]
  - name: both
    reject: {status: 403}
    to: [carrier]
  - name: unknown-member
    to: [{group: [{trunk: nowhere}]}]
""",
    )
    assert found[0].startswith("routes.yaml:3: routes[0].ruri_regex: invalid regex '(['")
    assert found[1] == (
        "routes.yaml:6: routes[1].ruri_range: first and last must have the same length and form"
    )
    assert found[2].startswith("routes.yaml:9: routes[2].time.start: '25:00' is not a time of day")
    assert found[3].startswith("routes.yaml:9: routes[2].time.timezone: unknown time zone")
    assert found[4] == ("routes.yaml:13: routes[3].to: a route has one action, not reject and to")
    assert found[5].startswith(
        "routes.yaml:15: routes[4].to[0].group[0].trunk: unknown trunk 'nowhere'"
    )
    assert len(found) == 6


def test_pass_headers_may_not_name_what_the_sbc_owns(write_policy: WritePolicy) -> None:
    trunks = TRUNKS.replace(
        "address: 127.0.0.20\n", "address: 127.0.0.20\n    pass_headers: [X-Ok, via]\n"
    )
    with pytest.raises(PolicyError) as caught:
        load_policy(write_policy(trunks=trunks))
    assert [str(issue) for issue in caught.value.issues] == [
        "trunks.yaml:8: trunks[1].pass_headers: via is the SBC's own on each leg"
        " and cannot be passed"
    ]
