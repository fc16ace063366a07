"""ACLs: deny over allow, IPv4-mapped IPv6 as IPv4, per interface, cached but reloadable."""

from __future__ import annotations

import ipaddress

import pytest
from guard_samples import STRANGER, guard, security
from hypothesis import given
from hypothesis import strategies as st

from sbc.policy.security import AccessList, NetworkSet, SourceKey, source_key


def addr(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


def reference_key(text: str) -> SourceKey | None:
    """What source_key must return, computed the slow, obvious way."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.version, int(address)


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_source_key_reads_every_dotted_quad(value: int) -> None:
    assert source_key(str(ipaddress.IPv4Address(value))) == (4, value)


@given(
    st.one_of(
        st.lists(
            st.integers(-300, 300).map(str) | st.text("0123456789 +-_x", max_size=4),
            min_size=1,
            max_size=5,
        ).map(".".join),
        st.text(max_size=20),
        st.ip_addresses().map(str),
    )
)
def test_source_key_agrees_with_ipaddress(text: str) -> None:
    assert source_key(text) == reference_key(text)


@pytest.mark.parametrize(
    "text", ["010.0.0.1", "1.2.3.4 ", "+1.2.3.4", "1_0.0.0.1", "1.2.3", "256.1.1.1", ""]
)
def test_source_key_refuses_odd_spellings(text: str) -> None:
    assert source_key(text) is None


def test_network_set_matches_every_prefix_length() -> None:
    networks = NetworkSet(["10.0.0.0/8", "192.0.2.128/25", "198.51.100.7/32", "2001:db8::/32"])
    assert addr("10.255.1.2") in networks
    assert addr("192.0.2.200") in networks
    assert addr("192.0.2.100") not in networks
    assert addr("198.51.100.7") in networks
    assert addr("198.51.100.8") not in networks
    assert addr("2001:db8:1::5") in networks
    assert addr("2001:db9::5") not in networks
    assert addr("11.0.0.1") not in networks


def test_network_set_of_thousands_of_blocks() -> None:
    blocks = [f"10.{i // 256}.{i % 256}.0/24" for i in range(0, 5000, 2)]
    networks = NetworkSet(blocks)
    assert addr("10.0.2.9") in networks
    assert addr("10.0.3.9") not in networks
    assert addr("10.19.134.1") in networks  # block 4998


def test_zero_prefix_matches_the_whole_family_only() -> None:
    everything_v4 = NetworkSet(["0.0.0.0/0"])
    assert addr("203.0.113.1") in everything_v4
    assert addr("2001:db8::1") not in everything_v4


def test_ipv4_mapped_sources_are_ipv4() -> None:
    assert source_key("::ffff:192.0.2.1") == (4, int(addr("192.0.2.1")))
    assert addr("::ffff:192.0.2.1") in NetworkSet(["192.0.2.0/24"])
    assert "::ffff:192.0.2.1" in NetworkSet(["192.0.2.0/24"])


def test_ipv4_mapped_networks_are_ipv4() -> None:
    networks = NetworkSet(["::ffff:10.0.0.0/104"])
    assert networks.networks == (ipaddress.IPv4Network("10.0.0.0/8"),)
    assert addr("10.1.2.3") in networks


def test_text_that_is_no_address_matches_nothing() -> None:
    assert source_key("not-an-ip") is None
    assert "not-an-ip" not in NetworkSet(["0.0.0.0/0"])
    assert None not in NetworkSet(["0.0.0.0/0"])
    assert not NetworkSet(["0.0.0.0/0"]).contains_key(None)


def test_deny_wins_over_allow() -> None:
    acl = AccessList(allow=NetworkSet(["10.0.0.0/8"]), deny=NetworkSet(["10.9.0.0/16"]))
    assert acl.permits(source_key("10.1.1.1"))
    assert not acl.permits(source_key("10.9.1.1"))
    assert not acl.permits(source_key("192.0.2.1"))  # not allowed


def test_empty_allow_list_allows_all_but_the_denied() -> None:
    acl = AccessList(allow=NetworkSet(), deny=NetworkSet(["192.0.2.0/24"]))
    assert acl.permits(source_key("203.0.113.1"))
    assert acl.permits(source_key("2001:db8::1"))
    assert not acl.permits(source_key("192.0.2.1"))
    assert acl.permits(None)  # an open list lets in what it cannot parse
    closed = AccessList(allow=NetworkSet(["10.0.0.0/8"]), deny=NetworkSet())
    assert not closed.permits(None)


ACL = {
    "acl": {
        "external": {"allow": [], "deny": ["203.0.113.0/24"]},
        "internal": {"allow": ["10.0.0.0/8"], "deny": ["10.66.0.0/16"]},
    }
}


@pytest.mark.parametrize(
    ("source", "interface", "allowed"),
    [
        (STRANGER, "external", False),
        ("198.51.100.1", "external", True),
        ("::ffff:203.0.113.9", "external", False),
        ("10.1.2.3", "internal", True),
        ("::ffff:10.1.2.3", "internal", True),
        ("10.66.0.1", "internal", False),
        ("198.51.100.1", "internal", False),
        (STRANGER, "other", True),  # no ACL on this interface
    ],
)
def test_guard_applies_the_interface_acl(source: str, interface: str, allowed: bool) -> None:
    g = guard(ACL)
    verdict = g.check("OPTIONS", source, interface, None, None, 0.0)
    assert verdict.allowed is allowed
    assert g.stats["acl_denied"] == (0 if allowed else 1)


def test_denied_requests_are_dropped_by_default_or_forbidden() -> None:
    assert guard(ACL).check("INVITE", STRANGER, "external", None, None, 0.0).action == "drop"
    forbidding = guard({**ACL, "acl_denied": {"action": "forbid"}})
    verdict = forbidding.check("INVITE", STRANGER, "external", None, None, 0.0)
    assert (verdict.action, verdict.status, verdict.reason) == ("respond", 403, "Forbidden")


def test_acl_applies_to_trunks_too() -> None:
    g = guard(ACL)
    assert not g.check("INVITE", "10.66.0.1", "internal", "pbx", None, 0.0).allowed


def test_cached_acl_decisions_follow_a_reload() -> None:
    g = guard(ACL)
    assert g.check("OPTIONS", "198.51.100.1", "external", None, None, 0.0).allowed
    g.set_policy(security({"acl": {"external": {"deny": ["198.51.100.0/24"]}}}))
    assert not g.check("OPTIONS", "198.51.100.1", "external", None, None, 1.0).allowed
    assert g.check("OPTIONS", "10.66.0.1", "internal", None, None, 1.0).allowed  # ACL gone


def test_the_decision_cache_is_per_interface() -> None:
    g = guard(ACL)
    assert g.check("OPTIONS", "10.66.0.1", "external", None, None, 0.0).allowed
    assert not g.check("OPTIONS", "10.66.0.1", "internal", None, None, 0.0).allowed
    assert g.check("OPTIONS", "10.66.0.1", "external", None, None, 0.0).allowed


def test_acl_cache_stays_bounded() -> None:
    g = guard({**ACL, "rate_limits": {"max_sources": 100}})
    for i in range(1000):
        g.check("OPTIONS", f"10.0.{i // 256}.{i % 256}", "internal", None, None, 0.0)
    assert len(g._acl["internal"][1]) <= 100
    assert not g.check("OPTIONS", "10.66.0.1", "internal", None, None, 0.0).allowed
