"""security.yaml and admission.yaml schemas: defaults, errors at the exact field, references."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from sbc.guard.guard import Guard
from sbc.policy.admission import AdmissionFile, Limit, admission_references, compile_admission
from sbc.policy.refs import Reference
from sbc.policy.security import (
    DEFAULT_SCANNER_USER_AGENTS,
    KernelFilterPolicy,
    PacketCeiling,
    RateLimit,
    Refusal,
    SecurityFile,
    compile_security,
    default_security,
    method_class,
    security_references,
)
from sbc.policy.source import PolicySource, parse_source

POLICIES = Path(__file__).resolve().parents[2] / "policies"


def errors(model: type[BaseModel], data: Any) -> list[tuple[tuple[str | int, ...], str]]:
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    return [(tuple(e["loc"]), e["msg"]) for e in info.value.errors()]


def only_loc(model: type[BaseModel], data: Any) -> tuple[str | int, ...]:
    found = errors(model, data)
    assert len(found) == 1, found
    return found[0][0]


# --- security.yaml ------------------------------------------------------------------


def test_an_empty_security_file_gives_protective_defaults() -> None:
    policy = default_security()
    assert policy.acl == {}
    assert policy.per_source == (
        RateLimit(20, 40),
        RateLimit(20, 100),
        RateLimit(10, 20),
        RateLimit(100, 200),
    )
    assert policy.per_trunk == {}
    assert not policy.limit_trunk_sources
    assert policy.max_sources == 100_000
    assert policy.limited == Refusal(503, "Rate Limit Exceeded", 5)
    assert policy.banned == Refusal(None)
    assert policy.acl_denied == Refusal(None)
    assert policy.bans.strikes == 50
    assert policy.bans.scanner_agents == DEFAULT_SCANNER_USER_AGENTS
    assert "sipsak" not in " ".join(policy.bans.scanner_agents)


def test_method_classes() -> None:
    assert [method_class(m) for m in ("INVITE", "REGISTER", "OPTIONS", "BYE", "invite")] == [
        0,
        1,
        2,
        3,
        3,
    ]


def test_compiled_form_normalizes_user_agents_and_drops_empty_trunk_limits() -> None:
    file = SecurityFile.model_validate(
        {
            "bans": {"scanner_user_agents": ["  EvilDialer ", "evildialer", "X"]},
            "rate_limits": {
                "per_trunk": {"a": {"INVITE": {"rate": 5, "burst": 1}}, "b": {"INVITE": None}},
                "per_source": {"other": None},
            },
        }
    )
    policy = compile_security(file)
    assert policy.bans.scanner_agents == ("evildialer", "x")
    assert dict(policy.per_trunk) == {"a": (RateLimit(5.0, 1), None, None, None)}
    assert policy.per_source[3] is None


@pytest.mark.parametrize(
    ("data", "loc"),
    [
        (
            {"rate_limits": {"per_source": {"INVITE": {"rate": -1, "burst": 5}}}},
            ("rate_limits", "per_source", "INVITE", "rate"),
        ),
        (
            {"rate_limits": {"per_source": {"OPTIONS": {"rate": 0, "burst": 5}}}},
            ("rate_limits", "per_source", "OPTIONS", "rate"),
        ),
        (
            {"rate_limits": {"per_source": {"other": {"rate": 1, "burst": 0}}}},
            ("rate_limits", "per_source", "other", "burst"),
        ),
        (
            {"rate_limits": {"per_source": {"INVITE": {"rate": "5", "burst": 5}}}},
            ("rate_limits", "per_source", "INVITE", "rate"),
        ),
        (
            {"rate_limits": {"per_source": {"INVITE": {"rate": 5}}}},
            ("rate_limits", "per_source", "INVITE", "burst"),
        ),
        (
            {"rate_limits": {"per_source": {"INVITE": {"rate": float("inf"), "burst": 5}}}},
            ("rate_limits", "per_source", "INVITE", "rate"),
        ),
        (
            {"rate_limits": {"per_source": {"invite": {"rate": 1, "burst": 1}}}},
            ("rate_limits", "per_source", "invite"),
        ),
        (
            {"rate_limits": {"per_trunk": {"carrier": {"BYE": {"rate": 1, "burst": 1}}}}},
            ("rate_limits", "per_trunk", "carrier", "BYE"),
        ),
        (
            {"rate_limits": {"per_trunk": {"carrier": {"INVITE": {"rate": 1, "burst": 1.5}}}}},
            ("rate_limits", "per_trunk", "carrier", "INVITE", "burst"),
        ),
        (
            {"rate_limits": {"per_source_applies_to": "some"}},
            ("rate_limits", "per_source_applies_to"),
        ),
        ({"rate_limits": {"max_sources": 0}}, ("rate_limits", "max_sources")),
        ({"acl": {"external": {"allow": ["10.0.0.300/8"]}}}, ("acl", "external", "allow", 0)),
        (
            {"acl": {"external": {"deny": ["10.0.0.1", "10.0.0.1/8"]}}},
            ("acl", "external", "deny", 1),
        ),
        ({"acl": {"external": {"permit": []}}}, ("acl", "external", "permit")),
        ({"acl": {"bad name": {}}}, ("acl", "bad name", "[key]")),
        ({"limited": {"action": "tarpit"}}, ("limited", "action")),
        ({"limited": {"action": "drop", "status": 503}}, ("limited", "status")),
        ({"limited": {"status": 200}}, ("limited", "status")),
        ({"limited": {"retry_after_s": 0}}, ("limited", "retry_after_s")),
        ({"bans": {"duration_s": -5}}, ("bans", "duration_s")),
        ({"bans": {"strikes": 0}}, ("bans", "strikes")),
        ({"bans": {"window_s": True}}, ("bans", "window_s")),
        ({"bans": {"scanner_user_agents": ["ok", "  "]}}, ("bans", "scanner_user_agents", 1)),
        ({"bans": {"exempt": ["nope"]}}, ("bans", "exempt", 0)),
        ({"bans": {"ban_time": 5}}, ("bans", "ban_time")),
        ({"banned": {"action": "reject"}}, ("banned", "action")),
        ({"acl_denied": {"action": "reject"}}, ("acl_denied", "action")),
        ({"rate_limit": {}}, ("rate_limit",)),
        ({"kernel_filter": {"mode": "maybe"}}, ("kernel_filter", "mode")),
        ({"kernel_filter": {"stranger_pps": 0}}, ("kernel_filter", "stranger_pps")),
        ({"kernel_filter": {"trunk_burst": 1.5}}, ("kernel_filter", "trunk_burst")),
        ({"kernel_filter": {"stranger_pps": 600, "stranger_burst": 500}}, ("kernel_filter",)),
        (
            {"kernel_filter": {"per_trunk": {"b": {"pps": 5}}}},
            ("kernel_filter", "per_trunk", "b", "burst"),
        ),
        ({"kernel_filter": {"ceiling": 5}}, ("kernel_filter", "ceiling")),
    ],
)
def test_security_errors_name_the_exact_field(
    data: dict[str, Any], loc: tuple[str | int, ...]
) -> None:
    assert only_loc(SecurityFile, data) == loc


def test_security_error_messages_are_readable() -> None:
    [(_, message)] = errors(SecurityFile, {"acl": {"external": {"allow": ["10.0.0.1/8"]}}})
    assert "'10.0.0.1/8' is not a valid CIDR network" in message
    [(_, message)] = errors(SecurityFile, {"limited": {"action": "drop", "status": 503}})
    assert "makes no sense with action 'drop'" in message


def test_security_references_point_at_their_keys() -> None:
    file = SecurityFile.model_validate(
        {
            "acl": {"external": {}},
            "rate_limits": {"per_trunk": {"carrier": {}, "pbx": {}}},
            "kernel_filter": {"per_trunk": {"branch": None}},
        }
    )
    assert security_references(file) == [
        Reference(("acl", "external"), "interface", "external"),
        Reference(("rate_limits", "per_trunk", "carrier"), "trunk", "carrier"),
        Reference(("rate_limits", "per_trunk", "pbx"), "trunk", "pbx"),
        Reference(("kernel_filter", "per_trunk", "branch"), "trunk", "branch"),
    ]


def test_kernel_filter_defaults_and_settings() -> None:
    assert default_security().kernel_filter == KernelFilterPolicy(
        mode="auto",
        stranger=PacketCeiling(500, 1000),
        trunk=PacketCeiling(5000, 10_000),
    )
    policy = compile_security(
        SecurityFile.model_validate(
            {
                "kernel_filter": {
                    "mode": False,  # YAML 1.1 reads a plain `off` as false
                    "stranger_pps": None,
                    "per_trunk": {"branch": {"pps": 200, "burst": 400}, "pbx": None},
                }
            }
        )
    )
    assert policy.kernel_filter.mode == "off"
    assert policy.kernel_filter.stranger is None
    assert dict(policy.kernel_filter.per_trunk) == {"branch": PacketCeiling(200, 400), "pbx": None}
    on = SecurityFile.model_validate({"kernel_filter": {"mode": True}})
    assert on.kernel_filter.mode == "on"


# --- admission.yaml ---------------------------------------------------------------


def test_an_empty_admission_file_limits_nothing() -> None:
    policy = compile_admission(AdmissionFile.model_validate({}))
    assert policy.limits == {}
    assert (policy.status, policy.retry_after_s) == (503, 5)


def test_admission_compiles_scopes() -> None:
    file = AdmissionFile.model_validate(
        {
            "global": {"max_calls": 100, "max_cps": 10},
            "interfaces": {"external": {"max_cps": 2.5}, "internal": {"max_calls": 0}},
            "rejection": {"status": 486, "retry_after_s": None},
        }
    )
    policy = compile_admission(file)
    assert dict(policy.limits) == {"global": Limit(100, 10.0), "interface:external": Limit(0, 2.5)}
    assert (policy.status, policy.retry_after_s) == (486, None)
    assert admission_references(file) == [
        Reference(("interfaces", "external"), "interface", "external"),
        Reference(("interfaces", "internal"), "interface", "internal"),
    ]


@pytest.mark.parametrize(
    ("data", "loc"),
    [
        ({"global": {"max_calls": -1}}, ("global", "max_calls")),
        ({"global": {"max_calls": 1.5}}, ("global", "max_calls")),
        ({"global": {"max_cps": -0.5}}, ("global", "max_cps")),
        ({"global": {"max_cps": "10"}}, ("global", "max_cps")),
        ({"global": {"max_call": 5}}, ("global", "max_call")),
        ({"global_": {}}, ("global_",)),
        ({"interfaces": {"external": {"max_calls": -3}}}, ("interfaces", "external", "max_calls")),
        ({"interfaces": {"ex ternal": {}}}, ("interfaces", "ex ternal", "[key]")),
        ({"interfaces": ["external"]}, ("interfaces",)),
        ({"rejection": {"status": 200}}, ("rejection", "status")),
        ({"rejection": {"status": 700}}, ("rejection", "status")),
        ({"rejection": {"retry_after_s": 0}}, ("rejection", "retry_after_s")),
        ({"rejection": {"reason": "x"}}, ("rejection", "reason")),
    ],
)
def test_admission_errors_name_the_exact_field(
    data: dict[str, Any], loc: tuple[str | int, ...]
) -> None:
    assert only_loc(AdmissionFile, data) == loc


# --- the shipped examples --------------------------------------------------------


def shipped(name: str) -> PolicySource:
    source = parse_source(name, (POLICIES / name).read_text(encoding="utf-8"))
    assert isinstance(source, PolicySource), source
    assert source.duplicate_keys() == []
    return source


def test_shipped_security_yaml_is_valid_and_spells_out_the_defaults() -> None:
    file = SecurityFile.model_validate(shipped("security.yaml").data)
    policy = compile_security(file)
    defaults = default_security()
    assert policy.per_source == defaults.per_source
    assert policy.bans == defaults.bans
    assert policy.source_prefix == defaults.source_prefix
    assert (policy.limited, policy.banned, policy.acl_denied) == (
        defaults.limited,
        defaults.banned,
        defaults.acl_denied,
    )
    assert {r.name for r in security_references(file)} == {"external", "internal", "carrier", "pbx"}


def test_shipped_security_yaml_never_limits_the_demo_trunks_at_bench_rates() -> None:
    """1000 calls/s (bench/signalling.py's top step) from each demo trunk, 5 s long."""
    guard = Guard(compile_security(SecurityFile.model_validate(shipped("security.yaml").data)))
    now = 0.0
    for _ in range(5000):
        for source, interface, trunk in (
            ("127.0.0.10", "external", "carrier"),
            ("127.0.0.20", "internal", "pbx"),
        ):
            for method in ("INVITE", "ACK", "BYE"):
                assert guard.check(method, source, interface, trunk, "SIPp", now).allowed
        now += 0.001
    stranger = [
        guard.check("INVITE", "127.0.0.99", "external", None, None, now) for _ in range(100)
    ]
    assert sum(v.allowed for v in stranger) == 40  # a stranger still gets the per-source limit


def test_shipped_admission_yaml_is_valid() -> None:
    file = AdmissionFile.model_validate(shipped("admission.yaml").data)
    policy = compile_admission(file)
    assert policy.limits["global"].max_calls >= 1000
    assert policy.limits["global"].max_cps >= 1000
    assert {r.name for r in admission_references(file)} == {"external", "internal"}


def test_errors_in_a_file_map_to_their_line() -> None:
    text = "rate_limits:\n  per_source:\n    INVITE:\n      rate: -2\n      burst: 4\n"
    source = parse_source("security.yaml", text)
    assert isinstance(source, PolicySource)
    [(loc, _)] = errors(SecurityFile, source.data)
    assert source.line_of(loc) == 4


@pytest.mark.parametrize(
    ("data", "loc"),
    [
        ({"source_prefix": {"ipv6": 0}}, ("source_prefix", "ipv6")),
        ({"source_prefix": {"ipv6": 129}}, ("source_prefix", "ipv6")),
        ({"source_prefix": {"ipv6": "64"}}, ("source_prefix", "ipv6")),
        ({"source_prefix": {"ipv4": 33}}, ("source_prefix", "ipv4")),
        ({"source_prefix": {"ipv4": 8}}, ("source_prefix", "ipv4")),
        ({"source_prefix": {"ipv5": 8}}, ("source_prefix", "ipv5")),
    ],
)
def test_source_prefix_errors_name_the_field(
    data: dict[str, Any], loc: tuple[str | int, ...]
) -> None:
    assert only_loc(SecurityFile, data) == loc


def test_source_prefix_defaults_to_a_v4_address_and_a_v6_64() -> None:
    assert default_security().source_prefix == (32, 64)
    file = SecurityFile.model_validate({"source_prefix": {"ipv4": 24, "ipv6": 56}})
    assert compile_security(file).source_prefix == (24, 56)


def test_reload_changing_the_prefix_rekeys_the_sources() -> None:
    policy = compile_security(SecurityFile.model_validate({}))
    guard = Guard(policy)
    guard.check("INVITE", "2001:db8::1", "external", None, None, 0.0)
    assert guard.tracked_sources() == 1
    per_host = {"source_prefix": {"ipv6": 128}}
    guard.set_policy(compile_security(SecurityFile.model_validate(per_host)))
    assert guard.tracked_sources() == 0
    guard.check("INVITE", "2001:db8::1", "external", None, None, 0.0)
    guard.check("INVITE", "2001:db8::2", "external", None, None, 0.0)
    assert guard.tracked_sources() == 2
